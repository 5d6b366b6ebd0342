#include "wb/compare/budget.h"

#include <fmt/format.h>

#include <cmath>
#include <stdexcept>

#include "wb/compare/compare.h"
#include "wb/core/util.h"

namespace wb::cmp {

using nlohmann::json;

std::string_view budget_level_name(BudgetLevel l) { return name_of(kBudgetLevelNames, l); }

BudgetLevel budget_level(double share) {
  if (!(share <= kBreaksShare)) return BudgetLevel::breaks;  // NaN too
  return share < kAtRiskShare ? BudgetLevel::harmless : BudgetLevel::at_risk;
}

namespace {

const json& need(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key))
    throw std::runtime_error(
        fmt::format("{}: no '{}' (not a budget file of wb budget)", where, key));
  return j.at(key);
}

}  // namespace

Budget Budget::from_json(const json& j, const std::string& where) {
  Budget b;
  b.path = where;
  const json& schema = need(j, "schema", where);
  if (!schema.is_string() || schema.get<std::string>() != kBudgetSchema)
    throw std::runtime_error(
        fmt::format("{}: schema {} is not {}", where, schema.dump(), kBudgetSchema));
  const json& sha = need(need(j, "model", where), "sha256", where);
  if (!sha.is_string() || sha.get<std::string>().size() != 64)
    throw std::runtime_error(where + ": model.sha256 is not a sha256");
  b.model_sha256 = sha.get<std::string>();
  const json& corpus = need(j, "corpus", where);
  const json& clips = need(corpus, "clips", where);
  if (!clips.is_array() || clips.empty())
    throw std::runtime_error(where + ": corpus.clips is not a non-empty list");
  b.corpus = fmt::format("{} clips of {}", clips.size(),
                         corpus.value("audio_dir", std::string("an unnamed folder")));
  const json& taps = need(j, "taps", where);
  if (!taps.is_array() || taps.empty())
    throw std::runtime_error(where + ": taps is not a non-empty list");
  for (const json& t : taps) {
    TapBudget tb;
    const json& name = need(t, "tap", where);
    const json& eps = need(t, "budget", where);
    if (!name.is_string() || !eps.is_number() || !std::isfinite(eps.get<double>()) ||
        eps.get<double>() < 0)
      throw std::runtime_error(
          fmt::format("{}: tap entry {} needs a name and a finite budget >= 0", where, t.dump()));
    tb.tap = name.get<std::string>();
    tb.epsilon = eps.get<double>();
    tb.shape = t.value("shape", std::string());
    const json& bound = need(t, "bound", where);
    if (!bound.is_string() || !find_value(kBudgetBoundNames, bound.get<std::string>()))
      throw std::runtime_error(fmt::format("{}: tap {}: bound {} is not one of {}", where, tb.tap,
                                           bound.dump(), names_of(kBudgetBoundNames)));
    tb.bound = *find_value(kBudgetBoundNames, bound.get<std::string>());
    if (b.find(tb.tap) != nullptr)
      throw std::runtime_error(fmt::format("{}: tap {} listed twice", where, tb.tap));
    b.taps.push_back(std::move(tb));
  }
  return b;
}

Budget Budget::load(const std::string& path) {
  json j;
  try {
    j = json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{}: not JSON ({})", path, e.what()));
  }
  return from_json(j, path);
}

const TapBudget* Budget::find(std::string_view tap) const {
  for (const auto& t : taps)
    if (t.tap == tap) return &t;
  return nullptr;
}

BudgetAssessment assess_budget(const Budget& b, const std::string& model_sha256,
                               const std::vector<std::pair<std::string, double>>& tap_errors,
                               bool allow_model_mismatch) {
  if (!allow_model_mismatch && b.model_sha256 != model_sha256)
    throw std::runtime_error(fmt::format(
        "{}: the budget belongs to model {}, the dumps to {} (budgets are measured per model; "
        "--allow-model-mismatch to use it anyway)",
        b.path, b.model_sha256.substr(0, 12), model_sha256.substr(0, 12)));
  BudgetAssessment a;
  a.path = b.path;
  a.model_sha256 = b.model_sha256;
  a.corpus = b.corpus;
  for (const auto& [tap, err] : tap_errors) {
    const TapBudget* tb = b.find(tap);
    if (tb == nullptr) continue;
    BudgetShare s{tap, err, tb->epsilon, tb->shape, tb->bound, 0.0};
    if (tb->epsilon > 0)
      s.share = err / tb->epsilon;
    else
      s.share = err > 0 || std::isnan(err) ? std::numeric_limits<double>::infinity() : 0.0;
    if (std::isnan(err)) s.share = std::numeric_limits<double>::quiet_NaN();
    a.taps.push_back(std::move(s));
  }
  for (const auto& t : b.taps) {
    bool found = false;
    for (const auto& s : a.taps) found = found || s.tap == t.tap;
    if (!found) a.not_dumped.push_back(t.tap);
  }
  if (a.taps.empty())
    throw std::runtime_error(
        fmt::format("{}: none of its {} budgeted taps ({}, ...) is in both dumps", b.path,
                    b.taps.size(), b.taps.front().tap));
  for (std::size_t i = 0; i < a.taps.size(); ++i) {
    const double s = a.taps[i].share;
    if (a.worst < 0 || std::isnan(s) || s > a.max_share) {
      if (a.worst >= 0 && std::isnan(a.max_share)) continue;  // the first NaN stays the worst
      a.worst = static_cast<int>(i);
      a.max_share = s;
    }
  }
  a.level = budget_level(a.max_share);
  return a;
}

namespace {

json number(double x) {
  if (std::isfinite(x)) return x;
  if (std::isnan(x)) return "nan";
  return x > 0 ? "inf" : "-inf";
}

}  // namespace

BudgetAssessment assess_budget(const Budget& b, const CompareResult& r, bool allow_model_mismatch) {
  std::vector<std::pair<std::string, double>> errors;
  for (const auto& t : r.taps) errors.emplace_back(t.name, t.m.rel_l2);
  return assess_budget(b, r.ref_meta.model_sha256, errors, allow_model_mismatch);
}

json budget_assessment_json(const BudgetAssessment& a) {
  json taps = json::array();
  for (const auto& s : a.taps)
    taps.push_back({{"tap", s.tap},
                    {"error", number(s.error)},
                    {"budget", s.budget},
                    {"shape", s.shape},
                    {"bound", std::string(name_of(kBudgetBoundNames, s.bound))},
                    {"share", number(s.share)},
                    {"level", std::string(budget_level_name(budget_level(s.share)))}});
  return {{"file", a.path},
          {"model_sha256", a.model_sha256},
          {"corpus", a.corpus},
          {"verdict", std::string(budget_level_name(a.level))},
          {"max_share", number(a.max_share)},
          {"worst_tap",
           a.worst >= 0 ? json(a.taps[static_cast<std::size_t>(a.worst)].tap) : json(nullptr)},
          {"thresholds", {{"at_risk", kAtRiskShare}, {"breaks", kBreaksShare}}},
          {"taps", taps},
          {"not_dumped", a.not_dumped}};
}

std::string budget_summary(const BudgetAssessment& a) {
  if (a.worst < 0) return std::string(budget_level_name(a.level));
  const BudgetShare& w = a.taps[static_cast<std::size_t>(a.worst)];
  return fmt::format(
      "{} (largest share {:.3g} of its budget at {}: rel L2 {:.3g}, budget {:.3g}{})",
      budget_level_name(a.level), w.share, w.tap, w.error, w.budget,
      w.bound == BudgetBound::at_least ? " or more" : "");
}

}  // namespace wb::cmp
