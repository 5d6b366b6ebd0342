// Tolerance profiles: JSON files that turn per-tap metrics into pass / warn / fail
// (fixtures/profiles/*.json; format in docs/report-json.md, "Tolerance profiles").
//
//   {
//     "name": "float32",
//     "description": "...",
//     "atol": 1e-6, "rtol": 1e-4,              // element tolerance for share_beyond / worst
//     "fail": {"rel_l2": {"max": 1e-3}},       // defaults for every tap
//     "warn": {"rel_l2": {"max": 1e-4}},
//     "rules": [                               // applied in order; a later match overrides
//       {"taps": "mel", "fail": {"rel_l2": {"max": 1e-4}, "cosine": {"min": 0.9999}}},
//       {"taps": "encoder.blocks.*.mlp.fc1", "fail": {"rel_l2": {"max_floor": 50, "max": 1e-3}}}
//     ],
//     "changepoint": {"ratio": 30, "min_rel_l2": 1e-5},
//     "attribution": {"local_ratio": 4}
//   }
//
// Tap globs follow wb::glob_match: "*" within one dot-separated part, "**" across parts.
// A threshold is {"max": v} (metric <= v), {"min": v} (metric >= v) and/or {"max_floor": k}
// (metric <= k times the same metric of the reference against its float64 run; used when a floor
// dump is given, otherwise "max"/"min" apply). A floor multiple never exceeds an absolute
// ceiling: {"ceiling": v} when stated, else the threshold's "max"; "max_floor" without either is
// refused, so a noisy floor cannot loosen a limit without bound. Metrics: see kThresholdMetrics.
#pragma once
#include <array>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wb/compare/metrics.h"
#include "wb/core/dump.h"
#include "wb/core/enum_names.h"
#include "wb/core/precision.h"

namespace wb::cmp {

enum class Level { pass = 0, warn = 1, fail = 2 };
inline constexpr std::array<NameEntry<Level>, 3> kLevelNames{{
    {Level::pass, "pass"},
    {Level::warn, "warn"},
    {Level::fail, "fail"},
}};
std::string_view level_name(Level l);  // "pass", "warn", "fail"

// Metrics a threshold may name.
inline constexpr std::string_view kThresholdMetrics[] = {
    "rel_l2", "max_abs",      "mean_abs",     "cosine",      "pearson",
    "snr_db", "share_beyond", "nan_mismatch", "inf_mismatch"};
bool is_threshold_metric(std::string_view name);
// Metrics with a noise-floor multiple ("max_floor"): the error magnitudes.
bool is_floor_metric(std::string_view name);
double metric_value(const DiffMetrics& m, std::string_view name);  // throws invalid_argument

struct Threshold {
  std::string metric;
  std::optional<double> max;
  std::optional<double> min;
  std::optional<double> max_floor;  // multiple of the noise floor
  std::optional<double> ceiling;    // the most a floor-multiple limit may be (default: max)
};

// The settings in force for one tap after all matching rules were applied.
struct TapTolerance {
  double atol = 0.0;
  double rtol = 0.0;
  bool allow_nonfinite = false;  // NaN/Inf mismatches are not failures (reference overflows too)
  bool ignore = false;           // compare and report, never warn or fail
  std::vector<Threshold> warn;
  std::vector<Threshold> fail;
};

// One threshold that was exceeded.
struct Violation {
  Level level = Level::fail;
  std::string metric;
  double value = 0.0;
  double limit = 0.0;
  std::string op;            // "<=" or ">="
  bool floor = false;        // limit is a noise-floor multiple
  double floor_k = 0.0;      // the multiple (when floor)
  double floor_value = 0.0;  // the floor's metric (when floor)
  bool capped = false;       // k x floor exceeded the ceiling; limit is the ceiling
  std::string text() const;  // "rel_l2 0.31 > 1e-3", "rel_l2 0.31 > 50 x floor (2.1e-6)"
};

class ToleranceProfile {
 public:
  ToleranceProfile();  // the built-in float32 profile (same as fixtures/profiles/float32.json)
  // The built-in profile for a candidate computing in `precision`: one per value of
  // wb::Precision, each fixtures/profiles/<precision>.json (float32.json, bfloat16.json,
  // float16.json), copied in at build time and calibrated in docs/calibration.md. The string
  // form takes a precision's name; throws std::invalid_argument for any other.
  static ToleranceProfile for_precision(Precision precision);
  static ToleranceProfile for_precision(std::string_view precision);
  // Throws std::runtime_error("<origin>: <where>: <what>") on any malformed content.
  static ToleranceProfile parse(const nlohmann::json& j, const std::string& origin);
  static ToleranceProfile parse_text(const std::string& text, const std::string& origin);
  static ToleranceProfile load(const std::string& path);

  TapTolerance for_tap(std::string_view name) const;
  // The absolute fail limit on rel_l2 at a tap (+inf when the profile sets none): the one figure
  // replay, layer bisection, wb bench and the candidate tests gate on.
  double rel_l2_fail_limit(std::string_view name) const;
  // Checks in the fixed order: NaN, Inf sign, relative error, max abs, then the rest.
  // floor: the reference-vs-float64 metrics of the tap, or null.
  std::vector<Violation> evaluate(const TapTolerance& t, const DiffMetrics& m,
                                  const DiffMetrics* floor) const;

  const std::string& name() const { return name_; }
  const std::string& description() const { return description_; }
  double changepoint_ratio() const { return cp_ratio_; }
  double changepoint_min_rel_l2() const { return cp_min_; }
  double local_ratio() const { return local_ratio_; }
  const nlohmann::json& source() const { return source_; }

 private:
  struct Blank {};
  explicit ToleranceProfile(Blank) {}
  struct Rule {
    std::string glob;
    std::optional<double> atol, rtol;
    std::optional<bool> allow_nonfinite, ignore;
    std::vector<Threshold> warn, fail;
  };
  static Rule parse_rule(const nlohmann::json& j, const std::string& where, bool top);

  std::string name_ = "float32";
  std::string description_;
  Rule defaults_;
  std::vector<Rule> rules_;
  double cp_ratio_ = 30.0;
  double cp_min_ = 1e-5;
  double local_ratio_ = 4.0;
  nlohmann::json source_;
};

// The profile a verdict uses when none is given (--profile): the built-in profile of the
// candidate side's precision. The one place this choice is made; wb compare, sweep, replay,
// bisect-layers, bisect and bench all ask it.
ToleranceProfile default_profile_for(Precision candidate);
// Of a candidate dump: its `precision` root attribute (a float64 run: the float32 profile).
// Throws std::runtime_error naming `label` for a precision that has no built-in profile.
ToleranceProfile default_profile_for(const DumpMeta& candidate, const std::string& label);
// The files of the built-in profiles, in precision order ("fixtures/profiles/float32.json", ...).
std::vector<std::string> builtin_profile_files();

}  // namespace wb::cmp
