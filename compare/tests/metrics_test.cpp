// The streaming accumulator against a naive two-pass computation in long double, over a table
// of odd shapes and chunkings (seeded; the case id and seed are printed with every check).
#include "wb/compare/metrics.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <random>

using namespace wb::cmp;

namespace {

struct Naive {
  long double mean_a = 0, mean_b = 0, std_a = 0, std_b = 0, rel = 0, cos = 0, max_abs = 0,
              mean_abs = 0;
  int64_t beyond = 0;
};

Naive naive(const std::vector<double>& a, const std::vector<double>& b, double atol, double rtol) {
  Naive n;
  const auto N = static_cast<long double>(a.size());
  long double sa = 0, sb = 0, aa = 0, bb = 0, ab = 0, dd = 0, dabs = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    sa += a[i];
    sb += b[i];
  }
  n.mean_a = sa / N;
  n.mean_b = sb / N;
  long double va = 0, vb = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const long double x = a[i], y = b[i], d = y - x;
    va += (x - n.mean_a) * (x - n.mean_a);
    vb += (y - n.mean_b) * (y - n.mean_b);
    aa += x * x;
    bb += y * y;
    ab += x * y;
    dd += d * d;
    dabs += std::fabs(d);
    n.max_abs = std::max(n.max_abs, std::fabs(d));
    if (std::fabs(b[i] - a[i]) > atol + rtol * std::fabs(a[i])) ++n.beyond;
  }
  n.std_a = std::sqrt(va / N);
  n.std_b = std::sqrt(vb / N);
  n.rel = std::sqrt(dd / aa);
  n.cos = ab / std::sqrt(aa * bb);
  n.mean_abs = dabs / N;
  return n;
}

double relerr(long double got, long double want) {
  const long double den = std::max<long double>(std::fabs(want), 1e-300L);
  return static_cast<double>(std::fabs(got - want) / den);
}

}  // namespace

TEST_CASE("streaming metrics match a two-pass long-double computation") {
  struct Case {
    wb::Shape shape;
    int64_t chunk_rows;
    double offset;  // large means stress the shifted variance
    double noise;
  };
  const std::vector<Case> cases = {
      {{1, 1}, 1, 0.0, 1e-3},      {{7, 13}, 3, 0.5, 1e-6},    {{3000, 5}, 1000, 1e3, 1e-4},
      {{33, 4097}, 5, -2.0, 1e-2}, {{17, 384}, 17, 1e4, 1e-7}, {{5, 6, 7}, 2, 0.0, 0.3},
      {{1500, 13}, 7, 0.0, 1.0},   {{2, 9000}, 1, 3.0, 1e-5},
  };
  const uint32_t seed = 20261125;
  for (std::size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    std::mt19937 rng(seed + static_cast<uint32_t>(ci));
    std::normal_distribution<double> nd(0.0, 1.0);
    const int64_t n = wb::shape_numel(c.shape);
    std::vector<double> a(static_cast<std::size_t>(n)), b(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      a[i] = c.offset + static_cast<float>(nd(rng));
      b[i] = a[i] + c.noise * nd(rng);
    }
    AccumulatorOptions o;
    o.atol = 1e-5;
    o.rtol = 1e-3;
    o.top_k = 5;
    MetricAccumulator acc(c.shape, o);
    const int64_t rows = c.shape[0];
    const int64_t row_len = n / rows;
    for (int64_t r = 0; r < rows; r += c.chunk_rows) {
      const int64_t k = std::min(c.chunk_rows, rows - r);
      acc.add_rows(a.data() + r * row_len, b.data() + r * row_len, k);
    }
    const DiffMetrics m = acc.finish();
    const Naive w = naive(a, b, o.atol, o.rtol);
    const std::string id = fmt::format("case {} shape [{}] chunk {} seed {}", ci,
                                       fmt::join(c.shape, ","), c.chunk_rows, seed + ci);
    INFO(id);
    // float64 sums of n terms: error bound ~ n_block * eps; allow 1e-9 relative.
    const double tol = 1e-9;
    MESSAGE(fmt::format("{}: rel_l2 err {:.2e}, std err {:.2e}, cos err {:.2e}", id,
                        relerr(m.rel_l2, w.rel), relerr(m.ref.std, w.std_a),
                        relerr(1 - m.cosine, 1 - w.cos)));
    CHECK(relerr(m.ref.mean, w.mean_a) < tol);
    CHECK(relerr(m.cand.mean, w.mean_b) < tol);
    CHECK(relerr(m.ref.std, w.std_a) < tol);
    CHECK(relerr(m.cand.std, w.std_b) < tol);
    CHECK(relerr(m.rel_l2, w.rel) < tol);
    CHECK(relerr(m.max_abs, w.max_abs) == 0.0);
    CHECK(relerr(m.mean_abs, w.mean_abs) < tol);
    CHECK(std::fabs(m.cosine - static_cast<double>(w.cos)) < 1e-12);
    CHECK(m.beyond == w.beyond);
    CHECK(m.numel == n);
    CHECK(m.compared == n);
    CHECK(m.nan_mismatch == 0);
    REQUIRE(!m.worst.empty());
    // The worst element really is the one with the largest tolerance ratio.
    double best = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
      best = std::max(best, std::fabs(b[i] - a[i]) / (o.atol + o.rtol * std::fabs(a[i])));
    CHECK(relerr(m.worst.front().tol_ratio, best) < 1e-12);
    for (std::size_t i = 1; i < m.worst.size(); ++i)
      CHECK(!less_severe(m.worst[i - 1], m.worst[i]));
    const auto& w0 = m.worst.front();
    CHECK(a[static_cast<std::size_t>(w0.index)] == w0.ref);
    CHECK(b[static_cast<std::size_t>(w0.index)] == w0.cand);
  }
}

TEST_CASE("identical inputs give zero error") {
  const wb::Shape s{300, 77};
  std::vector<double> a(300 * 77);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> u(-3, 3);
  for (double& x : a) x = u(rng);
  AccumulatorOptions o;
  o.frame_axis = 0;
  MetricAccumulator acc(s, o);
  acc.add_rows(a.data(), a.data(), 300);
  const DiffMetrics m = acc.finish();
  CHECK(m.rel_l2 == 0.0);
  CHECK(m.max_abs == 0.0);
  CHECK(m.cosine == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(std::isinf(m.snr_db));
  CHECK(m.beyond == 0);
  CHECK(m.worst.empty());
  REQUIRE(m.frames.size() == 300);
  CHECK(m.frames[17].rel_l2 == 0.0);
}

TEST_CASE("NaN and Inf are counted, classified and ranked first") {
  const wb::Shape s{4, 5};
  std::vector<double> a(20), b(20);
  for (int i = 0; i < 20; ++i) a[i] = b[i] = 1.0 + i;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  b[3] = nan;         // NaN mismatch
  a[7] = b[7] = nan;  // matching NaN
  a[9] = inf;         // Inf vs finite
  b[9] = 3.0;
  a[11] = inf;  // opposite signs
  b[11] = -inf;
  a[12] = b[12] = -inf;  // matching -Inf
  b[15] = 16.5;          // plain finite error
  AccumulatorOptions o;
  o.top_k = 10;
  o.atol = 1e-6;
  MetricAccumulator acc(s, o);
  acc.add_rows(a.data(), b.data(), 2);
  acc.add_rows(a.data() + 10, b.data() + 10, 2);
  const DiffMetrics m = acc.finish();
  CHECK(m.nan_mismatch == 1);
  CHECK(m.inf_mismatch == 2);
  CHECK(m.ref.nan == 1);
  CHECK(m.cand.nan == 2);
  CHECK(m.ref.pos_inf == 2);
  CHECK(m.ref.neg_inf == 1);
  CHECK(m.cand.neg_inf == 2);
  CHECK(m.compared == 20 - 5);
  CHECK(m.max_abs == doctest::Approx(0.5));
  CHECK(std::isfinite(m.rel_l2));
  CHECK(std::isfinite(m.ref.mean));
  CHECK(m.beyond == 4);
  REQUIRE(m.worst.size() == 4);
  CHECK(m.worst[0].kind == 2);
  CHECK(m.worst[0].index == 3);
  CHECK(m.worst[1].kind == 1);
  CHECK(m.worst[2].kind == 1);
  CHECK(m.worst[3].index == 15);
  CHECK(m.worst[3].coords == std::vector<int64_t>{3, 0});
}

TEST_CASE("per-frame profiles: rows for [frames, channels], columns for mel") {
  // Error only in frame 2 of a [6, 4] tap.
  std::vector<double> a(24, 1.0), b(24, 1.0);
  b[2 * 4 + 1] = 1.5;
  AccumulatorOptions o;
  o.frame_axis = 0;
  MetricAccumulator acc({6, 4}, o);
  acc.add_rows(a.data(), b.data(), 6);
  auto m = acc.finish();
  REQUIRE(m.frames.size() == 6);
  CHECK(m.frames[2].rel_l2 == doctest::Approx(0.25));
  CHECK(m.frames[2].max_abs == doctest::Approx(0.5));
  CHECK(m.frames[1].rel_l2 == 0.0);

  // Mel [3, 5]: frames are columns; error in frame 4.
  std::vector<double> ma(15, 2.0), mb(15, 2.0);
  mb[1 * 5 + 4] = 1.0;
  AccumulatorOptions om;
  om.frame_axis = 1;
  MetricAccumulator am({3, 5}, om);
  am.add_rows(ma.data(), mb.data(), 1);
  am.add_rows(ma.data() + 5, mb.data() + 5, 2);
  m = am.finish();
  REQUIRE(m.frames.size() == 5);
  CHECK(m.frames[4].max_abs == doctest::Approx(1.0));
  CHECK(m.frames[3].max_abs == 0.0);
}

TEST_CASE("per-head error splits the channels into equal slices") {
  const int T = 9, H = 3, D = 5;
  std::vector<double> a(T * H * D), b;
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.37 * static_cast<double>(i)) + 0.1;
  b = a;
  for (int t = 0; t < T; ++t) b[static_cast<std::size_t>(t * H * D + 1 * D + 2)] *= 2.0;  // head 1
  AccumulatorOptions o;
  o.heads = H;
  MetricAccumulator acc({T, H * D}, o);
  acc.add_rows(a.data(), b.data(), T);
  const auto m = acc.finish();
  REQUIRE(m.heads.size() == 3);
  CHECK(m.heads[0].rel_l2 == 0.0);
  CHECK(m.heads[2].rel_l2 == 0.0);
  CHECK(m.heads[1].rel_l2 > 0.1);
}

TEST_CASE("compensated sums keep a large count of small terms") {
  CompensatedSum s;
  s.add(1e16);
  for (int i = 0; i < 1000; ++i) s.add(1.0);
  s.add(-1e16);
  CHECK(s.value() == 1000.0);
}

TEST_CASE("pearson: shifted cross-sum survives means far above the spread") {
  // a = M + x, b = M + x + noise: the unshifted E[ab] - E[a]E[b] loses every digit of cov
  // (~1) to cancellation against E[ab] ~ M^2 = 1e16 once M = 1e8. Independent value: two-pass
  // long double over the deviations.
  const uint64_t seed = 42;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (double big : {0.0, 1e4, 1e8}) {
    const int64_t rows = 37, cols = 301;
    std::vector<double> a(static_cast<std::size_t>(rows * cols)), b(a.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      const double x = nd(rng);
      a[i] = big + x;
      b[i] = big + x + 0.3 * nd(rng);
    }
    long double ma = 0, mb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) ma += a[i], mb += b[i];
    ma /= a.size();
    mb /= a.size();
    long double cov = 0, va = 0, vb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      cov += (a[i] - ma) * (b[i] - mb);
      va += (a[i] - ma) * (a[i] - ma);
      vb += (b[i] - mb) * (b[i] - mb);
    }
    const double want = static_cast<double>(cov / std::sqrt(va * vb));
    MetricAccumulator acc({rows, cols}, {});
    acc.add_rows(a.data(), b.data(), rows);
    const double got = acc.finish().pearson;
    // float64 sums of 1e4 deviations of size ~1 whose shift is one element (|shift - mean| ~ 1):
    // a few ulps of 1e4 relative to cov ~ 1e4, far below 1e-9.
    MESSAGE("mean " << big << " seed " << seed << ": pearson " << got << " vs two-pass " << want
                    << " (diff " << std::fabs(got - want) << ")");
    CHECK(std::fabs(got - want) <= 1e-9);
  }
}
