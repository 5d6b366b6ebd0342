// Budget files and the verdict they give: shares against closed-form values, the thresholds at
// their edges, refusals (another model, a broken file), the gate.
#include "wb/compare/budget.h"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>

#include "wb/compare/compare.h"

using namespace wb;
using namespace wb::cmp;
using nlohmann::json;

namespace {

const std::string kSha(64, 'a');

json budget_json() {
  return {
      {"schema", kBudgetSchema},
      {"model", {{"sha256", kSha}}},
      {"corpus", {{"audio_dir", "clips"}, {"clips", json::array({{{"clip", "a.wav"}}})}}},
      {"taps",
       {{{"tap", "mel"}, {"budget", 0.1}, {"shape", "bf16"}, {"bound", "exact"}},
        {{"tap", "encoder.ln_post"}, {"budget", 0.4}, {"shape", "noise"}, {"bound", "exact"}},
        {{"tap", "encoder.blocks.0.out"}, {"budget", 0.0}, {"shape", "noise"}, {"bound", "below"}},
        {{"tap", "encoder.blocks.1.out"},
         {"budget", 4.096},
         {"shape", "bf16"},
         {"bound", "at_least"}}}}};
}

}  // namespace

TEST_CASE("levels at the edges of the share thresholds") {
  CHECK(budget_level(0.0) == BudgetLevel::harmless);
  CHECK(budget_level(0.4999) == BudgetLevel::harmless);
  CHECK(budget_level(0.5) == BudgetLevel::at_risk);
  CHECK(budget_level(1.0) == BudgetLevel::at_risk);
  CHECK(budget_level(1.0001) == BudgetLevel::breaks);
  CHECK(budget_level(std::numeric_limits<double>::infinity()) == BudgetLevel::breaks);
  CHECK(budget_level(std::nan("")) == BudgetLevel::breaks);
}

TEST_CASE("shares: error over budget, the largest decides") {
  const Budget b = Budget::from_json(budget_json(), "b.json");
  REQUIRE(b.taps.size() == 4);
  const BudgetAssessment a = assess_budget(
      b, kSha, {{"mel", 0.01}, {"encoder.conv1", 9.0}, {"encoder.ln_post", 0.3}}, false);
  REQUIRE(a.taps.size() == 2);  // conv1 has no budget
  CHECK(a.taps[0].share == doctest::Approx(0.1));
  CHECK(a.taps[1].share == doctest::Approx(0.75));
  CHECK(a.taps[a.worst].tap == "encoder.ln_post");
  CHECK(a.level == BudgetLevel::at_risk);
  CHECK(a.not_dumped == std::vector<std::string>{"encoder.blocks.0.out", "encoder.blocks.1.out"});
  // a zero budget ("below"): any error breaks, none is harmless
  CHECK(assess_budget(b, kSha, {{"encoder.blocks.0.out", 1e-9}}, false).level ==
        BudgetLevel::breaks);
  CHECK(assess_budget(b, kSha, {{"encoder.blocks.0.out", 0.0}}, false).level ==
        BudgetLevel::harmless);
  // a NaN error is the worst and breaks
  const BudgetAssessment n =
      assess_budget(b, kSha, {{"mel", std::nan("")}, {"encoder.ln_post", 9.0}}, false);
  CHECK(n.taps[n.worst].tap == "mel");
  CHECK(n.level == BudgetLevel::breaks);
  const json j = budget_assessment_json(a);
  CHECK(j["verdict"] == "at risk");
  CHECK(j["taps"][1]["level"] == "at risk");
}

TEST_CASE("refusals: another model, no budgeted tap, broken files") {
  const Budget b = Budget::from_json(budget_json(), "b.json");
  CHECK_THROWS_AS(assess_budget(b, std::string(64, 'b'), {{"mel", 0.0}}, false),
                  std::runtime_error);
  CHECK_NOTHROW(assess_budget(b, std::string(64, 'b'), {{"mel", 0.0}}, true));
  CHECK_THROWS_AS(assess_budget(b, kSha, {{"encoder.conv1", 0.0}}, false), std::runtime_error);
  for (const char* broken : {"schema", "model", "taps", "corpus"}) {
    json j = budget_json();
    j.erase(broken);
    CHECK_THROWS_AS(Budget::from_json(j, "b.json"), std::runtime_error);
  }
  json j = budget_json();
  j["taps"][0]["budget"] = -1;
  CHECK_THROWS_AS(Budget::from_json(j, "b.json"), std::runtime_error);
  j = budget_json();
  j["taps"][0]["bound"] = "roughly";
  CHECK_THROWS_AS(Budget::from_json(j, "b.json"), std::runtime_error);
  j = budget_json();
  j["taps"][1]["tap"] = "mel";
  CHECK_THROWS_AS(Budget::from_json(j, "b.json"), std::runtime_error);
  CHECK_THROWS_AS(Budget::load("no-such-dir/budget.json"), std::runtime_error);
}

TEST_CASE("the gate: the exit status follows the budget only when asked") {
  CompareResult r;
  r.verdict = Level::fail;
  CHECK(exit_status(r) == 1);
  BudgetAssessment a;
  a.level = BudgetLevel::at_risk;
  r.budget = a;
  CHECK(exit_status(r) == 1);
  r.gate = Gate::budget;
  CHECK(exit_status(r) == 0);
  r.budget->level = BudgetLevel::breaks;
  r.verdict = Level::pass;
  CHECK(exit_status(r) == 1);
}
