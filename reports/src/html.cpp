// One self-contained HTML file: inline CSS and SVG, no script, no external resource, so it opens
// from disk, in a CI artifact viewer or behind a firewall.
//   1. per-tap relative L2 and 1 - cosine on a log axis (status-coloured points, first divergence
//      and changepoint marked),
//   2. both sides' mean and std per tap,
//   3. the per-frame error strip of the first divergent tap (else the worst tap),
//   4. the histogram of that tap's differences,
// then the hints and a table of every tap.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "report_util.h"
#include "wb/reports/reports.h"

namespace wb::rep {

namespace {

constexpr const char* kPass = "#2e7d32";
constexpr const char* kWarn = "#ef8f00";
constexpr const char* kFail = "#c62828";
constexpr const char* kRef = "#1f4e79";
constexpr const char* kCand = "#e8710a";

const char* status_color(cmp::Level l) {
  return l == cmp::Level::fail ? kFail : (l == cmp::Level::warn ? kWarn : kPass);
}

std::string h(std::string_view s) { return xml_escape(s); }

// A plot area with linear x and linear or log10 y, drawn into an SVG string.
struct Plot {
  double w = 1100, ht = 260;
  double ml = 70, mr = 20, mt = 28, mb = 46;
  double x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  bool ylog = false;
  std::string svg;

  double px(double x) const { return ml + (x - x0) / (x1 - x0) * (w - ml - mr); }
  double py(double y) const {
    double v = y;
    if (ylog) v = std::log10(std::max(y, std::pow(10.0, y0)));
    v = std::clamp(v, y0, y1);
    return mt + (1.0 - (v - y0) / (y1 - y0)) * (ht - mt - mb);
  }
  void begin(const std::string& title) {
    svg += fmt::format(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} "
        "{1}\" role=\"img\" aria-label=\"{2}\">\n<text x=\"{3}\" y=\"17\" class=\"t\">{2}</text>\n",
        w, ht, h(title), ml);
    svg += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" class=\"area\"/>\n", ml,
                       mt, w - ml - mr, ht - mt - mb);
  }
  void yticks(const std::string& label) {
    if (ylog) {
      const int step = std::max(1, static_cast<int>(std::ceil((y1 - y0) / 8)));
      for (int e = static_cast<int>(std::ceil(y0)); e <= static_cast<int>(std::floor(y1));
           e += step) {
        const double y = py(std::pow(10.0, e));
        svg += fmt::format(
            "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/>"
            "<text x=\"{}\" y=\"{:.1f}\" class=\"yl\">1e{}</text>\n",
            ml, w - mr, y, y, ml - 6, y + 4, e);
      }
    } else {
      for (int k = 0; k <= 4; ++k) {
        const double v = y0 + (y1 - y0) * k / 4.0;
        const double y = py(v);
        svg += fmt::format(
            "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/>"
            "<text x=\"{}\" y=\"{:.1f}\" class=\"yl\">{}</text>\n",
            ml, w - mr, y, y, ml - 6, y + 4, num(v, 3));
      }
    }
    svg +=
        fmt::format("<text transform=\"translate(14,{:.1f}) rotate(-90)\" class=\"al\">{}</text>\n",
                    mt + (ht - mt - mb) / 2, h(label));
  }
  void xlabel(double x, const std::string& text) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" class=\"tick\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" class=\"xl\">{4}</text>\n",
        px(x), ht - mb, ht - mb + 4, ht - mb + 16, h(text));
  }
  void xaxis_title(const std::string& text) {
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" class=\"al\">{}</text>\n",
                       ml + (w - ml - mr) / 2, ht - 8, h(text));
  }
  void line(const std::vector<double>& xs, const std::vector<double>& ys, const char* color,
            const char* dash = nullptr, double width = 1.6) {
    std::string pts;
    for (std::size_t i = 0; i < xs.size(); ++i) {
      if (!std::isfinite(ys[i]) && !(ylog && ys[i] == 0)) continue;
      pts += fmt::format("{:.1f},{:.1f} ", px(xs[i]), py(ys[i]));
    }
    svg += fmt::format(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}/>\n", pts, color,
        width, dash ? fmt::format(" stroke-dasharray=\"{}\"", dash) : std::string());
  }
  void vmark(double x, const char* color, const std::string& label) {
    svg += fmt::format(
        "<line x1=\"{0:.1f}\" x2=\"{0:.1f}\" y1=\"{1}\" y2=\"{2}\" stroke=\"{3}\" "
        "stroke-dasharray=\"4 3\"/><text x=\"{4:.1f}\" y=\"{5}\" class=\"mk\" "
        "fill=\"{3}\">{6}</text>\n",
        px(x), mt, ht - mb, color, px(x) + 3, mt + 11, h(label));
  }
  void legend(const std::vector<std::tuple<std::string, const char*, const char*>>& items) {
    double x = w - mr - 10;
    for (auto it = items.rbegin(); it != items.rend(); ++it) {
      const auto& [name, color, dash] = *it;
      x -= 8.0 * static_cast<double>(name.size()) + 34;
      svg += fmt::format(
          "<line x1=\"{:.1f}\" x2=\"{:.1f}\" y1=\"13\" y2=\"13\" stroke=\"{}\" "
          "stroke-width=\"2\"{}/><text x=\"{:.1f}\" y=\"17\" class=\"lg\">{}</text>\n",
          x, x + 20, color, dash ? fmt::format(" stroke-dasharray=\"{}\"", dash) : "", x + 24,
          h(name));
    }
  }
  std::string end() { return svg + "</svg>\n"; }
};

// Decade range covering the positive finite values (at least two decades).
std::pair<double, double> log_range(const std::vector<double>& v) {
  double lo = 1e300, hi = 0;
  for (double x : v)
    if (std::isfinite(x) && x > 0) lo = std::min(lo, x), hi = std::max(hi, x);
  if (hi == 0) return {-8, 0};
  double a = std::floor(std::log10(lo));
  double b = std::ceil(std::log10(hi));
  a = std::max(a, -16.0);
  if (b - a < 2) a = b - 2;
  return {a, b};
}

// Short x labels: stem names and the first tap of each block (thinned to fit).
void tap_ticks(Plot& p, const cmp::CompareResult& r) {
  double last = -1e9;
  for (std::size_t i = 0; i < r.taps.size(); ++i) {
    const TapSpec& t = *r.taps[i].spec;
    std::string label;
    if (t.stage == TapStage::block) {  // the first tap of each block: b0, b1, ... / d0, ...
      const bool first = i == 0 || r.taps[i - 1].spec->group != t.group;
      if (first) label = fmt::format("{}{}", t.side == TapSide::encoder ? "b" : "d", t.block);
    } else if (t.stage == TapStage::frontend || t.stage == TapStage::ln_post ||
               t.stage == TapStage::head || (t.kind == TapKind::conv && t.leaf == "conv1")) {
      label = t.leaf;
    }
    if (label.empty()) continue;
    const double x = p.px(static_cast<double>(i));
    if (x - last < 30) continue;
    last = x;
    p.xlabel(static_cast<double>(i), label);
  }
}

std::string error_chart(const cmp::CompareResult& r) {
  Plot p;
  p.ylog = true;
  const std::size_t n = r.taps.size();
  p.x0 = -0.5;
  p.x1 = static_cast<double>(std::max<std::size_t>(n, 1)) - 0.5;
  std::vector<double> xs, rel, cos1, all;
  for (std::size_t i = 0; i < n; ++i) {
    xs.push_back(static_cast<double>(i));
    rel.push_back(r.taps[i].m.rel_l2);
    cos1.push_back(std::max(0.0, 1.0 - r.taps[i].m.cosine));
  }
  all = rel;
  all.insert(all.end(), cos1.begin(), cos1.end());
  std::tie(p.y0, p.y1) = log_range(all);
  p.begin("Error per tap (execution order), log scale");
  p.yticks("relative L2  /  1 - cosine");
  tap_ticks(p, r);
  p.xaxis_title("tap (b<i> = first tap of encoder block i; hover a point for its name)");
  if (r.first_divergence >= 0) {
    p.vmark(r.first_divergence, kFail,
            "first divergence: " + r.taps[static_cast<std::size_t>(r.first_divergence)].name);
  }
  if (r.changepoint >= 0 && r.changepoint != r.first_divergence) {
    p.vmark(r.changepoint, "#6a1b9a", "changepoint");
  }
  p.line(xs, cos1, kCand, "5 3", 1.4);
  p.line(xs, rel, kRef, nullptr, 1.6);
  for (std::size_t i = 0; i < n; ++i) {
    const auto& t = r.taps[i];
    const bool zero = !(t.m.rel_l2 > 0);
    p.svg += fmt::format(
        "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\" stroke=\"{}\"><title>{}: {} — "
        "rel L2 {}, cosine {}, max abs {}</title></circle>\n",
        p.px(xs[i]), p.py(zero ? std::pow(10.0, p.y0) : t.m.rel_l2), n > 120 ? 2.2 : 3.2,
        zero ? "white" : status_color(t.status), status_color(t.status), h(t.name),
        status_word(t.status), num(t.m.rel_l2), num(t.m.cosine, 8), num(t.m.max_abs));
  }
  p.legend(
      {{"relative L2 (points: pass / warn / fail)", kRef, nullptr}, {"1 - cosine", kCand, "5 3"}});
  return p.end();
}

std::string stats_chart(const cmp::CompareResult& r, bool mean) {
  Plot p;
  p.w = 545;
  p.ht = 240;
  const std::size_t n = r.taps.size();
  p.x0 = -0.5;
  p.x1 = static_cast<double>(std::max<std::size_t>(n, 1)) - 0.5;
  std::vector<double> xs, a, b;
  double lo = 1e300, hi = -1e300;
  for (std::size_t i = 0; i < n; ++i) {
    xs.push_back(static_cast<double>(i));
    const auto& m = r.taps[i].m;
    a.push_back(mean ? m.ref.mean : m.ref.std);
    b.push_back(mean ? m.cand.mean : m.cand.std);
    for (double v : {a.back(), b.back()})
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!(hi >= lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-12) lo -= 0.5, hi += 0.5;
  const double pad = (hi - lo) * 0.08;
  p.y0 = lo - pad;
  p.y1 = hi + pad;
  p.begin(mean ? "Mean per tap" : "Standard deviation per tap");
  p.yticks(mean ? "mean" : "std");
  tap_ticks(p, r);
  p.xaxis_title("tap");
  if (r.first_divergence >= 0) p.vmark(r.first_divergence, kFail, "");
  p.line(xs, a, kRef, nullptr, 2.0);
  p.line(xs, b, kCand, "5 3", 1.6);
  p.legend({{"reference", kRef, nullptr}, {"candidate", kCand, "5 3"}});
  return p.end();
}

// Colour of a relative error on a log scale between lo and hi decades.
std::string heat(double e, double lo, double hi) {
  if (!(e > 0)) return "#f4f6f8";
  const double t = std::clamp((std::log10(e) - lo) / std::max(hi - lo, 1e-9), 0.0, 1.0);
  // light yellow -> orange -> dark red
  const int r = static_cast<int>(255 - 80 * t);
  const int g = static_cast<int>(245 - 215 * t);
  const int b = static_cast<int>(200 - 170 * t);
  return fmt::format("#{:02x}{:02x}{:02x}", r, g, b);
}

std::string frame_chart(const cmp::TapResult& t) {
  const auto& f = t.m.frames;
  Plot p;
  p.ylog = true;
  p.ht = 270;
  p.mb = 80;
  const auto n = static_cast<double>(f.size());
  p.x0 = 0;
  p.x1 = std::max(n, 1.0);
  std::vector<double> xs, ys;
  for (std::size_t i = 0; i < f.size(); ++i) {
    xs.push_back(static_cast<double>(i) + 0.5);
    ys.push_back(f[i].rel_l2);
  }
  std::tie(p.y0, p.y1) = log_range(ys);
  p.begin(fmt::format("Error per frame of {} ({} frames{})", t.name, f.size(),
                      t.frame_axis == "column" ? ", mel columns" : ""));
  p.yticks("relative L2 per frame");
  // Bin frames into at most ~1000 pixel columns (max over each bin) for the line and the strip.
  const std::size_t cols = std::min<std::size_t>(f.size(), 1000);
  std::vector<double> bx, by;
  for (std::size_t c = 0; c < cols; ++c) {
    const std::size_t a = c * f.size() / cols, b = std::max(a + 1, (c + 1) * f.size() / cols);
    double m = 0;
    for (std::size_t i = a; i < b; ++i)
      m = std::max(m, std::isfinite(f[i].rel_l2) ? f[i].rel_l2 : 0.0);
    bx.push_back((static_cast<double>(a) + static_cast<double>(b)) / 2);
    by.push_back(m);
  }
  p.line(bx, by, kRef, nullptr, 1.2);
  const double sy = p.ht - p.mb + 22;
  for (std::size_t c = 0; c < cols; ++c) {
    const std::size_t a = c * f.size() / cols, b = std::max(a + 1, (c + 1) * f.size() / cols);
    p.svg += fmt::format(
        "<rect x=\"{:.2f}\" y=\"{}\" width=\"{:.2f}\" height=\"18\" fill=\"{}\"/>\n",
        p.px(static_cast<double>(a)), sy,
        p.px(static_cast<double>(b)) - p.px(static_cast<double>(a)) + 0.3, heat(by[c], p.y0, p.y1));
  }
  p.svg += fmt::format("<text x=\"{}\" y=\"{}\" class=\"yl\">strip</text>\n", p.ml - 6, sy + 13);
  for (int k = 0; k <= 6; ++k) {
    const double x = n * k / 6.0;
    p.xlabel(x, fmt::format("{}", static_cast<int64_t>(std::round(x))));
  }
  p.svg += fmt::format(
      "<text x=\"{:.1f}\" y=\"{}\" class=\"al\">frame (the 30 s window; later "
      "frames hold the padded tail when the audio is shorter)</text>\n",
      p.ml + (p.w - p.ml - p.mr) / 2, p.ht - 6);
  return p.end();
}

std::string histogram_chart(const cmp::Histogram& hg) {
  Plot p;
  p.ht = 250;
  p.x0 = hg.lo;
  p.x1 = hg.hi;
  int64_t top = 1;
  for (int64_t c : hg.counts) top = std::max(top, c);
  p.y0 = 0;
  p.y1 = std::log10(static_cast<double>(top) + 1) * 1.05;
  p.begin(fmt::format("Histogram of candidate - reference for {} (log count)", hg.tap));
  for (int k = 0; k <= static_cast<int>(std::floor(p.y1)); ++k) {
    const double y = p.py(k);
    p.svg += fmt::format(
        "<line x1=\"{}\" x2=\"{}\" y1=\"{:.1f}\" y2=\"{:.1f}\" class=\"grid\"/><text "
        "x=\"{}\" y=\"{:.1f}\" class=\"yl\">{}</text>\n",
        p.ml, p.w - p.mr, y, y, p.ml - 6, y + 4,
        k == 0 ? std::string("1") : fmt::format("1e{}", k));
  }
  p.svg += fmt::format(
      "<text transform=\"translate(14,{:.1f}) rotate(-90)\" class=\"al\">elements</text>\n",
      p.mt + (p.ht - p.mt - p.mb) / 2);
  const std::size_t nb = hg.counts.size();
  const double bw = (hg.hi - hg.lo) / static_cast<double>(std::max<std::size_t>(nb, 1));
  for (std::size_t i = 0; i < nb; ++i) {
    const double a = hg.lo + bw * static_cast<double>(i);
    const double y = p.py(std::log10(static_cast<double>(hg.counts[i]) + 1));
    p.svg += fmt::format(
        "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
        "fill=\"{}\"><title>[{}, {}): {}</title></rect>\n",
        p.px(a) + 0.5, y, std::max(0.5, p.px(a + bw) - p.px(a) - 1), p.py(0) - y, kRef, num(a),
        num(a + bw), hg.counts[i]);
  }
  for (int k = 0; k <= 4; ++k) {
    const double x = hg.lo + (hg.hi - hg.lo) * k / 4.0;
    p.xlabel(x, num(x, 3));
  }
  p.xaxis_title("candidate - reference");
  return p.end();
}

const char* kCss = R"CSS(
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif;
       margin: 24px; color: #1b1f23; background: #fff; max-width: 1160px; }
h1 { font-size: 22px; margin: 0 0 6px 0; }
h2 { font-size: 17px; margin: 26px 0 8px 0; border-bottom: 1px solid #d0d7de; padding-bottom: 3px; }
.banner { padding: 12px 16px; border-radius: 6px; color: #fff; margin-bottom: 14px; }
.banner.pass { background: #2e7d32; } .banner.warn { background: #ef8f00; } .banner.fail { background: #c62828; }
.banner .big { font-size: 20px; font-weight: 600; }
.banner code { background: rgba(255,255,255,0.22); color: #fff; font-size: 18px; }
.meta { font-size: 13px; color: #444; border-collapse: collapse; }
.meta td { padding: 2px 12px 2px 0; vertical-align: top; overflow-wrap: anywhere; }
details.small { margin: 6px 0; } details.small summary { cursor: pointer; }
code { background: #f3f4f6; padding: 0 3px; border-radius: 3px; font-size: 12.5px; }
ul.hints li { margin: 4px 0; }
svg { display: block; margin: 8px 0; }
svg .area { fill: #fbfcfd; stroke: #d0d7de; }
svg .grid { stroke: #e6e9ed; } svg .tick { stroke: #888; }
svg text { font-family: inherit; fill: #333; }
svg .t { font-size: 13px; font-weight: 600; } svg .yl { font-size: 10.5px; text-anchor: end; }
svg .xl { font-size: 10.5px; text-anchor: middle; } svg .al { font-size: 11px; text-anchor: middle; fill: #555; }
svg .lg { font-size: 11px; } svg .mk { font-size: 10.5px; }
.row2 { display: flex; gap: 10px; flex-wrap: wrap; }
.wide { overflow: auto; max-width: 100%; max-height: 85vh; border: 1px solid #eef0f2; }
table.taps { border-collapse: collapse; font-size: 12px; width: 100%; }
table.taps th { text-align: left; background: #f3f4f6; position: sticky; top: 0; padding: 4px 6px; }
table.taps td { padding: 2px 6px; border-bottom: 1px solid #eef0f2; white-space: nowrap; }
table.taps td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.fail td { background: #fdecea; } tr.warn td { background: #fff4e0; } tr.first td { font-weight: 600; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; color: #fff; font-size: 11px; }
p.budget.pass b { color: #2e7d32; } p.budget.warn b { color: #ef8f00; } p.budget.fail b { color: #c62828; }
.badge.pass { background: #2e7d32; } .badge.warn { background: #ef8f00; } .badge.fail { background: #c62828; }
.small { font-size: 12px; color: #555; }
)CSS";

}  // namespace

std::string render_html(const cmp::CompareResult& r) {
  std::string s;
  const std::string verdict(cmp::level_name(r.verdict));
  s += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  s += "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src "
       "'unsafe-inline'; img-src data:\">\n";
  s += fmt::format("<title>wb compare: {} — {} vs {}</title>\n", verdict_word(r), h(r.ref_path),
                   h(r.cand_path));
  s += fmt::format("<style>{}</style>\n</head>\n<body>\n", kCss);
  s += "<h1>Whisper fidelity workbench — comparison</h1>\n";
  s += fmt::format("<div class=\"banner {}\"><div class=\"big\">{}", verdict, verdict_word(r));
  if (r.first_divergence >= 0) {
    const auto& t = r.taps[static_cast<std::size_t>(r.first_divergence)];
    s += fmt::format(" — first divergent tap <code>{}</code>", h(t.name));
    if (!t.violations.empty()) s += " (" + h(t.violations.front().text()) + ")";
  } else {
    s += r.verdict == cmp::Level::warn ? " — within tolerance, with warnings"
                                       : " — within tolerance";
  }
  if (r.budget)
    s += fmt::format("</div><div class=\"big\">transcript budget: {}",
                     h(cmp::budget_summary(*r.budget)));
  s += fmt::format(
      "</div><div>exit status {} · {} taps compared · {} elements per side · {:.2f} "
      "s</div></div>\n",
      cmp::exit_status(r), r.taps.size(), r.elements, r.seconds);
  s += "<table class=\"meta\">\n";
  auto meta_row = [&](const char* k, const std::string& path, const DumpMeta& m) {
    s += fmt::format(
        "<tr><td>{}</td><td><code>{}</code></td><td>{} · {} · {} · model {} · audio {}</td></tr>\n",
        k, h(path), h(m.implementation), h(m.precision), h(m.device),
        h(m.model_sha256.substr(0, 12)), h(m.audio_name));
  };
  meta_row("reference", r.ref_path, r.ref_meta);
  meta_row("candidate", r.cand_path, r.cand_meta);
  if (!r.floor_path.empty()) {
    s += fmt::format(
        "<tr><td>noise floor</td><td><code>{}</code></td><td>float64 run of the "
        "reference</td></tr>\n",
        h(r.floor_path));
  }
  const auto& d = r.ref_meta.dims;
  s += fmt::format(
      "<tr><td>model</td><td colspan=\"2\">n_mels {} · n_audio_ctx {} · n_audio_state {} · "
      "n_audio_head {} · n_audio_layer {}</td></tr>\n",
      d.n_mels, d.n_audio_ctx, d.n_audio_state, d.n_audio_head, d.n_audio_layer);
  s += fmt::format("<tr><td>profile</td><td colspan=\"2\"><code>{}</code>{}</td></tr>\n",
                   h(r.profile_name),
                   r.map_origin.empty() ? "" : " · name map <code>" + h(r.map_origin) + "</code>");
  s += fmt::format("<tr><td>written</td><td colspan=\"2\">{} by wb {}</td></tr>\n</table>\n",
                   h(r.created), h(r.tool_version));

  s += "<h2>Diagnosis</h2>\n<ul class=\"hints\">\n";
  if (r.hints.empty()) s += "<li>No finding: every tap is within tolerance.</li>\n";
  for (const auto& x : r.hints) s += "<li>" + h(x) + "</li>\n";
  s += "</ul>\n";
  if (r.replay) {
    const auto& rp = *r.replay;
    s += fmt::format(
        "<h2>Replay ({})</h2>\n<p>{}</p>\n", h(rp.implementation),
        rp.culprit >= 0 ? "first stage with its own error beyond the profile: <b>" +
                              h(rp.stages[static_cast<std::size_t>(rp.culprit)].stage.name) + "</b>"
                        : std::string("every replayed stage's own error is within the profile"));
    s += "<table><tr><th>stage</th><th>own rel L2</th><th>limit</th><th>received</th><th>out</th>"
         "<th>amplification</th><th></th></tr>\n";
    auto n = [](double v) { return std::isfinite(v) ? fmt::format("{:.3g}", v) : std::string(); };
    for (const auto& st : rp.stages)
      s += fmt::format(
          "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"
          "\n",
          st.own_fails ? " class=\"fail\"" : "", h(st.stage.name), n(st.own), n(st.limit),
          n(st.received), n(st.out), n(st.amplification),
          st.refused.empty() ? (st.own_fails ? "own error" : "")
                             : h("not replayed: " + st.refused));
    s += "</table>\n";
  }
  if (r.budget) {
    const auto& a = *r.budget;
    s += fmt::format(
        "<h2>Transcript budget</h2>\n<p class=\"budget {}\"><b>{}</b> — budgets of <code>{}</code> "
        "({}); a tap's error as a share of its budget: harmless below {}, at risk up to {}, "
        "breaks transcripts above</p>\n",
        a.level == cmp::BudgetLevel::harmless  ? "pass"
        : a.level == cmp::BudgetLevel::at_risk ? "warn"
                                               : "fail",
        h(cmp::budget_summary(a)), h(a.path), h(a.corpus), cmp::kAtRiskShare, cmp::kBreaksShare);
    s += "<table>\n<tr><th>tap</th><th>rel "
         "L2</th><th>budget</th><th>share</th><th>verdict</th></tr>\n";
    for (const auto& t : a.taps)
      s += fmt::format(
          "<tr><td><code>{}</code></td><td>{}</td><td>{}{}</td><td>{}</td><td>{}</td></tr>\n",
          h(t.tap), num(t.error), num(t.budget), t.bound == cmp::BudgetBound::at_least ? "+" : "",
          num(t.share, 3), cmp::budget_level_name(cmp::budget_level(t.share)));
    s += "</table>\n";
  }
  if (r.impact) {
    const auto& x = *r.impact;
    s += fmt::format("<h2>Transcript impact</h2>\n<p>tokens agree at {}/{} positions ({:.1f}%)",
                     x.agree, x.positions, 100.0 * x.agreement());
    if (x.teacher_forced && !x.kl.empty())
      s += fmt::format(
          "; teacher-forced KL(ref&#8214;cand) per step: mean {:.3g}, max {:.3g} at "
          "step {}",
          x.kl_mean, x.kl_max, x.kl_max_step);
    if (x.first_diff >= 0) s += fmt::format("; first differing token at position {}", x.first_diff);
    if (x.cand_rep.flagged)
      s += fmt::format("; <b>the candidate loops</b>: a {}-token sequence {} times",
                       x.cand_rep.ngram, x.cand_rep.repeats);
    s += "</p>\n";
  }
  if (r.transcripts) {
    const auto& x = *r.transcripts;
    s += "<h2>Transcripts</h2>\n<p>";
    s += x.ref == x.cand ? std::string("identical")
                         : fmt::format(
                               "differ: candidate word error rate {:.1f}% against the reference "
                               "({} of {} words)",
                               100.0 * x.words.wer(), x.words.errors(), x.words.ref_words);
    s += fmt::format(
        "</p>\n<table class=\"meta\"><tr><td>reference</td><td>{}</td></tr>\n"
        "<tr><td>candidate</td><td>{}</td></tr></table>\n",
        h(x.ref), h(x.cand));
  }
  // A count, the names folded away: a full dump has hundreds of taps.
  auto list = [&](const std::vector<std::string>& v, const char* what) {
    if (v.empty()) return;
    s += fmt::format("<details class=\"small\"><summary>{}: {} tap{}</summary><p>", what, v.size(),
                     v.size() == 1 ? "" : "s");
    for (std::size_t i = 0; i < v.size(); ++i)
      s += (i ? ", " : "") + fmt::format("<code>{}</code>", h(v[i]));
    s += "</p></details>\n";
  };
  list(r.only_ref, "Only in the reference, not compared");
  list(r.only_cand, "Only in the candidate, not compared");
  list(r.missing_floor, "Not in the floor dump");

  if (!r.taps.empty()) {
    s += "<h2>Error per tap</h2>\n" + error_chart(r);
    s += "<h2>Both sides, per tap</h2>\n<div class=\"row2\">" + stats_chart(r, true) +
         stats_chart(r, false) + "</div>\n";
    const int focus = r.first_divergence >= 0 ? r.first_divergence : -1;
    const cmp::TapResult* ft = nullptr;
    if (focus >= 0) {
      ft = &r.taps[static_cast<std::size_t>(focus)];
    } else if (r.histogram) {
      for (const auto& t : r.taps)
        if (t.name == r.histogram->tap) ft = &t;
    }
    if (ft != nullptr) {
      s += fmt::format(
          "<h2>{} <code>{}</code></h2>\n",
          focus >= 0 ? "First divergent tap" : "Largest error (no tap diverges):", h(ft->name));
      if (!ft->m.frames.empty()) s += frame_chart(*ft);
      if (r.histogram) s += histogram_chart(*r.histogram);
      if (!ft->m.heads.empty()) {
        s += "<p class=\"small\">Per head (relative L2): ";
        for (std::size_t i = 0; i < ft->m.heads.size(); ++i)
          s += fmt::format("{}h{} {}", i ? " · " : "", i, num(ft->m.heads[i].rel_l2));
        s += "</p>\n";
      }
      if (!ft->m.worst.empty()) {
        s += "<p class=\"small\">Worst elements (index: reference → candidate): ";
        for (std::size_t i = 0; i < ft->m.worst.size() && i < 8; ++i) {
          const auto& w = ft->m.worst[i];
          std::string idx;
          for (std::size_t k = 0; k < w.coords.size(); ++k)
            idx += (k ? "," : "") + std::to_string(w.coords[k]);
          s += fmt::format("{}[{}]: {} → {}", i ? " · " : "", idx, num(w.ref, 6), num(w.cand, 6));
        }
        s += "</p>\n";
      }
    }
  }

  // The one wide box: it scrolls inside itself (both ways, so the header row stays in view), the
  // page never does.
  s += "<h2>All taps</h2>\n<div class=\"wide\"><table "
       "class=\"taps\">\n<tr><th>#</th><th>status</th><th>tap</th>"
       "<th>rel L2</th><th>cosine</th><th>max abs</th><th>SNR dB</th><th>mean ref → cand</th>"
       "<th>std ref → cand</th><th>NaN/Inf</th>";
  if (!r.floor_path.empty()) s += "<th>× floor</th>";
  s += "<th>attribution</th><th>why</th></tr>\n";
  for (std::size_t i = 0; i < r.taps.size(); ++i) {
    const auto& t = r.taps[i];
    const std::string st(cmp::level_name(t.status));
    s += fmt::format(
        "<tr class=\"{}{}\"><td class=\"num\">{}</td><td><span class=\"badge {}\">{}</span></td>"
        "<td><code>{}</code></td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
        "<td class=\"num\">{}</td><td class=\"num\">{}</td><td>{} → {}</td><td>{} → {}</td>"
        "<td class=\"num\">{}</td>",
        st, static_cast<int>(i) == r.first_divergence ? " first" : "", i, st, status_word(t.status),
        h(t.name), num(t.m.rel_l2), num(t.m.cosine, 9), num(t.m.max_abs), num(t.m.snr_db, 4),
        num(t.m.ref.mean), num(t.m.cand.mean), num(t.m.ref.std), num(t.m.cand.std),
        t.m.nan_mismatch + t.m.inf_mismatch > 0
            ? fmt::format("{}/{}", t.m.nan_mismatch, t.m.inf_mismatch)
            : std::string("—"));
    if (!r.floor_path.empty())
      s += fmt::format("<td class=\"num\">{}</td>", t.floor_x ? num(*t.floor_x) : "—");
    std::string attr = t.attribution;
    if (t.jump && !t.attribution.empty() && t.attribution != "input")
      attr += " (×" + num(*t.jump, 2) + ")";
    s += fmt::format("<td>{}</td><td>{}</td></tr>\n", h(attr),
                     t.violations.empty() ? "" : h(t.violations.front().text()));
  }
  s += "</table></div>\n";
  s += fmt::format(
      "<p class=\"small\">Relative L2 = ‖cand − ref‖ / ‖ref‖ over elements finite on both "
      "sides; NaN/Inf = mismatching NaN / Inf-sign counts. Report schema {}.</p>\n",
      kReportSchema);
  s += "</body>\n</html>\n";
  return s;
}

}  // namespace wb::rep
