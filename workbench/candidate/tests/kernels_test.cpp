// Every candidate kernel against an independent float64 computation, on every ISA path this CPU
// runs, on odd shapes (not multiples of 8 or 16). Tolerances come from float32 epsilon, the
// magnitude of the terms and the reduction length; the measured error is printed on success too.
// Comparison order: NaN, Inf, then the error bound.
#include "kernels.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "ops.h"
#include "thread_pool.h"
#include "wb/testing/name_tables.h"
#include "wb/testing/random.h"
#include "wb/testing/reference_math.h"

using namespace wb::cand;

namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();  // 2^-23
constexpr uint64_t kSeed = wb::testing::kCpuKernelSeed;
using wb::testing::randn;

struct Check {
  std::string id;
  double worst_ratio = 0;  // max |err| / tol
  double worst_err = 0;
  double worst_tol = 0;
  int nan = 0;
  int inf = 0;
  void add(double got, double want, double tol) {
    if (std::isnan(got) != std::isnan(want)) ++nan;
    if (std::isinf(got) != std::isinf(want) ||
        (std::isinf(got) && std::signbit(got) != std::signbit(want)))
      ++inf;
    if (std::isnan(want) || std::isinf(want)) return;
    const double err = std::fabs(got - want);
    const double r = err / tol;
    if (r > worst_ratio || std::isnan(r)) {
      worst_ratio = std::isnan(r) ? 1e300 : r;
      worst_err = err;
      worst_tol = tol;
    }
  }
  void finish() const {
    MESSAGE(id << " seed=" << kSeed << ": max|err|/tol=" << worst_ratio << " (err " << worst_err
               << ", tol " << worst_tol << ")");
    CHECK_MESSAGE(nan == 0, id << ": NaN mismatch");
    CHECK_MESSAGE(inf == 0, id << ": Inf mismatch");
    CHECK_MESSAGE(worst_ratio <= 1.0, id << ": error beyond tolerance");
  }
};

std::string cid(Isa isa, const std::string& what) {
  return std::string(isa_name(isa)) + "/" + what;
}

// The op cases, one table each, run on every ISA path this CPU runs (and, for linear, on both
// GEMM backends): odd widths, not multiples of the vector width, a single column, long rows.
constexpr std::pair<int, int> kRowShapes[] = {{7, 37}, {13, 389}, {3, 1}, {5, 1531},
                                              {2, 67}, {5, 1499}, {3, 7}, {4, 61}};
// linear: M x N x K, and whether lda > K and ldy > N.
constexpr std::tuple<int, int, int, bool> kLinearShapes[] = {
    {37, 45, 53, false},   {301, 129, 389, false}, {1, 7, 3, false},      {1499, 33, 257, false},
    {1499, 33, 257, true}, {37, 45, 53, true},     {65, 129, 389, false}, {128, 64, 64, false}};

std::string shape_id(int rows, int cols) {
  return std::to_string(rows) + "x" + std::to_string(cols);
}

// Row r of softmax over x0 [rows, ld] (first `cols` columns) in float64.
std::vector<double> softmax_f64(const std::vector<float>& x0, int r, int64_t ld, int cols) {
  double m = -1e300, s = 0;
  for (int c = 0; c < cols; ++c) m = std::max(m, static_cast<double>(x0[r * ld + c]));
  for (int c = 0; c < cols; ++c) s += std::exp(x0[r * ld + c] - m);
  std::vector<double> p(static_cast<std::size_t>(cols));
  for (int c = 0; c < cols; ++c) p[c] = std::exp(x0[r * ld + c] - m) / s;
  return p;
}

float rounded(Precision prec, float x) {
  if (prec == Precision::bf16) return bf16_bits_to_f32(f32_to_bf16_bits(x));
  if (prec == Precision::f16) return f16_bits_to_f32(f32_to_f16_bits(x));
  return x;
}

// y [M, N] (rows ldy apart) against float64 on the rounded operands a [M, K] (rows lda apart),
// w [N, K], plus bias: in reduced precision both the weights and the activations enter rounded;
// the accumulation error bound is (K + 2) eps sum_k |a_k w_k|.
void check_linear_f64(Check& ch, Precision prec, const std::vector<float>& a, int lda,
                      const std::vector<float>& wv, const std::vector<float>& bias,
                      const std::vector<float>& y, int ldy, int m, int n, int kk) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0, sa = 0;
      for (int q = 0; q < kk; ++q) {
        const double t =
            static_cast<double>(rounded(prec, a[i * lda + q])) * rounded(prec, wv[j * kk + q]);
        s += t;
        sa += std::fabs(t);
      }
      s += bias[j];
      ch.add(y[i * ldy + j], s, (kk + 2) * kEps * (sa + std::fabs(bias[j])) + 1e-30);
    }
}

// Column q of head h's attention output in float64, o = sum_j p_j v_j, and oa = sum_j p_j |v_j|
// (the scale of its rounding error).
std::pair<double, double> pv_f64(const std::vector<double>& p, const std::vector<float>& qkv, int t,
                                 int c, int dh, int h, int q) {
  double o = 0, oa = 0;
  for (int j = 0; j < t; ++j) {
    const double v = qkv[static_cast<std::size_t>(j) * 3 * c + 2 * c + h * dh + q];
    o += p[j] * v;
    oa += p[j] * std::fabs(v);
  }
  return {o, oa};
}

}  // namespace

TEST_CASE("isa: selection, names and $WB_ISA validation") {
  const auto isas = supported_isas();
  REQUIRE(!isas.empty());
  CHECK(isas.front() == kIsaNames.front().first);  // the portable path, always there
  std::string list;
  for (Isa i : isas) list += std::string(isa_name(i)) + " ";
  MESSAGE("supported ISA paths: " << list << "(best: " << isa_name(best_isa()) << ")");
  wb::testing::check_name_table(kIsaNames, "Isa", kIsaNames.back().first);
  for (const auto& [isa, name] : kIsaNames) CHECK(isa_from_name(name) == isa);
  CHECK_THROWS_AS(isa_from_name("sse9"), std::invalid_argument);
  wb::testing::check_name_table(kGemmBackendNames, "GemmBackend", GemmBackend::openblas);
  wb::testing::check_name_table(kAttnImplNames, "AttnImpl", AttnImpl::onednn);
  for (Precision p : {Precision::f32, Precision::bf16, Precision::f16})
    CHECK(internal_precision(public_precision(p)) == p);
  for (Isa i : isas) CHECK(kernels(i).isa == i);
}

TEST_CASE("kernels: layer_norm vs float64") {
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels(isa);
    for (auto [rows, cols] : kRowShapes) {
      const auto x = randn(static_cast<std::size_t>(rows) * cols, kSeed + cols, 3.0f, 0.7f);
      const auto g = randn(static_cast<std::size_t>(cols), kSeed + 1, 0.5f, 1.0f);
      const auto b = randn(static_cast<std::size_t>(cols), kSeed + 2, 0.3f);
      std::vector<float> y(x.size());
      const float eps = 1e-5f;
      k.layer_norm(x.data(), y.data(), rows, cols, g.data(), b.data(), eps);
      Check ch{cid(isa, "layer_norm " + shape_id(rows, cols))};
      for (int r = 0; r < rows; ++r) {
        const auto [m, v] = wb::testing::mean_var_f64(x.data() + r * cols, cols);
        const double rs = 1.0 / std::sqrt(v + eps);
        for (int c = 0; c < cols; ++c) {
          const double xh = (x[r * cols + c] - m) * rs;
          const double want = xh * g[c] + b[c];
          // float32 mean/var over `cols` terms: relative error ~ eps * cols in the statistics,
          // magnified by |x_hat| and |g|; plus a few roundings of the output.
          const double tol = kEps * (cols + 8) * (std::fabs(xh) + 1.0) * std::fabs(g[c]) +
                             4 * kEps * std::fabs(want) + 1e-30;
          ch.add(y[r * cols + c], want, tol);
        }
      }
      ch.finish();
    }
  }
}

TEST_CASE("kernels: erf, exp and GELU (erf and tanh) vs float64") {
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels(isa);
    const int n = 10007;
    std::vector<float> x(n), y(n);
    for (int i = 0; i < n; ++i) x[i] = -6.0f + 12.0f * static_cast<float>(i) / (n - 1);
    {
      k.erf(x.data(), y.data(), n);
      Check ch{cid(isa, "erf [-6,6] n=10007")};
      for (int i = 0; i < n; ++i) ch.add(y[i], std::erf(static_cast<double>(x[i])), 8 * kEps);
      ch.finish();
    }
    {
      std::vector<float> xe(n);
      for (int i = 0; i < n; ++i) xe[i] = -80.0f + 160.0f * static_cast<float>(i) / (n - 1);
      k.exp(xe.data(), y.data(), n);
      Check ch{cid(isa, "exp [-80,80] n=10007")};
      for (int i = 0; i < n; ++i) {
        const double want = std::exp(static_cast<double>(xe[i]));
        ch.add(y[i], want, 4 * kEps * want);
      }
      ch.finish();
    }
    for (bool tanh_approx : {false, true}) {
      const int rows = 9, cols = 1117;
      const auto xg = randn(static_cast<std::size_t>(rows) * cols, kSeed + 7, 2.5f);
      const auto bias = randn(static_cast<std::size_t>(cols), kSeed + 8, 0.5f);
      std::vector<float> yg = xg;
      k.bias_gelu(yg.data(), rows, cols, bias.data(), tanh_approx);
      Check ch{cid(isa, std::string(tanh_approx ? "gelu_tanh" : "gelu_erf") + "+bias 9x1117")};
      for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c) {
          const double v = static_cast<double>(static_cast<float>(xg[r * cols + c] + bias[c]));
          const double want =
              tanh_approx
                  ? 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)))
                  : 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
          // a few ulp of the inner function times |x|, plus the output rounding
          ch.add(yg[r * cols + c], want, 8 * kEps * (std::fabs(v) + std::fabs(want)) + 1e-30);
        }
      ch.finish();
    }
  }
}

TEST_CASE("kernels: softmax rows vs float64") {
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels(isa);
    for (auto [rows, cols] : kRowShapes) {
      const int64_t ld = cols + 3;
      auto x = randn(static_cast<std::size_t>(rows * ld), kSeed + cols, 4.0f);
      const auto x0 = x;
      k.softmax_rows(x.data(), rows, cols, ld);
      Check ch{cid(isa, "softmax " + shape_id(rows, cols))};
      for (int r = 0; r < rows; ++r) {
        const std::vector<double> want = softmax_f64(x0, r, ld, cols);
        // exp: few ulp; the sum over `cols` terms: eps * cols relative
        for (int c = 0; c < cols; ++c)
          ch.add(x[r * ld + c], want[c], kEps * (cols + 8) * want[c] + 1e-38);
        for (int c = cols; c < ld; ++c) CHECK(x[r * ld + c] == x0[r * ld + c]);  // untouched
      }
      ch.finish();
      // deferred normalisation: exp_rows then scale_rows gives the same probabilities
      auto e = x0;
      std::vector<float> inv(static_cast<std::size_t>(rows));
      k.exp_rows(e.data(), rows, cols, ld, inv.data());
      k.scale_rows(e.data(), rows, cols, ld, inv.data());
      Check ce{cid(isa, "exp_rows+scale_rows " + shape_id(rows, cols))};
      for (int r = 0; r < rows; ++r) {
        const std::vector<double> want = softmax_f64(x0, r, ld, cols);
        for (int c = 0; c < cols; ++c)
          ce.add(e[r * ld + c], want[c], kEps * (cols + 8) * want[c] + 1e-38);
        for (int c = cols; c < ld; ++c) CHECK(e[r * ld + c] == x0[r * ld + c]);
      }
      ce.finish();
    }
  }
}

// exp_rows_bf16 (the bf16 attention's softmax): each stored p within bf16 rounding (u_bf16 = 2^-8
// relative) plus the float32 exp's error ((4 + |x - max|) eps: the polynomial's few ulp and the
// rounding of x - max, amplified by the exponent) of the float64 exp(x - max), and inv_sum the
// reciprocal of the float32 sum of the stored values
// ((cols + 2) eps relative). Padding columns of p (ldp > cols) untouched; the same bits on every
// ISA.
TEST_CASE("kernels: exp_rows_bf16 vs float64") {
  std::vector<std::vector<uint16_t>> first;
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels(isa);
    std::size_t shape_i = 0;
    for (auto [rows, cols] : kRowShapes) {
      const int64_t ld = cols + 3, ldp = cols + 5;
      const auto x = randn(static_cast<std::size_t>(rows * ld), kSeed + cols, 4.0f);
      std::vector<uint16_t> p(static_cast<std::size_t>(rows * ldp), 0xABCD);
      std::vector<float> inv(static_cast<std::size_t>(rows));
      k.exp_rows_bf16(x.data(), rows, cols, ld, p.data(), ldp, inv.data());
      Check ch{cid(isa, "exp_rows_bf16 " + shape_id(rows, cols))};
      Check cs{cid(isa, "exp_rows_bf16 inv_sum " + shape_id(rows, cols))};
      for (int r = 0; r < rows; ++r) {
        double m = -1e300, sum = 0;
        for (int c = 0; c < cols; ++c) m = std::max(m, static_cast<double>(x[r * ld + c]));
        for (int c = 0; c < cols; ++c) {
          const double want = std::exp(x[r * ld + c] - m);
          const double got = bf16_bits_to_f32(p[r * ldp + c]);
          const double de = (4 + std::fabs(x[r * ld + c] - m)) * kEps;
          ch.add(got, want, (std::ldexp(1.0, -8) + de) * want + 1e-38);
          sum += got;
        }
        cs.add(inv[r], 1.0 / sum, (cols + 2) * kEps / sum);
        for (int c = cols; c < ldp; ++c) CHECK(p[r * ldp + c] == 0xABCD);
      }
      ch.finish();
      cs.finish();
      if (first.size() <= shape_i) first.push_back(p);
      CHECK_MESSAGE(p == first[shape_i], cid(isa, "exp_rows_bf16 " + shape_id(rows, cols))
                                             << ": bits differ from "
                                             << isa_name(kIsaNames[0].first));
      ++shape_i;
    }
  }
}

TEST_CASE("kernels: bias_add, residual_add, power: one rounding per op") {
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels(isa);
    const int rows = 11, cols = 203;
    const auto a = randn(static_cast<std::size_t>(rows) * cols, kSeed + 3);
    const auto x = randn(static_cast<std::size_t>(rows) * cols, kSeed + 4);
    const auto b = randn(static_cast<std::size_t>(cols), kSeed + 5);
    std::vector<float> y(a.size());
    k.residual_add(a.data(), x.data(), y.data(), rows, cols, b.data());
    Check ch{cid(isa, "residual_add+bias 11x203")};
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        const int i = r * cols + c;
        // exactly a + fl(x + b), as the reference computes (x + b) first
        const float want = a[i] + (x[i] + b[c]);
        ch.add(y[i], want, 0.0 + 1e-300);
      }
    ch.finish();
    std::vector<float> z = x;
    k.bias_add(z.data(), rows, cols, b.data());
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) CHECK(z[r * cols + c] == x[r * cols + c] + b[c]);
    std::vector<float> p(static_cast<std::size_t>(rows) * cols / 2);
    k.power(x.data(), p.data(), static_cast<int64_t>(p.size()));
    Check cp{cid(isa, "power n=1116")};
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double re = x[2 * i], im = x[2 * i + 1];
      cp.add(p[i], re * re + im * im, 3 * kEps * (re * re + im * im));
    }
    cp.finish();
  }
}

TEST_CASE("kernels: bfloat16 / float16 rounding and conversion equal the scalar definition") {
  std::vector<float> v = randn(1237, kSeed + 9, 100.0f);
  const float specials[] = {
      0.0f,     -0.0f,   1.0f,        65504.0f,   65520.0f,
      70000.0f, -1e-7f,  5.96e-8f,    3e-5f,      1e30f,
      -1e30f,   6.1e-5f, 1.00390625f, 1.0078125f, std::numeric_limits<float>::infinity()};
  v.insert(v.end(), std::begin(specials), std::end(specials));
  for (float& x : randn(100, kSeed + 10, 1e-6f)) v.push_back(x);  // half subnormals
  const auto n = static_cast<int64_t>(v.size());
  // independent check of the scalar definitions on a few exact cases
  CHECK(f16_bits_to_f32(f32_to_f16_bits(65504.0f)) == 65504.0f);
  CHECK(std::isinf(f16_bits_to_f32(f32_to_f16_bits(65520.0f))));
  CHECK(f16_bits_to_f32(f32_to_f16_bits(1.0f + 1.0f / 2048)) == 1.0f);                // tie -> even
  CHECK(f16_bits_to_f32(f32_to_f16_bits(1.0f + 3.0f / 2048)) == 1.0f + 2.0f / 1024);  // tie -> even
  CHECK(bf16_bits_to_f32(f32_to_bf16_bits(1.00390625f)) == 1.0f);                     // tie -> even
  CHECK(bf16_bits_to_f32(f32_to_bf16_bits(1.01171875f)) == 1.015625f);                // tie -> even
  CHECK(f16_bits_to_f32(0x0001) == std::ldexp(1.0f, -24));
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels(isa);
    std::vector<float> rb(v.size()), rh(v.size()), cb(v.size()), chh(v.size());
    std::vector<uint16_t> bb(v.size()), hh(v.size()), tb(v.size());
    k.round_bf16(v.data(), rb.data(), n);
    k.to_bf16(v.data(), tb.data(), n);
    k.round_f16(v.data(), rh.data(), n);
    for (std::size_t i = 0; i < v.size(); ++i) {
      bb[i] = f32_to_bf16_bits(v[i]);
      hh[i] = f32_to_f16_bits(v[i]);
    }
    k.bf16_to_f32(bb.data(), cb.data(), n);
    k.f16_to_f32(hh.data(), chh.data(), n);
    int bad = 0;
    for (std::size_t i = 0; i < v.size(); ++i) {
      const float eb = bf16_bits_to_f32(bb[i]), eh = f16_bits_to_f32(hh[i]);
      if (rb[i] != eb || cb[i] != eb || rh[i] != eh || chh[i] != eh || tb[i] != bb[i]) {
        if (bad++ < 5)
          MESSAGE(isa_name(isa) << " x=" << v[i] << " bf16 " << rb[i] << "/" << eb << " f16 "
                                << rh[i] << "/" << eh);
      }
    }
    MESSAGE(isa_name(isa) << "/round+convert n=" << n << ": mismatches " << bad);
    CHECK(bad == 0);
  }
}

TEST_CASE("ops: linear (OpenBLAS, rows split over threads) vs float64, deterministic") {
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels(isa);
    for (int threads : {1, 2, 3}) {
      ThreadPool pool(threads);
      OpContext ctx;
      ctx.k = &k;
      ctx.pool = &pool;
      BlasSingleThread blas1;
      for (auto [m, n, kk, strided] : kLinearShapes) {
        const int lda = kk + (strided ? 3 : 0), ldy = n + (strided ? 5 : 0);
        const auto a = randn(static_cast<std::size_t>(m) * lda, kSeed + m, 1.3f);
        const auto wv = randn(static_cast<std::size_t>(n) * kk, kSeed + n, 0.2f);
        const auto bias = randn(static_cast<std::size_t>(n), kSeed + 11);
        for (Precision prec : {Precision::f32, Precision::bf16, Precision::f16}) {
          ctx.prec = prec;
          WeightMatrix w(wv.data(), n, kk, prec);
          std::vector<float> y(static_cast<std::size_t>(m) * ldy), y2(y.size());
          auto run = [&](std::vector<float>& out) {
            linear(ctx, a.data(), m, lda, w, out.data(), ldy, [&](int64_t r0, int64_t r1, int) {
              for (int64_t r = r0; r < r1; ++r) k.bias_add(out.data() + r * ldy, 1, n, bias.data());
            });
          };
          run(y);
          run(y2);
          CHECK_MESSAGE(y == y2, "linear not deterministic");
          Check ch{cid(isa, "linear " + std::string(precision_name(prec)) + " t" +
                                std::to_string(threads) + " " + shape_id(m, n) + "x" +
                                std::to_string(kk) + (strided ? " strided" : ""))};
          check_linear_f64(ch, prec, a, lda, wv, bias, y, ldy, m, n, kk);
          ch.finish();
        }
      }
    }
  }
}

namespace {

// linear() on the oneDNN backend for one shape: against float64 on the rounded operands (bound
// (K + 2) eps sum_k |a_k w_k|, as for OpenBLAS: bf16 x bf16 and f16 x f16 products are exact in
// float32 and every accumulation is float32, vdpbf16ps included), with lda > K and ldy > N when
// `strided`; bit-identical across thread counts 1..3 (fixed row tiles). Returns the worst ratio.
double check_onednn_linear(const KernelTable& k, Precision prec, int m, int n, int kk,
                           bool strided) {
  const int lda = kk + (strided ? 3 : 0), ldy = n + (strided ? 5 : 0);
  const auto a = randn(static_cast<std::size_t>(m) * lda, kSeed + m, 1.3f);
  const auto wv = randn(static_cast<std::size_t>(n) * kk, kSeed + n, 0.2f);
  const auto bias = randn(static_cast<std::size_t>(n), kSeed + 11);
  WeightMatrix w(wv.data(), n, kk, prec, GemmBackend::onednn);
  REQUIRE(w.onednn() != nullptr);
  std::vector<float> first;
  const std::string id = std::string("onednn/") + std::string(precision_name(prec)) + " " +
                         std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(kk) +
                         (strided ? " strided" : "") + " [" + onednn_impl(*w.onednn()) + "]";
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    OpContext ctx;
    ctx.k = &k;
    ctx.pool = &pool;
    ctx.prec = prec;
    std::vector<float> y(static_cast<std::size_t>(m) * ldy, -7.0f);
    linear(ctx, a.data(), m, lda, w, y.data(), ldy, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) k.bias_add(y.data() + r * ldy, 1, n, bias.data());
    });
    if (first.empty()) first = y;
    CHECK_MESSAGE(y == first, id << ": threads " << threads << " differ from 1 thread");
  }
  Check ch{id};
  check_linear_f64(ch, prec, a, lda, wv, bias, first, ldy, m, n, kk);
  for (int i = 0; i < m; ++i) {
    for (int j = n; j < ldy; ++j)
      CHECK_MESSAGE(first[i * ldy + j] == -7.0f, id << ": wrote past N");
  }
  ch.finish();
  return ch.worst_ratio;
}

}  // namespace

TEST_CASE("ops: linear on oneDNN (float32, float16, bfloat16 as this CPU runs it) vs float64") {
  MESSAGE("oneDNN cpu isa " << onednn_cpu_isa() << ", native bf16 " << onednn_native_bf16());
  const KernelTable& k = kernels(best_isa());
  for (Precision prec : {Precision::f32, Precision::f16, Precision::bf16})
    for (auto [m, n, kk, strided] : kLinearShapes) check_onednn_linear(k, prec, m, n, kk, strided);
}

// The AVX512-BF16 path (vdpbf16ps): reported skipped, not passed, where oneDNN cannot run it
// (no AVX512-BF16, or DNNL_MAX_CPU_ISA below avx512_core_bf16); then bf16 runs widened above.
TEST_CASE("ops: linear on oneDNN, native bfloat16 (AVX512-BF16) vs float64" *
          doctest::skip(!onednn_native_bf16())) {
  const KernelTable& k = kernels(best_isa());
  const std::vector<float> w1(64 * 64, 0.5f);
  WeightMatrix w(w1.data(), 64, 64, Precision::bf16, GemmBackend::onednn);
  const std::string impl = onednn_impl(*w.onednn());
  MESSAGE("bf16 matmul: " << impl);
  CHECK_MESSAGE(impl.find("widened") == std::string::npos, impl);
  for (auto [m, n, kk, strided] : kLinearShapes)
    check_onednn_linear(k, Precision::bf16, m, n, kk, strided);
}

TEST_CASE("ops: $WB_CAND_GEMM selects the backend, anything else is an error") {
  CHECK(gemm_backend_name(GemmBackend::onednn) == "onednn");
  CHECK(gemm_backend_name(GemmBackend::openblas) == "openblas");
  const char* prev = std::getenv("WB_CAND_GEMM");
  const std::string saved = prev ? prev : "";
  setenv("WB_CAND_GEMM", "openblas", 1);
  CHECK(gemm_backend_from_env() == GemmBackend::openblas);
  setenv("WB_CAND_GEMM", "mkl", 1);
  CHECK_THROWS_AS(gemm_backend_from_env(), std::runtime_error);
  if (prev)
    setenv("WB_CAND_GEMM", saved.c_str(), 1);
  else
    unsetenv("WB_CAND_GEMM");
  CHECK(gemm_backend_from_env() ==
        (prev && saved == "openblas" ? GemmBackend::openblas : GemmBackend::onednn));
}

TEST_CASE("ops: block-wise attention vs float64 full softmax attention") {
  for (Isa isa : supported_isas()) {
    const KernelTable& k = kernels(isa);
    for (auto [threads, impl] : {std::pair{1, AttnImpl::kernel},
                                 {2, AttnImpl::kernel},
                                 {1, AttnImpl::blas},
                                 {2, AttnImpl::blas}}) {
      ThreadPool pool(threads);
      OpContext ctx;
      ctx.k = &k;
      ctx.pool = &pool;
      BlasSingleThread blas1;
      const char* impl_name = impl == AttnImpl::kernel ? "kernel" : "blas";
      const int t = 157, c = 108, heads = 3, dh = c / heads;  // d_head 36: not a multiple of 8
      const auto qkv = randn(static_cast<std::size_t>(t) * 3 * c, kSeed + 21, 1.5f);
      const float alpha = 1.0f / std::sqrt(static_cast<float>(dh));
      std::vector<float> out(static_cast<std::size_t>(t) * c), out2(out.size());
      // 4 query blocks, the last one 37 rows (not a multiple of the 6-row register tile)
      attention(ctx, qkv.data(), t, c, heads, alpha, out.data(), 40, impl);
      attention(ctx, qkv.data(), t, c, heads, alpha, out2.data(), 40, impl);
      CHECK(out == out2);
      Check ch{cid(isa, std::string("attention/") + impl_name + " t" + std::to_string(threads) +
                            " T157 C108 H3 block40")};
      std::vector<double> p;
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < t; ++i) {
          wb::testing::attention_probs_f64(qkv, t, c, dh, h, i, alpha, p);
          for (int q = 0; q < dh; ++q) {
            const auto [o, oa] = pv_f64(p, qkv, t, c, dh, h, q);
            // score error (dh eps |q||k|, times the exponent's sensitivity) plus the sums over T
            const double tol = kEps * (dh + t + 16) * oa * 4;
            ch.add(out[i * c + h * dh + q], o, tol);
          }
        }
      ch.finish();
    }
  }
}

// The bfloat16 attention products on oneDNN (AMX tiles where the CPU has them), against a
// float64 full-softmax attention on the same bf16 q, k, v. Derived bound, per output element o_i:
//   scores: float32 accumulation of d_head exact bf16 x bf16 products, then the scale alpha:
//     |ds_j| <= alpha (d_head + 1) eps sum_d |q_d k_jd|            (eps = 2^-23)
//   E_j = exp(s_j - max) in float32: relative error <= 4 eps + eps |s_j - max| (<= 100 eps)
//   P_j = bf16(E_j): relative error <= u_bf16 = 2^-8 (8 significant bits, round to nearest)
// so P_j = p~_j (1 + g_j) with |g_j| <= G = u_bf16 + max_j |ds_j| + 100 eps (first order in
// exp(ds)); normalised by their own float32 sum, the weights w_j = P_j / sum P differ from the
// exact p_j by at most p_j 2G / (1 - G), hence
//   |o - o_64| <= (2G / (1 - G) + (T + 3) eps (1 + 2G)) sum_j p_j |v_j|
// (the second term: the float32 sums over T of P and of P v, and the final scaling). The bf16
// rounding of P dominates: about 2^-7 sum p |v|.
namespace {
void check_onednn_attention(int t, int c, int heads, int block, float sd, int nthreads_max) {
  const int dh = c / heads;
  auto qkv = randn(static_cast<std::size_t>(t) * 3 * c, kSeed + 23 + t, sd);
  for (float& x : qkv) x = rounded(Precision::bf16, x);  // as the layer rounds q, k, v
  const float alpha = 1.0f / std::sqrt(static_cast<float>(dh));
  const std::string shape = "T" + std::to_string(t) + " C" + std::to_string(c) + " H" +
                            std::to_string(heads) + " block" + std::to_string(block) + " sd" +
                            std::to_string(sd).substr(0, 3);
  std::vector<float> first;
  for (int threads = 1; threads <= nthreads_max; ++threads) {
    ThreadPool pool(threads);
    OpContext ctx;
    ctx.k = &kernels(best_isa());
    ctx.pool = &pool;
    ctx.prec = Precision::bf16;
    std::vector<float> out(static_cast<std::size_t>(t) * c, std::nanf(""));
    attention(ctx, qkv.data(), t, c, heads, alpha, out.data(), block, AttnImpl::onednn);
    if (first.empty()) {
      first = out;
    } else {
      CHECK_MESSAGE(out == first, "onednn attention " << shape << ": threads " << threads
                                                      << " differ from 1 thread");
      continue;
    }
    Check ch{"attention/onednn bf16 " + onednn_attention_impl() + " " + shape};
    std::vector<double> p;
    for (int h = 0; h < heads; ++h)
      for (int i = 0; i < t; ++i) {
        wb::testing::attention_probs_f64(qkv, t, c, dh, h, i, alpha, p);
        double ds = 0;
        for (int j = 0; j < t; ++j) {
          double sa = 0;
          for (int d = 0; d < dh; ++d)
            sa += std::fabs(static_cast<double>(qkv[i * 3 * c + h * dh + d]) *
                            qkv[j * 3 * c + c + h * dh + d]);
          ds = std::max(ds, alpha * (dh + 1) * kEps * sa);
        }
        const double g = std::ldexp(1.0, -8) + ds + 100 * kEps;
        for (int q = 0; q < dh; ++q) {
          const auto [o, oa] = pv_f64(p, qkv, t, c, dh, h, q);
          const double tol = (2 * g / (1 - g) + (t + 3) * kEps * (1 + 2 * g)) * oa + 1e-30;
          ch.add(out[i * c + h * dh + q], o, tol);
        }
      }
    ch.finish();
  }
}
}  // namespace

TEST_CASE("ops: bfloat16 attention on oneDNN (AMX where present) vs float64") {
  const std::string impl = onednn_attention_impl();
  MESSAGE(
      "oneDNN cpu isa " << onednn_cpu_isa() << ", bf16 attention products: "
                        << (impl.empty() ? "none" : impl) << ", default for bfloat16: "
                        << wb::name_of(kAttnImplNames, default_attention_impl(Precision::bf16)));
  if (impl.empty()) {
    MESSAGE("skipped: oneDNN has no bf16 matmul on this CPU");
    return;
  }
  CHECK(default_attention_impl(Precision::f32) == AttnImpl::kernel);
  CHECK(default_attention_impl(Precision::f16) == AttnImpl::kernel);
  CHECK((default_attention_impl(Precision::bf16) == AttnImpl::onednn) == onednn_attention_amx());
  // d_head 36 (not a multiple of the 32-wide bf16 tile rows), a last block of 37 rows; d_head 64
  // with Whisper's 96-query blocks (last block 13 rows); peaked softmax rows (sd 3: logits ~ 50).
  check_onednn_attention(157, 108, 3, 40, 1.5f, 3);
  check_onednn_attention(301, 128, 2, 96, 1.0f, 2);
  check_onednn_attention(67, 64, 1, 16, 3.0f, 2);
  // float32 runs never take the bf16 products
  ThreadPool pool(1);
  OpContext ctx;
  ctx.k = &kernels(best_isa());
  ctx.pool = &pool;
  std::vector<float> qkv(3 * 64 * 4, 0.5f), out(64 * 4);
  CHECK_THROWS_AS(attention(ctx, qkv.data(), 4, 64, 1, 0.125f, out.data(), 96, AttnImpl::onednn),
                  std::invalid_argument);
}

TEST_CASE("thread pool: static partition covers every index exactly once") {
  for (int threads : {1, 2, 5}) {
    ThreadPool pool(threads);
    for (int64_t n : {0, 1, 7, 1500, 3001}) {
      std::vector<int> hits(static_cast<std::size_t>(n), 0);
      pool.parallel_for(
          n,
          [&](int64_t b, int64_t e, int) {
            for (int64_t i = b; i < e; ++i) ++hits[static_cast<std::size_t>(i)];
          },
          8);
      for (int h : hits) CHECK(h == 1);
      std::vector<int> hits2(static_cast<std::size_t>(n), 0);
      pool.parallel_items(n, [&](int64_t i, int) { ++hits2[static_cast<std::size_t>(i)]; });
      for (int h : hits2) CHECK(h == 1);
    }
  }
}
