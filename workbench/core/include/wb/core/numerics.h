// Numerical definitions every encoder backend shares, written once: the layer-norm epsilon, the
// attention scale and what the attn-scale fault does to it, and the float16-statistics layer norm
// of the ln-fp16 fault. Header-only and free of heavy includes, so CUDA kernels (nvcc) use it
// too: what a kernel calls is marked WB_HOST_DEVICE (__host__ __device__ under nvcc).
#pragma once
#include <cmath>

#ifdef __CUDACC__
#define WB_HOST_DEVICE __host__ __device__
#else
#define WB_HOST_DEVICE
#endif

namespace wb {

// torch.nn.LayerNorm's default, as Whisper uses it; the ln-eps fault replaces it.
inline constexpr float kLayerNormEps = 1e-5f;

// The attn-scale fault (wb/core/faults.h): normal, none (no scale), twice (applied twice).
enum class AttnScale { normal, none, twice };

// Whisper scales q and k each by s = d_head^-0.25 before q k^T, so the logits carry s^2 =
// d_head^-0.5. attn-scale=none drops s (1); attn-scale=double applies it twice to each of q and
// k (s^4 = d_head^-1). This is the logits' factor, for kernels that scale q k^T once; computed in
// double, rounded once to float.
inline float attention_logit_scale(int d_head, AttnScale fault) {
  const double dh = static_cast<double>(d_head);
  switch (fault) {
    case AttnScale::none:
      return 1.0f;
    case AttnScale::twice:
      return static_cast<float>(1.0 / dh);
    case AttnScale::normal:
      break;
  }
  return static_cast<float>(1.0 / std::sqrt(dh));
}

// The ln-fp16 fault: layer norm of one row x[0, cols) with float16 statistics, every input,
// sum, difference, product and quotient rounded to float16 in sequence (a port that keeps its
// layer-norm statistics in half precision), c = 0 .. n-1 in order:
//   s = h(s + h(x_c)), mean = h(s / n);  d_c = h(h(x_c) - mean), v = h(v + h(d_c d_c)),
//   var = h(v / n);  rstd = h(1 / sqrt(h(var + eps)));  y_c = h(h(d_c * rstd) * g_c + b_c).
// `h` rounds a float to float16 and back (round to nearest even); `store(c, y_c)` takes each
// output. One sequential pass per row: a fault path, not a fast one.
template <class RoundToHalf, class Store>
WB_HOST_DEVICE inline void layer_norm_f16_stats_row(const float* x, int cols, const float* g,
                                                    const float* b, float eps, RoundToHalf h,
                                                    Store store) {
  const float n = static_cast<float>(cols);
  float s = 0.0f;
  for (int c = 0; c < cols; ++c) s = h(s + h(x[c]));
  const float mean = h(s / n);
  float v = 0.0f;
  for (int c = 0; c < cols; ++c) {
    const float d = h(h(x[c]) - mean);
    v = h(v + h(d * d));
  }
  const float var = h(v / n);
  const float rstd = h(1.0f / sqrtf(h(var + eps)));
  for (int c = 0; c < cols; ++c) store(c, h(h(h(h(x[c]) - mean) * rstd) * g[c] + b[c]));
}

}  // namespace wb
