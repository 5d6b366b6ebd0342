// Per-layer error budgets: how much error a tap may carry before transcripts change, measured by
// `wb budget` (docs/budget.md) for one model on one corpus, and the verdict a comparison gets
// from them: each budgeted tap's rel L2 as a share of its budget, the largest share deciding
//   harmless (< 0.5) | at risk (0.5 .. 1, a warning) | breaks transcripts (> 1).
// That verdict stands beside the round-off verdict (the tolerance profile), it does not replace
// it: the profile says whether two dumps differ beyond round-off, the budget whether it matters.
#pragma once
#include <array>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wb/core/enum_names.h"

namespace wb::cmp {

inline constexpr const char* kBudgetSchema = "whisper-fidelity-budget/1";

enum class BudgetLevel { harmless = 0, at_risk = 1, breaks = 2 };
inline constexpr std::array<NameEntry<BudgetLevel>, 3> kBudgetLevelNames{{
    {BudgetLevel::harmless, "harmless"},
    {BudgetLevel::at_risk, "at risk"},
    {BudgetLevel::breaks, "breaks transcripts"},
}};
std::string_view budget_level_name(BudgetLevel l);
// The share of its budget at which a tap's error becomes "at risk", and "breaks transcripts"
// (strictly above).
inline constexpr double kAtRiskShare = 0.5;
inline constexpr double kBreaksShare = 1.0;
BudgetLevel budget_level(double share);  // a NaN share: breaks

// How a tap's budget was bounded by the search: "exact" (the criterion held at the budget and
// failed at the next larger epsilon tried), "at_least" (it held at every epsilon tried: the budget
// is the largest one, a lower bound), "below" (it failed at the smallest epsilon tried: budget 0).
enum class BudgetBound { exact = 0, at_least = 1, below = 2 };
inline constexpr std::array<NameEntry<BudgetBound>, 3> kBudgetBoundNames{{
    {BudgetBound::exact, "exact"},
    {BudgetBound::at_least, "at_least"},
    {BudgetBound::below, "below"},
}};

struct TapBudget {
  std::string tap;       // registry name
  double epsilon = 0.0;  // the budget: rel L2 the tap may carry (the smallest over the shapes)
  std::string shape;     // the shape whose budget that is
  BudgetBound bound = BudgetBound::exact;
};

// A budget file (DIR/budget.json of `wb budget`). load() checks the schema and every number and
// throws std::runtime_error with a one-line message naming the file.
struct Budget {
  std::string path;
  std::string model_sha256;
  std::string corpus;  // a description for reports: "<n> clips of <folder>"
  std::vector<TapBudget> taps;
  static Budget load(const std::string& path);
  static Budget from_json(const nlohmann::json& j, const std::string& where);
  const TapBudget* find(std::string_view tap) const;
};

// One tap's error measured against its budget.
struct BudgetShare {
  std::string tap;
  double error = 0.0;  // rel L2 of the candidate against the reference at the tap
  double budget = 0.0;
  std::string shape;
  BudgetBound bound = BudgetBound::exact;
  double share = 0.0;  // error / budget (inf for a nonzero error on a zero budget)
};

struct BudgetAssessment {
  std::string path, model_sha256, corpus;
  std::vector<BudgetShare> taps;        // the budgeted taps both dumps hold, execution order
  std::vector<std::string> not_dumped;  // budgeted taps absent from the comparison
  int worst = -1;                       // index into taps: the largest share
  double max_share = 0.0;
  BudgetLevel level = BudgetLevel::harmless;
};

// The assessment of (tap, rel L2) pairs in execution order. Throws std::runtime_error when the
// budget belongs to another model (unless allow_model_mismatch) or no budgeted tap is among them.
BudgetAssessment assess_budget(const Budget& b, const std::string& model_sha256,
                               const std::vector<std::pair<std::string, double>>& tap_errors,
                               bool allow_model_mismatch);
nlohmann::json budget_assessment_json(const BudgetAssessment& a);
// "breaks transcripts at encoder.ln_post (share 41.2 of its budget 0.0312)"
std::string budget_summary(const BudgetAssessment& a);

// What decides the exit status of compare, sweep and replay: the tolerance profile (default), or
// the budget (`--gate budget`: 1 only for "breaks transcripts").
enum class Gate { tolerance = 0, budget = 1 };
inline constexpr std::array<NameEntry<Gate>, 2> kGateNames{{
    {Gate::tolerance, "tolerance"},
    {Gate::budget, "budget"},
}};

}  // namespace wb::cmp
