// Streaming metric accumulator. The hot loop (block_kernel) assumes every element is finite and
// is vectorized (OpenMP SIMD reductions, compiled for AVX2 and baseline x86-64, picked at run
// time); a block whose sums come out non-finite is redone element by element (slow_segment), which
// classifies NaN/Inf. Both paths fill the same block record, which is then folded into the
// compensated totals and the per-frame / per-head slices.
#include "wb/compare/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace wb::cmp {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kTiny = 1e-300;  // tolerance floor when atol = 0 and ref = 0

}  // namespace

void CompensatedSum::add(double x) {
  const double t = sum + x;
  if (std::fabs(sum) >= std::fabs(x)) {
    comp += (sum - t) + x;
  } else {
    comp += (x - t) + sum;
  }
  sum = t;
}

bool less_severe(const WorstElement& x, const WorstElement& y) {
  if (x.kind != y.kind) return x.kind < y.kind;
  if (x.tol_ratio != y.tol_ratio) return x.tol_ratio < y.tol_ratio;
  if (x.abs_err != y.abs_err) return x.abs_err < y.abs_err;
  return x.index > y.index;  // earlier index is more severe on ties: stable, printable output
}

// Block-level sums. Shifted sums (sa, saa, ...) serve the side statistics; raw ones the norms.
struct MetricAccumulator::Acc {
  double n_a = 0, n_b = 0, n_both = 0;
  double sa = 0, sb = 0, saa = 0, sbb = 0;  // sum(a - shift_a), sum((a - shift_a)^2), ...
  // Over finite pairs only, for Pearson: sum((a-shift_a)(b-shift_b)), sum(a-shift_a), sum(b-...).
  double sab = 0, pa = 0, pb = 0;
  double a2 = 0, b2 = 0, ab = 0, dd = 0, dabs = 0;
  double mx = 0;  // max |b - a|
  double mina = kInf, maxa = -kInf, minb = kInf, maxb = -kInf;
  double beyond = 0;
  double excess = -kInf;  // max over the block of |d| - threshold * tol (worst-k pre-filter)
  int64_t nan_a = 0, nan_b = 0, pinf_a = 0, pinf_b = 0, ninf_a = 0, ninf_b = 0;
  int64_t nan_mis = 0, inf_mis = 0;
};

namespace {

struct FastSums {
  double sa, sb, saa, sbb, sab, a2, b2, ab, dd, dabs, mx, mina, maxa, minb, maxb, beyond, excess;
};

// All elements finite. Two vectorizable loops over the block (which is in L1/L2 by then), so
// neither needs more accumulators than there are vector registers: sums first, then the
// extrema, the tolerance count and the worst-k pre-filter. Raw squared norms follow from the
// shifted sums: sum a^2 = sum (a-s)^2 + 2 s sum (a-s) + n s^2.
__attribute__((target_clones("avx2", "default"))) void block_kernel(
    const double* __restrict a, const double* __restrict b, int64_t n, double sha, double shb,
    double atol, double rtol, double thr, FastSums& o) {
  double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, ab = 0, dd = 0, dabs = 0;
#pragma omp simd reduction(+ : sa, sb, saa, sbb, sab, ab, dd, dabs)
  for (int64_t i = 0; i < n; ++i) {
    const double x = a[i];
    const double y = b[i];
    const double d = y - x;
    const double xs = x - sha;
    const double ys = y - shb;
    sa += xs;
    saa += xs * xs;
    sb += ys;
    sbb += ys * ys;
    sab += xs * ys;
    ab += x * y;
    dd += d * d;
    dabs += std::fabs(d);
  }
  double beyond = 0;
  double mx = 0, mina = kInf, maxa = -kInf, minb = kInf, maxb = -kInf, excess = -kInf;
#pragma omp simd reduction(+ : beyond) reduction(max : mx, maxa, maxb, excess) \
    reduction(min : mina, minb)
  for (int64_t i = 0; i < n; ++i) {
    const double x = a[i];
    const double y = b[i];
    const double ad = std::fabs(y - x);
    mx = ad > mx ? ad : mx;
    mina = x < mina ? x : mina;
    maxa = x > maxa ? x : maxa;
    minb = y < minb ? y : minb;
    maxb = y > maxb ? y : maxb;
    const double tol = atol + rtol * std::fabs(x);
    beyond += ad > tol ? 1.0 : 0.0;
    const double e = ad - thr * tol;
    excess = e > excess ? e : excess;
  }
  const auto dn = static_cast<double>(n);
  const double a2 = std::max(0.0, saa + 2 * sha * sa + dn * sha * sha);
  const double b2 = std::max(0.0, sbb + 2 * shb * sb + dn * shb * shb);
  o = {sa, sb, saa, sbb, sab, a2, b2, ab, dd, dabs, mx, mina, maxa, minb, maxb, beyond, excess};
}

}  // namespace

MetricAccumulator::MetricAccumulator(Shape shape, AccumulatorOptions opts)
    : shape_(std::move(shape)), opt_(opts) {
  min_a_ = min_b_ = kInf;
  max_a_ = max_b_ = -kInf;
  if (opt_.top_k < 0) throw std::invalid_argument(fmt::format("top_k {} < 0", opt_.top_k));
  if (shape_.empty()) {
    rows_ = 1;
    row_len_ = 1;
  } else {
    rows_ = shape_[0];
    row_len_ = 1;
    for (std::size_t i = 1; i < shape_.size(); ++i) row_len_ *= shape_[i];
  }
  if (opt_.frame_axis == 0 && shape_.size() >= 1) {
    frames_.resize(static_cast<std::size_t>(rows_));
  } else if (opt_.frame_axis == 1 && shape_.size() == 2) {
    frames_.resize(static_cast<std::size_t>(shape_[1]));
  } else {
    opt_.frame_axis = -1;
  }
  if (opt_.heads > 0) {
    if (shape_.size() != 2 || row_len_ % opt_.heads != 0) {
      opt_.heads = 0;  // not a [T, n_head * d_head] tensor: no per-head split
    } else {
      heads_.resize(static_cast<std::size_t>(opt_.heads));
    }
  }
}

double MetricAccumulator::worst_threshold() const {
  if (opt_.top_k == 0) return std::numeric_limits<double>::max();
  if (static_cast<int>(heap_.size()) < opt_.top_k) return 0.0;
  const WorstElement& least = heap_.front();
  if (least.kind > 0) return std::numeric_limits<double>::max();
  return least.tol_ratio;
}

void MetricAccumulator::offer_worst(const WorstElement& w) {
  if (opt_.top_k == 0) return;
  auto more_severe = [](const WorstElement& x, const WorstElement& y) { return less_severe(y, x); };
  if (static_cast<int>(heap_.size()) < opt_.top_k) {
    heap_.push_back(w);
    std::push_heap(heap_.begin(), heap_.end(), more_severe);
  } else if (less_severe(heap_.front(), w)) {
    std::pop_heap(heap_.begin(), heap_.end(), more_severe);
    heap_.back() = w;
    std::push_heap(heap_.begin(), heap_.end(), more_severe);
  }
}

void MetricAccumulator::slow_segment(const double* a, const double* b, int64_t n, int64_t flat0,
                                     Acc& k) {
  for (int64_t i = 0; i < n; ++i) {
    const double x = a[i];
    const double y = b[i];
    const bool fa = std::isfinite(x);
    const bool fb = std::isfinite(y);
    if (fa) {
      k.n_a += 1;
      const double xs = x - shift_a_;
      k.sa += xs;
      k.saa += xs * xs;
      k.a2 += x * x;
      k.mina = std::min(k.mina, x);
      k.maxa = std::max(k.maxa, x);
    } else if (std::isnan(x)) {
      ++k.nan_a;
    } else if (x > 0) {
      ++k.pinf_a;
    } else {
      ++k.ninf_a;
    }
    if (fb) {
      k.n_b += 1;
      const double ys = y - shift_b_;
      k.sb += ys;
      k.sbb += ys * ys;
      k.b2 += y * y;
      k.minb = std::min(k.minb, y);
      k.maxb = std::max(k.maxb, y);
    } else if (std::isnan(y)) {
      ++k.nan_b;
    } else if (y > 0) {
      ++k.pinf_b;
    } else {
      ++k.ninf_b;
    }
    if (fa && fb) {
      const double d = y - x;
      const double ad = std::fabs(d);
      k.n_both += 1;
      k.ab += x * y;
      k.sab += (x - shift_a_) * (y - shift_b_);
      k.pa += x - shift_a_;
      k.pb += y - shift_b_;
      k.dd += d * d;
      k.dabs += ad;
      k.mx = std::max(k.mx, ad);
      const double tol = opt_.atol + opt_.rtol * std::fabs(x);
      if (ad > tol) k.beyond += 1;
      if (ad > 0) {
        const double r = ad / std::max(tol, kTiny);
        if (opt_.top_k > 0 &&
            (static_cast<int>(heap_.size()) < opt_.top_k || r > worst_threshold())) {
          offer_worst({flat0 + i, {}, x, y, ad, r, 0});
        }
      }
    } else {
      const bool na = std::isnan(x);
      const bool nb = std::isnan(y);
      if (na != nb) {
        ++k.nan_mis;
        k.beyond += 1;
        offer_worst({flat0 + i, {}, x, y, kInf, kInf, 2});
      } else if (!na && x != y) {  // an Inf on one side only, or opposite signs
        ++k.inf_mis;
        k.beyond += 1;
        offer_worst({flat0 + i, {}, x, y, kInf, kInf, 1});
      }
    }
  }
}

void MetricAccumulator::add_segment(const double* a, const double* b, int64_t n, int64_t flat0,
                                    Acc& k) {
  FastSums f{};
  const double thr = worst_threshold();
  block_kernel(a, b, n, shift_a_, shift_b_, opt_.atol, opt_.rtol, thr, f);
  const bool finite = std::isfinite(f.a2) && std::isfinite(f.b2) && std::isfinite(f.dd) &&
                      std::isfinite(f.ab) && std::isfinite(f.saa) && std::isfinite(f.sbb);
  if (!finite) {
    slow_segment(a, b, n, flat0, k);
    return;
  }
  const auto dn = static_cast<double>(n);
  k.n_a = dn;
  k.n_b = dn;
  k.n_both = dn;
  k.sa = f.sa;
  k.sb = f.sb;
  k.saa = f.saa;
  k.sbb = f.sbb;
  k.sab = f.sab;
  k.pa = f.sa;  // every element finite: the pairs are all elements
  k.pb = f.sb;
  k.a2 = f.a2;
  k.b2 = f.b2;
  k.ab = f.ab;
  k.dd = f.dd;
  k.dabs = f.dabs;
  k.mx = f.mx;
  k.mina = f.mina;
  k.maxa = f.maxa;
  k.minb = f.minb;
  k.maxb = f.maxb;
  k.beyond = f.beyond;
  k.excess = f.excess;
  if (f.excess > 0 && opt_.top_k > 0) {
    // Rare after the first blocks: some element beats the current k-th worst.
    double t = worst_threshold();
    bool full = static_cast<int>(heap_.size()) >= opt_.top_k;
    for (int64_t i = 0; i < n; ++i) {
      const double ad = std::fabs(b[i] - a[i]);
      if (ad == 0) continue;
      const double tol = opt_.atol + opt_.rtol * std::fabs(a[i]);
      if (full && ad <= t * tol) continue;  // cheap reject before the division
      const double r = ad / std::max(tol, kTiny);
      if (!full || r > t) {
        offer_worst({flat0 + i, {}, a[i], b[i], ad, r, 0});
        t = worst_threshold();
        full = static_cast<int>(heap_.size()) >= opt_.top_k;
      }
    }
  }
}

void MetricAccumulator::add_rows(const double* ref, const double* cand, int64_t n_rows) {
  if (n_rows < 0 || row_ + n_rows > rows_) {
    throw std::invalid_argument(fmt::format("add_rows: rows [{}, {}) outside a tensor of {} rows",
                                            row_, row_ + n_rows, rows_));
  }
  if (!have_shift_a_ || !have_shift_b_) {
    const int64_t n = n_rows * row_len_;
    for (int64_t i = 0; i < n && !have_shift_a_; ++i) {
      if (std::isfinite(ref[i])) {
        shift_a_ = ref[i];
        have_shift_a_ = true;
      }
    }
    for (int64_t i = 0; i < n && !have_shift_b_; ++i) {
      if (std::isfinite(cand[i])) {
        shift_b_ = cand[i];
        have_shift_b_ = true;
      }
    }
    have_shift_a_ = have_shift_b_ = true;  // fixed after the first chunk either way
  }
  const int64_t seg = opt_.heads > 0 ? row_len_ / opt_.heads : std::min<int64_t>(row_len_, kBlock);
  for (int64_t r = 0; r < n_rows; ++r, ++row_) {
    const double* a = ref + r * row_len_;
    const double* b = cand + r * row_len_;
    Slice row_slice;
    for (int64_t off = 0, s = 0; off < row_len_; ++s) {
      const int64_t len = std::min(seg, row_len_ - off);
      Acc k;
      // A head slice longer than a block is split into blocks, folded into the same record.
      for (int64_t o2 = 0; o2 < len; o2 += kBlock) {
        const int64_t l2 = std::min(kBlock, len - o2);
        Acc part;
        add_segment(a + off + o2, b + off + o2, l2, row_ * row_len_ + off + o2, part);
        if (o2 == 0) {
          k = part;
        } else {
          k.n_a += part.n_a, k.n_b += part.n_b, k.n_both += part.n_both;
          k.sa += part.sa, k.sb += part.sb, k.saa += part.saa, k.sbb += part.sbb;
          k.sab += part.sab, k.pa += part.pa, k.pb += part.pb;
          k.a2 += part.a2, k.b2 += part.b2, k.ab += part.ab, k.dd += part.dd, k.dabs += part.dabs;
          k.mx = std::max(k.mx, part.mx);
          k.mina = std::min(k.mina, part.mina), k.maxa = std::max(k.maxa, part.maxa);
          k.minb = std::min(k.minb, part.minb), k.maxb = std::max(k.maxb, part.maxb);
          k.beyond += part.beyond;
          k.nan_a += part.nan_a, k.nan_b += part.nan_b, k.pinf_a += part.pinf_a;
          k.pinf_b += part.pinf_b, k.ninf_a += part.ninf_a, k.ninf_b += part.ninf_b;
          k.nan_mis += part.nan_mis, k.inf_mis += part.inf_mis;
        }
      }
      // Fold into the totals.
      sa_.add(k.sa);
      sb_.add(k.sb);
      saa_.add(k.saa);
      sbb_.add(k.sbb);
      ra2_.add(k.a2);
      rb2_.add(k.b2);
      rab_.add(k.ab);
      sab_.add(k.sab);
      pa_.add(k.pa);
      pb_.add(k.pb);
      dd_.add(k.dd);
      dabs_.add(k.dabs);
      n_fin_a_ += static_cast<int64_t>(k.n_a);
      n_fin_b_ += static_cast<int64_t>(k.n_b);
      n_both_ += static_cast<int64_t>(k.n_both);
      nan_a_ += k.nan_a, nan_b_ += k.nan_b, pinf_a_ += k.pinf_a, pinf_b_ += k.pinf_b;
      ninf_a_ += k.ninf_a, ninf_b_ += k.ninf_b, nan_mis_ += k.nan_mis, inf_mis_ += k.inf_mis;
      beyond_ += static_cast<int64_t>(k.beyond);
      max_abs_ = std::max(max_abs_, k.mx);
      min_a_ = std::min(min_a_, k.mina);
      max_a_ = std::max(max_a_, k.maxa);
      min_b_ = std::min(min_b_, k.minb);
      max_b_ = std::max(max_b_, k.maxb);
      // ab over finite pairs; a2/b2 over each side's finite elements. Slices use the same sums.
      row_slice.dd += k.dd;
      row_slice.aa += k.a2;
      row_slice.bb += k.b2;
      row_slice.ab += k.ab;
      row_slice.mx = std::max(row_slice.mx, k.mx);
      if (opt_.heads > 0) {
        Slice& h = heads_[static_cast<std::size_t>(s)];
        h.dd += k.dd, h.aa += k.a2, h.bb += k.b2, h.ab += k.ab, h.mx = std::max(h.mx, k.mx);
      }
      off += len;
    }
    if (opt_.frame_axis == 0) {
      frames_[static_cast<std::size_t>(row_)] = row_slice;
    } else if (opt_.frame_axis == 1) {
      for (int64_t j = 0; j < row_len_; ++j) {
        const double x = a[j];
        const double y = b[j];
        if (!std::isfinite(x) || !std::isfinite(y)) continue;
        const double d = y - x;
        Slice& f = frames_[static_cast<std::size_t>(j)];
        f.dd += d * d, f.aa += x * x, f.bb += y * y, f.ab += x * y;
        f.mx = std::max(f.mx, std::fabs(d));
      }
    }
  }
}

namespace {

SliceError slice_error(double dd, double aa, double bb, double ab, double mx) {
  SliceError e;
  e.max_abs = mx;
  e.rel_l2 = aa > 0 ? std::sqrt(dd / aa) : (dd > 0 ? kInf : 0.0);
  if (aa > 0 && bb > 0) {
    e.cosine = ab / std::sqrt(aa * bb);
  } else {
    e.cosine = (aa == 0 && bb == 0) ? 1.0 : 0.0;
  }
  return e;
}

}  // namespace

DiffMetrics MetricAccumulator::finish() const {
  DiffMetrics m;
  m.numel = rows_ * row_len_;
  if (shape_.empty()) m.numel = 1;
  m.compared = n_both_;
  m.atol = opt_.atol;
  m.rtol = opt_.rtol;
  auto side = [](int64_t n, double shift, const CompensatedSum& s1, const CompensatedSum& s2,
                 double mn, double mx, int64_t nan, int64_t pinf, int64_t ninf) {
    SideStats st;
    st.finite = n;
    st.nan = nan;
    st.pos_inf = pinf;
    st.neg_inf = ninf;
    if (n > 0) {
      const double dn = static_cast<double>(n);
      const double m1 = s1.value() / dn;
      st.mean = shift + m1;
      st.std = std::sqrt(std::max(0.0, s2.value() / dn - m1 * m1));
      st.min = mn;
      st.max = mx;
    }
    return st;
  };
  m.ref = side(n_fin_a_, shift_a_, sa_, saa_, min_a_, max_a_, nan_a_, pinf_a_, ninf_a_);
  m.cand = side(n_fin_b_, shift_b_, sb_, sbb_, min_b_, max_b_, nan_b_, pinf_b_, ninf_b_);
  m.max_abs = max_abs_;
  m.mean_abs = n_both_ > 0 ? dabs_.value() / static_cast<double>(n_both_) : 0.0;
  const double aa = ra2_.value();
  const double bb = rb2_.value();
  const double dd = dd_.value();
  const SliceError whole = slice_error(dd, aa, bb, rab_.value(), max_abs_);
  m.rel_l2 = whole.rel_l2;
  m.cosine = std::clamp(whole.cosine, -1.0, 1.0);
  m.snr_db = dd > 0 ? (aa > 0 ? 10.0 * std::log10(aa / dd) : -kInf) : kInf;
  // Pearson over finite pairs from shifted sums (the shifts are elements of each side, so the
  // cross-sum does not cancel catastrophically when the means are large against the spread):
  // cov = E[(a-s)(b-t)] - E[a-s] E[b-t]. Variances from the side statistics (the same elements
  // when all are finite).
  if (n_both_ > 0) {
    const double n = static_cast<double>(n_both_);
    const double cov = sab_.value() / n - (pa_.value() / n) * (pb_.value() / n);
    const double va = m.ref.std * m.ref.std;
    const double vb = m.cand.std * m.cand.std;
    if (va > 0 && vb > 0) {
      m.pearson = std::clamp(cov / std::sqrt(va * vb), -1.0, 1.0);
    } else {
      m.pearson = (va == 0 && vb == 0) ? 1.0 : 0.0;
    }
  }
  m.beyond = beyond_;
  m.share_beyond = m.numel > 0 ? static_cast<double>(beyond_) / static_cast<double>(m.numel) : 0.0;
  m.nan_mismatch = nan_mis_;
  m.inf_mismatch = inf_mis_;
  m.worst = heap_;
  std::sort(m.worst.begin(), m.worst.end(),
            [](const WorstElement& x, const WorstElement& y) { return less_severe(y, x); });
  for (WorstElement& w : m.worst) {
    int64_t rem = w.index;
    w.coords.assign(shape_.size(), 0);
    for (std::size_t d = shape_.size(); d-- > 0;) {
      w.coords[d] = shape_[d] > 0 ? rem % shape_[d] : 0;
      rem = shape_[d] > 0 ? rem / shape_[d] : 0;
    }
  }
  m.frames.reserve(frames_.size());
  for (const Slice& s : frames_) m.frames.push_back(slice_error(s.dd, s.aa, s.bb, s.ab, s.mx));
  m.heads.reserve(heads_.size());
  for (const Slice& s : heads_) m.heads.push_back(slice_error(s.dd, s.aa, s.bb, s.ab, s.mx));
  return m;
}

DiffMetrics diff(const Tensor& ref, const Tensor& cand, AccumulatorOptions opts) {
  if (ref.shape() != cand.shape())
    throw std::invalid_argument(
        fmt::format("diff: shapes {} vs {}", shape_str(ref.shape()), shape_str(cand.shape())));
  const Tensor a = ref.to(DType::f64), b = cand.to(DType::f64);
  Shape shape = a.shape();
  if (shape.empty()) shape = {1};
  MetricAccumulator acc(shape, opts);
  acc.add_rows(a.f64(), b.f64(), shape[0]);
  return acc.finish();
}

SideStats stats(const Tensor& t) {
  AccumulatorOptions o;
  o.top_k = 0;
  return diff(t, t, o).ref;
}

}  // namespace wb::cmp
