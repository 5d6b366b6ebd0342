// Device helpers shared by the CUDA candidate's kernels (kernels.cu; the Hopper kernels
// attention_wgmma.cu and gemm_wgmma.cu): element conversion, cp.async, the GELU, the online softmax
// of one key tile on accumulator fragments, and the store of a warp's rows. Fragment layouts: PTX
// ISA, "Matrix fragments for mma.m16n8k16" (g = lane / 4 is the row, t4 = lane % 4 the column
// pair); wgmma's m64nNk16 accumulators give each warp of the warpgroup the same 16-row layout.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

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

constexpr int kFK = 64, kFD = 64;
constexpr int kLdh = kFD + 8;  // 16-bit row stride (elements): 144 bytes, conflict-free
constexpr int kFlashMaxSplit = 4;
// Rows of one clip's 16-bit q | k | v: whole 128-query blocks (MR = 2).
__host__ __device__ constexpr int flash_rows_of(int t) { return (t + 127) / 128 * 128; }

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned sa = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(sa), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// GELU of one float32 value: exact (erf), or the tanh approximation (the gelu-tanh fault).
__device__ __forceinline__ float gelu1(float v, bool tanh_approx) {
  if (tanh_approx)
    return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
  return 0.5f * v * (1.0f + erff(v * 0.7071067811865476f));
}

// The hardware's approximate reciprocal and base-2 exponential, subnormals flushed: without the
// range scaling the compiler wraps around them otherwise (a third of the GELU's instructions;
// the same values for normal arguments and results: below, the reciprocal's argument lies in
// [1, 11], and the exponential's result is subnormal only for |x| > 13.2, where the GELU is x or
// below 1e-37 in magnitude).
__device__ __forceinline__ float rcp_approx(float x) {
  float r;
  asm("rcp.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float ex2_approx(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}

// GELU of a 16-bit pre-activation whose result is rounded to 16 bits next, as the 16-bit modes
// run it (the GELU kernel on cuBLASLt's 16-bit fc1 output, the fused wgmma kernel; the tanh
// approximation for the gelu-tanh fault): x Phi(x), Phi from erfc(|x| / sqrt 2) by a Chebyshev
// fit of fractional error below 1.2e-7 for every argument (Numerical Recipes' erfcc: t = 1 / (1 +
// z / 2), erfc(z) = t exp(-z^2 + P(t))), with the hardware's approximate reciprocal and
// exponential. Branch-free, and on the negative side relative to Phi itself rather than 1 +
// erf(x / sqrt 2), which cancels. Written for few instructions (the GELU kernel is bound by its
// instructions, 7.7 M values a large-v3 layer, not by memory): Phi(-|x|) = t 2^(P'(t) - x^2 log2(e)
// / 2) with P' = P log2(e) - 1 (the 1/2 of erfc / 2 and the change to base 2 folded into the
// coefficients; the constant one float32 step below its rounding so that P'(1) is exactly -1 and
// Phi(-0) exactly 1/2, as the unfolded form gave), and x (1 - Phi(-|x|)) or x Phi(-|x|) as one FMA
// on max(x, 0) with Phi(-|x|) signed by x: 18 operations a value in the source against 21 unfolded
// (the GELU kernel at large-v3 inside the graph 9.34 -> 8.82 us, H200). Its float32 operations
// emulated against float64 (exact reciprocal and exponential; x in [-14, 14], 4e5 points): relative
// error below 2.7e-6 where |GELU| > 1e-13 (x > -6), 7.4e-7 on [-3, 3], 8.0e-6 down to x = -13,
// absolute below 2.4e-7 (the unfolded form, same emulation: 5.9e-6, 1.2e-6, 1.9e-5, 3.8e-7; erff's
// form: 2.5e-7 absolute on [0, 14], relative error 1 below x = -3); bfloat16 keeps 2^-8 and float16
// 2^-11 of it. The float32 paths keep erff (the reference's form), gelu1.
template <bool kTanh>
__device__ __forceinline__ float gelu_16(float x) {
  if constexpr (kTanh) return gelu1(x, true);
  const float t = rcp_approx(fmaf(fabsf(x), 0.353553391f, 1.0f));  // 1 / (1 + z / 2)
  float p = fmaf(t, 0.246517301f, -1.18611491f);
  p = fmaf(t, p, 2.14747453f);
  p = fmaf(t, p, -1.63775313f);
  p = fmaf(t, p, 0.402321577f);
  p = fmaf(t, p, -0.268756866f);
  p = fmaf(t, p, 0.139630049f);
  p = fmaf(t, p, 0.539700627f);
  p = fmaf(t, p, 1.44272923f);
  p = fmaf(t, p, -2.82574844f);
  const float h = t * ex2_approx(fmaf(x * -0.72134752f, x, p));  // Phi(-|x|)
  const float hs = __int_as_float(__float_as_int(h) ^ (~__float_as_int(x) & 0x80000000));
  return fmaf(x, hs, fmaxf(x, 0.0f));
}

// Two floats to a packed pair of T (lower column in the low half).
template <class T>
__device__ __forceinline__ uint32_t pack2(float lo, float hi) {
  if constexpr (std::is_same_v<T, __half>) {
    const __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  } else {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&v);
  }
}

// Online softmax (base 2) of one key tile, keys >= t masked (kMasked; a tile wholly below t
// needs no mask): the scores sa become P, the running max m and sum l of rows g and g + 8 are
// updated, and corr is the factor O's rows are to be rescaled by (flash_rescale) before P V is
// added. Split in two so that a kernel may compute P while O's previous products are in flight.
// m is in base-2 units (the row max of s x scale_log2); P = 2^(s x scale_log2 - m) with the
// exponent in one FFMA and the hardware's exponential with subnormal results flushed (ex2_approx):
// a P below 2^-126 becomes 0, where it weighs below 2^-126 of the row's largest P (which is 1),
// and exp2f's range scaling (three more instructions an exponential, a fifth of the softmax's)
// is gone. Measured: large-v3's attention 0.0396 -> 0.0352 ms (docs/gpu.md).
template <int MR, bool kMasked = true>
__device__ __forceinline__ void flash_softmax_p(float (&sa)[MR][kFK / 8][4], float (&m)[MR][2],
                                                float (&l)[MR][2], float (&corr)[MR][2], int k0,
                                                int t, int t4, float scale_log2) {
#pragma unroll
  for (int mr = 0; mr < MR; ++mr) {
    float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
    for (int nt = 0; nt < kFK / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const bool valid = !kMasked || k0 + nt * 8 + t4 * 2 + e < t;
        if (!valid) sa[mr][nt][e] = -INFINITY;
        if (!valid) sa[mr][nt][2 + e] = -INFINITY;
        mx0 = fmaxf(mx0, sa[mr][nt][e]);
        mx1 = fmaxf(mx1, sa[mr][nt][2 + e]);
      }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, off));
      mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, off));
    }
    const float mn0 = fmaxf(m[mr][0], mx0 * scale_log2), mn1 = fmaxf(m[mr][1], mx1 * scale_log2);
    const float corr0 = ex2_approx(m[mr][0] - mn0), corr1 = ex2_approx(m[mr][1] - mn1);
    float sum0 = 0.0f, sum1 = 0.0f;
#pragma unroll
    for (int nt = 0; nt < kFK / 8; ++nt)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        sa[mr][nt][e] = ex2_approx(fmaf(sa[mr][nt][e], scale_log2, -mn0));
        sa[mr][nt][2 + e] = ex2_approx(fmaf(sa[mr][nt][2 + e], scale_log2, -mn1));
        sum0 += sa[mr][nt][e];
        sum1 += sa[mr][nt][2 + e];
      }
#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
      sum0 += __shfl_xor_sync(0xffffffffu, sum0, off);
      sum1 += __shfl_xor_sync(0xffffffffu, sum1, off);
    }
    l[mr][0] = l[mr][0] * corr0 + sum0;
    l[mr][1] = l[mr][1] * corr1 + sum1;
    m[mr][0] = mn0;
    m[mr][1] = mn1;
    corr[mr][0] = corr0;
    corr[mr][1] = corr1;
  }
}
template <int MR>
__device__ __forceinline__ void flash_rescale(float (&o)[MR][kFD / 8][4],
                                              const float (&corr)[MR][2]) {
#pragma unroll
  for (int mr = 0; mr < MR; ++mr)
#pragma unroll
    for (int dt = 0; dt < kFD / 8; ++dt) {
      o[mr][dt][0] *= corr[mr][0];
      o[mr][dt][1] *= corr[mr][0];
      o[mr][dt][2] *= corr[mr][1];
      o[mr][dt][3] *= corr[mr][1];
    }
}
// Both halves: P, m and l of the tile, and O rescaled.
template <int MR, bool kMasked = true>
__device__ __forceinline__ void flash_softmax(float (&sa)[MR][kFK / 8][4],
                                              float (&o)[MR][kFD / 8][4], float (&m)[MR][2],
                                              float (&l)[MR][2], int k0, int t, int t4,
                                              float scale_log2) {
  float corr[MR][2];
  flash_softmax_p<MR, kMasked>(sa, m, l, corr, k0, t, t4, scale_log2);
  flash_rescale<MR>(o, corr);
}

// The block's rows out: O / l in the 16-bit type, or (keys split over gridDim.z blocks) the
// unnormalised O, m and l for flash_combine_k.
template <class T, int MR>
__device__ __forceinline__ void flash_store(const float (&o)[MR][kFD / 8][4],
                                            const float (&m)[MR][2], const float (&l)[MR][2],
                                            T* out, float* part_o, float* part_ml, int q0, int h,
                                            int t, int c, int g, int t4) {
  const int heads = c / kFD;
#pragma unroll
  for (int mr = 0; mr < MR; ++mr) {
    const int r0 = q0 + mr * 16 + g;
    if (gridDim.z > 1) {
      const int64_t base = static_cast<int64_t>(blockIdx.z) * t;
#pragma unroll
      for (int dt = 0; dt < kFD / 8; ++dt) {
        const int col = h * kFD + dt * 8 + t4 * 2;
        if (r0 < t)
          *reinterpret_cast<float2*>(part_o + (base + r0) * c + col) =
              make_float2(o[mr][dt][0], o[mr][dt][1]);
        if (r0 + 8 < t)
          *reinterpret_cast<float2*>(part_o + (base + r0 + 8) * c + col) =
              make_float2(o[mr][dt][2], o[mr][dt][3]);
      }
      if (t4 == 0) {
        if (r0 < t)
          *reinterpret_cast<float2*>(part_ml + ((base + r0) * heads + h) * 2) =
              make_float2(m[mr][0], l[mr][0]);
        if (r0 + 8 < t)
          *reinterpret_cast<float2*>(part_ml + ((base + r0 + 8) * heads + h) * 2) =
              make_float2(m[mr][1], l[mr][1]);
      }
      continue;
    }
    const float inv0 = 1.0f / l[mr][0], inv1 = 1.0f / l[mr][1];
#pragma unroll
    for (int dt = 0; dt < kFD / 8; ++dt) {
      const int col = h * kFD + dt * 8 + t4 * 2;
      if (r0 < t)
        *reinterpret_cast<uint32_t*>(out + r0 * static_cast<int64_t>(c) + col) =
            pack2<T>(o[mr][dt][0] * inv0, o[mr][dt][1] * inv0);
      if (r0 + 8 < t)
        *reinterpret_cast<uint32_t*>(out + (r0 + 8) * static_cast<int64_t>(c) + col) =
            pack2<T>(o[mr][dt][2] * inv1, o[mr][dt][3] * inv1);
    }
  }
}

}  // namespace
}  // namespace wb::cuda
