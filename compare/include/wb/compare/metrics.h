// Streaming per-tap metrics: one pass over rows of two aligned tensors (reference `a`, candidate
// `b`), memory bounded by the row length, never by the tap size.
//
// Summation: values are summed in float64 over blocks of at most kBlock elements (vectorized), and
// the block sums are combined with Neumaier compensation, so a gigabyte tap loses no more than a
// few ulps. Side statistics use sums shifted by the first finite value of each side, so a large
// mean does not cancel the variance.
//
// Non-finite values: an element where exactly one side is NaN is a NaN mismatch; an element where
// a side is +-Inf and the two differ (finite vs Inf, or opposite signs) is an Inf mismatch. Equal
// non-finite pairs (NaN/NaN, +Inf/+Inf) match. Difference metrics use the elements finite on both
// sides; side statistics use each side's finite elements.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "wb/core/tensor.h"

namespace wb::cmp {

// Neumaier (improved Kahan) compensated sum.
struct CompensatedSum {
  double sum = 0.0;
  double comp = 0.0;
  void add(double x);
  double value() const { return sum + comp; }
};

struct SideStats {
  int64_t finite = 0;
  int64_t nan = 0;
  int64_t pos_inf = 0;
  int64_t neg_inf = 0;
  double mean = 0.0;
  double std = 0.0;  // population standard deviation over finite elements
  double min = 0.0;  // over finite elements (0 if none)
  double max = 0.0;
};

// One element among the worst: ranked by the fixed comparison order NaN mismatch, then Inf-sign
// mismatch, then error relative to tolerance |b-a| / (atol + rtol*|a|), then |b-a|.
struct WorstElement {
  int64_t index = 0;            // flat row-major index
  std::vector<int64_t> coords;  // same index per dimension
  double ref = 0.0;
  double cand = 0.0;
  double abs_err = 0.0;
  double tol_ratio = 0.0;  // |b-a| / (atol + rtol*|a|); +inf for a non-finite mismatch
  int kind = 0;            // 2 NaN mismatch, 1 Inf mismatch, 0 finite
};

// Error of one slice (a frame, a head): relative L2 against the reference slice, max abs.
struct SliceError {
  double rel_l2 = 0.0;
  double max_abs = 0.0;
  double cosine = 1.0;
};

struct DiffMetrics {
  int64_t numel = 0;
  int64_t compared = 0;  // elements finite on both sides
  SideStats ref;
  SideStats cand;
  double max_abs = 0.0;
  double mean_abs = 0.0;
  double rel_l2 = 0.0;   // ||b-a|| / ||a||  (0 if both are zero, +inf if only a is)
  double cosine = 1.0;   // <a,b> / (||a|| ||b||)  (1 if both are zero)
  double pearson = 1.0;  // correlation of the centred sides (1 if both are constant)
  double snr_db = std::numeric_limits<double>::infinity();  // 10 log10(||a||^2 / ||b-a||^2)
  double atol = 0.0;
  double rtol = 0.0;
  int64_t beyond = 0;  // elements with |b-a| > atol + rtol*|a| (non-finite mismatches included)
  double share_beyond = 0.0;
  int64_t nan_mismatch = 0;
  int64_t inf_mismatch = 0;
  std::vector<WorstElement> worst;  // worst first
  // Per-frame error ([frames, channels] rows, or mel columns) and per-head error; empty if n/a.
  std::vector<SliceError> frames;
  std::vector<SliceError> heads;
};

struct AccumulatorOptions {
  double atol = 0.0;
  double rtol = 0.0;
  int top_k = 8;
  int frame_axis = -1;  // 0: each row is a frame; 1: each column is a frame (mel); -1: none
  int heads = 0;        // >0: split each row into this many equal head slices
};

// Feeds rows of a tensor of shape [R, ...] (row = first dimension, flattened) in order.
class MetricAccumulator {
 public:
  static constexpr int64_t kBlock = 4096;

  MetricAccumulator(Shape shape, AccumulatorOptions opts);
  void add_rows(const double* ref, const double* cand, int64_t n_rows);
  int64_t rows_done() const { return row_; }
  int64_t row_len() const { return row_len_; }
  DiffMetrics finish() const;

 private:
  struct Acc;  // block-level sums
  void add_segment(const double* a, const double* b, int64_t n, int64_t flat0, Acc& into);
  void slow_segment(const double* a, const double* b, int64_t n, int64_t flat0, Acc& blk);
  void offer_worst(const WorstElement& w);
  double worst_threshold() const;

  Shape shape_;
  AccumulatorOptions opt_;
  int64_t rows_ = 0;
  int64_t row_len_ = 1;
  int64_t row_ = 0;
  bool have_shift_a_ = false;
  bool have_shift_b_ = false;
  double shift_a_ = 0.0;
  double shift_b_ = 0.0;

  // Totals (compensated).
  CompensatedSum sa_, sb_, saa_, sbb_, ra2_, rb2_, rab_, sab_, pa_, pb_, dd_, dabs_;
  int64_t n_fin_a_ = 0, n_fin_b_ = 0, n_both_ = 0;
  int64_t nan_a_ = 0, nan_b_ = 0, pinf_a_ = 0, pinf_b_ = 0, ninf_a_ = 0, ninf_b_ = 0;
  int64_t nan_mis_ = 0, inf_mis_ = 0, beyond_ = 0;
  double min_a_, max_a_, min_b_, max_b_, max_abs_ = 0.0;

  // Per-frame / per-head partial sums: d^2, a^2, b^2, ab, max|d|.
  struct Slice {
    double dd = 0, aa = 0, bb = 0, ab = 0, mx = 0;
  };
  std::vector<Slice> frames_;
  std::vector<Slice> heads_;
  std::vector<WorstElement> heap_;  // min-heap on severity (front = least severe)
};

// Severity order for worst elements (true if x is less severe than y).
bool less_severe(const WorstElement& x, const WorstElement& y);

// One-off metrics of two whole arrays of one shape ([R, ...], any dtype), through the
// streaming accumulator: the one implementation of the metrics, for the CLI's comparisons
// (wb run, wb bench). Throws std::invalid_argument on a shape mismatch.
DiffMetrics diff(const Tensor& ref, const Tensor& cand, AccumulatorOptions opts = {});
// The per-side statistics of one array (mean, population std with the shifted formula, min,
// max, non-finite counts), through the same accumulator.
SideStats stats(const Tensor& t);

}  // namespace wb::cmp
