#include "gemm_onednn.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <mutex>
#include <oneapi/dnnl/dnnl.hpp>
#include <stdexcept>
#include <unordered_map>

#include "ops.h"
#include "thread_pool.h"

namespace wb::cand {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

// oneDNN's OpenMP runtime sizes its parallel regions by the calling thread's omp_get_max_threads;
// the candidate's pool threads each run one single-threaded primitive (no oversubscription).
// The caller's setting is restored afterwards (LibTorch in the same process keeps its own).
class OmpSingleThread {
 public:
  OmpSingleThread() : prev_(omp_get_max_threads()) {
    if (prev_ != 1) omp_set_num_threads(1);
  }
  ~OmpSingleThread() {
    if (prev_ != 1) omp_set_num_threads(prev_);
  }
  OmpSingleThread(const OmpSingleThread&) = delete;
  OmpSingleThread& operator=(const OmpSingleThread&) = delete;

 private:
  int prev_;
};

dnnl::matmul::primitive_desc make_pd(int n, int k, dt src, dt wei) {
  const dnnl::memory::dims sd{kGemmTileRows, k}, wd{k, n}, dd{kGemmTileRows, n};
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::matmul::desc d(dnnl::memory::desc(sd, src, tag::ab),
                             dnnl::memory::desc(wd, wei, tag::any),
                             dnnl::memory::desc(dd, dt::f32, tag::ab));
  return dnnl::matmul::primitive_desc(d, attr, engine());
}

bool native_bf16_impl(const char* impl) {
  const std::string s(impl);
  return s.find("bf16") != std::string::npos || s.find("amx") != std::string::npos;
}

}  // namespace

struct OnednnWeights {
  int n = 0, k = 0;
  Precision prec{};
  dt src = dt::f32;    // activation type the primitive takes
  bool widen = false;  // 16-bit storage of the packed float32 layout, widened per call
  dnnl::matmul prim;
  dnnl::memory::desc wei_md;
  std::size_t scratch_bytes = 0;
  std::string impl;
  std::vector<float> f;     // packed float32 weights (float32 mode)
  std::vector<uint16_t> h;  // packed bf16 (native), or the packed float32 layout in 16 bits
};

// The two matmul primitives of the bf16 attention products for one shape and scale.
struct AttnPrims {
  int64_t t = 0;
  int dh = 0, rows = 0;
  float alpha = 0;
  dnnl::matmul qk, pv;
  dnnl::memory::desc q_md, k_md, s_md, p_md, v_md, o_md;
  std::size_t scratch_bytes = 0;
  std::string impl;
};

struct OnednnThreads {
  struct One {
    dnnl::stream stream;
    std::vector<uint8_t> scratch;
    std::vector<float> src, dst;
    std::vector<uint16_t> src16;
    // attention: the query block (bf16), the scores (f32), P (bf16), the block's output (f32)
    std::vector<uint16_t> q16, p16;
    std::vector<float> s32, o32;
  };
  std::vector<One> t;
  std::vector<float> wide;   // widened weights (float16, widened bfloat16)
  std::vector<uint16_t> kv;  // attention: bf16 K and V of every head
  std::vector<std::shared_ptr<const AttnPrims>> attn;  // attention primitives, one per shape
};

bool onednn_native_bf16() {
  static const bool native = [] {
    try {
      const auto pd = make_pd(64, 64, dt::bf16, dt::bf16);
      return native_bf16_impl(pd.impl_info_str());
    } catch (const dnnl::error&) {
      return false;
    }
  }();
  return native;
}

namespace {

// S[rows, T] = alpha Q[rows, dh] K^T: K [T, dh] row-major is B = K^T [dh, T] in format ba.
// O[rows, dh] = P[rows, T] V[T, dh]. Plain layouts throughout (oneDNN's brgemm on AMX repacks B
// per call; measured no slower than K and V reordered into its blocked layout once per head).
// q, k and v are not read in place from qkv: with their row stride 3C as strided descriptors,
// oneDNN 2.6 picks gemm:jit (no AMX) for both products, hence the bf16 packing.
std::shared_ptr<const AttnPrims> make_attn_prims(int64_t t, int dh, int rows, float alpha) {
  auto a = std::make_shared<AttnPrims>();
  a->t = t;
  a->dh = dh;
  a->rows = rows;
  a->alpha = alpha;
  const int64_t r = rows, d = dh;
  a->q_md = dnnl::memory::desc({r, d}, dt::bf16, tag::ab);
  a->k_md = dnnl::memory::desc({d, t}, dt::bf16, tag::ba);
  a->s_md = dnnl::memory::desc({r, t}, dt::f32, tag::ab);
  a->p_md = dnnl::memory::desc({r, t}, dt::bf16, tag::ab);
  a->v_md = dnnl::memory::desc({t, d}, dt::bf16, tag::ab);
  a->o_md = dnnl::memory::desc({r, d}, dt::f32, tag::ab);
  dnnl::primitive_attr qk_attr, pv_attr;
  qk_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  qk_attr.set_output_scales(0, {alpha});
  pv_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const dnnl::matmul::primitive_desc qk_pd(dnnl::matmul::desc(a->q_md, a->k_md, a->s_md), qk_attr,
                                           engine());
  const dnnl::matmul::primitive_desc pv_pd(dnnl::matmul::desc(a->p_md, a->v_md, a->o_md), pv_attr,
                                           engine());
  a->qk = dnnl::matmul(qk_pd);
  a->pv = dnnl::matmul(pv_pd);
  a->scratch_bytes =
      std::max(qk_pd.scratchpad_desc().get_size(), pv_pd.scratchpad_desc().get_size());
  const std::string qk_impl = qk_pd.impl_info_str(), pv_impl = pv_pd.impl_info_str();
  a->impl = qk_impl == pv_impl ? qk_impl : qk_impl + " / " + pv_impl;
  return a;
}

}  // namespace

std::string onednn_attention_impl() {
  static const std::string impl = [] {
    try {
      return make_attn_prims(1500, 64, 96, 0.125f)->impl;
    } catch (const dnnl::error&) {
      return std::string();
    }
  }();
  return impl;
}

bool onednn_attention_amx() { return onednn_attention_impl().find("amx") != std::string::npos; }

namespace {
constexpr std::array<NameEntry<dnnl::cpu_isa>, 7> kOnednnIsaNames{{
    {dnnl::cpu_isa::sse41, "sse41"},
    {dnnl::cpu_isa::avx, "avx"},
    {dnnl::cpu_isa::avx2, "avx2"},
    {dnnl::cpu_isa::avx512_core, "avx512_core"},
    {dnnl::cpu_isa::avx512_core_vnni, "avx512_core_vnni"},
    {dnnl::cpu_isa::avx512_core_bf16, "avx512_core_bf16"},
    {dnnl::cpu_isa::avx512_core_amx, "avx512_core_amx"},
}};
}  // namespace

std::string onednn_cpu_isa() {
  const std::string_view name = name_of(kOnednnIsaNames, dnnl::get_effective_cpu_isa());
  return std::string(name == "?" ? "other" : name);
}

std::shared_ptr<const OnednnWeights> onednn_pack(const float* w, int n, int k, Precision p) {
  auto r = std::make_shared<OnednnWeights>();
  r->n = n;
  r->k = k;
  r->prec = p;
  const bool bf16 = p == Precision::bf16 && onednn_native_bf16();
  r->src = bf16 ? dt::bf16 : dt::f32;
  r->widen = p != Precision::f32 && !bf16;
  const auto pd = make_pd(n, k, r->src, r->src);
  r->prim = dnnl::matmul(pd);
  r->wei_md = pd.weights_desc();
  r->scratch_bytes = pd.scratchpad_desc().get_size();
  r->impl = pd.impl_info_str();
  // W [n, k] row-major is B = W^T [k, n] with strides {1, k} (format ba).
  OmpSingleThread omp1;
  dnnl::stream s(engine());
  const std::size_t packed = r->wei_md.get_size() / sizeof(float) * (bf16 ? 2 : 1);
  std::vector<float> f32(bf16 ? 0 : packed);
  dnnl::memory plain(dnnl::memory::desc({k, n}, dt::f32, tag::ba), engine(), const_cast<float*>(w));
  if (bf16) {
    r->h.resize(r->wei_md.get_size() / sizeof(uint16_t));
    dnnl::memory dst(r->wei_md, engine(), r->h.data());
    dnnl::reorder(plain, dst).execute(s, plain, dst);  // exact: the values are bf16 already
  } else {
    dnnl::memory dst(r->wei_md, engine(), f32.data());
    dnnl::reorder(plain, dst).execute(s, plain, dst);
  }
  s.wait();
  if (p == Precision::f32) {
    r->f = std::move(f32);
  } else if (r->widen) {  // exact: the values are representable in the 16-bit type
    r->h.resize(f32.size());
    narrow_16bit(p, f32.data(), r->h.data(), f32.size());
  }
  return r;
}

std::string onednn_impl(const OnednnWeights& w) {
  return w.impl + (w.widen ? " (16-bit weights widened to float32)" : "");
}

std::shared_ptr<OnednnThreads> onednn_threads(int n) {
  auto st = std::make_shared<OnednnThreads>();
  st->t.resize(static_cast<std::size_t>(n));
  for (auto& one : st->t) one.stream = dnnl::stream(engine());
  return st;
}

namespace {

// The widened float32 weights of a 16-bit packed matrix (float16, or bf16 without AVX512-BF16).
const float* widened(OnednnThreads& st, const OnednnWeights& w, const KernelTable& kt,
                     ThreadPool& pool) {
  const auto n = static_cast<int64_t>(w.h.size());
  if (static_cast<int64_t>(st.wide.size()) < n) st.wide.resize(static_cast<std::size_t>(n));
  widen_16bit(kt, pool, w.prec, w.h.data(), st.wide.data(), n);
  return st.wide.data();
}

// The tile's activations in the primitive's source type: rounded to the weight type in reduced
// precision (bf16 bits when native), rows past `rows` zero. Returns a pointer to [tile, k].
const void* tile_source(OnednnThreads::One& one, const OnednnWeights& w, const KernelTable& kt,
                        const float* a, int64_t lda, int rows) {
  const int k = w.k;
  const auto tile_n = static_cast<std::size_t>(kGemmTileRows) * static_cast<std::size_t>(k);
  if (w.src == dt::bf16) {
    one.src16.resize(tile_n);
    for (int r = 0; r < rows; ++r) kt.to_bf16(a + r * lda, one.src16.data() + r * k, k);
    std::fill(one.src16.begin() + static_cast<std::ptrdiff_t>(rows) * k, one.src16.end(), 0);
    return one.src16.data();
  }
  if (w.prec == Precision::f32 && rows == kGemmTileRows && lda == k) return a;
  one.src.resize(tile_n);
  for (int r = 0; r < rows; ++r) {
    float* dst = one.src.data() + static_cast<int64_t>(r) * k;
    if (w.prec == Precision::bf16)
      kt.round_bf16(a + r * lda, dst, k);
    else if (w.prec == Precision::f16)
      kt.round_f16(a + r * lda, dst, k);
    else
      std::memcpy(dst, a + r * lda, sizeof(float) * static_cast<std::size_t>(k));
  }
  std::fill(one.src.begin() + static_cast<std::ptrdiff_t>(rows) * k, one.src.end(), 0.0f);
  return one.src.data();
}

}  // namespace

void onednn_linear(OnednnThreads& st, const OnednnWeights& w, const KernelTable& kt,
                   ThreadPool& pool, const float* a, int64_t m, int64_t lda, float* y, int64_t ldy,
                   const std::function<void(int64_t, int64_t, int)>& epi) {
  if (static_cast<int>(st.t.size()) < pool.size())
    throw std::logic_error("onednn_linear: fewer thread states than pool threads");
  OmpSingleThread omp1;
  const void* wei = w.widen             ? static_cast<const void*>(widened(st, w, kt, pool))
                    : w.src == dt::bf16 ? static_cast<const void*>(w.h.data())
                                        : static_cast<const void*>(w.f.data());
  const int n = w.n, k = w.k;
  const int64_t tiles = (m + kGemmTileRows - 1) / kGemmTileRows;
  const dnnl::memory::desc src_md({kGemmTileRows, k}, w.src, tag::ab);
  const dnnl::memory::desc dst_md({kGemmTileRows, n}, dt::f32, tag::ab);
  pool.parallel_items(tiles, [&](int64_t item, int tid) {
    omp_set_num_threads(1);  // this pool thread's OpenMP setting (a no-op after the first call)
    OnednnThreads::One& one = st.t[static_cast<std::size_t>(tid)];
    const int64_t r0 = item * kGemmTileRows;
    const int rows = static_cast<int>(std::min<int64_t>(kGemmTileRows, m - r0));
    const void* src = tile_source(one, w, kt, a + r0 * lda, lda, rows);
    const bool direct = rows == kGemmTileRows && ldy == n;
    float* out = y + r0 * ldy;
    if (!direct) {
      one.dst.resize(static_cast<std::size_t>(kGemmTileRows) * static_cast<std::size_t>(n));
      out = one.dst.data();
    }
    if (one.scratch.size() < w.scratch_bytes) one.scratch.resize(w.scratch_bytes);
    const auto& eng = engine();
    dnnl::memory sm(src_md, eng, const_cast<void*>(src));
    dnnl::memory wm(w.wei_md, eng, const_cast<void*>(wei));
    dnnl::memory dm(dst_md, eng, out);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, sm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DST, dm}};
    if (w.scratch_bytes > 0)
      args.emplace(
          DNNL_ARG_SCRATCHPAD,
          dnnl::memory(dnnl::memory::desc({static_cast<int64_t>(w.scratch_bytes)}, dt::u8, tag::a),
                       eng, one.scratch.data()));
    w.prim.execute(one.stream, args);
    one.stream.wait();
    if (!direct)
      for (int r = 0; r < rows; ++r)
        std::memcpy(y + (r0 + r) * ldy, one.dst.data() + static_cast<int64_t>(r) * n,
                    sizeof(float) * static_cast<std::size_t>(n));
    if (epi) epi(r0, r0 + rows, tid);
  });
}

void onednn_attention(OnednnThreads& st, const KernelTable& kt, ThreadPool& pool, const float* qkv,
                      int64_t t, int c, int heads, float alpha, float* out, int block_rows) {
  if (static_cast<int>(st.t.size()) < pool.size())
    throw std::logic_error("onednn_attention: fewer thread states than pool threads");
  OmpSingleThread omp1;
  const int dh = c / heads;
  const int64_t ld = 3 * static_cast<int64_t>(c);
  const int64_t hsize = t * dh;  // one head's K (or V), bf16 [T, d_head]
  std::shared_ptr<const AttnPrims> ap;
  for (const auto& e : st.attn)
    if (e->t == t && e->dh == dh && e->rows == block_rows && e->alpha == alpha) ap = e;
  if (!ap) {
    ap = make_attn_prims(t, dh, block_rows, alpha);
    st.attn.push_back(ap);
  }
  // K and V of head h: kv[(2h) T dh ..] and kv[(2h + 1) T dh ..], bf16 [T, d_head] row-major.
  st.kv.resize(static_cast<std::size_t>(2 * heads * hsize));
  pool.parallel_items(2 * static_cast<int64_t>(heads), [&](int64_t item, int) {
    const float* src = qkv + (1 + item % 2) * c + (item / 2) * dh;
    uint16_t* dst = st.kv.data() + item * hsize;
    for (int64_t r = 0; r < t; ++r) kt.to_bf16(src + r * ld, dst + r * dh, dh);
  });
  const int64_t nblocks = (t + block_rows - 1) / block_rows;
  const auto rows = static_cast<std::size_t>(block_rows);
  const auto& eng = engine();
  pool.parallel_items(heads * nblocks, [&](int64_t item, int tid) {
    omp_set_num_threads(1);  // this pool thread's OpenMP setting (a no-op after the first call)
    OnednnThreads::One& one = st.t[static_cast<std::size_t>(tid)];
    const int64_t h = item / nblocks;
    const int64_t r0 = (item % nblocks) * block_rows;
    const int mrows = static_cast<int>(std::min<int64_t>(block_rows, t - r0));
    one.q16.resize(rows * static_cast<std::size_t>(dh));
    one.p16.resize(rows * static_cast<std::size_t>(t));
    one.s32.resize(rows * static_cast<std::size_t>(t));
    one.o32.resize(rows * static_cast<std::size_t>(dh));
    if (one.scratch.size() < ap->scratch_bytes) one.scratch.resize(ap->scratch_bytes);
    // the query block in bf16; padded rows zero (their outputs are dropped)
    for (int r = 0; r < mrows; ++r)
      kt.to_bf16(qkv + (r0 + r) * ld + h * dh, one.q16.data() + static_cast<int64_t>(r) * dh, dh);
    std::fill(one.q16.begin() + static_cast<std::ptrdiff_t>(mrows) * dh, one.q16.end(), 0);
    const uint16_t* kh = st.kv.data() + 2 * h * hsize;
    const uint16_t* vh = kh + hsize;
    dnnl::memory scratch(
        dnnl::memory::desc({static_cast<int64_t>(ap->scratch_bytes)}, dt::u8, tag::a), eng,
        one.scratch.data());
    dnnl::memory qm(ap->q_md, eng, one.q16.data()), km(ap->k_md, eng, const_cast<uint16_t*>(kh));
    dnnl::memory sm(ap->s_md, eng, one.s32.data());
    ap->qk.execute(one.stream, {{DNNL_ARG_SRC, qm},
                                {DNNL_ARG_WEIGHTS, km},
                                {DNNL_ARG_DST, sm},
                                {DNNL_ARG_SCRATCHPAD, scratch}});
    one.stream.wait();
    // P = bf16(exp(S - rowmax)) and 1 / rowsum, float32 statistics; padded rows of P zero
    float inv[kMaxAttnBlockRows];
    const int tt = static_cast<int>(t);
    kt.exp_rows_bf16(one.s32.data(), mrows, tt, t, one.p16.data(), t, inv);
    std::fill(one.p16.begin() + static_cast<std::ptrdiff_t>(mrows) * t, one.p16.end(), 0);
    dnnl::memory pm(ap->p_md, eng, one.p16.data()), vm(ap->v_md, eng, const_cast<uint16_t*>(vh));
    dnnl::memory om(ap->o_md, eng, one.o32.data());
    ap->pv.execute(one.stream, {{DNNL_ARG_SRC, pm},
                                {DNNL_ARG_WEIGHTS, vm},
                                {DNNL_ARG_DST, om},
                                {DNNL_ARG_SCRATCHPAD, scratch}});
    one.stream.wait();
    float* o = out + r0 * c + h * dh;
    for (int r = 0; r < mrows; ++r)
      std::memcpy(o + static_cast<int64_t>(r) * c, one.o32.data() + static_cast<int64_t>(r) * dh,
                  sizeof(float) * static_cast<std::size_t>(dh));
    kt.scale_rows(o, mrows, dh, c, inv);
  });
}

}  // namespace wb::cand
