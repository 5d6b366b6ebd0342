// Diagnosis hints: plain words for the patterns porting bugs leave in the metrics.
//   NaN/Inf on one side             -> overflow or invalid arithmetic
//   mel differs                      -> the front end (log-mel, STFT), checked first
//   mean offset, high correlation    -> a missing or extra bias, a skipped normalization
//   std ratio != 1, high correlation -> a scale (attention scale, norm gain)
//   the error along the reference    -> a pure scale "scaled by k" / a pure shift "shifted by d"
//   low cosine                       -> structural (wrong op, layout, padding, missing term)
//   small noise-like error           -> precision (float16, epsilon, GELU approximation)
//   error in the edge frames         -> padding (conv padding, STFT reflect padding)
//   one head carries the error       -> head split / layout
#include "diagnose.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace wb::cmp {

namespace {

double median(std::vector<double> v) {
  if (v.empty()) return 0.0;
  const auto mid = v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

// Error concentrated in a few frames at the start or end of the window.
std::string frame_hint(const TapResult& t) {
  const auto& f = t.m.frames;
  if (f.size() < 8) return {};
  std::vector<double> e;
  e.reserve(f.size());
  for (const auto& s : f) e.push_back(std::isfinite(s.rel_l2) ? s.rel_l2 : 0.0);
  const double med = median(e);
  const double top = *std::max_element(e.begin(), e.end());
  if (!(top > 0)) return {};
  const std::size_t n = e.size();
  const std::size_t edge = std::max<std::size_t>(2, n / 100);
  double edge_max = 0.0, inner_max = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool at_edge = i < edge || i >= n - edge;
    (at_edge ? edge_max : inner_max) = std::max(at_edge ? edge_max : inner_max, e[i]);
  }
  if (edge_max > 10 * std::max(inner_max, 1e-300)) {
    std::vector<std::size_t> where;
    for (std::size_t i = 0; i < n; ++i)
      if ((i < edge || i >= n - edge) && e[i] > inner_max * 10) where.push_back(i);
    std::string list;
    for (std::size_t k = 0; k < where.size() && k < 6; ++k)
      list += (k ? ", " : "") + std::to_string(where[k]);
    if (where.size() > 6) list += ", ...";
    return fmt::format(
        "error sits in the edge frames ({}) of {} and nowhere else (inner frames at most {:.2g}): "
        "padding — conv padding, STFT reflect padding or the frame count",
        list, n, inner_max);
  }
  // The padded tail of a 30 s window vs the speech part: report which half holds the error.
  double first = 0.0, second = 0.0;
  for (std::size_t i = 0; i < n; ++i) (i < n / 2 ? first : second) += e[i] * e[i];
  if (second > 20 * first && med > 0) {
    return "error grows toward the end of the window (the padded tail of the 30 s input): "
           "look at how silence/padding is handled (log floor, clamping, masking)";
  }
  if (first > 20 * second && med > 0) {
    return "error sits in the first half of the window (the speech), not in the padded tail";
  }
  return {};
}

std::string head_hint(const TapResult& t) {
  const auto& h = t.m.heads;
  if (h.size() < 2) return {};
  std::vector<double> e;
  for (const auto& s : h) e.push_back(s.rel_l2);
  const double med = median(e);
  const auto it = std::max_element(e.begin(), e.end());
  if (*it > 10 * std::max(med, 1e-300) && *it > 1e-4) {
    return fmt::format(
        "head {} of {} carries the error (rel L2 {:.3g}, median head {:.3g}): "
        "head split or layout of the projection",
        it - e.begin(), e.size(), *it, med);
  }
  return {};
}

// What usually breaks at a tap whose error is its own (its inputs agree), by what the tap
// observes (the registry's facts, not its name).
std::string where_hint(const TapSpec& t) {
  switch (t.kind) {
    case TapKind::attention:
      return "q, k and v agree but the attention output does not: the attention itself — the "
             "d_head^-0.25 scale on q and k (missing or applied twice), softmax, masking, head "
             "split/merge, or the output projection";
    case TapKind::norm:
      return "a layer norm: epsilon (1e-5), float32 statistics (not float16), gain and bias, or "
             "the norm skipped";
    case TapKind::activation:
      return "the GELU: exact erf vs the tanh approximation";
    case TapKind::conv:
      return "a stem convolution: padding (1), stride (1 then 2), kernel layout, or the GELU "
             "after it (erf vs tanh)";
    case TapKind::embedding:
      if (t.side == TapSide::encoder)
        return "the positional embedding: missing, misaligned, or sin/cos order "
               "(concat(sin, cos))";
      return {};
    case TapKind::projection:
      return "a linear projection: weight layout (transposed?), bias (key has none), or GEMM "
             "precision";
    default:
      return {};
  }
}

// How much of the error an exact scale or an exact shift explains. The error energy per element
// E = rel_l2^2 * <a^2> splits, for b = s*a + rest with s = <a,b>/<a,a> the least-squares factor,
// into (s-1)^2 <a^2> and the part orthogonal to a, rho^2 (1 - cosine^2) <a^2> (rho = ||b||/||a||);
// for b = a + d + rest with d the mean offset, into d^2 and the variance of b - a. A tap is a
// pure scale (shift) when that one component carries at least kPure of E: the cosine (centred
// cosine, the correlation) is then 1 to within the error's remainder, whatever the factor, so
// 1.005x and 1.1x are classified alike and no magnitude threshold decides.
struct PureFit {
  bool scale = false, shift = false;
  double factor = 1.0;  // s
  double offset = 0.0;  // d = mean(b) - mean(a)
};

PureFit pure_fit(const DiffMetrics& m) {
  constexpr double kPure = 0.9;
  PureFit f;
  const SideStats& a = m.ref;
  const SideStats& b = m.cand;
  if (m.compared == 0 || m.compared != a.finite || m.compared != b.finite) return f;
  if (!(m.rel_l2 > 0) || !std::isfinite(m.rel_l2)) return f;
  const double ms_a = a.std * a.std + a.mean * a.mean;  // <a^2>
  const double ms_b = b.std * b.std + b.mean * b.mean;
  if (!(ms_a > 0)) return f;
  const double energy = m.rel_l2 * m.rel_l2 * ms_a;  // E, per element
  const double rho = std::sqrt(ms_b / ms_a);
  f.factor = rho * m.cosine;
  f.offset = b.mean - a.mean;
  const double along = (f.factor - 1) * (f.factor - 1) * ms_a;
  const double across = rho * rho * std::max(0.0, 1 - m.cosine * m.cosine) * ms_a;
  f.scale = along >= kPure * (along + across);
  f.shift = !f.scale && f.offset * f.offset >= kPure * energy;
  return f;
}

std::vector<std::string> tap_hints(const TapResult& t, const ToleranceProfile& p) {
  std::vector<std::string> out;
  const DiffMetrics& m = t.m;
  const SideStats& a = m.ref;
  const SideStats& b = m.cand;
  const int64_t bad_a = a.nan + a.pos_inf + a.neg_inf;
  const int64_t bad_b = b.nan + b.pos_inf + b.neg_inf;
  if (m.nan_mismatch > 0 || m.inf_mismatch > 0) {
    const bool cand_side = bad_b > bad_a;
    out.push_back(fmt::format(
        "overflow or invalid arithmetic: {} has {} NaN, {} +Inf, {} -Inf where the {} has {} / "
        "{} / {} ({} NaN and {} Inf-sign mismatches) — float16 range, a division by zero, log of 0",
        cand_side ? "the candidate" : "the reference", cand_side ? b.nan : a.nan,
        cand_side ? b.pos_inf : a.pos_inf, cand_side ? b.neg_inf : a.neg_inf,
        cand_side ? "reference" : "candidate", cand_side ? a.nan : b.nan,
        cand_side ? a.pos_inf : b.pos_inf, cand_side ? a.neg_inf : b.neg_inf, m.nan_mismatch,
        m.inf_mismatch));
  } else if (bad_a > 0) {
    out.push_back(
        fmt::format("both sides hold the same {} non-finite values: the reference "
                    "overflows too (input or weights out of range)",
                    bad_a));
  }
  if (t.spec->kind == TapKind::features && t.status != Level::pass) {
    out.push_back(
        "front end: the log-mel input already differs, so every later tap inherits it — check "
        "log10(max(x, 1e-10)) vs a dB scale (10*log10, ref=max), the clamp at max-8 and (x+4)/4, "
        "the periodic Hann window, centered STFT with reflect padding, dropping the last frame, "
        "Slaney mel filters");
  }
  const double corr = m.pearson;
  const double sa = a.std > 0 ? a.std : 1e-300;
  const double offset = std::fabs(b.mean - a.mean) / sa;  // in reference std units
  const double ratio = b.std / sa;
  const bool high_corr = corr >= 0.99;
  const bool has_scale = std::fabs(ratio - 1) > 0.02;
  // A pure scale b = k*a moves the mean too (to k*mean_a): only what the scale does not explain
  // counts as an offset.
  const double residual_offset = has_scale ? std::fabs(b.mean - ratio * a.mean) / sa : offset;
  const bool has_offset = residual_offset > 0.05 && std::fabs(b.mean - a.mean) > 1e-6;
  const std::string frames = t.status != Level::pass ? frame_hint(t) : std::string();
  const bool at_edges = frames.find("edge frames") != std::string::npos;
  const PureFit pure = pure_fit(m);
  const bool pure_case = t.spec->kind != TapKind::features && (pure.scale || pure.shift);
  if (t.spec->kind == TapKind::features && high_corr && (has_offset || has_scale)) {
    out.push_back(fmt::format(
        "offset/scale with the shape intact (mean {:.4g} vs {:.4g}, std {:.4g} vs {:.4g}): "
        "a different log scaling — a dB spectrogram (10*log10, ref=max) instead of log10, or "
        "the clamp at max-8 and (x+4)/4 missing",
        b.mean, a.mean, b.std, a.std));
  } else if (pure_case && pure.scale) {
    out.push_back(fmt::format(
        "scaled by {:.4g}: the candidate is the reference times {:.4g} (1 - cosine {:.2g}, the "
        "direction unchanged) — a scale applied twice or missing, a normalisation (layer-norm "
        "gain, a 1/sqrt(d) or 1/N), or the attention scale's d_head^-0.25 split over q and k "
        "(missing on one, or applied twice)",
        pure.factor, pure.factor, 1.0 - m.cosine));
  } else if (pure_case && pure.shift) {
    out.push_back(fmt::format(
        "shifted by {:.4g}: the candidate is the reference plus a constant offset of {:.4g} "
        "({:.2g} reference std; the centred tensors' cosine 1 - {:.2g}) — a missing or extra "
        "bias, a mean not subtracted (a skipped normalisation), a padding or fill value",
        pure.offset, pure.offset, offset, 1.0 - corr));
  } else if (high_corr && has_offset && has_scale) {
    out.push_back(fmt::format(
        "offset and scale with the shape intact (mean {:.4g} vs {:.4g}, std {:.4g} vs {:.4g}, "
        "correlation {:.5f}): a normalization skipped or added (layer norm missing?)",
        b.mean, a.mean, b.std, a.std, corr));
  } else if (high_corr && has_offset) {
    out.push_back(fmt::format(
        "mean offset with the shape intact (candidate mean {:.4g} vs reference {:.4g}, "
        "{:.2g} reference std; correlation {:.5f}): a missing or extra bias, or a skipped "
        "normalization",
        b.mean, a.mean, offset, corr));
  } else if (high_corr && has_scale) {
    out.push_back(fmt::format(
        "scale: candidate std / reference std = {:.4g} with correlation {:.5f}: a constant "
        "factor — attention scale (d_head^-0.25 on q and k), norm gain, a missing normalization",
        ratio, corr));
  }
  if (m.compared > 0 && m.cosine < 0.9) {
    out.push_back(fmt::format(
        "structural: cosine {:.4f} — not a precision issue: wrong op, transposed or permuted "
        "layout, wrong padding, a missing term",
        m.cosine));
  } else if (t.status != Level::pass && m.cosine >= 0.9999 && m.rel_l2 < 2e-2 && !has_offset &&
             !has_scale && !pure_case && !at_edges && m.nan_mismatch == 0 && m.inf_mismatch == 0) {
    out.push_back(fmt::format(
        "small, noise-like error (rel L2 {:.3g}, 1 - cosine {:.2g}) spread over the tensor: "
        "precision or a near-identical formula — float16 arithmetic, a different epsilon, "
        "tanh vs erf GELU",
        m.rel_l2, 1.0 - m.cosine));
  }
  if (m.compared > 0 && m.cosine >= 0.9 && m.cosine < 0.9999 && !high_corr) {
    out.push_back(fmt::format(
        "cosine {:.5f}: the shape is bent, not shifted or scaled — a changed computation inside "
        "the op rather than round-off",
        m.cosine));
  }
  if (t.attribution == "local" && t.status != Level::pass) {
    if (std::string w = where_hint(*t.spec); !w.empty()) out.push_back(w);
  }
  if (!frames.empty()) out.push_back(frames);
  if (std::string h = head_hint(t); !h.empty() && t.status != Level::pass) out.push_back(h);
  if (t.attribution == "inherited" && t.jump) {
    out.push_back(
        fmt::format("inherited: only {:.2g}x the error of {} feeding it (local when "
                    ">= {:g}x); look upstream",
                    *t.jump, t.upstream, p.local_ratio()));
  }
  return out;
}

// The note on a tap that is the reference rounded to a narrower type (compare.cpp's judge).
std::string cast_note(const TapResult& t) {
  return fmt::format(
      "the reference's values rounded to {}: an input cast, not a front-end bug ({}; judged "
      "against that rounding: rel L2 {:.3g}, the rel_l2 limits widened by {:.3g})",
      t.rounded_to,
      t.rounded_exactly
          ? std::string("every element exactly")
          : fmt::format("every element within one {} unit in the last place", t.rounded_to),
      t.m.rel_l2, t.cast_rounding);
}

}  // namespace

void diagnose(CompareResult& r, const ModelDims& d, const ToleranceProfile& p) {
  (void)d;
  for (TapResult& t : r.taps) {
    if (t.status != Level::pass || t.m.nan_mismatch > 0 || t.m.inf_mismatch > 0) {
      t.hints = tap_hints(t, p);
    }
    if (!t.rounded_to.empty()) t.hints.insert(t.hints.begin(), cast_note(t));
  }
  std::vector<std::string>& h = r.hints;
  if (r.taps.empty()) {
    h.push_back("no tap is present in both dumps: nothing was compared");
    return;
  }

  // The front end first: when mel differs nothing downstream can be trusted.
  if (r.taps.front().spec->kind == TapKind::features && r.taps.front().status == Level::fail) {
    h.push_back("mel differs: fix the front end first — every encoder tap inherits its error");
  }
  if (r.first_divergence >= 0) {
    const TapResult& t = r.taps[static_cast<std::size_t>(r.first_divergence)];
    std::string where = fmt::format("first divergence at {}", t.name);
    if (!t.violations.empty()) where += " (" + t.violations.front().text() + ")";
    const bool nonfinite = t.m.nan_mismatch > 0 || t.m.inf_mismatch > 0;
    if (t.attribution == "local" && nonfinite) {
      where += ": NaN/Inf appear here first";
    } else if (t.attribution == "local" && t.jump && std::isfinite(*t.jump)) {
      where += fmt::format(": its own error, {:.3g}x that of {}", *t.jump, t.upstream);
    } else if (t.attribution == "local" && t.jump) {
      where += fmt::format(": its own error, {} upstream is exact", t.upstream);
    } else if (t.attribution == "inherited") {
      where += fmt::format(": mostly inherited from {} ({:.2g}x)", t.upstream, *t.jump);
    }
    h.push_back(where);
    for (const std::string& s : t.hints) h.push_back(t.name + ": " + s);
  }
  if (r.changepoint >= 0 && r.changepoint != r.first_divergence) {
    const TapResult& c = r.taps[static_cast<std::size_t>(r.changepoint)];
    h.push_back(fmt::format("error jumps {:.3g}x above every earlier tap at {} (rel L2 {:.3g}){}",
                            r.changepoint_jump, c.name, c.m.rel_l2,
                            r.first_divergence >= 0 && r.changepoint > r.first_divergence
                                ? ": a second problem downstream of the first divergence?"
                                : ": below the failure threshold but worth a look"));
  }
  int64_t nonfinite_taps = 0;
  for (const TapResult& t : r.taps)
    if (t.m.nan_mismatch > 0 || t.m.inf_mismatch > 0) ++nonfinite_taps;
  if (nonfinite_taps > 0) {
    h.push_back(fmt::format("{} tap(s) with NaN/Inf mismatches", nonfinite_taps));
  }
  if (r.first_divergence < 0 && r.first_warning >= 0) {
    const TapResult& t = r.taps[static_cast<std::size_t>(r.first_warning)];
    h.push_back(fmt::format("within tolerance; first warning at {} ({})", t.name,
                            t.violations.empty() ? "" : t.violations.front().text()));
  }
  if (!r.only_ref.empty() || !r.only_cand.empty()) {
    h.push_back(
        fmt::format("{} tap(s) only in the reference, {} only in the candidate: not "
                    "compared",
                    r.only_ref.size(), r.only_cand.size()));
  }
  for (const TapResult& t : r.taps)
    if (!t.rounded_to.empty()) h.push_back(t.name + ": " + cast_note(t));
}

}  // namespace wb::cmp
