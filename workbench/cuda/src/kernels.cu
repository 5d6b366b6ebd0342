// The CUDA candidate's kernels. Each launcher checks nothing but its launch; shapes are the
// caller's business (encoder.cpp validates them once per call).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "flash_common.cuh"
#include "kernels.h"
#include "launch.cuh"
#include "wb/core/numerics.h"

namespace wb::cuda {
namespace {

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

// Four values to dst: one 8-byte store for a 16-bit T, one float4 for float (dst aligned to
// four elements by the callers' layouts).
template <class T>
__device__ __forceinline__ void store4(T* dst, float4 r) {
  if constexpr (sizeof(T) == 2) {
    uint2 d;
    d.x = pack2<T>(r.x, r.y);
    d.y = pack2<T>(r.z, r.w);
    *reinterpret_cast<uint2*>(dst) = d;
  } else {
    *reinterpret_cast<float4*>(dst) = r;
  }
}

// ---- stem ----
// Clips of a batch one after the other: mel [batch][n_mels, t2], col [batch * t2, 3 n_mels];
// h [batch * t2, c], col [batch * t1, 3 c]. A block per output row (grid-stride over the rows),
// its threads along the row: index arithmetic in 32 bits once a row, not 64-bit divisions per
// element (which made the conv2 im2col the stem's slowest kernel, about 46 us at large-v3).
template <class T>
__global__ void im2col1_k(const float* mel, T* col, int n_mels, int t2, int pad, int rows) {
  pdl_wait();
  const int w = 3 * n_mels;
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const int b = row / t2, t = row - b * t2;
    const float* m = mel + static_cast<int64_t>(b) * n_mels * t2;
    T* out = col + static_cast<int64_t>(row) * w;
    for (int r = threadIdx.x; r < w; r += blockDim.x) {
      const int ci = r / 3, s = t + (r - 3 * ci) - pad;
      out[r] = from_f<T>((s >= 0 && s < t2) ? m[static_cast<int64_t>(ci) * t2 + s] : 0.0f);
    }
  }
}

// kV channels a thread (4 when c % 4 == 0, else 1). kGelu: h is conv1's output before its GELU,
// applied here (the same float32 operations as launch_gelu, so the same values) instead of in a
// pass of its own over h; an odd row of h is read by two output rows, so 1.5 GELUs an element
// instead of one, against a write and a read of h saved.
template <class T, bool kGelu, int kV>
__global__ void im2col2_k(const float* h, T* col, int c, int t2, int t1, int pad, int rows,
                          bool tanh_approx) {
  pdl_wait();
  const int wv = 3 * c / kV;
  for (int row = blockIdx.x; row < rows; row += gridDim.x) {
    const int b = row / t1, t = row - b * t1;
    const float* hb = h + static_cast<int64_t>(b) * t2 * c;
    T* out = col + static_cast<int64_t>(row) * 3 * c;
    for (int q = threadIdx.x; q < wv; q += blockDim.x) {
      const int k = kV * q / c, ci = kV * q - k * c, s = 2 * t + k - pad;
      const bool in = s >= 0 && s < t2;
      const float* src = hb + static_cast<int64_t>(s) * c + ci;
      if constexpr (kV == 4) {
        float4 v = make_float4(0.f, 0.f, 0.f, 0.f);
        if (in) {
          v = *reinterpret_cast<const float4*>(src);
          if constexpr (kGelu)
            v = make_float4(gelu1(v.x, tanh_approx), gelu1(v.y, tanh_approx),
                            gelu1(v.z, tanh_approx), gelu1(v.w, tanh_approx));
        }
        store4(out + 4 * q, v);
      } else {
        float v = in ? *src : 0.0f;
        if constexpr (kGelu)
          if (in) v = gelu1(v, tanh_approx);
        out[q] = from_f<T>(v);
      }
    }
  }
}

// ---- elementwise ----
// Four elements per thread (n % 4 == 0, 16-byte aligned pointers).
template <class T>
__global__ void gelu4_k(const float4* x, float4* y32, T* ya, int64_t n4, bool tanh_approx) {
  pdl_wait();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float4 v = x[i];
    const float4 g = make_float4(gelu1(v.x, tanh_approx), gelu1(v.y, tanh_approx),
                                 gelu1(v.z, tanh_approx), gelu1(v.w, tanh_approx));
    if (y32 != nullptr) y32[i] = g;
    if (ya != nullptr) {
      ya[4 * i] = from_f<T>(g.x);
      ya[4 * i + 1] = from_f<T>(g.y);
      ya[4 * i + 2] = from_f<T>(g.z);
      ya[4 * i + 3] = from_f<T>(g.w);
    }
  }
}

// In place on 16-bit values, eight per thread (n % 8 == 0, 16-byte aligned); gelu_16's GELU.
template <class T, bool kTanh>
__global__ void gelu16_k(uint4* x, int64_t n8) {
  pdl_wait();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n8;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint4 v = x[i];
    T* e = reinterpret_cast<T*>(&v);
#pragma unroll
    for (int j = 0; j < 8; ++j) e[j] = from_f<T>(gelu_16<kTanh>(to_f(e[j])));
    x[i] = v;
  }
}

template <class T>
__global__ void gelu_k(const float* x, float* y32, T* ya, int64_t n, bool tanh_approx) {
  pdl_wait();
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

// out[j] = GELU(x[j]) + b[j % nb] (the float4 kernel below; add_k<true> for other sizes):
// launch_gelu then launch_add in one pass, the same float32 operations and so the same values
// (__fadd_rn: the GELU's last product is rounded before the add, never contracted into an FMA
// with it).
// Four elements a thread (n and nb multiples of 4, 16-byte aligned pointers).
__global__ void gelu_add4_k(const float4* x, const float4* b, float4* out, int64_t n4, int64_t nb4,
                            bool tanh_approx) {
  pdl_wait();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < nb4;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float4 v = b[i];
    for (int64_t j = i; j < n4; j += nb4) {
      const float4 a = x[j];
      out[j] = make_float4(
          __fadd_rn(gelu1(a.x, tanh_approx), v.x), __fadd_rn(gelu1(a.y, tanh_approx), v.y),
          __fadd_rn(gelu1(a.z, tanh_approx), v.z), __fadd_rn(gelu1(a.w, tanh_approx), v.w));
    }
  }
}

// out[j] = a[j] + b[j % nb] (kGelu: GELU(a[j]) + b[j % nb]): b read once per thread, added to
// each repeat of it in a.
template <bool kGelu>
__global__ void add_k(const float* a, const float* b, float* out, int64_t n, int64_t nb,
                      bool tanh_approx) {
  pdl_wait();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < nb;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = b[i];
    for (int64_t j = i; j < n; j += nb)
      out[j] = __fadd_rn(kGelu ? gelu1(a[j], tanh_approx) : a[j], v);
  }
}

template <class T>
__global__ void to_f32_k(const T* x, float* y, int64_t n) {
  pdl_wait();
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = to_f(x[i]);
}

template <class T>
__global__ void convert_k(const float* x, T* y, int64_t n) {
  pdl_wait();
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

// One float4 of a normalised row, (v - mean) rstd gamma + beta, to y32 and ya (either may be
// null) at element offset `off`.
template <class T>
__device__ __forceinline__ void ln_out4(float4 v, float4 g, float4 b, float mean, float rstd,
                                        float* y32, T* ya, int64_t off) {
  const float4 r = make_float4((v.x - mean) * rstd * g.x + b.x, (v.y - mean) * rstd * g.y + b.y,
                               (v.z - mean) * rstd * g.z + b.z, (v.w - mean) * rstd * g.w + b.w);
  if (y32 != nullptr) store4(y32 + off, r);
  if (ya != nullptr) store4(ya + off, r);
}

// One warp per row, the row in registers (cols % 4 == 0, cols <= 128 * K4): float4 loads,
// two-pass statistics by warp shuffles. 2 rows per block of 64 threads (more blocks than SMs for
// 1500 rows). kPreload: gamma and beta loaded with the row, their latency hidden behind the
// statistics; it takes more registers (K4 12: 171 a thread against 76), which pays when the rows
// are about one wave of blocks (one clip: large-v3's 65 layer norms 0.34 -> 0.24 ms inside the
// CUDA graph, H200) and costs at eight clips (encoder 37.63 -> 37.85 ms), where occupancy hides the
// latency anyway. K4, the float4 a lane, is the row's width rounded up to 8, 10 or 12 (medium
// 1024 columns, large-v3 1280, up to 1536): at 171 registers five blocks fit an SM, so one clip's
// 750 blocks took 1.14 waves; K4 10 needs 145 and six blocks, one wave (large-v3 on an H200: a
// layer norm 5.51 -> 4.38 us inside the graph, the encoder 4.93 -> 4.85 ms with the GELU below;
// medium 2.95 -> 2.88 ms). The lanes past the row add zeros, so every K4 gives the same bits.
constexpr int kLnMax4 = 12;
constexpr int kLnPreloadRows = 2048;
template <class T, bool kPreload, int K4 = kLnMax4>
__global__ void layer_norm_warp_k(const float* x, const float* g, const float* b, float* y32, T* ya,
                                  int rows, int cols, float eps) {
  const int64_t row = blockIdx.x * 2 + (threadIdx.x >> 5);
  const int lane = threadIdx.x & 31;
  const int n4 = cols / 4;
  const float4* g4 = reinterpret_cast<const float4*>(g);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  float4 v[K4], gg[K4], bv[K4];
  if constexpr (kPreload) {  // weights, which no kernel writes: before the wait for the one before
#pragma unroll
    for (int k = 0; k < K4; ++k) {
      const int i = lane + 32 * k;
      gg[k] = i < n4 ? g4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
      bv[k] = i < n4 ? b4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
  }
  pdl_wait();
  if (row >= rows) return;
  const float4* xr = reinterpret_cast<const float4*>(x + row * cols);
#pragma unroll
  for (int k = 0; k < K4; ++k) {
    const int i = lane + 32 * k;
    v[k] = i < n4 ? xr[i] : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  float s = 0.0f;
#pragma unroll
  for (int k = 0; k < K4; ++k) s += (v[k].x + v[k].y) + (v[k].z + v[k].w);
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  const float mean = s / static_cast<float>(cols);
  float q = 0.0f;
#pragma unroll
  for (int k = 0; k < K4; ++k) {
    if (lane + 32 * k >= n4) continue;
    const float a = v[k].x - mean, bb = v[k].y - mean, c = v[k].z - mean, d = v[k].w - mean;
    q += (a * a + bb * bb) + (c * c + d * d);
  }
  for (int o = 16; o > 0; o >>= 1) q += __shfl_xor_sync(0xffffffffu, q, o);
  const float rstd = rsqrtf(q / static_cast<float>(cols) + eps);
#pragma unroll
  for (int k = 0; k < K4; ++k) {
    const int i = lane + 32 * k;
    if (i >= n4) continue;
    if constexpr (!kPreload) {
      gg[k] = g4[i];
      bv[k] = b4[i];
    }
    ln_out4(v[k], gg[k], bv[k], mean, rstd, y32, ya, row * cols + 4 * i);  // cols % 4 == 0
  }
}

// A row per block of one or two warps (at most kLnRow4 float4 a lane: tiny 1 warp, base and
// small 2), the row in registers with gamma and beta, two-pass statistics (warp shuffles, then
// the warps' partial sums added in one order by every thread). The warp-per-row kernel above
// runs a clip's 1500 rows as 1500 warps, about 11 an SM, and is latency-bound (Nsight Compute at
// large-v3: 10.7 % achieved occupancy, 1 TB/s); in this one a lane holds 3 float4 instead of up
// to 12, and base's and small's rows take two warps each. Measured in the encoder (H200, bf16,
// CUDA graph): tiny 0.258 -> 0.250 ms, base 0.457 -> 0.446, small 1.172 -> 1.148; at large-v3
// (1280 columns, four warps a row) it was slower, 4.910 -> 4.929 ms and batch 8 37.02 -> 37.23
// ms, so wider rows keep the warp kernel. (The statistics' summation order differs from the
// warp kernel's, so the two round differently in the last bits; each is deterministic.)
constexpr int kLnRow4 = 3;
constexpr int kLnRowMaxCols = 2 * 32 * 4 * kLnRow4;  // 768
template <class T>
__global__ void layer_norm_row_k(const float* x, const float* g, const float* b, float* y32, T* ya,
                                 int rows, int cols, float eps) {
  pdl_wait();
  __shared__ float red[2];
  const int n4 = cols / 4;
  const float4* g4 = reinterpret_cast<const float4*>(g);
  const float4* b4 = reinterpret_cast<const float4*>(b);
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const float4* xr = reinterpret_cast<const float4*>(x + row * cols);
    float4 v[kLnRow4], gg[kLnRow4], bv[kLnRow4];
#pragma unroll
    for (int k = 0; k < kLnRow4; ++k) {
      const int i = threadIdx.x + blockDim.x * k;
      const bool in = i < n4;
      v[k] = in ? xr[i] : make_float4(0.f, 0.f, 0.f, 0.f);
      gg[k] = in ? g4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
      bv[k] = in ? b4[i] : make_float4(0.f, 0.f, 0.f, 0.f);
    }
    float s = 0.0f;
#pragma unroll
    for (int k = 0; k < kLnRow4; ++k) s += (v[k].x + v[k].y) + (v[k].z + v[k].w);
    const float mean = block_sum(s, red) / static_cast<float>(cols);
    float q = 0.0f;
#pragma unroll
    for (int k = 0; k < kLnRow4; ++k) {
      if (threadIdx.x + blockDim.x * k >= n4) continue;
      const float a = v[k].x - mean, bb = v[k].y - mean, c = v[k].z - mean, d = v[k].w - mean;
      q += (a * a + bb * bb) + (c * c + d * d);
    }
    const float rstd = rsqrtf(block_sum(q, red) / static_cast<float>(cols) + eps);
#pragma unroll
    for (int k = 0; k < kLnRow4; ++k) {
      const int i = threadIdx.x + blockDim.x * k;
      if (i >= n4) continue;
      ln_out4(v[k], gg[k], bv[k], mean, rstd, y32, ya, row * cols + 4 * i);
    }
  }
}

template <class T>
__global__ void layer_norm_k(const float* x, const float* g, const float* b, float* y32, T* ya,
                             int cols, float eps) {
  pdl_wait();
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
  pdl_wait();
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
// FlashAttention-2 style with mma.sync m16n8k16 (float32 accumulation): a block is 4 warps and
// 64 queries of one head, 16 query rows per warp, Q fragments in registers for the whole key
// loop. Key/value tiles of 64 rows are double-buffered in shared memory by cp.async. Per tile a
// warp computes S = Q K^T (16 x 64) in registers; the four lanes of a quad share a row and do the
// online softmax in float32 (m, l by quad shuffles); P, rounded to the input type as in
// FlashAttention, is re-packed from the S accumulators straight into A fragments (their layouts
// coincide) for O += P V, whose V fragments come from ldmatrix.trans. Fragment layouts: PTX ISA,
// "Matrix fragments for mma.m16n8k16" (g = lane / 4 is the row, t4 = lane % 4 the column pair).
template <class T>
__device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0,
                                         uint32_t b1) {
  if constexpr (std::is_same_v<T, __half>)
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// O += P V for one key tile: 4 k-steps of 16 keys; V fragments by ldmatrix.x4.trans (two
// d-tiles each).
template <class T, int MR>
__device__ __forceinline__ void flash_pv(float (&o)[MR][kFD / 8][4],
                                         const float (&sa)[MR][kFK / 8][4], const T* vs, int lane) {
#pragma unroll
  for (int kt = 0; kt < kFK / 16; ++kt) {
    uint32_t pa[MR][4];
#pragma unroll
    for (int mr = 0; mr < MR; ++mr) {
      pa[mr][0] = pack2<T>(sa[mr][2 * kt][0], sa[mr][2 * kt][1]);
      pa[mr][1] = pack2<T>(sa[mr][2 * kt][2], sa[mr][2 * kt][3]);
      pa[mr][2] = pack2<T>(sa[mr][2 * kt + 1][0], sa[mr][2 * kt + 1][1]);
      pa[mr][3] = pack2<T>(sa[mr][2 * kt + 1][2], sa[mr][2 * kt + 1][3]);
    }
#pragma unroll
    for (int dp = 0; dp < kFD / 16; ++dp) {
      const T* vp = vs + (kt * 16 + (lane & 15)) * kLdh + dp * 16 + (lane >> 4) * 8;
      const unsigned va = static_cast<unsigned>(__cvta_generic_to_shared(vp));
      uint32_t r0, r1, r2, r3;
      asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                   : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                   : "r"(va));
#pragma unroll
      for (int mr = 0; mr < MR; ++mr) {
        mma16816<T>(o[mr][2 * dp], pa[mr], r0, r1);
        mma16816<T>(o[mr][2 * dp + 1], pa[mr], r2, r3);
      }
    }
  }
}

template <class T, int MR>
__global__ void __launch_bounds__(128) flash_tc_k(const T* qkv, T* out, int t, int c,
                                                  float scale_log2, float* part_o, float* part_ml) {
  pdl_wait();
  // MR m16 row tiles per warp: 16 * MR query rows per warp, 64 * MR per block.
  __shared__ __align__(128) T kv_s[2][2][kFK * kLdh];  // [stage][K | V][key][d]
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t4 = lane & 3;
  // blockIdx.y: clip * heads + head (clips of a batch: qkv blocks of flash_rows(t) rows each)
  const int h = blockIdx.y % (c / kFD), clip = blockIdx.y / (c / kFD);
  const int q0 = blockIdx.x * 64 * MR + warp * 16 * MR;
  qkv += static_cast<int64_t>(clip) * flash_rows_of(t) * 3 * c;
  out += static_cast<int64_t>(clip) * t * c;
  const int64_t ld = 3 * static_cast<int64_t>(c);
  auto load_tile = [&](int k0, int stage) {
    T* ks = kv_s[stage][0];
    T* vs = kv_s[stage][1];
    for (int i = threadIdx.x; i < kFK * kFD / 8; i += blockDim.x) {  // 16-byte chunks
      const int r = i / (kFD / 8), d8 = i % (kFD / 8);
      const T* src = qkv + (k0 + r) * ld + c + h * kFD + d8 * 8;
      cp_async16(ks + r * kLdh + d8 * 8, src);
      cp_async16(vs + r * kLdh + d8 * 8, src + c);
    }
    cp_async_commit();
  };
  // Split over keys (gridDim.z > 1, flash-decoding style, for grids too small to fill the GPU):
  // this block takes key tiles [tb, te) and leaves unnormalised O, m and l to flash_combine_k.
  const int n_all = (t + kFK - 1) / kFK;
  const int per = (n_all + gridDim.z - 1) / gridDim.z;
  const int tb = min(n_all, static_cast<int>(blockIdx.z) * per), te = min(n_all, tb + per);
  if (tb < te) load_tile(tb * kFK, 0);
  // Q fragments (16 rows x 64 dims: 4 k-steps of 16) per row tile, straight from global memory.
  uint32_t qa[MR][kFD / 16][4];
#pragma unroll
  for (int mr = 0; mr < MR; ++mr) {
    const T* qr = qkv + (q0 + mr * 16 + g) * ld + h * kFD + t4 * 2;
#pragma unroll
    for (int kk = 0; kk < kFD / 16; ++kk) {
      qa[mr][kk][0] = *reinterpret_cast<const uint32_t*>(qr + kk * 16);
      qa[mr][kk][1] = *reinterpret_cast<const uint32_t*>(qr + 8 * ld + kk * 16);
      qa[mr][kk][2] = *reinterpret_cast<const uint32_t*>(qr + kk * 16 + 8);
      qa[mr][kk][3] = *reinterpret_cast<const uint32_t*>(qr + 8 * ld + kk * 16 + 8);
    }
  }
  float o[MR][kFD / 8][4];
  float m[MR][2], l[MR][2];  // rows g and g + 8 of each row tile
#pragma unroll
  for (int mr = 0; mr < MR; ++mr) {
#pragma unroll
    for (int i = 0; i < kFD / 8; ++i) o[mr][i][0] = o[mr][i][1] = o[mr][i][2] = o[mr][i][3] = 0.0f;
    m[mr][0] = m[mr][1] = -INFINITY;
    l[mr][0] = l[mr][1] = 0.0f;
  }
  const int n_tiles = te - tb;
  for (int it = 0; it < n_tiles; ++it) {
    const int k0 = (tb + it) * kFK;
    if (it + 1 < n_tiles) {
      load_tile(k0 + kFK, (it + 1) & 1);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const T* ks = kv_s[it & 1][0];
    const T* vs = kv_s[it & 1][1];
    // S = Q K^T: 8 tiles of 8 keys; K fragments by ldmatrix.x4 (lanes 8j.. address d offset 8j);
    // then the online softmax turns S into P, and O += P V
    float sa[MR][kFK / 8][4];
#pragma unroll
    for (int nt = 0; nt < kFK / 8; ++nt) {
      uint32_t kb[8];
#pragma unroll
      for (int hh = 0; hh < 2; ++hh) {
        const T* kp = ks + (nt * 8 + (lane & 7)) * kLdh + hh * 32 + (lane >> 3) * 8;
        const unsigned ka = static_cast<unsigned>(__cvta_generic_to_shared(kp));
        asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                     : "=r"(kb[4 * hh]), "=r"(kb[4 * hh + 1]), "=r"(kb[4 * hh + 2]),
                       "=r"(kb[4 * hh + 3])
                     : "r"(ka));
      }
#pragma unroll
      for (int mr = 0; mr < MR; ++mr) {
        sa[mr][nt][0] = sa[mr][nt][1] = sa[mr][nt][2] = sa[mr][nt][3] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < kFD / 16; ++kk)
          mma16816<T>(sa[mr][nt], qa[mr][kk], kb[2 * kk], kb[2 * kk + 1]);
      }
    }
    if (k0 + kFK <= t)  // no key of the tile past t: no masking
      flash_softmax<MR, false>(sa, o, m, l, k0, t, t4, scale_log2);
    else
      flash_softmax<MR, true>(sa, o, m, l, k0, t, t4, scale_log2);
    flash_pv<T, MR>(o, sa, vs, lane);
    __syncthreads();  // every warp is done with this stage before it is refilled
  }
  flash_store<T, MR>(o, m, l, out, part_o, part_ml, q0, h, t, c, g, t4);
}

// out[row, h*64 + d] = sum_s 2^(m_s - M) O_s / sum_s 2^(m_s - M) l_s, M = max_s m_s.
template <class T>
__global__ void flash_combine_k(const float* part_o, const float* part_ml, T* out, int t, int c,
                                int nsplit) {
  pdl_wait();
  const int row = blockIdx.x, h = blockIdx.y, d = threadIdx.x;
  const int heads = c / kFD;
  float mx = -INFINITY;
  for (int sp = 0; sp < nsplit; ++sp)
    mx = fmaxf(mx, part_ml[((static_cast<int64_t>(sp) * t + row) * heads + h) * 2]);
  float l = 0.0f, acc = 0.0f;
  for (int sp = 0; sp < nsplit; ++sp) {
    const int64_t r = static_cast<int64_t>(sp) * t + row;
    const float w = exp2f(part_ml[(r * heads + h) * 2] - mx);
    l += w * part_ml[(r * heads + h) * 2 + 1];
    acc += w * part_o[r * c + h * kFD + d];
  }
  out[static_cast<int64_t>(row) * c + h * kFD + d] = from_f<T>(acc / l);
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

// The dependent launch's checks (kernels.h). Copies of 16 bytes a thread where both ends are
// 16-byte aligned, else of bytes; the grid's threads along them. Few blocks (8): the dependent
// kernel's blocks must find room on the other SMs to start while these still run.
__device__ __forceinline__ void copy_bytes(const unsigned char* src, unsigned char* dst,
                                           std::size_t n) {
  const std::size_t first = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t step = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  std::size_t done = 0;
  if (((reinterpret_cast<uintptr_t>(src) | reinterpret_cast<uintptr_t>(dst)) & 15) == 0) {
    done = n / 16 * 16;
    for (std::size_t i = first; i < n / 16; i += step)
      reinterpret_cast<uint4*>(dst)[i] = reinterpret_cast<const uint4*>(src)[i];
  }
  for (std::size_t i = done + first; i < n; i += step) dst[i] = src[i];
}
__device__ __forceinline__ uint64_t global_ns() {
  uint64_t t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;\n" : "=l"(t));
  return t;
}
__global__ void late_copy_k(const unsigned char* src, unsigned char* dst, std::size_t n,
                            uint64_t delay_ns) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
  const uint64_t t0 = global_ns();
  while (global_ns() - t0 < delay_ns) {
  }
  copy_bytes(src, dst, n);
}
__global__ void copy_nowait_k(const unsigned char* src, unsigned char* dst, std::size_t n) {
  copy_bytes(src, dst, n);
}
__global__ void stamp_k(uint64_t* t) { *t = global_ns(); }
__global__ void stamp_wait_k(uint64_t* t) {
  const uint64_t start = global_ns();
  pdl_wait();
  const uint64_t released = global_ns();
  if (threadIdx.x == 0) {
    atomicMin(reinterpret_cast<unsigned long long*>(t), start);
    atomicMin(reinterpret_cast<unsigned long long*>(t + 1), released);
  }
}

}  // namespace

bool dependent_launch_available() {
  int dev = 0, major = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
    return false;
  cudaFuncAttributes fa{};
  // every kernel of this file is built for the same architectures: one stands for all (the wgmma
  // attention is sm_90a code only)
  return major >= 9 && cudaFuncGetAttributes(&fa, gelu16_k<__nv_bfloat16, false>) == cudaSuccess &&
         fa.ptxVersion >= 90;
}

void launch_late_copy(const void* src, void* dst, std::size_t bytes, uint64_t delay_ns,
                      cudaStream_t s) {
  late_copy_k<<<8, 256, 0, s>>>(static_cast<const unsigned char*>(src),
                                static_cast<unsigned char*>(dst), bytes, delay_ns);
  check_launch("late_copy");
}

void launch_copy_nowait(const void* src, void* dst, std::size_t bytes, Queue s) {
  launch_k("copy_nowait", copy_nowait_k, 8, 256, 0, s, static_cast<const unsigned char*>(src),
           static_cast<unsigned char*>(dst), bytes);
}

void launch_stamp(uint64_t* t, cudaStream_t s) {
  stamp_k<<<1, 1, 0, s>>>(t);
  check_launch("stamp");
}

void launch_stamp_wait(uint64_t* t, int blocks, Queue s) {
  launch_k("stamp_wait", stamp_wait_k, blocks, 32, 0, s, t);
}

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

void launch_im2col_conv1(const float* mel, void* col, Act a, int n_mels, int t2, int pad, Queue s,
                         int batch) {
  const int rows = t2 * batch;
  dispatch(a, [&]<class T>() {
    launch_k("im2col_conv1", im2col1_k<T>, std::min(rows, 8192), 256, 0, s, mel,
             static_cast<T*>(col), n_mels, t2, pad, rows);
  });
}

void launch_im2col_conv2(const float* h, void* col, Act a, int c, int t2, int t1, int pad, Queue s,
                         int batch, bool gelu, bool tanh_approx) {
  const int rows = t1 * batch, grid = std::min(rows, 8192);
  dispatch(a, [&]<class T>() {
    auto go = [&](auto kernel) {
      launch_k("im2col_conv2", kernel, grid, 256, 0, s, h, static_cast<T*>(col), c, t2, t1, pad,
               rows, tanh_approx);
    };
    if (c % 4 == 0)
      gelu ? go(im2col2_k<T, true, 4>) : go(im2col2_k<T, false, 4>);
    else
      gelu ? go(im2col2_k<T, true, 1>) : go(im2col2_k<T, false, 1>);
  });
}

void launch_gelu(const float* x, float* y_f32, void* y_act, Act a, int64_t n, bool tanh_approx,
                 Queue s) {
  dispatch(a, [&]<class T>() {
    if (n % 4 == 0)
      launch_k("gelu", gelu4_k<T>, blocks_for(n / 4, 256), 256, 0, s,
               reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y_f32),
               static_cast<T*>(y_act), n / 4, tanh_approx);
    else
      launch_k("gelu", gelu_k<T>, blocks_for(n, 256), 256, 0, s, x, y_f32, static_cast<T*>(y_act),
               n, tanh_approx);
  });
}

void launch_gelu16(void* x, Act a, int64_t n, bool tanh_approx, Queue s) {
  if (a == Act::f32 || n % 8 != 0) throw std::invalid_argument("gelu16: 16-bit, n % 8 == 0");
  dispatch(a, [&]<class T>() {
    if constexpr (!std::is_same_v<T, float>) {
      const auto grid = blocks_for(n / 8, 256);
      if (tanh_approx)
        launch_k("gelu16", gelu16_k<T, true>, grid, 256, 0, s, static_cast<uint4*>(x), n / 8);
      else
        launch_k("gelu16", gelu16_k<T, false>, grid, 256, 0, s, static_cast<uint4*>(x), n / 8);
    }
  });
}

void launch_add(const float* a, const float* b, float* out, int64_t n, Queue s, int64_t nb) {
  if (nb == 0) nb = n;
  launch_k("add", add_k<false>, blocks_for(nb, 256), 256, 0, s, a, b, out, n, nb, false);
}

void launch_gelu_add(const float* x, const float* b, float* out, int64_t n, int64_t nb,
                     bool tanh_approx, Queue s) {
  if (n % 4 == 0 && nb % 4 == 0)
    launch_k("gelu_add", gelu_add4_k, blocks_for(nb / 4, 256), 256, 0, s,
             reinterpret_cast<const float4*>(x), reinterpret_cast<const float4*>(b),
             reinterpret_cast<float4*>(out), n / 4, nb / 4, tanh_approx);
  else
    launch_k("gelu_add", add_k<true>, blocks_for(nb, 256), 256, 0, s, x, b, out, n, nb,
             tanh_approx);
}

void launch_convert(const float* x, void* y, Act a, int64_t n, Queue s) {
  dispatch(a, [&]<class T>() {
    launch_k("convert", convert_k<T>, blocks_for(n, 256), 256, 0, s, x, static_cast<T*>(y), n);
  });
}

void launch_to_f32(const void* x, Act a, float* y, int64_t n, Queue s) {
  dispatch(a, [&]<class T>() {
    launch_k("to_f32", to_f32_k<T>, blocks_for(n, 256), 256, 0, s, static_cast<const T*>(x), y, n);
  });
}

void launch_layer_norm(const float* x, const float* gamma, const float* beta, float* y_f32,
                       void* y_act, Act a, int rows, int cols, float eps, Queue s) {
  dispatch(a, [&]<class T>() {
    const bool warp_rows = cols % 4 == 0 && cols <= 128 * kLnMax4;  // a row in a warp's registers
    if (cols % 4 == 0 && cols <= kLnRowMaxCols) {
      const int warps = (cols / 4 + 32 * kLnRow4 - 1) / (32 * kLnRow4);
      launch_k("layer_norm", layer_norm_row_k<T>, std::min(rows, 65535), 32 * warps, 0, s, x, gamma,
               beta, y_f32, static_cast<T*>(y_act), rows, cols, eps);
    } else if (warp_rows) {
      auto warp = [&]<bool kPreload, int K4>() {
        launch_k("layer_norm", layer_norm_warp_k<T, kPreload, K4>, (rows + 1) / 2, 64, 0, s, x,
                 gamma, beta, y_f32, static_cast<T*>(y_act), rows, cols, eps);
      };
      if (rows > kLnPreloadRows)
        warp.template operator()<false, kLnMax4>();
      else if (cols <= 128 * 8)
        warp.template operator()<true, 8>();
      else if (cols <= 128 * 10)
        warp.template operator()<true, 10>();
      else
        warp.template operator()<true, kLnMax4>();
    } else
      launch_k("layer_norm", layer_norm_k<T>, rows, 256, 0, s, x, gamma, beta, y_f32,
               static_cast<T*>(y_act), cols, eps);
  });
}

__device__ __forceinline__ float h16(float x) { return __half2float(__float2half_rn(x)); }

// The ln-fp16 fault's layer norm, one thread per row: the algorithm of wb/core/numerics.h, the
// CPU candidate's too.
template <class T>
__global__ void layer_norm_f16_stats_k(const float* x, const float* g, const float* b, float* y32,
                                       T* ya, int rows, int cols, float eps) {
  pdl_wait();
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  layer_norm_f16_stats_row(
      x + row * cols, cols, g, b, eps, [](float v) { return h16(v); },
      [=](int c, float y) {
        if (y32 != nullptr) y32[row * cols + c] = y;
        if (ya != nullptr) ya[row * cols + c] = from_f<T>(y);
      });
}

void launch_layer_norm_f16_stats(const float* x, const float* gamma, const float* beta,
                                 float* y_f32, void* y_act, Act a, int rows, int cols, float eps,
                                 Queue s) {
  dispatch(a, [&]<class T>() {
    launch_k("layer_norm_f16_stats", layer_norm_f16_stats_k<T>, (rows + 127) / 128, 128, 0, s, x,
             gamma, beta, y_f32, static_cast<T*>(y_act), rows, cols, eps);
  });
}

void launch_attention(const float* qkv, void* out, Act a, int t, int c, int heads, float alpha,
                      bool round_inputs, Queue s) {
  const int dh = c / heads;
  const dim3 grid((t + kAttnQ - 1) / kAttnQ, heads);
  auto go = [&]<int DH>() {
    dispatch(a, [&]<class T>() {
      launch_k("attention", attention_k<DH, T>, grid, kAttnQ, 0, s, qkv, static_cast<T*>(out), t, c,
               alpha, round_inputs);
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
}

int flash_rows(int t) { return flash_rows_of(t); }

std::size_t flash_workspace_bytes(int t, int c) {
  return static_cast<std::size_t>(kFlashMaxSplit) * t * (c + 2 * (c / kFD)) * sizeof(float);
}

bool flash_wgmma_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("WB_CUDA_ATTENTION");
    return !(e != nullptr && std::string(e) == "mma") && wgmma_attention_available();
  }();
  return on;
}

void launch_flash_attention(const void* qkv, void* out, Act a, int t, int c, int heads, float alpha,
                            float* workspace, Queue s, int batch, FlashKernel kernel) {
  if (batch < 1) throw std::invalid_argument("flash attention: batch must be >= 1");
  // The Hopper kernel (attention_wgmma.cu) wherever the device runs it; $WB_CUDA_ATTENTION=mma
  // keeps this file's mma.sync kernel. The two give bit-identical outputs without a key split
  // (wb_cuda_tests).
  const bool wgmma = flash_wgmma_enabled();
  if (a == Act::f32) throw std::invalid_argument("flash attention: 16-bit inputs only");
  if (c != heads * kFD)
    throw std::invalid_argument("flash attention: d_head " + std::to_string(c / heads) +
                                " (supported: 64)");
  static const int sms = [] {
    int dev = 0, n = 132;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return n;
  }();
  // Row tiles per warp: 2 (128 queries a block, 254 registers: 2 blocks an SM) halves the
  // key/value traffic per query; 1 (64 queries, 6 blocks an SM) balances better when the 128-query
  // grid is just over one block per SM. Measured on an H200, bf16, attention / whole encoder:
  // large-v3 (240 blocks) 1.96 / 5.85 ms with 2 vs 2.26 / 6.15 with 1; small (144) 0.72 / 1.53
  // vs 0.66 / 1.46; tiny and base (72, 96: keys split below) 2 slightly ahead.
  // $WB_CUDA_FLASH_MR=1|2 forces a choice.
  static const int forced = [] {
    const char* e = std::getenv("WB_CUDA_FLASH_MR");
    return e == nullptr ? 0 : std::atoi(e);
  }();
  const int n_tiles = (t + kFK - 1) / kFK;
  const float sl2 = alpha * 1.4426950408889634f;
  // A key split's partial results (O in the workspace, then m and l), and the kernel that
  // combines them.
  float* const part_o = workspace;
  auto part_ml_of = [&](int nsplit) {
    return workspace == nullptr ? nullptr : workspace + static_cast<int64_t>(nsplit) * t * c;
  };
  auto combine = [&](int nsplit) {
    float* const part_ml = part_ml_of(nsplit);
    dispatch(a, [&]<class T>() {
      if constexpr (!std::is_same_v<T, float>)
        launch_k("flash attention", flash_combine_k<T>, dim3(t, heads), kFD, 0, s, part_o, part_ml,
                 static_cast<T*>(out), t, c, nsplit);
    });
  };
  const int blocks2 = (t + 127) / 128 * heads * batch;
  if (wgmma && kernel == FlashKernel::best) {
    // 128 queries a block, at most two blocks an SM: the keys split (batch 1, with a workspace)
    // only as far as the grid stays within one round of two blocks an SM (tiny on an H200: 72
    // blocks, 3 splits; base 96, 2; small and large-v3 none).
    const int nsplit = workspace == nullptr || batch > 1
                           ? 1
                           : std::clamp(2 * sms / blocks2, 1, std::min(kFlashMaxSplit, n_tiles));
    launch_flash_attention_wgmma(qkv, out, a, t, c, heads, alpha, s, batch, 0, nsplit, part_o,
                                 part_ml_of(nsplit));
    if (nsplit > 1) combine(nsplit);
    return;
  }
  const int mr = forced == 1 || forced == 2                 ? forced
                 : blocks2 <= sms || 2 * blocks2 >= 3 * sms ? 2
                                                            : 1;
  const int qb = (t + 64 * mr - 1) / (64 * mr);
  // Split the keys only where the grid is under one block per SM (tiny on an H200, 144 blocks of
  // 64 queries: ~10% of the attention time); on larger grids the partial writes and the combine
  // cost more than the extra blocks give (large-v3: 2.2 -> 2.9 ms with 2 splits, measured).
  const int blocks = qb * heads * batch;
  const int nsplit = workspace == nullptr || blocks >= sms || batch > 1
                         ? 1
                         : std::min({kFlashMaxSplit, n_tiles, (4 * sms + blocks - 1) / blocks});
  const dim3 g(qb, heads * batch, nsplit);
  float* const part_ml = part_ml_of(nsplit);
  dispatch(a, [&]<class T>() {
    if constexpr (!std::is_same_v<T, float>) {
      if (mr == 2)
        launch_k("flash attention", flash_tc_k<T, 2>, g, 128, 0, s, static_cast<const T*>(qkv),
                 static_cast<T*>(out), t, c, sl2, part_o, part_ml);
      else
        launch_k("flash attention", flash_tc_k<T, 1>, g, 128, 0, s, static_cast<const T*>(qkv),
                 static_cast<T*>(out), t, c, sl2, part_o, part_ml);
    }
  });
  if (nsplit > 1) combine(nsplit);
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
