#include "wb/compare/profile.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>

#include "builtin_profile.h"
#include "wb/core/taps.h"
#include "wb/core/util.h"

namespace wb::cmp {

std::string_view level_name(Level l) { return name_of(kLevelNames, l); }

bool is_threshold_metric(std::string_view name) {
  return std::find(std::begin(kThresholdMetrics), std::end(kThresholdMetrics), name) !=
         std::end(kThresholdMetrics);
}

bool is_floor_metric(std::string_view name) {
  return name == "rel_l2" || name == "max_abs" || name == "mean_abs";
}

double metric_value(const DiffMetrics& m, std::string_view name) {
  if (name == "rel_l2") return m.rel_l2;
  if (name == "max_abs") return m.max_abs;
  if (name == "mean_abs") return m.mean_abs;
  if (name == "cosine") return m.cosine;
  if (name == "pearson") return m.pearson;
  if (name == "snr_db") return m.snr_db;
  if (name == "share_beyond") return m.share_beyond;
  if (name == "nan_mismatch") return static_cast<double>(m.nan_mismatch);
  if (name == "inf_mismatch") return static_cast<double>(m.inf_mismatch);
  throw std::invalid_argument(fmt::format("unknown metric '{}'", name));
}

std::string Violation::text() const {
  const char* rel = op == "<=" ? ">" : "<";
  if (floor && capped) {
    return fmt::format("{} {:.3g} {} ceiling {:.3g} ({:g} x floor {:.3g} capped)", metric, value,
                       rel, limit, floor_k, floor_value);
  }
  if (floor)
    return fmt::format("{} {:.3g} {} {:g} x floor ({:.3g})", metric, value, rel, floor_k,
                       floor_value);
  return fmt::format("{} {:.3g} {} {:.3g}", metric, value, rel, limit);
}

namespace {

[[noreturn]] void bad(const std::string& origin, const std::string& where,
                      const std::string& what) {
  throw std::runtime_error(fmt::format("{}: {}: {}", origin, where, what));
}

double number(const nlohmann::json& v, const std::string& origin, const std::string& where) {
  if (!v.is_number()) bad(origin, where, fmt::format("expected a number, got {}", v.dump()));
  const double x = v.get<double>();
  if (!std::isfinite(x)) bad(origin, where, "expected a finite number");
  return x;
}

std::string known_metrics() {
  std::string s;
  for (auto m : kThresholdMetrics) s += (s.empty() ? "" : ", ") + std::string(m);
  return s;
}

std::vector<Threshold> parse_thresholds(const nlohmann::json& j, const std::string& origin,
                                        const std::string& where) {
  if (!j.is_object()) bad(origin, where, "expected an object of metric thresholds");
  std::vector<Threshold> out;
  for (const auto& [metric, spec] : j.items()) {
    const std::string w = where + "." + metric;
    if (!is_threshold_metric(metric)) {
      bad(origin, w, fmt::format("unknown metric '{}' (known: {})", metric, known_metrics()));
    }
    Threshold t;
    t.metric = metric;
    if (spec.is_null()) {  // null removes an inherited threshold
      out.push_back(t);
      continue;
    }
    if (!spec.is_object())
      bad(origin, w, "expected {\"max\": v}, {\"min\": v} or {\"max_floor\": k}");
    for (const auto& [k, v] : spec.items()) {
      if (k == "max") {
        t.max = number(v, origin, w + ".max");
      } else if (k == "min") {
        t.min = number(v, origin, w + ".min");
      } else if (k == "max_floor") {
        if (!is_floor_metric(metric)) {
          bad(origin, w, "max_floor applies to rel_l2, max_abs and mean_abs only");
        }
        t.max_floor = number(v, origin, w + ".max_floor");
        if (*t.max_floor <= 0) bad(origin, w + ".max_floor", "must be > 0");
      } else if (k == "ceiling") {
        t.ceiling = number(v, origin, w + ".ceiling");
        if (*t.ceiling <= 0) bad(origin, w + ".ceiling", "must be > 0");
      } else {
        bad(origin, w, fmt::format("unknown key '{}' (known: max, min, max_floor, ceiling)", k));
      }
    }
    if (!t.max && !t.min && !t.max_floor) bad(origin, w, "empty threshold");
    if (t.max_floor && !t.max && !t.ceiling)
      bad(origin, w, "max_floor needs an absolute ceiling: \"ceiling\" or \"max\"");
    if (t.ceiling && !t.max_floor) bad(origin, w, "ceiling applies to max_floor only");
    out.push_back(t);
  }
  return out;
}

void merge(std::vector<Threshold>& into, const std::vector<Threshold>& from) {
  for (const Threshold& t : from) {
    auto it = std::find_if(into.begin(), into.end(),
                           [&](const Threshold& x) { return x.metric == t.metric; });
    const bool remove = !t.max && !t.min && !t.max_floor;
    if (it != into.end()) {
      if (remove) {
        into.erase(it);
      } else {
        *it = t;
      }
    } else if (!remove) {
      into.push_back(t);
    }
  }
}

// Position in the fixed comparison order: relative error, then max abs, then the rest.
int metric_rank(std::string_view m) {
  static const std::vector<std::string_view> order = {
      "rel_l2",   "max_abs",      "cosine",       "pearson",      "snr_db",
      "mean_abs", "share_beyond", "nan_mismatch", "inf_mismatch", "ref_nonfinite"};
  auto it = std::find(order.begin(), order.end(), m);
  return static_cast<int>(it - order.begin());
}

}  // namespace

ToleranceProfile::Rule ToleranceProfile::parse_rule(const nlohmann::json& j,
                                                    const std::string& where, bool top) {
  (void)top;
  Rule r;
  if (j.contains("atol")) r.atol = number(j["atol"], "", where + ".atol");
  if (j.contains("rtol")) r.rtol = number(j["rtol"], "", where + ".rtol");
  if (r.atol && *r.atol < 0) throw std::runtime_error(where + ".atol: must be >= 0");
  if (r.rtol && *r.rtol < 0) throw std::runtime_error(where + ".rtol: must be >= 0");
  for (const char* key : {"allow_nonfinite", "ignore"}) {
    if (!j.contains(key)) continue;
    if (!j[key].is_boolean()) {
      throw std::runtime_error(fmt::format("{}.{}: expected true or false", where, key));
    }
    (std::string_view(key) == "ignore" ? r.ignore : r.allow_nonfinite) = j[key].get<bool>();
  }
  if (j.contains("warn")) r.warn = parse_thresholds(j["warn"], "", where + ".warn");
  if (j.contains("fail")) r.fail = parse_thresholds(j["fail"], "", where + ".fail");
  return r;
}

ToleranceProfile::ToleranceProfile() { *this = for_precision(Precision::float32); }

ToleranceProfile ToleranceProfile::for_precision(Precision precision) {
  for (const BuiltinProfile& b : builtin_profiles())
    if (b.precision == precision)
      return parse_text(b.text,
                        fmt::format("built-in {} profile ({})", to_string(precision), b.file));
  throw std::logic_error(  // the build generates one per value of the enum
      fmt::format("no built-in profile for precision '{}'", to_string(precision)));
}

ToleranceProfile ToleranceProfile::for_precision(std::string_view precision) {
  for (const BuiltinProfile& b : builtin_profiles())
    if (to_string(b.precision) == precision) return for_precision(b.precision);
  throw std::invalid_argument(fmt::format("no built-in tolerance profile for precision '{}' ({})",
                                          precision, precision_names()));
}

ToleranceProfile default_profile_for(Precision candidate) {
  return ToleranceProfile::for_precision(candidate);
}

ToleranceProfile default_profile_for(const DumpMeta& candidate, const std::string& label) {
  if (candidate.precision == "float64") return default_profile_for(Precision::float32);
  for (const BuiltinProfile& b : builtin_profiles())
    if (to_string(b.precision) == candidate.precision) return default_profile_for(b.precision);
  throw std::runtime_error(
      fmt::format("{}: precision '{}' has no built-in tolerance profile ({}, float64); give one "
                  "with --profile",
                  label, candidate.precision, precision_names()));
}

std::vector<std::string> builtin_profile_files() {
  std::vector<std::string> out;
  for (const BuiltinProfile& b : builtin_profiles()) out.emplace_back(b.file);
  return out;
}

ToleranceProfile ToleranceProfile::parse(const nlohmann::json& j, const std::string& origin) {
  ToleranceProfile p{Blank{}};
  p.name_ = "unnamed";
  if (!j.is_object()) bad(origin, "top level", "expected a JSON object");
  static const std::vector<std::string> top_keys = {
      "name", "description", "comment", "atol",        "rtol",        "allow_nonfinite", "ignore",
      "warn", "fail",        "rules",   "changepoint", "attribution", "$schema"};
  static const std::vector<std::string> rule_keys = {
      "taps", "comment", "atol", "rtol", "allow_nonfinite", "ignore", "warn", "fail"};
  for (const auto& [k, v] : j.items()) {
    if (std::find(top_keys.begin(), top_keys.end(), k) == top_keys.end()) {
      bad(origin, "top level", fmt::format("unknown key '{}'", k));
    }
  }
  try {
    if (j.contains("name")) {
      if (!j["name"].is_string()) throw std::runtime_error("name: expected a string");
      p.name_ = j["name"].get<std::string>();
    }
    if (j.contains("description")) {
      if (!j["description"].is_string()) throw std::runtime_error("description: expected a string");
      p.description_ = j["description"].get<std::string>();
    }
    p.defaults_ = parse_rule(j, "profile", true);
    if (j.contains("rules")) {
      const auto& rules = j["rules"];
      if (!rules.is_array()) throw std::runtime_error("rules: expected an array");
      for (std::size_t i = 0; i < rules.size(); ++i) {
        const std::string where = fmt::format("rules[{}]", i);
        const auto& rj = rules[i];
        if (!rj.is_object()) throw std::runtime_error(where + ": expected an object");
        for (const auto& [k, v] : rj.items()) {
          if (std::find(rule_keys.begin(), rule_keys.end(), k) == rule_keys.end()) {
            throw std::runtime_error(fmt::format("{}: unknown key '{}'", where, k));
          }
        }
        if (!rj.contains("taps")) throw std::runtime_error(where + ": missing \"taps\" (a glob)");
        std::vector<std::string> globs;
        if (rj["taps"].is_string()) {
          globs.push_back(rj["taps"].get<std::string>());
        } else if (rj["taps"].is_array()) {
          for (const auto& g : rj["taps"]) {
            if (!g.is_string()) throw std::runtime_error(where + ".taps: expected strings");
            globs.push_back(g.get<std::string>());
          }
        } else {
          throw std::runtime_error(where + ".taps: expected a glob or an array of globs");
        }
        Rule r = parse_rule(rj, where, false);
        for (const std::string& g : globs) {
          if (g.empty()) throw std::runtime_error(where + ".taps: empty glob");
          Rule copy = r;
          copy.glob = g;
          p.rules_.push_back(std::move(copy));
        }
      }
    }
    if (j.contains("changepoint")) {
      const auto& c = j["changepoint"];
      if (!c.is_object()) throw std::runtime_error("changepoint: expected an object");
      for (const auto& [k, v] : c.items()) {
        if (k == "ratio") {
          p.cp_ratio_ = number(v, origin, "changepoint.ratio");
        } else if (k == "min_rel_l2") {
          p.cp_min_ = number(v, origin, "changepoint.min_rel_l2");
        } else {
          throw std::runtime_error(fmt::format("changepoint: unknown key '{}'", k));
        }
      }
      if (p.cp_ratio_ <= 1) throw std::runtime_error("changepoint.ratio: must be > 1");
    }
    if (j.contains("attribution")) {
      const auto& c = j["attribution"];
      if (!c.is_object()) throw std::runtime_error("attribution: expected an object");
      for (const auto& [k, v] : c.items()) {
        if (k != "local_ratio")
          throw std::runtime_error(fmt::format("attribution: unknown key '{}'", k));
        p.local_ratio_ = number(v, origin, "attribution.local_ratio");
        if (p.local_ratio_ <= 1) throw std::runtime_error("attribution.local_ratio: must be > 1");
      }
    }
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    // Messages from the number/threshold helpers start with ": " when no origin was known.
    if (msg.rfind(": ", 0) == 0) throw std::runtime_error(origin + msg);
    if (msg.rfind(origin + ":", 0) == 0) throw;
    throw std::runtime_error(origin + ": " + msg);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(fmt::format("{}: {}", origin, e.what()));
  }
  p.source_ = j;
  return p;
}

ToleranceProfile ToleranceProfile::parse_text(const std::string& text, const std::string& origin) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, nullptr, true, /*ignore_comments=*/true);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    // e.what() is "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
    std::string what = e.what();
    const auto pos = what.find("] ");
    if (pos != std::string::npos) what = what.substr(pos + 2);
    throw std::runtime_error(fmt::format("{}: not valid JSON: {}", origin, what));
  }
  return parse(j, origin);
}

ToleranceProfile ToleranceProfile::load(const std::string& path) {
  return parse_text(wb::read_file(path), path);
}

TapTolerance ToleranceProfile::for_tap(std::string_view name) const {
  TapTolerance t;
  auto apply = [&](const Rule& r) {
    if (r.atol) t.atol = *r.atol;
    if (r.rtol) t.rtol = *r.rtol;
    if (r.allow_nonfinite) t.allow_nonfinite = *r.allow_nonfinite;
    if (r.ignore) t.ignore = *r.ignore;
    merge(t.warn, r.warn);
    merge(t.fail, r.fail);
  };
  apply(defaults_);
  for (const Rule& r : rules_) {
    if (wb::glob_match(r.glob, name)) apply(r);
  }
  auto by_rank = [](const Threshold& a, const Threshold& b) {
    return metric_rank(a.metric) < metric_rank(b.metric);
  };
  std::stable_sort(t.warn.begin(), t.warn.end(), by_rank);
  std::stable_sort(t.fail.begin(), t.fail.end(), by_rank);
  return t;
}

std::vector<Violation> ToleranceProfile::evaluate(const TapTolerance& t, const DiffMetrics& m,
                                                  const DiffMetrics* floor) const {
  std::vector<Violation> out;
  if (t.ignore) return out;
  // 1. NaN, 2. Inf sign: failures whatever the thresholds say, unless the profile allows them.
  if (!t.allow_nonfinite) {
    if (m.nan_mismatch > 0) {
      out.push_back({Level::fail, "nan_mismatch", static_cast<double>(m.nan_mismatch), 0.0, "<="});
    }
    if (m.inf_mismatch > 0) {
      out.push_back({Level::fail, "inf_mismatch", static_cast<double>(m.inf_mismatch), 0.0, "<="});
    }
    // NaN or Inf in the reference itself: where the candidate has the same, nothing mismatches,
    // but agreeing with a broken reference proves nothing. A warning, whatever the thresholds.
    const int64_t ref_nonfinite = m.ref.nan + m.ref.pos_inf + m.ref.neg_inf;
    if (ref_nonfinite > 0)
      out.push_back({Level::warn, "ref_nonfinite", static_cast<double>(ref_nonfinite), 0.0, "<="});
  }
  // 3. relative error, 4. max abs, then the rest (thresholds are sorted that way).
  for (Level level : {Level::fail, Level::warn}) {
    const auto& list = level == Level::fail ? t.fail : t.warn;
    for (const Threshold& th : list) {
      const double v = metric_value(m, th.metric);
      const double fv = floor != nullptr && th.max_floor ? metric_value(*floor, th.metric) : 0.0;
      if (floor != nullptr && th.max_floor && fv > 0 && std::isfinite(fv)) {
        // k x floor, never above the absolute ceiling (parse guarantees one of ceiling, max).
        const double ceiling = th.ceiling ? *th.ceiling : *th.max;
        const double scaled = *th.max_floor * fv;
        const bool capped = scaled > ceiling;
        const double limit = capped ? ceiling : scaled;
        if (!(v <= limit))
          out.push_back({level, th.metric, v, limit, "<=", true, *th.max_floor, fv, capped});
      } else if (th.max) {
        if (!(v <= *th.max)) out.push_back({level, th.metric, v, *th.max, "<="});
      }
      if (th.min && !(v >= *th.min)) out.push_back({level, th.metric, v, *th.min, ">="});
    }
  }
  // A warning for a metric that already fails says nothing new.
  std::vector<Violation> pruned;
  for (const Violation& v : out) {
    if (v.level == Level::warn && std::any_of(out.begin(), out.end(), [&](const Violation& f) {
          return f.level == Level::fail && f.metric == v.metric;
        })) {
      continue;
    }
    pruned.push_back(v);
  }
  return pruned;
}

double ToleranceProfile::rel_l2_fail_limit(std::string_view name) const {
  for (const auto& t : for_tap(name).fail)
    if (t.metric == "rel_l2" && t.max) return *t.max;
  return std::numeric_limits<double>::infinity();
}

}  // namespace wb::cmp
