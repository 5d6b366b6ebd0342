// Candidate CPU kernels: one source (kernels_isa.cpp) compiled once per ISA of the one list
// (WB_CAND_ISAS in this folder's CMakeLists.txt, generated into isa_list.h) and dispatched at run
// time through a table of function pointers.
// All buffers are row-major float32; rows are independent, so callers split rows across threads.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "isa_list.h"
#include "wb/core/enum_names.h"

namespace wb::cand {

// The ISAs this build compiles, narrowest first, and their names (the one list).
#define WB_CAND_ISA_ENUM(name, cpu) name,
enum class Isa { WB_CAND_ISA_LIST(WB_CAND_ISA_ENUM) };
#undef WB_CAND_ISA_ENUM
#define WB_CAND_ISA_NAME(name, cpu) {Isa::name, #name},
inline constexpr std::array kIsaNames{
    std::to_array<NameEntry<Isa>>({WB_CAND_ISA_LIST(WB_CAND_ISA_NAME)})};
#undef WB_CAND_ISA_NAME

std::string_view isa_name(Isa isa);
Isa isa_from_name(std::string_view name);  // throws wb::UsageError listing valid names
bool isa_supported(Isa isa);               // compiled in and supported by this CPU (cpuid)
Isa best_isa();                            // the widest supported path
// The ISA to use: $WB_ISA (a name of kIsaNames) if set, else best_isa().
// Throws std::runtime_error if $WB_ISA names a path this CPU cannot run.
Isa select_isa();
std::vector<Isa> supported_isas();

inline constexpr int kAttnMR = 6;
// The largest query block of the attention ops (WB_CAND_ATTN_BLOCK's range).
inline constexpr int kMaxAttnBlockRows = 512;

struct KernelTable {
  Isa isa;
  // y[r, :] = (x[r, :] - mean) / sqrt(var + eps) * g + b, mean/var (biased) in float32, two-pass.
  void (*layer_norm)(const float* x, float* y, int64_t rows, int cols, const float* g,
                     const float* b, float eps);
  // x[r, c] = gelu(x[r, c] + bias[c]); bias may be null. Exact erf GELU 0.5 x (1 + erf(x/sqrt 2)),
  // or tanh approximation 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) when tanh_approx.
  void (*bias_gelu)(float* x, int64_t rows, int cols, const float* bias, bool tanh_approx);
  // x[r, c] += bias[c]
  void (*bias_add)(float* x, int64_t rows, int cols, const float* bias);
  // y[r, c] = a[r, c] + x[r, c] + bias[c] (bias may be null); y may alias x or a.
  void (*residual_add)(const float* a, const float* x, float* y, int64_t rows, int cols,
                       const float* bias);
  // In place, per row: x = exp(x - max) / sum exp(x - max).
  void (*softmax_rows)(float* x, int64_t rows, int cols, int64_t ld);
  // In place, per row: x = exp(x - max(row)); inv_sum[r] = 1 / sum of the stored values.
  // (Softmax with the normalisation deferred: attention scales the [rows, d_head] output instead
  // of the [rows, T] probabilities.)
  void (*exp_rows)(float* x, int64_t rows, int cols, int64_t ld, float* inv_sum);
  // The same with the probabilities stored as bfloat16 (bf16 attention products): per row,
  // p = bf16(exp(x - max(row))) (round to nearest even), inv_sum[r] = 1 / the float32 sum of the
  // stored (rounded) values, so the weights applied to v sum to 1 up to float32 rounding.
  void (*exp_rows_bf16)(const float* x, int64_t rows, int cols, int64_t ld, uint16_t* p,
                        int64_t ldp, float* inv_sum);
  // x[r, c] *= s[r]
  void (*scale_rows)(float* x, int64_t rows, int cols, int64_t ld, const float* s);
  // Attention micro-kernels (register tiles of kAttnMR rows x attn_nr columns, fp32 FMA).
  // attn_nr: panel width (2 vectors). Packed K^T of one head: ceil(t / nr) panels of [dh][nr]
  // (zero-padded); packed V: ceil(dh / nr) column panels of [t][nr] (zero-padded).
  int attn_nr;
  void (*attn_pack_k)(const float* k, int64_t ldk, int t, int dh, float* kp);
  void (*attn_pack_v)(const float* v, int64_t ldv, int t, int dh, float* vp);
  // s[m, t] = alpha * q[m, dh] k^T   (q rows ldq apart, s rows lds apart)
  void (*attn_qk)(const float* q, int64_t ldq, int m, const float* kp, int t, int dh, float alpha,
                  float* s, int64_t lds);
  // o[m, dh] = scale[r] * (e[m, t] v)   (e rows lde apart, o rows ldo apart)
  void (*attn_pv)(const float* e, int64_t lde, int m, const float* vp, int t, int dh,
                  const float* scale, float* o, int64_t ldo);
  // Round float32 to the nearest bfloat16 / IEEE half (ties to even) and back: y may alias x.
  void (*round_bf16)(const float* x, float* y, int64_t n);
  void (*round_f16)(const float* x, float* y, int64_t n);
  // y = the bfloat16 bits of x rounded to nearest even (the bits of round_bf16's result).
  void (*to_bf16)(const float* x, uint16_t* y, int64_t n);
  // Storage conversions.
  void (*bf16_to_f32)(const uint16_t* x, float* y, int64_t n);
  void (*f16_to_f32)(const uint16_t* x, float* y, int64_t n);
  // y[i] = re[i]^2 + im[i]^2 from interleaved complex (re, im) pairs.
  void (*power)(const float* z, float* y, int64_t n);
  // Elementwise building blocks, exposed for the tests.
  void (*erf)(const float* x, float* y, int64_t n);
  void (*exp)(const float* x, float* y, int64_t n);
};

const KernelTable& kernels(Isa isa);  // throws std::runtime_error if not supported

// Portable scalar conversions (round to nearest even), independent of wb_core.
uint16_t f32_to_bf16_bits(float f);
float bf16_bits_to_f32(uint16_t b);
uint16_t f32_to_f16_bits(float f);
float f16_bits_to_f32(uint16_t h);

// Layer norm with float16 statistics (fault "ln-fp16"): inputs rounded to half, mean and
// variance accumulated in half (every partial sum rounded to half), output rounded to half.
void layer_norm_f16_stats(const float* x, float* y, int64_t rows, int cols, const float* g,
                          const float* b, float eps);

}  // namespace wb::cand
