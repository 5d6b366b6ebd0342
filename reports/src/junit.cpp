// JUnit XML: one test case per compared tap (failure = tolerance exceeded; warnings in
// system-out), one skipped case per tap present in one dump only.
#include <fmt/format.h>

#include "report_util.h"
#include "wb/reports/reports.h"

namespace wb::rep {

namespace {

// "encoder.blocks.0.attn_ln" -> classname "compare.encoder.blocks.0", name "attn_ln": the
// registry's group and leaf (t: the tap's registry facts, null for a tap outside the registry).
std::pair<std::string, std::string> split(const std::string& tap, const TapSpec* t) {
  if (t == nullptr) return {"compare", tap};
  return {t->group.empty() ? "compare" : "compare." + t->group, t->leaf};
}

std::string metrics_line(const cmp::TapResult& t) {
  return fmt::format(
      "rel_l2={} max_abs={} mean_abs={} cosine={} snr_db={} share_beyond={} nan_mismatch={} "
      "inf_mismatch={} ref_mean={} ref_std={} cand_mean={} cand_std={}{}",
      num(t.m.rel_l2), num(t.m.max_abs), num(t.m.mean_abs), num(t.m.cosine, 8), num(t.m.snr_db),
      num(t.m.share_beyond), t.m.nan_mismatch, t.m.inf_mismatch, num(t.m.ref.mean),
      num(t.m.ref.std), num(t.m.cand.mean), num(t.m.cand.std),
      t.floor_x ? fmt::format(" floor_x={}", num(*t.floor_x)) : "");
}

}  // namespace

std::string render_junit(const cmp::CompareResult& r) {
  int failures = 0;
  for (const auto& t : r.taps) failures += t.status == cmp::Level::fail ? 1 : 0;
  std::size_t skipped = r.only_ref.size() + r.only_cand.size();
  std::size_t tests = r.taps.size() + skipped;
  if (r.replay)
    for (const auto& st : r.replay->stages) {
      ++tests;
      if (!st.refused.empty())
        ++skipped;
      else if (st.own_fails)
        ++failures;
    }
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  s += fmt::format(
      "<testsuites name=\"wb compare\" tests=\"{}\" failures=\"{}\" errors=\"0\" "
      "skipped=\"{}\" time=\"{:.3f}\">\n",
      tests, failures, skipped, r.seconds);
  s += fmt::format(
      "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" "
      "time=\"{:.3f}\" timestamp=\"{}\">\n",
      xml_escape(fmt::format("compare {} vs {}", r.ref_path, r.cand_path)), tests, failures,
      skipped, r.seconds, xml_escape(r.created));
  s += "    <properties>\n";
  auto prop = [&](const char* k, const std::string& v) {
    s += fmt::format("      <property name=\"{}\" value=\"{}\"/>\n", k, xml_escape(v));
  };
  prop("reference", r.ref_path);
  prop("candidate", r.cand_path);
  prop("profile", r.profile_name);
  prop("verdict", cmp::verdict_name(r));
  prop("storage_limited", r.storage_limited ? "true" : "false");
  if (r.impact) {
    prop("token_agreement", fmt::format("{:.4f}", r.impact->agreement()));
    prop("candidate_loops", r.impact->cand_rep.flagged ? "true" : "false");
    if (!r.impact->kl.empty()) {
      prop("teacher_forced_kl_mean", fmt::format("{:.6g}", r.impact->kl_mean));
      prop("teacher_forced_kl_max", fmt::format("{:.6g}", r.impact->kl_max));
    }
  }
  if (r.budget) {
    prop("budget_verdict", std::string(cmp::budget_level_name(r.budget->level)));
    prop("budget_max_share", fmt::format("{:.6g}", r.budget->max_share));
  }
  if (r.first_divergence >= 0) {
    prop("first_divergence", r.taps[static_cast<std::size_t>(r.first_divergence)].name);
  }
  s += "    </properties>\n";
  for (const auto& t : r.taps) {
    const auto [cls, name] = split(t.name, t.spec);
    s += fmt::format("    <testcase classname=\"{}\" name=\"{}\" time=\"0\">\n", xml_escape(cls),
                     xml_escape(name));
    if (t.status == cmp::Level::fail) {
      std::string body;
      for (const auto& v : t.violations)
        body += std::string(cmp::level_name(v.level)) + ": " + v.text() + "\n";
      for (const auto& h : t.hints) body += "hint: " + h + "\n";
      s +=
          fmt::format("      <failure type=\"tolerance\" message=\"{}\">{}</failure>\n",
                      xml_escape(t.violations.front().text() + " (profile " + r.profile_name + ")"),
                      xml_escape(body));
    }
    std::string out = metrics_line(t);
    for (const auto& v : t.violations)
      if (v.level == cmp::Level::warn) out += "\nwarning: " + v.text();
    s += fmt::format("      <system-out>{}</system-out>\n", xml_escape(out));
    s += "    </testcase>\n";
  }
  auto one_sided = [&](const std::vector<std::string>& v, const char* msg) {
    for (const auto& n : v) {
      const auto [cls, name] = split(n, TapRegistry::of(r.ref_meta.dims).find(n));
      s += fmt::format(
          "    <testcase classname=\"{}\" name=\"{}\" time=\"0\">\n      <skipped "
          "message=\"{}\"/>\n    </testcase>\n",
          xml_escape(cls), xml_escape(name), msg);
    }
  };
  if (r.replay)
    for (const auto& st : r.replay->stages) {
      s += fmt::format("    <testcase classname=\"replay\" name=\"{}\" time=\"0\">\n",
                       xml_escape(st.stage.name));
      if (!st.refused.empty())
        s += fmt::format("      <skipped message=\"{}\"/>\n", xml_escape(st.refused));
      else if (st.own_fails)
        s += fmt::format(
            "      <failure type=\"replay\" message=\"own error rel_l2 {:.3g} > {:.3g}\"/>\n",
            st.own, st.limit);
      else
        s += fmt::format("      <system-out>own rel_l2 {:.3g}, received {:.3g}</system-out>\n",
                         st.own, st.received);
      s += "    </testcase>\n";
    }
  one_sided(r.only_ref, "only in the reference dump");
  one_sided(r.only_cand, "only in the candidate dump");
  s += "  </testsuite>\n</testsuites>\n";
  return s;
}

}  // namespace wb::rep
