// Candidate ops (layer level above the kernels): weight storage in the chosen precision, the
// linear layer on OpenBLAS with fused epilogues, conv1d k3 by im2col, block-wise attention.
// Layouts: activations [rows, cols] row-major; Linear weights [out, in] as in PyTorch.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gemm_onednn.h"
#include "kernels.h"
#include "thread_pool.h"
#include "wb/core/enum_names.h"
#include "wb/core/precision.h"

namespace wb::cand {

// The kernels' precision tag, mapped once from and to wb::Precision (whose table names it).
enum class Precision { f32, bf16, f16 };
Precision internal_precision(wb::Precision p);
wb::Precision public_precision(Precision p);
std::string_view precision_name(Precision p);  // "float32", "bfloat16", "float16"

// The GEMM library behind `linear`: oneDNN matmul (default; gemm_onednn.h) or OpenBLAS sgemm.
enum class GemmBackend { onednn, openblas };
inline constexpr std::array<NameEntry<GemmBackend>, 2> kGemmBackendNames{{
    {GemmBackend::onednn, "onednn"},
    {GemmBackend::openblas, "openblas"},
}};
std::string_view gemm_backend_name(GemmBackend g);
// $WB_CAND_GEMM = onednn (default) | openblas; anything else is an error.
GemmBackend gemm_backend_from_env();

// A weight matrix [rows, cols] stored in float32, bfloat16 or float16 (rounded once, at load):
// row-major for OpenBLAS, or packed once into oneDNN's layout (2 bytes/weight in reduced
// precision either way).
class WeightMatrix {
 public:
  WeightMatrix() = default;
  WeightMatrix(const float* w, int rows, int cols, Precision p,
               GemmBackend g = GemmBackend::openblas);
  int rows() const { return rows_; }
  int cols() const { return cols_; }
  Precision precision() const { return prec_; }
  GemmBackend backend() const { return dnnl_ ? GemmBackend::onednn : GemmBackend::openblas; }
  const OnednnWeights* onednn() const { return dnnl_.get(); }
  // OpenBLAS storage as float32 values: the stored array itself (float32) or a conversion into
  // scratch.
  const float* f32(std::vector<float>& scratch, const KernelTable& k, ThreadPool& pool) const;

 private:
  int rows_ = 0, cols_ = 0;
  Precision prec_ = Precision::f32;
  std::vector<float> f_;
  std::vector<uint16_t> h_;
  std::shared_ptr<const OnednnWeights> dnnl_;
};

// The attention products: own float32 micro-kernels, OpenBLAS sgemm, or (bfloat16 only) oneDNN
// bf16 x bf16 -> f32 matmuls (AMX tiles where the CPU has them; gemm_onednn.h).
enum class AttnImpl { kernel, blas, onednn };
inline constexpr std::array<NameEntry<AttnImpl>, 3> kAttnImplNames{{
    {AttnImpl::kernel, "kernel"},
    {AttnImpl::blas, "blas"},
    {AttnImpl::onednn, "onednn"},
}};

// Called by the thread that computed rows [r0, r1) of the output, right after its GEMM.
using Epilogue = std::function<void(int64_t r0, int64_t r1, int tid)>;

struct OpContext {
  const KernelTable* k = nullptr;
  ThreadPool* pool = nullptr;
  Precision prec = Precision::f32;
  std::vector<float> wscratch;               // dequantized weights
  std::vector<std::vector<float>> ascratch;  // per thread: rounded activations, score rows
  std::vector<std::vector<float>> sscratch;  // per thread: attention score blocks
  std::vector<float> packed;                 // attention: packed K^T and V of every head
  AttnImpl attn = AttnImpl::kernel;
  std::shared_ptr<OnednnThreads> dnnl;  // per-thread oneDNN state, made on first use
};

// Y[M, N] = A[M, K] W^T (no bias; the epilogue adds it). In reduced precision A is rounded to the
// weight type first (bf16/f16 GEMM inputs), accumulation stays float32. The backend is the
// weight's: OpenBLAS: rows split into one contiguous range per thread, single-threaded sgemm in
// each, the epilogue once per range; oneDNN: tiles of kGemmTileRows rows claimed by the threads,
// the epilogue once per tile (gemm_onednn.h).
void linear(OpContext& ctx, const float* a, int64_t m, int64_t lda, const WeightMatrix& w, float* y,
            int64_t ldy, const Epilogue& epi);

// The default of precision p: onednn for bfloat16 where oneDNN runs the products on AMX tiles
// (onednn_attention_amx()), else kernel.
AttnImpl default_attention_impl(Precision p);
// $WB_CAND_ATTN = kernel | blas | onednn (bfloat16 only: anything else is an error); unset:
// default_attention_impl(p).
AttnImpl attention_impl_from_env(Precision p);
// run_info's "attention": "micro-kernels", "openblas", or "onednn matmul <oneDNN impl> (...)".
std::string attention_impl_info(AttnImpl a);

// Block-wise multi-head attention over qkv [T, 3C] (q | k | v, heads of d_head columns each):
// out[T, C] = concat_h softmax(alpha q_h k_h^T) v_h, computed for blocks of `block_rows` queries
// at a time, so only a [block_rows, T] score block per thread exists. AttnImpl::onednn needs
// ctx.prec bfloat16 and q, k, v already rounded to it (P is rounded to bf16 too).
void attention(OpContext& ctx, const float* qkv, int64_t t, int c, int heads, float alpha,
               float* out, int block_rows = 96, AttnImpl impl = AttnImpl::kernel);

// Rounds x in place to the context precision (no-op for float32).
void round_to_precision(OpContext& ctx, float* x, int64_t n);

// dst[0, n) = the 16-bit values src[0, n) (bfloat16 or float16 bits, p) widened to float32,
// split across the pool.
void widen_16bit(const KernelTable& k, ThreadPool& pool, Precision p, const uint16_t* src,
                 float* dst, int64_t n);
// dst[0, n) = the bfloat16 or float16 bits (p) of src[0, n), rounded to nearest even (scalar).
void narrow_16bit(Precision p, const float* src, uint16_t* dst, std::size_t n);

// Sets OpenBLAS to one thread for the lifetime of the guard and restores it afterwards (the
// candidate threads itself; LibTorch in the same process keeps its own setting).
class BlasSingleThread {
 public:
  BlasSingleThread();
  ~BlasSingleThread();
  BlasSingleThread(const BlasSingleThread&) = delete;
  BlasSingleThread& operator=(const BlasSingleThread&) = delete;

 private:
  int prev_;
};
void blas_set_threads(int n);
int blas_get_threads();

}  // namespace wb::cand
