// The comparator: aligns the taps of two dumps (reference, candidate), streams every common tap
// once through the metric accumulator, judges it with a tolerance profile, and finds where the
// two first part (first divergence), where the error jumps (changepoint), whether a tap's error
// is its own or inherited (attribution), and what the pattern looks like (hints).
//
// The error of every metric is measured against the reference (first argument): relative L2 is
// ||cand - ref|| / ||ref||. Reading happens on a background thread (one HDF5 call at a time), the
// arithmetic on the caller's thread; memory is a few row chunks per side whatever the dump size.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "wb/compare/budget.h"
#include "wb/compare/culprit.h"
#include "wb/compare/metrics.h"
#include "wb/compare/name_map.h"
#include "wb/compare/profile.h"
#include "wb/compare/transcript.h"
#include "wb/core/dump.h"
#include "wb/core/wer.h"

namespace wb::cmp {

// What the comparator reads: a dump, or tensors in memory (tests).
class TapSource {
 public:
  virtual ~TapSource() = default;
  virtual std::string label() const = 0;  // the path, for messages
  virtual const DumpMeta& meta() const = 0;
  virtual const std::vector<TapInfo>& taps() const = 0;  // execution order
  // Called from two threads at once (the streaming pass measures two taps at a time).
  virtual void read_rows(const std::string& name, int64_t row0, int64_t n,
                         std::vector<double>& out) const = 0;
  virtual std::optional<std::string> text() const { return std::nullopt; }  // decoded transcript
  virtual std::optional<std::vector<int>> tokens() const { return std::nullopt; }  // own decode
  // The tokens the decoder taps follow when they are not the source's own (teacher-forced).
  virtual std::optional<std::vector<int>> teacher_tokens() const { return std::nullopt; }
};

class DumpSource : public TapSource {
 public:
  explicit DumpSource(const std::string& path) : reader_(path) {}
  std::string label() const override { return reader_.path(); }
  const DumpMeta& meta() const override { return reader_.meta(); }
  const std::vector<TapInfo>& taps() const override { return reader_.taps(); }
  void read_rows(const std::string& name, int64_t row0, int64_t n,
                 std::vector<double>& out) const override {
    reader_.read_rows(name, row0, n, out);
  }
  std::optional<std::string> text() const override { return reader_.text(); }
  std::optional<std::vector<int>> tokens() const override { return reader_.tokens(); }
  std::optional<std::vector<int>> teacher_tokens() const override {
    return reader_.teacher_tokens();
  }
  const DumpReader& reader() const { return reader_; }

 private:
  DumpReader reader_;
};

class MemorySource : public TapSource {
 public:
  MemorySource(std::string label, DumpMeta meta)
      : label_(std::move(label)), meta_(std::move(meta)) {}
  // Appends a tap (execution order = call order unless `order` >= 0).
  void add(const std::string& name, Shape shape, std::vector<double> values,
           const std::string& layout = "frame,channel", int order = -1);
  std::string label() const override { return label_; }
  const DumpMeta& meta() const override { return meta_; }
  DumpMeta& mutable_meta() { return meta_; }
  const std::vector<TapInfo>& taps() const override { return taps_; }
  void read_rows(const std::string& name, int64_t row0, int64_t n,
                 std::vector<double>& out) const override;
  std::vector<double>& values(const std::string& name);
  void set_text(std::string text) { text_ = std::move(text); }
  std::optional<std::string> text() const override { return text_; }

 private:
  std::string label_;
  DumpMeta meta_;
  std::optional<std::string> text_;
  std::vector<TapInfo> taps_;
  std::vector<std::vector<double>> data_;
};

struct CompareOptions {
  // Unset: default_profile_for() the candidate's declared precision (profile.h).
  std::optional<ToleranceProfile> profile;
  NameMap map;
  int top_k = 8;
  // Per side per chunk: 256 KiB of float64, so the chunks in flight (one a worker of compare.cpp's
  // streaming pass) stay in the caches. Measured against 2^20 (8 MiB), `wb compare` of two nano
  // dumps took 12-15 % less CPU and `wb compare-bench` (large-v3 dims) 0.71-0.73 GB/s instead of
  // 0.56-0.62 with a peak RSS of 22 instead of 69 MiB; the results are identical (chunks end at
  // row boundaries, the metrics accumulate row by row).
  int64_t chunk_elements = int64_t{1} << 15;
  bool background_read = true;  // two workers, a tap each at a time (false: one, in the caller)
  bool allow_model_mismatch = false;  // compare dumps whose model_sha256 differ (dims must agree)
  std::optional<std::string> expected_text;  // the clip's true transcript: WER of both sides
  int histogram_bins = 41;
};

struct Histogram {
  std::string tap;
  double lo = 0.0, hi = 0.0;    // bin edges span [lo, hi] evenly
  std::vector<int64_t> counts;  // of candidate - reference over finite pairs
};

struct TapResult {
  std::string name;                 // registry name (after --map)
  const TapSpec* spec = nullptr;    // its registry facts (TapRegistry-owned; set by compare())
  std::string ref_name, cand_name;  // as stored in each dump
  Shape shape;
  std::string layout;
  std::string ref_dtype, cand_dtype;
  int order = 0;  // position in execution order
  TapTolerance tolerance;
  DiffMetrics m;
  std::optional<DiffMetrics> floor;  // reference vs its float64 run (--floor)
  std::optional<double> floor_x;     // rel_l2 / floor rel_l2
  std::vector<Violation> violations;
  Level status = Level::pass;
  // Storage precision: the rel L2 a float16/bfloat16-stored side adds by rounding alone (0 for
  // float32/float64 storage), by which the tap's rel_l2 limits were widened; storage_limited: the
  // tap exceeds the profile as written but not the widened limits (status warn, never fail).
  double storage_floor = 0.0;
  bool storage_limited = false;
  // An input cast: the candidate's values are the reference's rounded to a narrower type
  // ("bfloat16" or "float16"; exactly, or within one unit in that type's last place), so the tap
  // was judged with its rel_l2 limits widened by what that rounding adds (cast_rounding: u for
  // an exact rounding, 3u within one unit; u = 2^-8 bfloat16, 2^-11 float16). "" when not.
  std::string rounded_to;
  bool rounded_exactly = false;
  double cast_rounding = 0.0;
  // Attribution: rel_l2 relative to the largest rel_l2 among the taps feeding this one.
  std::string upstream;        // "" if none is known or dumped
  std::optional<double> jump;  // rel_l2 / upstream rel_l2
  std::string attribution;     // "local", "inherited", "input" or "" (no error)
  std::vector<std::string> hints;
  std::string frame_axis;  // "row" / "column" / ""
};

struct CompareResult {
  std::string ref_path, cand_path, floor_path;
  DumpMeta ref_meta, cand_meta;
  std::string profile_name;
  std::string map_origin;
  std::vector<TapResult> taps;        // common taps, execution order
  std::vector<std::string> only_ref;  // taps present in one dump only (registry names)
  std::vector<std::string> only_cand;
  std::vector<std::string> missing_floor;  // common taps absent from the floor dump
  Level verdict = Level::pass;
  bool storage_limited = false;  // some tap is storage-limited (verdict warn, exit 0)
  int first_divergence = -1;     // index into taps: first fail in execution order
  int first_warning = -1;
  int changepoint = -1;  // first tap whose rel_l2 jumps far above all before it
  double changepoint_jump = 0.0;
  std::vector<std::string> hints;      // the diagnosis, most important first
  std::optional<Histogram> histogram;  // of the first divergent tap (else the worst tap)
  // Both sides' decoded text (when both dumps hold one) and the candidate's word errors against
  // the reference's text: the transcript damage next to the layer divergence.
  struct Transcripts {
    std::string ref, cand;
    WerCounts words;
  };
  std::optional<Transcripts> transcripts;
  // Token agreement, repetition, top-5 at the first difference, teacher-forced KL (when both
  // dumps hold a decode).
  std::optional<TranscriptImpact> impact;
  // wb replay (or wb compare --replay): each stage's own error on the reference's input.
  std::optional<ReplayResult> replay;
  // --budget FILE: each budgeted tap's error as a share of its budget (budget.h), and what the
  // exit status follows (--gate).
  std::optional<BudgetAssessment> budget;
  Gate gate = Gate::tolerance;
  double seconds = 0.0;
  int64_t elements = 0;  // per side
  std::string tool_version;
  std::string created;
};

// Throws std::runtime_error (bad input: different models, shape mismatches, unknown mapped taps)
// with a one-line message naming both sides.
CompareResult compare(const TapSource& ref, const TapSource& cand, const TapSource* floor,
                      const CompareOptions& opts);
CompareResult compare_files(const std::string& ref, const std::string& cand,
                            const std::string& floor, const CompareOptions& opts);

// 0 within tolerance (warnings allowed), 1 tolerance exceeded; with r.gate == Gate::budget (and
// an assessment): 1 only when the budget verdict is "breaks transcripts".
int exit_status(const CompareResult& r);
// The budget verdict of a comparison: each budgeted tap's rel L2 (budget.h). Throws
// std::runtime_error for a budget of another model (unless allow_model_mismatch).
BudgetAssessment assess_budget(const Budget& b, const CompareResult& r, bool allow_model_mismatch);
// "pass", "warn", "fail", or "storage-limited" (a warn whose taps exceed the profile only by
// the rounding of a float16/bfloat16-stored dump).
std::string verdict_name(const CompareResult& r);
// Rel L2 that storing a tensor in `dtype` adds by rounding alone: the unit roundoff u (2^-11
// float16, 2^-8 bfloat16), a bound on every element's relative error and so on the rel L2;
// 0 for float32 and float64 (their rounding is the profile's business).
double storage_rounding(std::string_view dtype);
// Round-to-nearest-even of x to a narrower float type ("bfloat16", "float16"), overflow to Inf as
// a cast does; the spacing of that type's values at r (one unit in the last place). Throw
// std::invalid_argument for another name.
double round_to_type(double x, std::string_view type);
double unit_in_last_place(double r, std::string_view type);

}  // namespace wb::cmp
