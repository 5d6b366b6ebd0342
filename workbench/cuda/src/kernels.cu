// The CUDA candidate's kernels. Each launcher checks nothing but its launch; shapes are the
// caller's business (encoder.cpp validates them once per call).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <mma.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "kernels.h"

namespace wb::cuda {
namespace {

template <class T>
__device__ __forceinline__ T from_f(float x);
template <>
__device__ __forceinline__ float from_f<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_f<__half>(float x) {
  return __float2half_rn(x);
}
__device__ __forceinline__ float to_f(float x) { return x; }
__device__ __forceinline__ float to_f(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f(__half x) { return __half2float(x); }
template <class T>
__device__ __forceinline__ float round_to(float x) {
  return to_f(from_f<T>(x));
}

void check_launch(const char* what) {
  const cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA launch ") + what + ": " + cudaGetErrorString(e));
}

unsigned blocks_for(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 65535 * 16 ? b : 65535 * 16);
}

// Calls f.template operator()<T>() with T the element type of `a`.
template <class F>
void dispatch(Act a, F&& f) {
  switch (a) {
    case Act::f32:
      f.template operator()<float>();
      break;
    case Act::bf16:
      f.template operator()<__nv_bfloat16>();
      break;
    case Act::f16:
      f.template operator()<__half>();
      break;
  }
}

// ---- front end ----
__global__ void frame_window_k(const float* pcm, int64_t n, const float* window, float* frames,
                               int n_frames, int n_fft, int hop, int first, bool reflect) {
  const int f = blockIdx.x;
  const int pad = n_fft / 2;
  for (int i = threadIdx.x; i < n_fft; i += blockDim.x) {
    int64_t j = static_cast<int64_t>(f + first) * hop + i - pad;
    float v;
    if (j < 0)
      v = reflect ? pcm[-j] : 0.0f;
    else if (j >= n)
      v = reflect ? pcm[2 * (n - 1) - j] : 0.0f;
    else
      v = pcm[j];
    frames[static_cast<int64_t>(f) * n_fft + i] = v * window[i];
  }
}

__global__ void mel_power_k(const float* spec, const float* filters, float* out, int n_mels,
                            int n_frames, int bins) {
  extern __shared__ float p[];  // |spec[f, :]|^2
  const int f = blockIdx.x;
  for (int b = threadIdx.x; b < bins; b += blockDim.x) {
    const float re = spec[(static_cast<int64_t>(f) * bins + b) * 2];
    const float im = spec[(static_cast<int64_t>(f) * bins + b) * 2 + 1];
    p[b] = re * re + im * im;
  }
  __syncthreads();
  for (int m = threadIdx.x; m < n_mels; m += blockDim.x) {
    const float* w = filters + static_cast<int64_t>(m) * bins;
    float acc = 0.0f;
    for (int b = 0; b < bins; ++b) acc = fmaf(w[b], p[b], acc);
    out[static_cast<int64_t>(m) * n_frames + f] = acc;
  }
}

// Order-preserving map of a float onto uint32 (for atomicMax over signed floats).
__device__ __forceinline__ uint32_t ordered(float x) {
  const uint32_t u = __float_as_uint(x);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float unordered(uint32_t u) {
  return __uint_as_float((u & 0x80000000u) ? (u & 0x7fffffffu) : ~u);
}

__global__ void log_max_k(float* x, int64_t n, bool db, uint32_t* mx) {
  float m = -INFINITY;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    float v = log10f(fmaxf(x[i], 1e-10f));
    if (db) v *= 10.0f;
    x[i] = v;
    m = fmaxf(m, v);
  }
  for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
  if ((threadIdx.x & 31) == 0) atomicMax(mx, ordered(m));
}

__global__ void log_floor_k(float* x, int64_t n, bool db, const uint32_t* mx) {
  const float m = unordered(*mx);
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    if (db)
      x[i] = fmaxf(x[i], m - 80.0f);
    else
      x[i] = (fmaxf(x[i], m - 8.0f) + 4.0f) / 4.0f;
  }
}

// ---- stem ----
template <class T>
__global__ void im2col1_k(const float* mel, T* col, int n_mels, int t2, int pad) {
  const int64_t total = static_cast<int64_t>(t2) * n_mels * 3;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / (n_mels * 3);
    const int r = static_cast<int>(i % (n_mels * 3));
    const int ci = r / 3, k = r % 3;
    const int64_t s = t + k - pad;
    col[i] = from_f<T>((s >= 0 && s < t2) ? mel[static_cast<int64_t>(ci) * t2 + s] : 0.0f);
  }
}

template <class T>
__global__ void im2col2_k(const float* h, T* col, int c, int t2, int t1, int pad) {
  const int64_t total = static_cast<int64_t>(t1) * 3 * c;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / (3 * c);
    const int r = static_cast<int>(i % (3 * c));
    const int k = r / c, ci = r % c;
    const int64_t s = 2 * t + k - pad;
    col[i] = from_f<T>((s >= 0 && s < t2) ? h[s * c + ci] : 0.0f);
  }
}

// ---- elementwise ----
template <class T>
__global__ void gelu_k(const float* x, float* y32, T* ya, int64_t n, bool tanh_approx) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    float g;
    if (tanh_approx)
      g = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    else
      g = 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
    if (y32 != nullptr) y32[i] = g;
    if (ya != nullptr) ya[i] = from_f<T>(g);
  }
}

__global__ void add_k(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    out[i] = a[i] + b[i];
}

template <class T>
__global__ void convert_k(const float* x, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = from_f<T>(x[i]);
}

// ---- layer norm: one block of 256 threads per row ----
__device__ __forceinline__ float block_sum(float v, float* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int w = threadIdx.x >> 5, l = threadIdx.x & 31;
  __syncthreads();  // red is reused between calls
  if (l == 0) red[w] = v;
  __syncthreads();
  float s = 0.0f;
  const int nw = blockDim.x >> 5;
  for (int i = 0; i < nw; ++i) s += red[i];
  return s;
}

template <class T>
__global__ void layer_norm_k(const float* x, const float* g, const float* b, float* y32, T* ya,
                             int cols, float eps) {
  __shared__ float red[32];
  const int64_t row = blockIdx.x;
  const float* xr = x + row * cols;
  float s = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i];
  const float mean = block_sum(s, red) / static_cast<float>(cols);
  float q = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float d = xr[i] - mean;
    q = fmaf(d, d, q);
  }
  const float var = block_sum(q, red) / static_cast<float>(cols);
  const float rstd = rsqrtf(var + eps);
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float v = (xr[i] - mean) * rstd * g[i] + b[i];
    if (y32 != nullptr) y32[row * cols + i] = v;
    if (ya != nullptr) ya[row * cols + i] = from_f<T>(v);
  }
}

// ---- attention: one thread per query row, key/value tiles staged in shared memory ----
// Each thread keeps q (pre-multiplied by alpha * log2(e)) and its output accumulator in
// registers and walks all keys with a running maximum m and denominator l (online softmax):
//   s = q.k;  if s > m: acc *= 2^(m - s), l *= 2^(m - s), m = s;  p = 2^(s - m);
//   l += p;  acc += p v.
constexpr int kAttnQ = 64;  // queries (threads) per block

template <int DH, class T>
__global__ void __launch_bounds__(kAttnQ)
    attention_k(const float* qkv, T* out, int t, int c, float alpha, bool round_inputs) {
  constexpr int kAttnKT = DH <= 64 ? 64 : 32;  // keys per tile: 32 KiB of keys and values
  __shared__ float4 ks[kAttnKT][DH / 4];
  __shared__ float4 vs[kAttnKT][DH / 4];
  const int h = blockIdx.y;
  const int qi = blockIdx.x * kAttnQ + threadIdx.x;
  const int64_t ld = 3 * static_cast<int64_t>(c);
  const bool active = qi < t;
  const float qscale = alpha * 1.4426950408889634f;
  float q[DH], acc[DH];
#pragma unroll
  for (int d = 0; d < DH; ++d) {
    float v = active ? qkv[qi * ld + h * DH + d] : 0.0f;
    if (round_inputs) v = round_to<T>(v);
    q[d] = v * qscale;
    acc[d] = 0.0f;
  }
  float m = -INFINITY, l = 0.0f;
  for (int k0 = 0; k0 < t; k0 += kAttnKT) {
    const int nk = min(kAttnKT, t - k0);
    __syncthreads();
    for (int i = threadIdx.x; i < nk * (DH / 4); i += kAttnQ) {
      const int j = i / (DH / 4), d4 = i % (DH / 4);
      const float* kp = qkv + (k0 + j) * ld + c + h * DH + d4 * 4;
      float4 kv = *reinterpret_cast<const float4*>(kp);
      float4 vv = *reinterpret_cast<const float4*>(kp + c);
      if (round_inputs) {
        kv =
            make_float4(round_to<T>(kv.x), round_to<T>(kv.y), round_to<T>(kv.z), round_to<T>(kv.w));
        vv =
            make_float4(round_to<T>(vv.x), round_to<T>(vv.y), round_to<T>(vv.z), round_to<T>(vv.w));
      }
      ks[j][d4] = kv;
      vs[j][d4] = vv;
    }
    __syncthreads();
    for (int j = 0; j < nk; ++j) {
      float s0 = 0.0f, s1 = 0.0f;
#pragma unroll
      for (int d4 = 0; d4 < DH / 4; ++d4) {
        const float4 kv = ks[j][d4];
        s0 = fmaf(q[4 * d4], kv.x, s0);
        s1 = fmaf(q[4 * d4 + 1], kv.y, s1);
        s0 = fmaf(q[4 * d4 + 2], kv.z, s0);
        s1 = fmaf(q[4 * d4 + 3], kv.w, s1);
      }
      const float s = s0 + s1;
      if (s > m) {
        const float corr = exp2f(m - s);
        l *= corr;
#pragma unroll
        for (int d = 0; d < DH; ++d) acc[d] *= corr;
        m = s;
      }
      const float p = exp2f(s - m);
      l += p;
#pragma unroll
      for (int d4 = 0; d4 < DH / 4; ++d4) {
        const float4 vv = vs[j][d4];
        acc[4 * d4] = fmaf(p, vv.x, acc[4 * d4]);
        acc[4 * d4 + 1] = fmaf(p, vv.y, acc[4 * d4 + 1]);
        acc[4 * d4 + 2] = fmaf(p, vv.z, acc[4 * d4 + 2]);
        acc[4 * d4 + 3] = fmaf(p, vv.w, acc[4 * d4 + 3]);
      }
    }
  }
  if (!active) return;
  const float inv = 1.0f / l;
#pragma unroll
  for (int d = 0; d < DH; ++d)
    out[qi * static_cast<int64_t>(c) + h * DH + d] = from_f<T>(acc[d] * inv);
}

// ---- attention on tensor cores (bfloat16 / float16 q, k, v; d_head 64) ----
// qkv: [flash_rows(t), 3C] of the 16-bit type, rows >= t zero (so tiles never read past it).
// Block: 4 warps, 64 queries of one head (16 per warp; their Q fragments loaded once from global
// memory). Key/value tiles of 64 rows are double-buffered in shared memory with cp.async. Per
// tile and warp: S = Q K^T (wmma 16x16x16, float accumulation) to shared memory; each pair of
// lanes owns one query row (32 columns each) and does the online softmax in float32 (m, l and
// the row of O in registers); P, rounded to the input type as in FlashAttention, goes back
// through shared memory into P V (wmma), whose tile is added to O after the rescale.
constexpr int kFQ = 64, kFK = 64, kFD = 64;
constexpr int kLdh = kFD + 8;  // 16-bit row stride (elements): 144 bytes, skews banks
constexpr int kLds = kFK + 4;  // float row stride of S / the P V tile
constexpr int kFlashSmem = 2 * 2 * kFK * kLdh * 2 + 4 * 16 * kLds * 4;  // 54 272 bytes

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned sa = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

template <class T>
__global__ void __launch_bounds__(128)
    flash_tc_k(const T* qkv, T* out, int t, int c, float scale_log2) {
  namespace w = nvcuda::wmma;
  extern __shared__ __align__(128) unsigned char smem[];
  T* kv_s = reinterpret_cast<T*>(smem);  // [stage][K | V][kFK][kLdh]
  float* sw = reinterpret_cast<float*>(smem + 2 * 2 * kFK * kLdh * sizeof(T));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int h = blockIdx.y, q0 = blockIdx.x * kFQ;
  const int64_t ld = 3 * static_cast<int64_t>(c);
  auto load_tile = [&](int k0, int stage) {
    T* ks = kv_s + stage * 2 * kFK * kLdh;
    T* vs = ks + kFK * kLdh;
    // 64 rows x 64 dims x 2 bytes = 512 chunks of 16 bytes for K, as many for V
    for (int i = threadIdx.x; i < kFK * kFD / 8; i += blockDim.x) {
      const int r = i / (kFD / 8), d8 = i % (kFD / 8);
      const T* src = qkv + (k0 + r) * ld + c + h * kFD + d8 * 8;
      cp_async16(ks + r * kLdh + d8 * 8, src);
      cp_async16(vs + r * kLdh + d8 * 8, src + c);
    }
    cp_async_commit();
  };
  load_tile(0, 0);
  w::fragment<w::matrix_a, 16, 16, 16, T, w::row_major> qa[kFD / 16];
#pragma unroll
  for (int kk = 0; kk < kFD / 16; ++kk)
    w::load_matrix_sync(qa[kk], qkv + (q0 + warp * 16) * ld + h * kFD + kk * 16,
                        static_cast<unsigned>(ld));
  const int row = lane >> 1, half = (lane & 1) * 32;
  float* S = sw + warp * 16 * kLds;
  T* P = reinterpret_cast<T*>(S);  // P row r overlays S row r (read first)
  constexpr int kLdp = 2 * kLds;
  float o[32];
#pragma unroll
  for (int j = 0; j < 32; ++j) o[j] = 0.0f;
  float m = -INFINITY, l = 0.0f;
  const int n_tiles = (t + kFK - 1) / kFK;
  for (int it = 0; it < n_tiles; ++it) {
    const int k0 = it * kFK;
    if (it + 1 < n_tiles) {
      load_tile(k0 + kFK, (it + 1) & 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* ks = kv_s + (it & 1) * 2 * kFK * kLdh;
    const T* vs = ks + kFK * kLdh;
#pragma unroll
    for (int nb = 0; nb < kFK / 16; ++nb) {
      w::fragment<w::accumulator, 16, 16, 16, float> acc;
      w::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < kFD / 16; ++kk) {
        w::fragment<w::matrix_b, 16, 16, 16, T, w::col_major> kb;
        w::load_matrix_sync(kb, ks + nb * 16 * kLdh + kk * 16, kLdh);
        w::mma_sync(acc, qa[kk], kb, acc);
      }
      w::store_matrix_sync(S + nb * 16, acc, kLds, w::mem_row_major);
    }
    __syncwarp();
    float sv[32];
    float mx = -INFINITY;
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      const int col = half + j;
      sv[j] = (k0 + col < t) ? S[row * kLds + col] * scale_log2 : -INFINITY;
      mx = fmaxf(mx, sv[j]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
    const float m_new = fmaxf(m, mx);
    const float corr = exp2f(m - m_new);
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < 32; ++j) {
      sv[j] = exp2f(sv[j] - m_new);
      sum += sv[j];
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    l = l * corr + sum;
    m = m_new;
    __syncwarp();
#pragma unroll
    for (int j = 0; j < 32; ++j) P[row * kLdp + half + j] = from_f<T>(sv[j]);
    __syncwarp();
    w::fragment<w::matrix_a, 16, 16, 16, T, w::row_major> pa[kFK / 16];
#pragma unroll
    for (int kk = 0; kk < kFK / 16; ++kk) w::load_matrix_sync(pa[kk], P + kk * 16, kLdp);
    __syncwarp();
#pragma unroll
    for (int nb = 0; nb < kFD / 16; ++nb) {
      w::fragment<w::accumulator, 16, 16, 16, float> acc;
      w::fill_fragment(acc, 0.0f);
#pragma unroll
      for (int kk = 0; kk < kFK / 16; ++kk) {
        w::fragment<w::matrix_b, 16, 16, 16, T, w::row_major> vb;
        w::load_matrix_sync(vb, vs + kk * 16 * kLdh + nb * 16, kLdh);
        w::mma_sync(acc, pa[kk], vb, acc);
      }
      w::store_matrix_sync(S + nb * 16, acc, kLds, w::mem_row_major);
    }
    __syncwarp();
#pragma unroll
    for (int j = 0; j < 32; ++j) o[j] = o[j] * corr + S[row * kLds + half + j];
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  const int qi = q0 + warp * 16 + row;
  if (qi >= t) return;
  const float inv = 1.0f / l;
  T* dst = out + qi * static_cast<int64_t>(c) + h * kFD + half;
#pragma unroll
  for (int j = 0; j < 32; ++j) dst[j] = from_f<T>(o[j] * inv);
}

// ---- random fill: splitmix64 of (seed, index) ----
__device__ __forceinline__ uint64_t splitmix(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
template <class T>
__global__ void fill_uniform_k(T* p, int64_t n, uint64_t seed, float scale, float offset) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = splitmix(seed * 0x100000001b3ull + static_cast<uint64_t>(i));
    const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    p[i] = from_f<T>(offset + scale * (2.0f * u - 1.0f));
  }
}

}  // namespace

void launch_frame_window(const float* pcm, int64_t n, const float* window, float* frames,
                         int n_frames, int n_fft, int hop, int first, bool reflect,
                         cudaStream_t s) {
  frame_window_k<<<n_frames, 128, 0, s>>>(pcm, n, window, frames, n_frames, n_fft, hop, first,
                                          reflect);
  check_launch("frame_window");
}

void launch_mel_power(const float* spec, const float* filters, float* out, int n_mels, int n_frames,
                      int bins, cudaStream_t s) {
  mel_power_k<<<n_frames, 128, sizeof(float) * bins, s>>>(spec, filters, out, n_mels, n_frames,
                                                          bins);
  check_launch("mel_power");
}

void launch_log_mel(float* mel, int64_t n, bool db, uint32_t* scratch, cudaStream_t s) {
  cudaMemsetAsync(scratch, 0, sizeof(uint32_t), s);
  log_max_k<<<blocks_for(n, 256), 256, 0, s>>>(mel, n, db, scratch);
  log_floor_k<<<blocks_for(n, 256), 256, 0, s>>>(mel, n, db, scratch);
  check_launch("log_mel");
}

void launch_im2col_conv1(const float* mel, void* col, Act a, int n_mels, int t2, int pad,
                         cudaStream_t s) {
  const int64_t n = static_cast<int64_t>(t2) * n_mels * 3;
  dispatch(a, [&]<class T>() {
    im2col1_k<T><<<blocks_for(n, 256), 256, 0, s>>>(mel, static_cast<T*>(col), n_mels, t2, pad);
  });
  check_launch("im2col_conv1");
}

void launch_im2col_conv2(const float* h, void* col, Act a, int c, int t2, int t1, int pad,
                         cudaStream_t s) {
  const int64_t n = static_cast<int64_t>(t1) * 3 * c;
  dispatch(a, [&]<class T>() {
    im2col2_k<T><<<blocks_for(n, 256), 256, 0, s>>>(h, static_cast<T*>(col), c, t2, t1, pad);
  });
  check_launch("im2col_conv2");
}

void launch_gelu(const float* x, float* y_f32, void* y_act, Act a, int64_t n, bool tanh_approx,
                 cudaStream_t s) {
  dispatch(a, [&]<class T>() {
    gelu_k<T><<<blocks_for(n, 256), 256, 0, s>>>(x, y_f32, static_cast<T*>(y_act), n, tanh_approx);
  });
  check_launch("gelu");
}

void launch_add(const float* a, const float* b, float* out, int64_t n, cudaStream_t s) {
  add_k<<<blocks_for(n, 256), 256, 0, s>>>(a, b, out, n);
  check_launch("add");
}

void launch_convert(const float* x, void* y, Act a, int64_t n, cudaStream_t s) {
  dispatch(a, [&]<class T>() {
    convert_k<T><<<blocks_for(n, 256), 256, 0, s>>>(x, static_cast<T*>(y), n);
  });
  check_launch("convert");
}

void launch_layer_norm(const float* x, const float* gamma, const float* beta, float* y_f32,
                       void* y_act, Act a, int rows, int cols, float eps, cudaStream_t s) {
  dispatch(a, [&]<class T>() {
    layer_norm_k<T><<<rows, 256, 0, s>>>(x, gamma, beta, y_f32, static_cast<T*>(y_act), cols, eps);
  });
  check_launch("layer_norm");
}

void launch_attention(const float* qkv, void* out, Act a, int t, int c, int heads, float alpha,
                      bool round_inputs, cudaStream_t s) {
  const int dh = c / heads;
  const dim3 grid((t + kAttnQ - 1) / kAttnQ, heads);
  auto go = [&]<int DH>() {
    dispatch(a, [&]<class T>() {
      attention_k<DH, T>
          <<<grid, kAttnQ, 0, s>>>(qkv, static_cast<T*>(out), t, c, alpha, round_inputs);
    });
  };
  if (dh * heads != c) throw std::invalid_argument("attention: C not a multiple of heads");
  if (dh == 32)
    go.template operator()<32>();
  else if (dh == 64)
    go.template operator()<64>();
  else if (dh == 128)
    go.template operator()<128>();
  else
    throw std::invalid_argument("attention: d_head " + std::to_string(dh) +
                                " not supported (32, 64, 128)");
  check_launch("attention");
}

int flash_rows(int t) { return (t + kFK - 1) / kFK * kFK; }

void launch_flash_attention(const void* qkv, void* out, Act a, int t, int c, int heads, float alpha,
                            cudaStream_t s) {
  if (a == Act::f32) throw std::invalid_argument("flash attention: 16-bit inputs only");
  if (c != heads * kFD)
    throw std::invalid_argument("flash attention: d_head " + std::to_string(c / heads) +
                                " (supported: 64)");
  const dim3 g((t + kFQ - 1) / kFQ, heads);
  const float sl2 = alpha * 1.4426950408889634f;
  dispatch(a, [&]<class T>() {
    if constexpr (!std::is_same_v<T, float>) {
      static bool attr = false;  // opt in to > 48 KiB of dynamic shared memory, once per type
      if (!attr) {
        cudaFuncSetAttribute(flash_tc_k<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             kFlashSmem);
        attr = true;
      }
      flash_tc_k<T>
          <<<g, 128, kFlashSmem, s>>>(static_cast<const T*>(qkv), static_cast<T*>(out), t, c, sl2);
    }
  });
  check_launch("flash attention");
}

void launch_fill_uniform(void* p, Act a, int64_t n, uint64_t seed, float scale, float offset,
                         cudaStream_t s) {
  dispatch(a, [&]<class T>() {
    fill_uniform_k<T>
        <<<blocks_for(n, 256), 256, 0, s>>>(static_cast<T*>(p), n, seed, scale, offset);
  });
  check_launch("fill_uniform");
}

}  // namespace wb::cuda
