// Corpus sweeps: one comparison per clip, kept as a small JSON result per clip, and the one report
// that aggregates them per tap over the corpus (mean, spread and worst clip of each metric, the
// number of clips failing at each tap, transcript impact, unreadable clips with their errors).
//
// The aggregation reads only per-clip results, in clip order: `wb sweep` (unsharded) and
// `wb merge-reports` (shards) both call aggregate_sweep() on the results read back from disk, so
// their reports are identical by construction except the "run" member (creation time, shard
// count, wall time), the one volatile part of a sweep report (docs/sweep.md).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "wb/compare/compare.h"

namespace wb::rep {

inline constexpr const char* kSweepSchema = "whisper-fidelity-sweep/1";
inline constexpr const char* kSweepClipSchema = "whisper-fidelity-sweep-clip/1";

// The metrics aggregated per tap, and which end is the worst.
struct SweepMetric {
  const char* name;
  bool higher_is_worse;
};
inline constexpr SweepMetric kSweepMetrics[] = {
    {"rel_l2", true}, {"cosine", false}, {"max_abs", true}, {"snr_db", false}};

// A non-finite double as JSON: a number when finite, else the string "inf", "-inf" or "nan"
// (JSON has no infinity; nlohmann would write null and lose it). from_json_number reverses it.
nlohmann::json json_number(double x);
double from_json_number(const nlohmann::json& j);

// The per-clip result of a successful comparison (no identity fields: the caller adds "clip",
// "settings_hash", "audio_sha256", "seconds" ...). Transcripts: `expected` may be empty (none).
nlohmann::json sweep_clip_result(const cmp::CompareResult& r, const std::string& expected);

// The one aggregation. `settings` is copied into the report; `clips` are per-clip results in
// clip order, each with "clip", "status" ("ok" or "error") and, for errors, "error"
// {"kind": "bad_input"|"internal", "message"}. `run` is the volatile part (copied as is).
// With a budget (budget.h; its model checked by the caller): each clip's budget verdict from its
// taps' rel L2, and per budgeted tap the median and the largest share over the clips; the corpus
// verdict is that of the largest median share (a budget is a corpus statistic: the error every
// clip carries at once). gate: what exit_status follows.
nlohmann::json aggregate_sweep(const nlohmann::json& settings,
                               const std::vector<nlohmann::json>& clips, const nlohmann::json& run,
                               const cmp::Budget* budget = nullptr,
                               cmp::Gate gate = cmp::Gate::tolerance);

// 3 if any clip hit an internal error; else 1 if any compared clip exceeded tolerance (even when
// other clips could not be read: a measured regression is never hidden behind an input problem);
// else 2 if any clip could not be read; else 0. With "gate": "budget" in the report, 1 means the
// corpus budget verdict is "breaks transcripts" instead.
int sweep_exit_status(const nlohmann::json& report);

std::string render_sweep_markdown(const nlohmann::json& report, std::size_t max_bytes = 60000);
std::string render_sweep_html(const nlohmann::json& report);
// report.json, report.md, report.html under dir, each atomically; returns the paths.
std::vector<std::string> write_sweep_reports(const nlohmann::json& report, const std::string& dir);

}  // namespace wb::rep
