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

// oneDNN's effective CPU ISA (e.g. "avx512_core_bf16"; DNNL_MAX_CPU_ISA lowers it).
std::string onednn_cpu_isa();
// Whether bf16 matmuls run natively (AVX512-BF16 / AMX) rather than widened to float32.
bool onednn_native_bf16();

}  // namespace wb::cand
