// Corpus sweep results and their aggregation (see wb/reports/sweep.h).
#include "wb/reports/sweep.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <stdexcept>

#include "report_util.h"
#include "wb/core/tempfile.h"

namespace wb::rep {

using nlohmann::json;

json json_number(double x) {
  if (std::isfinite(x)) return x;
  if (std::isnan(x)) return "nan";
  return x > 0 ? "inf" : "-inf";
}

double from_json_number(const json& j) {
  if (j.is_number()) return j.get<double>();
  if (j.is_string()) {
    const auto s = j.get<std::string>();
    if (s == "inf") return std::numeric_limits<double>::infinity();
    if (s == "-inf") return -std::numeric_limits<double>::infinity();
    if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  }
  throw std::runtime_error(fmt::format("sweep result: '{}' is not a number", j.dump()));
}

namespace {

json wer_json(const WerCounts& c) {
  return {{"errors", c.errors()}, {"ref_words", c.ref_words}, {"wer", c.wer()}};
}

const json& member(const json& j, const char* key, const std::string& where) {
  const auto it = j.find(key);
  if (it == j.end()) throw std::runtime_error(fmt::format("{}: no '{}'", where, key));
  return *it;
}

// Population statistics of one metric of one tap over the clips that have it, and the worst clip.
struct Series {
  std::vector<double> v;
  std::vector<std::string> clip;
  json to_json(bool higher_is_worse) const {
    const std::size_t n = v.size();
    double sum = 0;
    for (double x : v) sum += x;
    const double mean = sum / static_cast<double>(n);
    double ss = 0;
    for (double x : v) ss += (x - mean) * (x - mean);
    // Non-finite values (an infinite rel_l2, a NaN) make mean and std non-finite: shown as such.
    const double sd = std::sqrt(ss / static_cast<double>(n));
    std::size_t worst = 0;
    double lo = v[0], hi = v[0];
    for (std::size_t i = 0; i < n; ++i) {
      lo = std::min(lo, v[i]);
      hi = std::max(hi, v[i]);
      const bool nan_i = std::isnan(v[i]), nan_w = std::isnan(v[worst]);
      if (nan_w) continue;  // the first NaN stays the worst
      if (nan_i || (higher_is_worse ? v[i] > v[worst] : v[i] < v[worst])) worst = i;
    }
    return {{"mean", json_number(mean)}, {"std", json_number(sd)},
            {"min", json_number(lo)},    {"max", json_number(hi)},
            {"worst_clip", clip[worst]}, {"worst", json_number(v[worst])}};
  }
};

std::string clip_link(const std::string& clip) { return "clips/" + clip + ".json"; }

}  // namespace

json sweep_clip_result(const cmp::CompareResult& r, const std::string& expected) {
  json taps = json::array();
  for (const auto& t : r.taps) {
    taps.push_back({{"name", t.name},
                    {"status", std::string(cmp::level_name(t.status))},
                    {"rel_l2", json_number(t.m.rel_l2)},
                    {"cosine", json_number(t.m.cosine)},
                    {"max_abs", json_number(t.m.max_abs)},
                    {"snr_db", json_number(t.m.snr_db)},
                    {"share_beyond", json_number(t.m.share_beyond)},
                    {"nan_mismatch", t.m.nan_mismatch},
                    {"inf_mismatch", t.m.inf_mismatch},
                    {"attribution", t.attribution}});
  }
  auto tap_name = [&](int i) -> json {
    return i >= 0 ? json(r.taps[static_cast<std::size_t>(i)].name) : json(nullptr);
  };
  json j = {{"verdict", std::string(cmp::level_name(r.verdict))},
            {"first_divergent_tap", tap_name(r.first_divergence)},
            {"first_warning_tap", tap_name(r.first_warning)},
            {"changepoint_tap", tap_name(r.changepoint)},
            {"hints", r.hints},
            {"profile", r.profile_name},
            {"only_reference", r.only_ref},
            {"only_candidate", r.only_cand},
            {"taps", taps}};
  json tr = {{"expected", expected.empty() ? json(nullptr) : json(expected)}};
  if (r.transcripts) {
    tr["reference"] = r.transcripts->ref;
    tr["candidate"] = r.transcripts->cand;
    tr["identical"] = r.transcripts->ref == r.transcripts->cand;
    tr["candidate_vs_reference"] = wer_json(r.transcripts->words);
    if (!expected.empty()) {
      tr["reference_vs_expected"] = wer_json(word_errors(expected, r.transcripts->ref));
      tr["candidate_vs_expected"] = wer_json(word_errors(expected, r.transcripts->cand));
    }
  }
  // Greedy tokens identical (both sides decoded): what a budget predicts.
  if (r.impact) tr["tokens_identical"] = r.impact->first_diff < 0;
  j["transcripts"] = tr;
  return j;
}

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end(), [](double a, double b) {
    return std::isnan(b) ? !std::isnan(a) : (!std::isnan(a) && a < b);  // NaNs last
  });
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The budget part of a sweep report (see aggregate_sweep) and each clip row's verdict.
json sweep_budget(const cmp::Budget& b, const std::vector<json>& clips, json& rows) {
  struct PerTap {
    std::vector<double> share;
    std::vector<std::string> clip;
    cmp::BudgetShare info;
  };
  std::vector<std::string> order;
  std::map<std::string, PerTap> per;
  std::map<std::string, int> by_level;
  for (auto l : {cmp::BudgetLevel::harmless, cmp::BudgetLevel::at_risk, cmp::BudgetLevel::breaks})
    by_level[std::string(cmp::budget_level_name(l))] = 0;
  // rows: one per clip, in clip order (aggregate_sweep)
  for (std::size_t row = 0; row < clips.size(); ++row) {
    const json& c = clips[row];
    if (c.value("status", "") != "ok") continue;
    std::vector<std::pair<std::string, double>> errors;
    for (const json& t : c.at("taps"))
      errors.emplace_back(t.at("name").get<std::string>(), from_json_number(t.at("rel_l2")));
    const cmp::BudgetAssessment a = cmp::assess_budget(b, b.model_sha256, errors, true);
    by_level[std::string(cmp::budget_level_name(a.level))]++;
    rows.at(row)["budget_verdict"] = std::string(cmp::budget_level_name(a.level));
    rows.at(row)["budget_max_share"] = json_number(a.max_share);
    for (const auto& s : a.taps) {
      auto [it, fresh] = per.try_emplace(s.tap);
      if (fresh) {
        order.push_back(s.tap);
        it->second.info = s;
      }
      it->second.share.push_back(s.share);
      it->second.clip.push_back(c.at("clip").get<std::string>());
    }
  }
  json taps = json::array();
  double worst_median = 0;
  std::string worst_tap;
  for (const auto& name : order) {
    const PerTap& p = per.at(name);
    const double med = median(p.share);
    std::size_t w = 0;
    for (std::size_t i = 1; i < p.share.size(); ++i)
      if (!(p.share[i] <= p.share[w])) w = i;
    taps.push_back({{"tap", name},
                    {"budget", p.info.budget},
                    {"shape", p.info.shape},
                    {"bound", std::string(name_of(cmp::kBudgetBoundNames, p.info.bound))},
                    {"median_share", json_number(med)},
                    {"max_share", json_number(p.share[w])},
                    {"worst_clip", p.clip[w]},
                    {"level", std::string(cmp::budget_level_name(cmp::budget_level(med)))}});
    if (worst_tap.empty() || !(med <= worst_median)) {
      worst_median = med;
      worst_tap = name;
    }
  }
  const cmp::BudgetLevel level =
      worst_tap.empty() ? cmp::BudgetLevel::harmless : cmp::budget_level(worst_median);
  return {{"file", b.path},
          {"model_sha256", b.model_sha256},
          {"corpus", b.corpus},
          {"statistic", "median share over the compared clips, per tap"},
          {"verdict", std::string(cmp::budget_level_name(level))},
          {"max_median_share", json_number(worst_median)},
          {"worst_tap", worst_tap.empty() ? json(nullptr) : json(worst_tap)},
          {"clips_by_verdict", by_level},
          {"taps", taps}};
}

}  // namespace

json aggregate_sweep(const json& settings, const std::vector<json>& clips, const json& run,
                     const cmp::Budget* budget, cmp::Gate gate) {
  // Taps in order of first appearance (clip order, then each clip's execution order).
  std::vector<std::string> tap_order;
  std::map<std::string, std::size_t> tap_index;
  struct TapAgg {
    std::map<std::string, Series> metric;
    int fail = 0, warn = 0, clips = 0;
  };
  std::vector<TapAgg> agg;
  std::map<std::string, int> first_div;  // tap -> clips diverging first there
  std::vector<std::string> first_div_order;
  int n_ok = 0, n_pass = 0, n_warn = 0, n_fail = 0, n_bad = 0, n_internal = 0;
  int with_text = 0, identical = 0, with_expected = 0, with_tokens = 0, tokens_identical = 0;
  std::size_t cr_err = 0, cr_words = 0, re_err = 0, re_words = 0, ce_err = 0, ce_words = 0;
  json errors = json::array(), rows = json::array();
  for (const json& c : clips) {
    const std::string name = member(c, "clip", "sweep clip result").get<std::string>();
    const std::string where = "sweep clip result " + name;
    const std::string status = member(c, "status", where).get<std::string>();
    if (status == "error") {
      const json& e = member(c, "error", where);
      const std::string kind = member(e, "kind", where).get<std::string>();
      (kind == "internal" ? n_internal : n_bad)++;
      errors.push_back({{"clip", name}, {"kind", kind}, {"message", member(e, "message", where)}});
      if (e.contains("stderr_tail") && e["stderr_tail"].is_string())  // a port's (docs/ports.md)
        errors.back()["stderr_tail"] = e["stderr_tail"];
      rows.push_back(
          {{"clip", name}, {"verdict", "error"}, {"error", member(e, "message", where)}});
      continue;
    }
    if (status != "ok") throw std::runtime_error(where + ": status '" + status + "'");
    ++n_ok;
    const std::string verdict = member(c, "verdict", where).get<std::string>();
    (verdict == "fail" ? n_fail : verdict == "warn" ? n_warn : n_pass)++;
    const json& fd = member(c, "first_divergent_tap", where);
    if (!fd.is_null()) {
      const auto t = fd.get<std::string>();
      if (first_div.count(t) == 0) first_div_order.push_back(t);
      first_div[t]++;
    }
    double worst_rel = 0;
    for (const json& t : member(c, "taps", where)) {
      const std::string tn = member(t, "name", where).get<std::string>();
      auto [it, fresh] = tap_index.emplace(tn, agg.size());
      if (fresh) {
        tap_order.push_back(tn);
        agg.emplace_back();
      }
      TapAgg& a = agg[it->second];
      ++a.clips;
      const std::string st = member(t, "status", where).get<std::string>();
      a.fail += st == "fail";
      a.warn += st == "warn";
      for (const auto& m : kSweepMetrics) {
        const double x = from_json_number(member(t, m.name, where));
        Series& s = a.metric[m.name];
        s.v.push_back(x);
        s.clip.push_back(name);
      }
      const double rl = from_json_number(member(t, "rel_l2", where));
      if (!(rl <= worst_rel)) worst_rel = rl;  // NaN sticks
    }
    json row = {{"clip", name},
                {"verdict", verdict},
                {"first_divergent_tap", fd},
                {"max_rel_l2", json_number(worst_rel)},
                {"link", clip_link(name)}};
    const json& tr = member(c, "transcripts", where);
    if (tr.contains("tokens_identical")) {
      ++with_tokens;
      tokens_identical += tr.at("tokens_identical").get<bool>();
      row["tokens_identical"] = tr.at("tokens_identical");
    }
    if (tr.contains("identical")) {
      ++with_text;
      const bool same = tr.at("identical").get<bool>();
      identical += same;
      row["transcripts_identical"] = same;
      row["reference_text"] = tr.at("reference");
      row["candidate_text"] = tr.at("candidate");
      const json& cr = tr.at("candidate_vs_reference");
      cr_err += cr.at("errors").get<std::size_t>();
      cr_words += cr.at("ref_words").get<std::size_t>();
      if (tr.contains("candidate_vs_expected")) {
        ++with_expected;
        const json& re = tr.at("reference_vs_expected");
        const json& ce = tr.at("candidate_vs_expected");
        re_err += re.at("errors").get<std::size_t>();
        re_words += re.at("ref_words").get<std::size_t>();
        ce_err += ce.at("errors").get<std::size_t>();
        ce_words += ce.at("ref_words").get<std::size_t>();
        row["reference_wer"] = re.at("wer");
        row["candidate_wer"] = ce.at("wer");
      }
    }
    rows.push_back(std::move(row));
  }
  json taps = json::array();
  for (std::size_t i = 0; i < tap_order.size(); ++i) {
    const TapAgg& a = agg[i];
    json t = {{"name", tap_order[i]},
              {"clips", a.clips},
              {"failing_clips", a.fail},
              {"warning_clips", a.warn}};
    for (const auto& m : kSweepMetrics) t[m.name] = a.metric.at(m.name).to_json(m.higher_is_worse);
    t["worst_link"] = clip_link(t["rel_l2"]["worst_clip"].get<std::string>());
    taps.push_back(std::move(t));
  }
  json fds = json::array();
  for (const auto& t : first_div_order) fds.push_back({{"tap", t}, {"clips", first_div.at(t)}});
  auto ratio = [](std::size_t e, std::size_t w) -> json {
    return w == 0 ? json(nullptr) : json(static_cast<double>(e) / static_cast<double>(w));
  };
  json summary = {{"clips", clips.size()},
                  {"compared", n_ok},
                  {"passed", n_pass},
                  {"warned", n_warn},
                  {"failed", n_fail},
                  {"unreadable", n_bad},
                  {"internal_errors", n_internal},
                  {"first_divergent_taps", fds}};
  json transcripts = {{"clips_with_transcripts", with_text},
                      {"identical", identical},
                      {"clips_with_tokens", with_tokens},
                      {"tokens_identical", tokens_identical},
                      {"candidate_vs_reference_wer", ratio(cr_err, cr_words)},
                      {"clips_with_expected", with_expected},
                      {"reference_wer", ratio(re_err, re_words)},
                      {"candidate_wer", ratio(ce_err, ce_words)}};
  // (a null settings or run, e.g. `{}` from an initializer list, is kept as an empty object)
  const json obj = json::object();
  json report = {{"schema", kSweepSchema}, {"settings", settings.is_null() ? obj : settings},
                 {"summary", summary},     {"transcripts", transcripts},
                 {"taps", taps},           {"errors", errors},
                 {"clips", rows},          {"run", run.is_null() ? obj : run}};
  report["gate"] = std::string(name_of(cmp::kGateNames, gate));
  report["budget"] = budget != nullptr ? sweep_budget(*budget, clips, report["clips"]) : json();
  report["exit_status"] = sweep_exit_status(report);
  return report;
}

int sweep_exit_status(const json& report) {
  const json& s = report.at("summary");
  if (s.at("internal_errors").get<int>() > 0) return 3;
  if (report.value("gate", "") == "budget" && report.contains("budget") &&
      report.at("budget").is_object()) {
    if (report.at("budget").value("verdict", "") ==
        cmp::budget_level_name(cmp::BudgetLevel::breaks))
      return 1;
  } else if (s.at("failed").get<int>() > 0) {
    return 1;
  }
  if (s.at("unreadable").get<int>() > 0) return 2;
  return 0;
}

namespace {

std::string jnum(const json& j, int digits = 3) {
  if (j.is_null()) return "-";
  return num(from_json_number(j), digits);
}

std::string pct(const json& j) {
  if (j.is_null()) return "-";
  return fmt::format("{:.2f}%", 100.0 * j.get<double>());
}

std::string exit_words(int s) {
  switch (s) {
    case 0:
      return "0 (every clip read and within tolerance)";
    case 1:
      return "1 (tolerance exceeded on at least one clip)";
    case 2:
      return "2 (at least one clip could not be read; the others are within tolerance)";
    default:
      return "3 (internal error on at least one clip)";
  }
}

std::string settings_line(const json& st) {
  std::string faults;
  for (const auto& f : st.value("faults", json::array()))
    faults += " --fault " + f.get<std::string>();
  return fmt::format("`{}` ({}{}) vs reference, model `{}`, profile `{}`, taps `{}`",
                     st.value("impl", "?"), st.value("precision", "?"), faults,
                     st.value("model", "?"), st.value("profile", "?"), st.value("taps", "?"));
}

}  // namespace

std::string render_sweep_markdown(const json& rep, std::size_t max_bytes) {
  const json& s = rep.at("summary");
  const json& tr = rep.at("transcripts");
  std::string md;
  md += fmt::format("## Fidelity sweep: {} of {} clips failed, {} unreadable\n\n",
                    s.at("failed").get<int>(), s.at("clips").get<int>(),
                    s.at("unreadable").get<int>() + s.at("internal_errors").get<int>());
  md += settings_line(rep.at("settings")) + "\n\n";
  md +=
      fmt::format("- compared {}: **{} pass, {} warn, {} fail**; exit status {}\n",
                  s.at("compared").get<int>(), s.at("passed").get<int>(), s.at("warned").get<int>(),
                  s.at("failed").get<int>(), exit_words(rep.at("exit_status").get<int>()));
  std::string fd;
  for (const auto& f : s.at("first_divergent_taps"))
    fd += fmt::format("{}`{}` ({} clips)", fd.empty() ? "" : ", ", f.at("tap").get<std::string>(),
                      f.at("clips").get<int>());
  md += fmt::format("- first divergent tap: {}\n", fd.empty() ? "none" : fd);
  md += fmt::format(
      "- transcripts: identical on {}/{} clips, candidate vs reference WER {}; vs expected text "
      "({} clips): reference WER {}, candidate WER {}\n",
      tr.at("identical").get<int>(), tr.at("clips_with_transcripts").get<int>(),
      pct(tr.at("candidate_vs_reference_wer")), tr.at("clips_with_expected").get<int>(),
      pct(tr.at("reference_wer")), pct(tr.at("candidate_wer")));
  if (rep.contains("budget") && rep.at("budget").is_object()) {
    const json& b = rep.at("budget");
    const json& n = b.at("clips_by_verdict");
    md += fmt::format(
        "- **transcript budget: {}** (largest median share {} at `{}`; clips: {} harmless, {} at "
        "risk, {} breaking) — budgets of `{}` ({})\n",
        b.at("verdict").get<std::string>(), jnum(b.at("max_median_share")),
        b.at("worst_tap").is_string() ? b.at("worst_tap").get<std::string>() : "-",
        n.value("harmless", 0), n.value("at risk", 0), n.value("breaks transcripts", 0),
        md_escape(b.at("file").get<std::string>()), md_escape(b.at("corpus").get<std::string>()));
    md +=
        "\n| budgeted tap | budget | median share | max share (worst clip) | verdict |\n"
        "| --- | --: | --: | --- | --- |\n";
    for (const auto& t : b.at("taps"))
      md += fmt::format("| `{}` | {} | {} | {} ({}) | {} |\n", t.at("tap").get<std::string>(),
                        jnum(t.at("budget")), jnum(t.at("median_share")), jnum(t.at("max_share")),
                        md_escape(t.at("worst_clip").get<std::string>()),
                        t.at("level").get<std::string>());
  }
  if (!rep.at("errors").empty()) {
    md += "\n### Clips not compared\n\n| clip | kind | error |\n| --- | --- | --- |\n";
    for (const auto& e : rep.at("errors"))
      md += fmt::format("| {} | {} | {} |\n", md_escape(e.at("clip").get<std::string>()),
                        e.at("kind").get<std::string>(),
                        md_escape(e.at("message").get<std::string>()));
  }
  md +=
      "\n### Per tap over the corpus\n\n| tap | failing clips | rel L2 mean | rel L2 std | rel L2 "
      "max (worst clip) | cosine min | max abs max | SNR dB min |\n| --- | --: | --: | --: | --- "
      "| --: | --: | --: |\n";
  std::string rows;
  for (const auto& t : rep.at("taps")) {
    const json& rl = t.at("rel_l2");
    rows += fmt::format("| `{}` | {}/{} | {} | {} | {} ([{}]({})) | {} | {} | {} |\n",
                        t.at("name").get<std::string>(), t.at("failing_clips").get<int>(),
                        t.at("clips").get<int>(), jnum(rl.at("mean")), jnum(rl.at("std")),
                        jnum(rl.at("max")), md_escape(rl.at("worst_clip").get<std::string>()),
                        t.at("worst_link").get<std::string>(), jnum(t.at("cosine").at("min"), 7),
                        jnum(t.at("max_abs").at("max")), jnum(t.at("snr_db").at("min"), 4));
  }
  md += rows;
  md +=
      "\n### Clips\n\n| clip | verdict | first divergent tap | max rel L2 | transcripts |\n"
      "| --- | --- | --- | --: | --- |\n";
  for (const auto& c : rep.at("clips")) {
    const std::string name = c.at("clip").get<std::string>();
    if (c.at("verdict") == "error") {
      md += fmt::format("| {} | ERROR | - | - | {} |\n", md_escape(name),
                        md_escape(c.at("error").get<std::string>()));
      continue;
    }
    std::string t = "-";
    if (c.contains("transcripts_identical"))
      t = c.at("transcripts_identical").get<bool>()
              ? "identical"
              : "differ: `" + md_escape(c.at("candidate_text").get<std::string>()) + "`";
    const json& fdt = c.at("first_divergent_tap");
    md += fmt::format("| [{}]({}) | {} | {} | {} | {} |\n", md_escape(name),
                      c.at("link").get<std::string>(), c.at("verdict").get<std::string>(),
                      fdt.is_null() ? "-" : "`" + fdt.get<std::string>() + "`",
                      jnum(c.at("max_rel_l2")), t);
  }
  const json& run = rep.at("run");
  const std::string tail = fmt::format("\n_Run: created {}, {} shard(s), {:.1f} s of clip time._\n",
                                       run.value("created", "?"), run.value("shards", 1),
                                       run.value("clip_seconds", 0.0));
  if (md.size() + tail.size() > max_bytes) {
    const std::string cut = "\n\n_(truncated; the full report is report.json / report.html)_\n";
    std::size_t keep =
        max_bytes > tail.size() + cut.size() ? max_bytes - tail.size() - cut.size() : 0;
    while (keep > 0 && (static_cast<unsigned char>(md[keep]) & 0xC0) == 0x80) --keep;  // UTF-8
    keep = md.rfind('\n', keep);
    md = md.substr(0, keep == std::string::npos ? 0 : keep) + cut;
  }
  return md + tail;
}

std::string render_sweep_html(const json& rep) {
  const json& s = rep.at("summary");
  const json& tr = rep.at("transcripts");
  std::string h =
      "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Fidelity sweep</title>\n"
      "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
      "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px}td.n{text-align:right}"
      ".fail{background:#fdd}.warn{background:#ffe}.error{background:#fcc}</style></head><body>\n";
  h += fmt::format("<h1>Fidelity sweep: {} of {} clips failed, {} unreadable</h1>\n",
                   s.at("failed").get<int>(), s.at("clips").get<int>(),
                   s.at("unreadable").get<int>() + s.at("internal_errors").get<int>());
  h += "<p>" + xml_escape(settings_line(rep.at("settings"))) + "</p>\n";
  h += fmt::format(
      "<p>Compared {}: {} pass, {} warn, {} fail; exit status {}. Transcripts identical on {}/{} "
      "clips; reference WER {}, candidate WER {} against the expected text.</p>\n",
      s.at("compared").get<int>(), s.at("passed").get<int>(), s.at("warned").get<int>(),
      s.at("failed").get<int>(), xml_escape(exit_words(rep.at("exit_status").get<int>())),
      tr.at("identical").get<int>(), tr.at("clips_with_transcripts").get<int>(),
      pct(tr.at("reference_wer")), pct(tr.at("candidate_wer")));
  if (rep.contains("budget") && rep.at("budget").is_object()) {
    const json& b = rep.at("budget");
    h += fmt::format(
        "<h2>Transcript budget: {}</h2><p>largest median share {} at <code>{}</code>; budgets of "
        "<code>{}</code> ({})</p><table><tr><th>budgeted tap</th><th>budget</th><th>median "
        "share</th><th>max share</th><th>worst clip</th><th>verdict</th></tr>\n",
        xml_escape(b.at("verdict").get<std::string>()), jnum(b.at("max_median_share")),
        xml_escape(b.at("worst_tap").is_string() ? b.at("worst_tap").get<std::string>() : "-"),
        xml_escape(b.at("file").get<std::string>()), xml_escape(b.at("corpus").get<std::string>()));
    for (const auto& t : b.at("taps"))
      h += fmt::format(
          "<tr><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td "
          "class=\"n\">{}</td><td>{}</td><td>{}</td></tr>\n",
          xml_escape(t.at("tap").get<std::string>()), jnum(t.at("budget")),
          jnum(t.at("median_share")), jnum(t.at("max_share")),
          xml_escape(t.at("worst_clip").get<std::string>()),
          xml_escape(t.at("level").get<std::string>()));
    h += "</table>\n";
  }
  if (!rep.at("errors").empty()) {
    h += "<h2>Clips not compared</h2><table><tr><th>clip</th><th>kind</th><th>error</th></tr>\n";
    for (const auto& e : rep.at("errors"))
      h += fmt::format("<tr class=\"error\"><td>{}</td><td>{}</td><td>{}</td></tr>\n",
                       xml_escape(e.at("clip").get<std::string>()),
                       xml_escape(e.at("kind").get<std::string>()),
                       xml_escape(e.at("message").get<std::string>()));
    h += "</table>\n";
  }
  h += "<h2>Per tap over the corpus</h2><table><tr><th>tap</th><th>failing clips</th><th>rel L2 "
       "mean</th><th>std</th><th>min</th><th>max</th><th>worst clip</th><th>cosine min</th>"
       "<th>max abs max</th><th>SNR dB min</th></tr>\n";
  for (const auto& t : rep.at("taps")) {
    const json& rl = t.at("rel_l2");
    const int f = t.at("failing_clips").get<int>();
    h += fmt::format(
        "<tr{}><td>{}</td><td class=\"n\">{}/{}</td><td class=\"n\">{}</td><td "
        "class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td><a "
        "href=\"{}\">{}</a></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td "
        "class=\"n\">{}</td></tr>\n",
        f > 0 ? " class=\"fail\"" : "", xml_escape(t.at("name").get<std::string>()), f,
        t.at("clips").get<int>(), jnum(rl.at("mean")), jnum(rl.at("std")), jnum(rl.at("min")),
        jnum(rl.at("max")), xml_escape(t.at("worst_link").get<std::string>()),
        xml_escape(rl.at("worst_clip").get<std::string>()), jnum(t.at("cosine").at("min"), 7),
        jnum(t.at("max_abs").at("max")), jnum(t.at("snr_db").at("min"), 4));
  }
  h += "</table>\n<h2>Clips</h2><table><tr><th>clip</th><th>verdict</th><th>first divergent "
       "tap</th><th>max rel L2</th><th>reference text</th><th>candidate text</th></tr>\n";
  for (const auto& c : rep.at("clips")) {
    const std::string v = c.at("verdict").get<std::string>();
    if (v == "error") {
      h += fmt::format(
          "<tr class=\"error\"><td>{}</td><td>ERROR</td><td colspan=\"4\">{}</td></tr>\n",
          xml_escape(c.at("clip").get<std::string>()),
          xml_escape(c.at("error").get<std::string>()));
      continue;
    }
    const json& fdt = c.at("first_divergent_tap");
    h += fmt::format(
        "<tr class=\"{}\"><td><a href=\"{}\">{}</a></td><td>{}</td><td>{}</td><td "
        "class=\"n\">{}</td><td>{}</td><td>{}</td></tr>\n",
        v, xml_escape(c.at("link").get<std::string>()), xml_escape(c.at("clip").get<std::string>()),
        v, fdt.is_null() ? "-" : xml_escape(fdt.get<std::string>()), jnum(c.at("max_rel_l2")),
        xml_escape(c.value("reference_text", "")), xml_escape(c.value("candidate_text", "")));
  }
  const json& run = rep.at("run");
  h += fmt::format(
      "</table>\n<p><small>Run: created {}, {} shard(s), {:.1f} s of clip time.</small></p>\n",
      xml_escape(run.value("created", "?")), run.value("shards", 1),
      run.value("clip_seconds", 0.0));
  return h + "</body></html>\n";
}

namespace {

std::string render_sweep_junit(const json& rep) {
  const json& s = rep.at("summary");
  std::string x = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  x += fmt::format("<testsuite name=\"wb-sweep\" tests=\"{}\" failures=\"{}\" errors=\"{}\">\n",
                   s.at("clips").get<int>(), s.at("failed").get<int>(),
                   s.at("unreadable").get<int>() + s.at("internal_errors").get<int>());
  for (const auto& c : rep.at("clips")) {
    const std::string v = c.at("verdict").get<std::string>();
    x += fmt::format("  <testcase classname=\"sweep\" name=\"{}\"",
                     xml_escape(c.at("clip").get<std::string>()));
    if (v == "error") {
      x += fmt::format("><error message=\"{}\"/></testcase>\n",
                       xml_escape(c.at("error").get<std::string>()));
    } else if (v == "fail") {
      const json& fdt = c.at("first_divergent_tap");
      x += fmt::format("><failure message=\"first divergent tap {}\"/></testcase>\n",
                       fdt.is_null() ? "-" : xml_escape(fdt.get<std::string>()));
    } else {
      x += "/>\n";
    }
  }
  return x + "</testsuite>\n";
}

}  // namespace

std::vector<std::string> write_sweep_reports(const json& report, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir))
    throw std::runtime_error(fmt::format("{}: cannot create report directory", dir));
  const std::vector<std::pair<std::string, std::string>> files = {
      {dir + "/report.json", report.dump(1, ' ', false, json::error_handler_t::replace) + "\n"},
      {dir + "/report.md", render_sweep_markdown(report)},
      {dir + "/report.html", render_sweep_html(report)},
      {dir + "/junit.xml", render_sweep_junit(report)}};
  std::vector<std::string> paths;
  for (const auto& [path, content] : files) {
    write_file_atomic(path, content);
    paths.push_back(path);
  }
  return paths;
}

}  // namespace wb::rep
