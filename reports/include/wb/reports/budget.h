// The budget folder of `wb budget` (docs/budget.md): its per-unit results (one (tap, shape) each)
// and shard manifests assembled into DIR/budget.json, and the reports: report.md, report.html
// (one SVG curve per tap: clips keeping their transcript and mean KL against epsilon, each
// shape's budget marked) and run.json (time, CPU seconds, runs). Light: `wb budget` (unsharded)
// and `wb merge-reports DIR` (shards) both assemble through assemble_budget_dir().
// budget.json holds no time or host: the same settings and seed give the same file.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace wb::rep {

inline constexpr const char* kBudgetUnitSchema = "whisper-fidelity-budget-unit/1";
inline constexpr const char* kBudgetShardSchema = "whisper-fidelity-budget-shard/1";

// A unit's file name (no extension): "<tap>~<shape>".
std::string budget_unit_name(const std::string& tap, const std::string& shape);
// Whether dir holds budget shard manifests (shards/*.json of wb budget).
bool is_budget_dir(const std::string& dir);
// Reads dir/shards/*.json and dir/units/*.json; throws std::runtime_error naming what is missing
// (a shard not run, a unit not complete, other settings). Writes budget.json, report.md,
// report.html and run.json (atomically) and returns budget.json's content.
nlohmann::json assemble_budget_dir(const std::string& dir);
std::string render_budget_markdown(const nlohmann::json& budget, const nlohmann::json& run);
std::string render_budget_html(const nlohmann::json& budget, const nlohmann::json& run);
std::string render_budget_summary(const nlohmann::json& budget, const std::string& dir);

}  // namespace wb::rep
