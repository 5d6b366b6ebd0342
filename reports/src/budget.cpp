// Budget folders assembled into budget.json and rendered (see wb/reports/budget.h).
#include "wb/reports/budget.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>

#include "report_util.h"
#include "wb/compare/budget.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"

namespace wb::rep {

namespace fs = std::filesystem;
using nlohmann::json;

std::string budget_unit_name(const std::string& tap, const std::string& shape) {
  return tap + "~" + shape;
}

namespace {

json read_json_file(const std::string& path) {
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    throw std::runtime_error(fmt::format("{}: not JSON ({})", path, e.what()));
  }
}

std::vector<std::string> shard_files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir + "/shards", ec))
    if (e.path().extension() == ".json") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

bool is_budget_dir(const std::string& dir) {
  for (const auto& f : shard_files(dir)) {
    try {
      if (read_json_file(f).value("schema", "") == kBudgetShardSchema) return true;
    } catch (const std::exception&) {
    }
  }
  return false;
}

json assemble_budget_dir(const std::string& dir) {
  std::optional<json> first;
  std::set<int> shards_seen;
  int n_shards = 0;
  json run = {{"wall_seconds", 0.0}, {"cpu_seconds", 0.0},  {"encoder_tails", 0},
              {"blocks_run", 0},     {"decoder_passes", 0}, {"shards", json::array()}};
  for (const auto& f : shard_files(dir)) {
    const json m = read_json_file(f);
    if (m.value("schema", "") != kBudgetShardSchema)
      throw std::runtime_error(f + ": not a budget shard manifest");
    if (!first) {
      first = m;
      n_shards = m.at("shards").get<int>();
    } else if (m.at("settings_hash") != first->at("settings_hash")) {
      throw std::runtime_error(
          fmt::format("{}: measured with other settings than {} (settings_hash "
                      "{} vs {})",
                      f, dir, m.at("settings_hash").get<std::string>(),
                      first->at("settings_hash").get<std::string>()));
    }
    if (m.at("shards").get<int>() != n_shards) continue;  // an older split of the units
    shards_seen.insert(m.at("shard").get<int>());
    const json& r = m.at("run");
    for (const char* k : {"wall_seconds", "cpu_seconds"})
      run[k] = run[k].get<double>() + r.value(k, 0.0);
    for (const char* k : {"encoder_tails", "blocks_run", "decoder_passes"})
      run[k] = run[k].get<int64_t>() + r.value(k, int64_t{0});
    run["shards"].push_back(r);
  }
  if (!first) throw std::runtime_error(dir + ": no budget shard manifest (shards/*.json)");
  if (static_cast<int>(shards_seen.size()) != n_shards)
    throw std::runtime_error(fmt::format("{}: {} of {} shards have run; run the others first", dir,
                                         shards_seen.size(), n_shards));
  const json& st = first->at("settings");
  const std::string hash = first->at("settings_hash").get<std::string>();
  // Units by tap, in the settings' tap order.
  std::map<std::string, std::vector<json>> by_tap;
  for (const auto& name : first->at("units")) {
    const std::string path = dir + "/units/" + name.get<std::string>() + ".json";
    if (!fs::exists(path))
      throw std::runtime_error(path + ": missing; a shard has not measured this unit");
    json u = read_json_file(path);
    if (u.value("schema", "") != kBudgetUnitSchema || u.value("settings_hash", "") != hash)
      throw std::runtime_error(path + ": not a unit of this budget run (schema or settings)");
    if (!u.value("complete", false))
      throw std::runtime_error(path + ": not complete; run its shard again to finish it");
    by_tap[u.at("tap").get<std::string>()].push_back(std::move(u));
  }
  json taps = json::array();
  int worst_rise = 0;
  std::string worst_rise_at;
  for (const auto& t : st.at("taps")) {
    const std::string tap = t.get<std::string>();
    json shapes = json::object();
    double best = 0;
    std::string best_shape, best_bound;
    for (const json& u : by_tap[tap]) {
      const std::string shape = u.at("shape").get<std::string>();
      const double b = u.at("budget").get<double>();
      shapes[shape] = {{"budget", b},
                       {"bound", u.at("bound")},
                       {"max_rise", u.at("max_rise")},
                       {"levels", u.at("levels")}};
      if (best_shape.empty() || b < best) {
        best = b;
        best_shape = shape;
        best_bound = u.at("bound").get<std::string>();
      }
      const int rise = u.at("max_rise").get<int>();
      if (worst_rise_at.empty() || rise > worst_rise) {  // the first unit with the largest rise
        worst_rise = rise;
        worst_rise_at = tap + " " + shape;
      }
    }
    taps.push_back({{"tap", tap},
                    {"budget", best},
                    {"shape", best_shape},
                    {"bound", best_bound},
                    {"shapes", shapes}});
  }
  json clips = json::array();
  std::map<std::string, json> info;
  for (const auto& c : first->value("clip_runs", json::array())) info[c.at("clip")] = c;
  for (const auto& c : st.at("clips")) {
    json row = c;
    if (auto it = info.find(c.at("clip").get<std::string>()); it != info.end()) {
      row["reference_tokens"] = it->second.at("tokens");
      row["reference_text"] = it->second.at("text");
    }
    clips.push_back(row);
  }
  json budget = {{"schema", cmp::kBudgetSchema},
                 {"model", st.at("model")},
                 {"corpus",
                  {{"audio_dir", st.at("audio_dir")},
                   {"expect_file", st.at("expect_file")},
                   {"clips", clips}}},
                 {"taps_measured", st.at("taps")},
                 {"shapes", st.at("shapes")},
                 {"seed", st.at("seed")},
                 {"criterion", st.at("criterion")},
                 {"search", st.at("search")},
                 {"reference", st.at("reference")},
                 {"tool_version", st.at("tool_version")},
                 {"settings_hash", hash},
                 {"monotonicity",
                  {{"max_rise", worst_rise},
                   {"at", worst_rise_at},
                   {"ok", worst_rise <= 1},
                   {"rule",
                    "per tap and shape, the clips keeping their transcript rise by at most one "
                    "from one epsilon to the next larger"}}},
                 {"taps", taps}};
  cmp::Budget::from_json(budget, dir + "/budget.json");  // what --budget will read must load
  run["created"] = utc_now_iso8601();
  run["shard_count"] = n_shards;
  write_file_atomic(dir + "/budget.json", budget.dump(2) + "\n");
  write_file_atomic(dir + "/run.json", run.dump(2) + "\n");
  write_file_atomic(dir + "/report.md", render_budget_markdown(budget, run));
  write_file_atomic(dir + "/report.html", render_budget_html(budget, run));
  return budget;
}

namespace {

std::string bound_mark(const json& t) {
  const std::string b = t.value("bound", "");
  return b == "at_least" ? " (or more: held at every epsilon tried)"
         : b == "below"  ? " (failed at the smallest epsilon tried)"
                         : "";
}

std::string run_line(const json& run) {
  return fmt::format(
      "{:.0f} s wall, {:.0f} CPU seconds, {} encoder tails ({} blocks), {} decoder passes, {} "
      "shard(s)",
      run.value("wall_seconds", 0.0), run.value("cpu_seconds", 0.0), run.value("encoder_tails", 0),
      run.value("blocks_run", 0), run.value("decoder_passes", 0), run.value("shard_count", 1));
}

}  // namespace

std::string render_budget_markdown(const json& b, const json& run) {
  const json& cr = b.at("criterion");
  std::string md = fmt::format(
      "## Error budgets of model `{}`\n\nmodel sha256 `{}` · corpus: {} clips of `{}` · shapes {} "
      "· seed {}\n\n",
      b.at("model").value("path", "?"), b.at("model").at("sha256").get<std::string>().substr(0, 12),
      b.at("corpus").at("clips").size(), b.at("corpus").value("audio_dir", "?"),
      b.at("shapes").dump(), b.at("seed").dump());
  md += fmt::format(
      "A tap's budget: the largest relative L2 error at that stage output at which at most {} of "
      "the {} clips change their greedy tokens and the mean teacher-forced KL stays at or under "
      "{} nats per token. Budgets belong to this model and this corpus.\n\n",
      cr.at("changed_allowed").get<int>(), b.at("corpus").at("clips").size(),
      cr.at("kl_bound_nats").get<double>());
  md += "| tap | budget | binding shape |";
  for (const auto& s : b.at("shapes")) md += fmt::format(" {} |", s.get<std::string>());
  md += "\n| --- | --: | --- |";
  for (std::size_t i = 0; i < b.at("shapes").size(); ++i) md += " --: |";
  md += "\n";
  for (const auto& t : b.at("taps")) {
    md += fmt::format("| `{}` | {}{} | {} |", t.at("tap").get<std::string>(),
                      num(t.at("budget").get<double>()), t.at("bound") == "at_least" ? "+" : "",
                      t.at("shape").get<std::string>());
    for (const auto& s : b.at("shapes")) {
      const json& sh = t.at("shapes").at(s.get<std::string>());
      md += fmt::format(" {}{} |", num(sh.at("budget").get<double>()),
                        sh.at("bound") == "at_least" ? "+" : "");
    }
    md += "\n";
  }
  const json& mono = b.at("monotonicity");
  md += fmt::format(
      "\nMonotonicity: clips keeping their transcript rise with epsilon by at most {} ({}; {})."
      "\n\nRun: {}.\n",
      mono.at("max_rise").get<int>(), mono.at("ok").get<bool>() ? "ok" : "NOT ok",
      mono.value("at", ""), run_line(run));
  md += "\n### Curves\n\n";
  for (const auto& t : b.at("taps")) {
    md += fmt::format(
        "`{}`{}:\n\n| shape | epsilon | kept | KL mean | changed clips |\n| --- | "
        "--: | --: | --: | --- |\n",
        t.at("tap").get<std::string>(), bound_mark(t));
    for (const auto& s : b.at("shapes"))
      for (const auto& l : t.at("shapes").at(s.get<std::string>()).at("levels")) {
        std::string changed;
        for (const auto& c : l.at("changed_clips"))
          if (changed.size() < 80) changed += (changed.empty() ? "" : ", ") + c.get<std::string>();
        md += fmt::format("| {} | {} | {}/{} | {} | {} |\n", s.get<std::string>(),
                          num(l.at("epsilon").get<double>()), l.at("kept").get<int>(),
                          l.at("clips").get<int>(), num(l.at("kl_mean").get<double>()),
                          md_escape(changed));
      }
    md += "\n";
  }
  return md;
}

namespace {

constexpr const char* kColors[] = {"#1565c0", "#c62828", "#2e7d32", "#6a1b9a"};

// One tap's curves: clips keeping their transcript (solid, left axis) and mean KL (dashed, right
// axis, log) against epsilon (log), each shape in its colour, its budget a dotted vertical line.
std::string tap_svg(const json& t, const json& shapes, int n_clips, int allowed, double kl_bound) {
  const double W = 640, H = 230, L = 50, R = 60, T = 16, B = 36;
  double lo = 1e300, hi = 0, kl_hi = kl_bound, kl_lo = kl_bound;
  for (const auto& s : shapes)
    for (const auto& l : t.at("shapes").at(s.get<std::string>()).at("levels")) {
      lo = std::min(lo, l.at("epsilon").get<double>());
      hi = std::max(hi, l.at("epsilon").get<double>());
      const double k = l.at("kl_mean").get<double>();
      if (k > 0) {
        kl_hi = std::max(kl_hi, k);
        kl_lo = std::min(kl_lo, k);
      }
    }
  if (!(hi > 0)) return "";
  const double x0 = std::log10(lo) - 0.2, x1 = std::log10(hi) + 0.2;
  const double k0 = std::floor(std::log10(std::max(kl_lo, 1e-9))),
               k1 = std::ceil(std::log10(kl_hi));
  auto X = [&](double e) { return L + (std::log10(e) - x0) / (x1 - x0) * (W - L - R); };
  auto Y = [&](double kept) { return T + (1 - kept / n_clips) * (H - T - B); };
  auto YK = [&](double kl) {
    const double v = std::log10(std::max(kl, std::pow(10.0, k0)));
    return T + (1 - (v - k0) / std::max(k1 - k0, 1.0)) * (H - T - B);
  };
  std::string s = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"budget curve of {}\">\n<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" "
      "fill=\"none\" stroke=\"#999\"/>\n",
      W, H, t.at("tap").get<std::string>(), L, T, W - L - R, H - T - B);
  for (int d = static_cast<int>(std::ceil(x0)); d <= static_cast<int>(std::floor(x1)); ++d)
    s += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#eee\"/><text "
        "x=\"{0:.1f}\" y=\"{3}\" font-size=\"11\" text-anchor=\"middle\">1e{4}</text>\n",
        X(std::pow(10.0, d)), T, H - B, H - B + 14, d);
  s += fmt::format(
      "<text x=\"{}\" y=\"{}\" font-size=\"11\" text-anchor=\"middle\">relative L2 "
      "error at the tap (epsilon)</text>\n",
      (L + W - R) / 2, H - 4);
  for (int k : {0, n_clips / 2, n_clips})
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"11\" text-anchor=\"end\">{}</text>\n",
                     L - 4, Y(k) + 4, k);
  s += fmt::format(
      "<text x=\"12\" y=\"{}\" font-size=\"11\" transform=\"rotate(-90 12 {})\" "
      "text-anchor=\"middle\">clips keeping transcript</text>\n",
      (T + H - B) / 2, (T + H - B) / 2);
  for (int k = static_cast<int>(k0); k <= static_cast<int>(k1); ++k)
    s += fmt::format("<text x=\"{}\" y=\"{:.1f}\" font-size=\"10\">1e{}</text>\n", W - R + 4,
                     YK(std::pow(10.0, k)) + 4, k);
  s += fmt::format("<text x=\"{}\" y=\"{}\" font-size=\"10\">KL nats</text>\n", W - R + 4, T - 4);
  // the criterion: n - allowed clips kept, the KL bound
  s += fmt::format(
      "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#888\" "
      "stroke-dasharray=\"2,3\"/>\n",
      L, Y(n_clips - allowed), W - R, Y(n_clips - allowed));
  s += fmt::format(
      "<line x1=\"{}\" y1=\"{:.1f}\" x2=\"{}\" y2=\"{:.1f}\" stroke=\"#bbb\" "
      "stroke-dasharray=\"6,3\"/>\n",
      L, YK(kl_bound), W - R, YK(kl_bound));
  std::size_t ci = 0;
  for (const auto& sh : shapes) {
    const char* col = kColors[ci++ % 4];
    const json& u = t.at("shapes").at(sh.get<std::string>());
    std::string kept_pts, kl_pts;
    for (const auto& l : u.at("levels")) {
      const double e = l.at("epsilon").get<double>();
      kept_pts += fmt::format("{:.1f},{:.1f} ", X(e), Y(l.at("kept").get<int>()));
      kl_pts += fmt::format("{:.1f},{:.1f} ", X(e), YK(l.at("kl_mean").get<double>()));
      s += fmt::format(
          "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2.5\" fill=\"{}\"><title>{} eps "
          "{:.4g}: kept {}/{}, KL {:.3g}</title></circle>\n",
          X(e), Y(l.at("kept").get<int>()), col, sh.get<std::string>(), e, l.at("kept").get<int>(),
          n_clips, l.at("kl_mean").get<double>());
    }
    s += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.8\"/>\n",
                     kept_pts, col);
    s += fmt::format(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1\" "
        "stroke-dasharray=\"5,3\"/>\n",
        kl_pts, col);
    const double b = u.at("budget").get<double>();
    if (b > 0)
      s += fmt::format(
          "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"{3}\" "
          "stroke-dasharray=\"1,2\" stroke-width=\"1.5\"/><text x=\"{4:.1f}\" "
          "y=\"{5}\" font-size=\"10\" fill=\"{3}\">{6} budget {7:.3g}</text>\n",
          X(b), T, H - B, col, X(b) + 3, T + 12 + 12 * static_cast<double>(ci - 1),
          sh.get<std::string>(), b);
  }
  return s + "</svg>\n";
}

}  // namespace

std::string render_budget_html(const json& b, const json& run) {
  const json& cr = b.at("criterion");
  const int n = static_cast<int>(b.at("corpus").at("clips").size());
  std::string h =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<meta "
      "http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
      "'unsafe-inline'\">\n<title>Error budgets</title>\n<style>body{font-family:sans-serif;"
      "margin:1.5em;max-width:1000px}table{border-collapse:collapse}td,th{border:1px solid "
      "#ccc;padding:2px 6px;font-size:13px}td.n{text-align:right}.tap{margin:1em 0}</style>"
      "</head><body>\n";
  h += fmt::format("<h1>Error budgets of <code>{}</code></h1>\n",
                   xml_escape(b.at("model").value("path", "?")));
  h += fmt::format(
      "<p>model sha256 <code>{}</code>; corpus: {} clips of <code>{}</code>; shapes {}; seed {}. "
      "A tap's budget is the largest relative L2 error at that stage output at which at most {} "
      "clips change their greedy tokens and the mean teacher-forced KL stays at or under {} nats "
      "per token. Budgets belong to this model and corpus.</p>\n",
      xml_escape(b.at("model").at("sha256").get<std::string>()), n,
      xml_escape(b.at("corpus").value("audio_dir", "?")), xml_escape(b.at("shapes").dump()),
      b.at("seed").dump(), cr.at("changed_allowed").get<int>(),
      cr.at("kl_bound_nats").get<double>());
  h += "<table><tr><th>tap</th><th>budget</th><th>binding shape</th>";
  for (const auto& s : b.at("shapes")) h += "<th>" + xml_escape(s.get<std::string>()) + "</th>";
  h += "</tr>\n";
  for (const auto& t : b.at("taps")) {
    h += fmt::format("<tr><td><code>{}</code></td><td class=\"n\">{}{}</td><td>{}</td>",
                     xml_escape(t.at("tap").get<std::string>()), num(t.at("budget").get<double>()),
                     t.at("bound") == "at_least" ? "+" : "",
                     xml_escape(t.at("shape").get<std::string>()));
    for (const auto& s : b.at("shapes")) {
      const json& sh = t.at("shapes").at(s.get<std::string>());
      h += fmt::format("<td class=\"n\">{}{}</td>", num(sh.at("budget").get<double>()),
                       sh.at("bound") == "at_least" ? "+" : "");
    }
    h += "</tr>\n";
  }
  const json& mono = b.at("monotonicity");
  h += fmt::format(
      "</table>\n<p>Monotonicity: clips keeping their transcript rise with epsilon "
      "by at most {} ({}). Run: {}.</p>\n",
      mono.at("max_rise").get<int>(), mono.at("ok").get<bool>() ? "ok" : "NOT ok",
      xml_escape(run_line(run)));
  h += "<p>Solid: clips keeping their transcript (left axis); dashed: mean teacher-forced KL "
       "(right axis); dotted vertical: each shape's budget; grey: the criterion.</p>\n";
  for (const auto& t : b.at("taps"))
    h += fmt::format("<div class=\"tap\"><h3><code>{}</code>: budget {}{}</h3>\n{}</div>\n",
                     xml_escape(t.at("tap").get<std::string>()), num(t.at("budget").get<double>()),
                     xml_escape(bound_mark(t)),
                     tap_svg(t, b.at("shapes"), n, cr.at("changed_allowed").get<int>(),
                             cr.at("kl_bound_nats").get<double>()));
  return h + "</body></html>\n";
}

std::string render_budget_summary(const json& b, const std::string& dir) {
  std::string s = fmt::format("budget: {} clips, criterion: at most {} changed, KL <= {}\n",
                              b.at("corpus").at("clips").size(),
                              b.at("criterion").at("changed_allowed").get<int>(),
                              b.at("criterion").at("kl_bound_nats").get<double>());
  for (const auto& t : b.at("taps"))
    s += fmt::format("  {:<26} {:>10}{} ({})\n", t.at("tap").get<std::string>(),
                     num(t.at("budget").get<double>()), t.at("bound") == "at_least" ? "+" : " ",
                     t.at("shape").get<std::string>());
  s += fmt::format("monotonicity: max rise {} ({})\n",
                   b.at("monotonicity").at("max_rise").get<int>(),
                   b.at("monotonicity").at("ok").get<bool>() ? "ok" : "NOT ok");
  s += fmt::format("wrote {0}/budget.json, {0}/report.md, {0}/report.html, {0}/run.json\n", dir);
  return s;
}

}  // namespace wb::rep
