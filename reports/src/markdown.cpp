// Markdown report sized for a pull-request comment: verdict, first divergence, hints, the worst
// taps first (at most max_rows), one-sided taps. The full picture is in the JSON/HTML reports.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <cmath>

#include "report_util.h"
#include "wb/reports/reports.h"

namespace wb::rep {

namespace {

constexpr std::array<NameEntry<cmp::Level>, 3> kLevelIcons{{
    {cmp::Level::pass, "✅"},
    {cmp::Level::warn, "⚠️"},
    {cmp::Level::fail, "❌"},
}};
std::string icon(cmp::Level l) { return std::string(name_of(kLevelIcons, l)); }

std::string side(const std::string& path, const DumpMeta& m) {
  return fmt::format("`{}` ({}, {})", path, md_escape(m.implementation), md_escape(m.precision));
}

}  // namespace

// Replay: each stage's own error (on the reference's input), what it received, its gain.
std::string replay_markdown(const cmp::ReplayResult& rp) {
  std::string s = fmt::format(
      "**Replay** ({}): {}\n\n| stage | own rel L2 | limit | received | out | amplification | |\n"
      "|---|---:|---:|---:|---:|---:|---|\n",
      rp.implementation,
      rp.culprit >= 0 ? fmt::format("the first stage with its own error beyond the profile is "
                                    "**{}**",
                                    rp.stages[static_cast<std::size_t>(rp.culprit)].stage.name)
                      : std::string("every replayed stage's own error is within the profile"));
  for (const auto& st : rp.stages) {
    if (!st.refused.empty()) {
      s += fmt::format("| {} | — | | | | | not replayed: {} |\n", st.stage.name,
                       md_escape(st.refused));
      continue;
    }
    s += fmt::format("| {} | {} | {} | {} | {} | {} | {} |\n", st.stage.name, num(st.own),
                     num(st.limit), num(st.received), num(st.out), num(st.amplification, 3),
                     st.own_fails ? "❌ own error" : "");
  }
  return s + "\n";
}

std::string top5_md(const std::vector<cmp::TokenProb>& t) {
  std::string s;
  for (const auto& x : t) s += fmt::format("{}{} ({:.3f})", s.empty() ? "" : ", ", x.token, x.p);
  return s;
}

// Does the drift matter for the transcript: agreement, loops, first difference, forced KL.
std::string impact_markdown(const cmp::TranscriptImpact& x) {
  std::string s = fmt::format("**Transcript impact:** tokens agree at {}/{} positions ({:.1f}%)",
                              x.agree, x.positions, 100.0 * x.agreement());
  if (x.teacher_forced && !x.kl.empty())
    s += fmt::format("; teacher-forced KL(ref‖cand) per step: mean {}, max {} at step {}",
                     num(x.kl_mean), num(x.kl_max), x.kl_max_step);
  s += "\n\n";
  if (x.first_diff >= 0) {
    s += fmt::format("- first differing token at position {}", x.first_diff);
    if (!x.ref_top5.empty())
      s += fmt::format(": reference top-5 {}; candidate top-5 {}", top5_md(x.ref_top5),
                       top5_md(x.cand_top5));
    s += "\n";
  }
  auto rep = [](const cmp::Repetition& r) {
    return r.flagged ? fmt::format("**loops**: a {}-token sequence {} times from token {}", r.ngram,
                                   r.repeats, r.start)
                     : std::string("no loop");
  };
  s += "- repetition: reference " + rep(x.ref_rep) + "; candidate " + rep(x.cand_rep) + "\n";
  if (x.cand_vs_expected)
    s += fmt::format("- against the expected text: reference WER {:.1f}%, candidate WER {:.1f}%\n",
                     100.0 * x.ref_vs_expected->wer(), 100.0 * x.cand_vs_expected->wer());
  return s + "\n";
}

// The budget verdict and each budgeted tap's share (docs/budget.md).
std::string budget_markdown(const cmp::BudgetAssessment& a) {
  std::string s =
      fmt::format("**Transcript budget:** {} — budgets of `{}` ({})\n\n",
                  md_escape(cmp::budget_summary(a)), md_escape(a.path), md_escape(a.corpus));
  s += "| tap | rel L2 | budget | share | verdict |\n| --- | --: | --: | --: | --- |\n";
  for (const auto& t : a.taps)
    s += fmt::format("| `{}` | {} | {}{} | {} | {} |\n", t.tap, num(t.error), num(t.budget),
                     t.bound == cmp::BudgetBound::at_least ? "+" : "", num(t.share, 3),
                     cmp::budget_level_name(cmp::budget_level(t.share)));
  if (!a.not_dumped.empty())
    s += fmt::format("\nbudgeted but not in both dumps: {}\n",
                     md_escape(fmt::format("{}", fmt::join(a.not_dumped, ", "))));
  return s + "\n";
}

std::string render_markdown(const cmp::CompareResult& r, int max_rows) {
  std::string s;
  std::string head = fmt::format("### {} wb compare: {}", icon(r.verdict), verdict_word(r));
  if (r.first_divergence >= 0) {
    head += fmt::format(" — first divergence at `{}`",
                        r.taps[static_cast<std::size_t>(r.first_divergence)].name);
  } else if (r.verdict == cmp::Level::warn) {
    head += " with warnings";
  } else {
    head += " — within tolerance";
  }
  s += head + "\n\n";
  if (r.budget)
    s += fmt::format(
        "**Transcript budget: {}**{}\n\n", cmp::budget_level_name(r.budget->level),
        r.gate == cmp::Gate::budget ? " (the exit status follows it: --gate budget)" : "");
  s += fmt::format("reference {} · candidate {} · profile `{}`{} · {} taps in {:.2f} s\n\n",
                   side(r.ref_path, r.ref_meta), side(r.cand_path, r.cand_meta),
                   md_escape(r.profile_name),
                   r.floor_path.empty() ? "" : fmt::format(" · floor `{}`", r.floor_path),
                   r.taps.size(), r.seconds);
  if (r.first_divergence >= 0) {
    const auto& t = r.taps[static_cast<std::size_t>(r.first_divergence)];
    s += fmt::format("**First divergent tap:** `{}`", t.name);
    if (!t.violations.empty()) s += " — " + md_escape(t.violations.front().text());
    if (!t.attribution.empty()) {
      s += fmt::format(" · {}", t.attribution == "local"   ? "its own error"
                                : t.attribution == "input" ? "input (front end)"
                                                           : "mostly inherited");
      if (t.jump && !t.upstream.empty()) {
        s += fmt::format(" ({}x `{}`)", num(*t.jump, 2), t.upstream);
      }
    }
    s += "\n\n";
  }
  if (r.changepoint >= 0 && r.changepoint != r.first_divergence) {
    s += fmt::format("**Changepoint:** `{}` — error {}x above every earlier tap\n\n",
                     r.taps[static_cast<std::size_t>(r.changepoint)].name,
                     num(r.changepoint_jump, 2));
  }
  if (!r.hints.empty()) {
    s += "**Diagnosis**\n\n";
    for (std::size_t i = 0; i < r.hints.size() && i < 8; ++i)
      s += "- " + md_escape(r.hints[i]) + "\n";
    s += "\n";
  }
  if (r.budget) s += budget_markdown(*r.budget);
  if (r.impact) s += impact_markdown(*r.impact);
  if (r.replay) s += replay_markdown(*r.replay);
  if (r.transcripts) {
    const auto& x = *r.transcripts;
    s += x.ref == x.cand ? "**Transcripts:** identical\n\n"
                         : fmt::format(
                               "**Transcripts:** differ, candidate word error rate {:.1f}% against "
                               "the reference "
                               "({} of {} words)\n\n",
                               100.0 * x.words.wer(), x.words.errors(), x.words.ref_words);
    s += "- reference: " + md_escape(x.ref) + "\n- candidate: " + md_escape(x.cand) + "\n\n";
  }
  if (!r.taps.empty()) {
    s += "| | tap | rel L2 | cosine | max abs | mean ref → cand | std ref → cand | why |\n";
    s += "|---|---|---:|---:|---:|---|---|---|\n";
    const auto order = worst_first(r);
    // Every tap that warns or fails (up to max_rows), then at most 3 passing ones for context.
    std::size_t flagged = 0;
    for (const auto& t : r.taps) flagged += t.status != cmp::Level::pass ? 1 : 0;
    const std::size_t rows =
        std::min<std::size_t>({order.size(), static_cast<std::size_t>(max_rows), flagged + 3});
    for (std::size_t k = 0; k < rows; ++k) {
      const auto& t = r.taps[order[k]];
      std::string why = t.violations.empty() ? "" : md_escape(t.violations.front().text());
      if (t.m.nan_mismatch + t.m.inf_mismatch > 0 && t.violations.empty()) {
        why = fmt::format("{} NaN / {} Inf mismatches", t.m.nan_mismatch, t.m.inf_mismatch);
      }
      s += fmt::format("| {} | `{}` | {} | {} | {} | {} → {} | {} → {} | {} |\n", icon(t.status),
                       t.name, num(t.m.rel_l2), num(t.m.cosine, 9), num(t.m.max_abs),
                       num(t.m.ref.mean), num(t.m.cand.mean), num(t.m.ref.std), num(t.m.cand.std),
                       why);
    }
    if (order.size() > rows) {
      s += fmt::format("\n{} more taps in report.json / report.html.\n", order.size() - rows);
    }
    s += "\n";
  }
  auto list = [&](const std::vector<std::string>& v, const char* what) {
    if (v.empty()) return;
    s += fmt::format("{} ({}): ", what, v.size());
    for (std::size_t i = 0; i < v.size() && i < 10; ++i)
      s += (i ? ", " : "") + fmt::format("`{}`", v[i]);
    if (v.size() > 10) s += ", …";
    s += "\n\n";
  };
  list(r.only_ref, "Only in the reference, not compared");
  list(r.only_cand, "Only in the candidate, not compared");
  list(r.missing_floor, "Not in the floor dump");
  return s;
}

}  // namespace wb::rep
