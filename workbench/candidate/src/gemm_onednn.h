// The oneDNN GEMM backend of `linear` (ops.h): weights packed once per model into the layout the
// oneDNN matmul primitive prefers (format_tag::any), one primitive per weight matrix, created at
// load for a fixed tile of kGemmTileRows rows; activations run tile by tile (a partial last tile is
// zero-padded), so every output row sees the same arithmetic whatever the thread count or the
// tap selection. Each pool thread executes single-threaded (oneDNN's OpenMP set to 1 thread for
// the calling thread), with its own stream and scratchpad.
//
// No oneDNN post-ops: bias, GELU and residual stay the candidate's kernels, run by `epi` on each
// tile while it is in L2, so a tapped run (epilogue split at the tap) and an untapped one (fused)
// compute the same float operations per element (CTest: taps all / minimal / none give a
// bit-identical encoder.ln_post, every ISA and precision). oneDNN's gelu_erf post-op would round
// differently from our erf and need the tapped path to use it too.
//
// Precisions: float32: f32 matmul. bfloat16: bf16 x bf16 -> f32 (vdpbf16ps, float32
// accumulation) where oneDNN runs AVX512-BF16; otherwise ("widened") the packed bf16 weights are
// widened to float32 per call and multiplied with float32 FMAs. float16: the packed float32
// layout is stored as float16 and widened per call with F16C (float32 accumulation; AVX512-FP16
// arithmetic, which accumulates in float16, is never used).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kernels.h"

namespace wb::cand {

enum class Precision;
class ThreadPool;

// Rows per oneDNN matmul call: one tile's output ([64, 4C] float32 <= 1 MiB for base) is still in
// L2 when the epilogue (bias, GELU, residual) runs on it.
inline constexpr int kGemmTileRows = 64;

struct OnednnWeights;  // packed weights + primitive (gemm_onednn.cpp)

// Packs W [n, k] (float32 values, already rounded to `p`'s type for reduced precisions).
std::shared_ptr<const OnednnWeights> onednn_pack(const float* w, int n, int k, Precision p);

// "brg:avx512_core_bf16" etc. (oneDNN's implementation name) and whether the bf16 weights are
// widened to float32 per call.
std::string onednn_impl(const OnednnWeights& w);

// Per-thread execution state: stream, scratchpad, tile buffers.
struct OnednnThreads;
std::shared_ptr<OnednnThreads> onednn_threads(int n);

// y[m, n] = a[m, k] W^T; per tile of rows [r0, r1), `epi(r0, r1, tid)` runs right after the
// tile's product on the thread that computed it. Tiles are claimed dynamically by the pool.
void onednn_linear(OnednnThreads& st, const OnednnWeights& w, const KernelTable& kt,
                   ThreadPool& pool, const float* a, int64_t m, int64_t lda, float* y, int64_t ldy,
                   const std::function<void(int64_t, int64_t, int)>& epi);

// bfloat16 attention products (AttnImpl::onednn, ops.h) over qkv [T, 3C] (q | k | v, bfloat16
// values stored as float32), out [T, C]. K and V of every head are packed once per call into
// bf16 [T, d_head] (exact: the values are bf16 already); then, per (head, block of `block_rows`
// queries), items claimed by the pool threads:
//   S = alpha q k^T   oneDNN matmul bf16 x bf16 -> f32 (alpha is the primitive's output scale,
//                     applied to the float32 accumulator)
//   P = bf16(exp(S - rowmax)), l = sum P (float32; kernels exp_rows_bf16)
//   O = (P v) / l     oneDNN matmul bf16 x bf16 -> f32, normalised on the [rows, d_head] output
// A last block shorter than block_rows runs the same primitive on padded rows (dropped), so every
// output row sees the same arithmetic whatever the thread count. The primitives of a shape and
// alpha are made once and kept in `st`.
void onednn_attention(OnednnThreads& st, const KernelTable& kt, ThreadPool& pool, const float* qkv,
                      int64_t t, int c, int heads, float alpha, float* out, int block_rows);
// The implementation oneDNN runs the attention products with (e.g. "brg:avx512_core_amx_bf16"
// on AMX tiles), for a representative shape (a 96-query block, T 1500, d_head 64); "" if oneDNN
// has none for bf16 on this CPU.
std::string onednn_attention_impl();
// Whether that implementation runs on AMX tiles: where it does, bfloat16 attention takes this
// path by default (AVX512-BF16's vdpbf16ps alone issues at half the rate of a 512-bit FMA, so the
// float32 micro-kernels are faster there).
bool onednn_attention_amx();

// oneDNN's effective CPU ISA (e.g. "avx512_core_bf16"; DNNL_MAX_CPU_ISA lowers it).
std::string onednn_cpu_isa();
// Whether bf16 matmuls run natively (AVX512-BF16 / AMX) rather than widened to float32.
bool onednn_native_bf16();

}  // namespace wb::cand
