#include "ops.h"

#include <cblas.h>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace wb::cand {

namespace {
// The kernel tag of each wb::Precision.
constexpr std::array<std::pair<wb::Precision, Precision>, 3> kPrecisionTags{{
    {wb::Precision::float32, Precision::f32},
    {wb::Precision::bfloat16, Precision::bf16},
    {wb::Precision::float16, Precision::f16},
}};

// The value of $var in `table`, `fallback` when unset or empty; anything else is an error.
template <class E, std::size_t N>
E env_choice(const char* var, const std::array<NameEntry<E>, N>& table, E fallback) {
  const char* env = std::getenv(var);
  if (env == nullptr || *env == '\0') return fallback;
  if (auto v = find_value(table, env)) return *v;
  throw std::runtime_error(std::string(var) + "=" + env + ": expected one of " + names_of(table));
}
}  // namespace

Precision internal_precision(wb::Precision p) {
  for (const auto& [pub, tag] : kPrecisionTags)
    if (pub == p) return tag;
  return Precision::f32;
}

wb::Precision public_precision(Precision p) {
  for (const auto& [pub, tag] : kPrecisionTags)
    if (tag == p) return pub;
  return wb::Precision::float32;
}

std::string_view precision_name(Precision p) { return to_string(public_precision(p)); }

void blas_set_threads(int n) { openblas_set_num_threads(n); }
int blas_get_threads() { return openblas_get_num_threads(); }

BlasSingleThread::BlasSingleThread() : prev_(openblas_get_num_threads()) {
  if (prev_ != 1) openblas_set_num_threads(1);
}
BlasSingleThread::~BlasSingleThread() {
  if (prev_ != 1) openblas_set_num_threads(prev_);
}

std::string_view gemm_backend_name(GemmBackend g) { return name_of(kGemmBackendNames, g); }

GemmBackend gemm_backend_from_env() {
  return env_choice("WB_CAND_GEMM", kGemmBackendNames, GemmBackend::onednn);
}

WeightMatrix::WeightMatrix(const float* w, int rows, int cols, Precision p, GemmBackend g)
    : rows_(rows), cols_(cols), prec_(p) {
  const auto n = static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols);
  if (g == GemmBackend::onednn) {  // the values rounded to the weight type, then packed
    std::vector<float> r(w, w + n);
    if (p != Precision::f32)
      for (float& x : r)
        x = p == Precision::bf16 ? bf16_bits_to_f32(f32_to_bf16_bits(x))
                                 : f16_bits_to_f32(f32_to_f16_bits(x));
    dnnl_ = onednn_pack(r.data(), rows, cols, p);
    return;
  }
  if (p == Precision::f32) {
    f_.assign(w, w + n);
  } else {
    h_.resize(n);
    narrow_16bit(p, w, h_.data(), n);
  }
}

namespace {
// fn(src + b, dst + b, e - b) over [0, n), split across the pool.
template <class In>
void parallel_elementwise(ThreadPool& pool, void (*fn)(const In*, float*, int64_t), const In* src,
                          float* dst, int64_t n) {
  pool.parallel_for(
      n, [&](int64_t b, int64_t e, int) { fn(src + b, dst + b, e - b); }, 64);
}
}  // namespace

void widen_16bit(const KernelTable& k, ThreadPool& pool, Precision p, const uint16_t* src,
                 float* dst, int64_t n) {
  parallel_elementwise(pool, p == Precision::bf16 ? k.bf16_to_f32 : k.f16_to_f32, src, dst, n);
}

void narrow_16bit(Precision p, const float* src, uint16_t* dst, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    dst[i] = p == Precision::bf16 ? f32_to_bf16_bits(src[i]) : f32_to_f16_bits(src[i]);
}

const float* WeightMatrix::f32(std::vector<float>& scratch, const KernelTable& k,
                               ThreadPool& pool) const {
  if (prec_ == Precision::f32) return f_.data();
  const int64_t n = static_cast<int64_t>(rows_) * cols_;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(static_cast<std::size_t>(n));
  widen_16bit(k, pool, prec_, h_.data(), scratch.data(), n);
  return scratch.data();
}

void round_to_precision(OpContext& ctx, float* x, int64_t n) {
  if (ctx.prec == Precision::f32) return;
  const KernelTable& k = *ctx.k;
  parallel_elementwise(*ctx.pool, ctx.prec == Precision::bf16 ? k.round_bf16 : k.round_f16, x, x,
                       n);
}

void linear(OpContext& ctx, const float* a, int64_t m, int64_t lda, const WeightMatrix& w, float* y,
            int64_t ldy, const Epilogue& epi) {
  if (const OnednnWeights* dw = w.onednn()) {
    if (!ctx.dnnl) ctx.dnnl = onednn_threads(ctx.pool->size());
    onednn_linear(*ctx.dnnl, *dw, *ctx.k, *ctx.pool, a, m, lda, y, ldy, epi);
    return;
  }
  const int n = w.rows(), kdim = w.cols();
  const float* wf = w.f32(ctx.wscratch, *ctx.k, *ctx.pool);
  const bool reduce_a = ctx.prec != Precision::f32;
  if (static_cast<int>(ctx.ascratch.size()) < ctx.pool->size())
    ctx.ascratch.resize(static_cast<std::size_t>(ctx.pool->size()));
  ctx.pool->parallel_for(
      m,
      [&](int64_t r0, int64_t r1, int tid) {
        const float* ap = a + r0 * lda;
        int64_t ld = lda;
        if (reduce_a) {
          auto& buf = ctx.ascratch[static_cast<std::size_t>(tid)];
          const int64_t need = (r1 - r0) * kdim;
          if (static_cast<int64_t>(buf.size()) < need) buf.resize(static_cast<std::size_t>(need));
          for (int64_t r = r0; r < r1; ++r) {
            float* dst = buf.data() + (r - r0) * kdim;
            if (ctx.prec == Precision::bf16)
              ctx.k->round_bf16(a + r * lda, dst, kdim);
            else
              ctx.k->round_f16(a + r * lda, dst, kdim);
          }
          ap = buf.data();
          ld = kdim;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(r1 - r0), n, kdim,
                    1.0f, ap, static_cast<int>(ld), wf, kdim, 0.0f, y + r0 * ldy,
                    static_cast<int>(ldy));
        if (epi) epi(r0, r1, tid);
      },
      8);
}

AttnImpl default_attention_impl(Precision p) {
  return p == Precision::bf16 && onednn_attention_amx() ? AttnImpl::onednn : AttnImpl::kernel;
}

AttnImpl attention_impl_from_env(Precision p) {
  const AttnImpl a = env_choice("WB_CAND_ATTN", kAttnImplNames, default_attention_impl(p));
  if (a == AttnImpl::onednn && p != Precision::bf16)
    throw std::runtime_error(
        std::string("WB_CAND_ATTN=onednn: bfloat16 products, for ") +
        "--precision bfloat16 only (this run: " + std::string(precision_name(p)) + ")");
  return a;
}

std::string attention_impl_info(AttnImpl a) {
  switch (a) {
    case AttnImpl::kernel:
      return "micro-kernels";
    case AttnImpl::blas:
      return "openblas";
    case AttnImpl::onednn:
      return "onednn matmul " + onednn_attention_impl() + " (bf16 products, float32 softmax)";
  }
  return "?";
}

void attention(OpContext& ctx, const float* qkv, int64_t t, int c, int heads, float alpha,
               float* out, int block_rows, AttnImpl impl) {
  if (c % heads != 0) throw std::invalid_argument("attention: C not divisible by heads");
  const int dh = c / heads;
  block_rows = std::clamp(block_rows, 1, kMaxAttnBlockRows);
  if (impl == AttnImpl::onednn) {
    if (ctx.prec != Precision::bf16)
      throw std::invalid_argument("attention: the oneDNN products are bfloat16 only");
    if (!ctx.dnnl) ctx.dnnl = onednn_threads(ctx.pool->size());
    onednn_attention(*ctx.dnnl, *ctx.k, *ctx.pool, qkv, t, c, heads, alpha, out, block_rows);
    return;
  }
  const int64_t ld = 3 * static_cast<int64_t>(c);
  const int64_t nblocks = (t + block_rows - 1) / block_rows;
  const int nt = ctx.pool->size();
  if (static_cast<int>(ctx.sscratch.size()) < nt) ctx.sscratch.resize(static_cast<std::size_t>(nt));
  for (auto& s : ctx.sscratch)
    if (static_cast<int64_t>(s.size()) < block_rows * t)
      s.resize(static_cast<std::size_t>(block_rows * t));
  const KernelTable& k = *ctx.k;
  const int ti = static_cast<int>(t);
  // Own micro-kernels: K^T and V of every head packed once, then (head, query block) items.
  const int nr = k.attn_nr;
  const int64_t kp_size = (t + nr - 1) / nr * nr * dh;
  const int dhp = (dh + nr - 1) / nr * nr;
  const int64_t vp_size = t * dhp;
  if (impl == AttnImpl::kernel) {
    const int64_t need = heads * (kp_size + vp_size);
    if (static_cast<int64_t>(ctx.packed.size()) < need)
      ctx.packed.resize(static_cast<std::size_t>(need));
    ctx.pool->parallel_items(2 * heads, [&](int64_t item, int) {
      const int h = static_cast<int>(item / 2);
      float* kp = ctx.packed.data() + h * (kp_size + vp_size);
      if (item % 2 == 0)
        k.attn_pack_k(qkv + c + static_cast<int64_t>(h) * dh, ld, ti, dh, kp);
      else
        k.attn_pack_v(qkv + 2 * static_cast<int64_t>(c) + static_cast<int64_t>(h) * dh, ld, ti, dh,
                      kp + kp_size);
    });
  }
  ctx.pool->parallel_items(heads * nblocks, [&](int64_t item, int tid) {
    const int h = static_cast<int>(item / nblocks);
    const int64_t r0 = (item % nblocks) * block_rows;
    const int mrows = static_cast<int>(std::min<int64_t>(block_rows, t - r0));
    float* s = ctx.sscratch[static_cast<std::size_t>(tid)].data();
    const float* q = qkv + r0 * ld + static_cast<int64_t>(h) * dh;
    float* o = out + r0 * c + static_cast<int64_t>(h) * dh;
    float inv[kMaxAttnBlockRows];
    if (impl == AttnImpl::kernel) {
      const float* kp = ctx.packed.data() + h * (kp_size + vp_size);
      k.attn_qk(q, ld, mrows, kp, ti, dh, alpha, s, ti);         // S = alpha q k^T
      k.exp_rows(s, mrows, ti, ti, inv);                         // E = exp(S - rowmax)
      k.attn_pv(s, ti, mrows, kp + kp_size, ti, dh, inv, o, c);  // O = (E v) / rowsum(E)
      return;
    }
    const float* kk = qkv + c + static_cast<int64_t>(h) * dh;
    const float* v = qkv + 2 * static_cast<int64_t>(c) + static_cast<int64_t>(h) * dh;
    // S[m, T] = alpha q_blk k^T
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mrows, ti, dh, alpha, q,
                static_cast<int>(ld), kk, static_cast<int>(ld), 0.0f, s, ti);
    // E = exp(S - rowmax), O[m, dh] = (E v) / rowsum(E): softmax normalised after the product
    k.exp_rows(s, mrows, ti, ti, inv);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, mrows, dh, ti, 1.0f, s, ti, v,
                static_cast<int>(ld), 0.0f, o, c);
    k.scale_rows(o, mrows, dh, c, inv);
  });
}

}  // namespace wb::cand
