// JSON report, schema "whisper-fidelity-report/1" (docs/report-json.md). Non-finite numbers are
// written as the strings "inf", "-inf" and "nan" (JSON has no literal for them).
#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "report_util.h"
#include "wb/reports/reports.h"

namespace wb::rep {

namespace {

using nlohmann::json;

json jnum(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return x;
}
// Compact numbers for long per-frame arrays (4 significant digits).
json jshort(double x) {
  if (!std::isfinite(x)) return jnum(x);
  return std::stod(fmt::format("{:.4g}", x));
}

json side_meta(const std::string& path, const DumpMeta& m) {
  return {{"path", path},
          {"implementation", m.implementation},
          {"precision", m.precision},
          {"device", m.device},
          {"model_sha256", m.model_sha256},
          {"audio_name", m.audio_name},
          {"audio_sha256", m.audio_sha256},
          {"tool_version", m.tool_version},
          {"created", m.created},
          {"threads", m.threads},
          {"run_info", m.run_info}};
}

json side_stats(const cmp::SideStats& s) {
  return {{"mean", jnum(s.mean)}, {"std", jnum(s.std)},  {"min", jnum(s.min)},
          {"max", jnum(s.max)},   {"finite", s.finite},  {"nan", s.nan},
          {"pos_inf", s.pos_inf}, {"neg_inf", s.neg_inf}};
}

json metrics(const cmp::DiffMetrics& m) {
  return {{"numel", m.numel},
          {"compared", m.compared},
          {"rel_l2", jnum(m.rel_l2)},
          {"max_abs", jnum(m.max_abs)},
          {"mean_abs", jnum(m.mean_abs)},
          {"cosine", jnum(m.cosine)},
          {"pearson", jnum(m.pearson)},
          {"snr_db", jnum(m.snr_db)},
          {"beyond", m.beyond},
          {"share_beyond", jnum(m.share_beyond)},
          {"nan_mismatch", m.nan_mismatch},
          {"inf_mismatch", m.inf_mismatch}};
}

json violation(const cmp::Violation& v) {
  json j = {{"level", std::string(cmp::level_name(v.level))},
            {"metric", v.metric},
            {"value", jnum(v.value)},
            {"limit", jnum(v.limit)},
            {"op", v.op},
            {"text", v.text()}};
  if (v.floor) j["floor_multiple"] = v.floor_k;
  if (v.capped) j["ceiling_capped"] = true;  // k x floor exceeded the ceiling; limit is the ceiling
  return j;
}

json opt_num(const std::optional<double>& x) { return x ? jnum(*x) : json(nullptr); }

}  // namespace

std::string render_json(const cmp::CompareResult& r) {
  json j;
  j["schema"] = kReportSchema;
  j["tool_version"] = r.tool_version;
  j["created"] = r.created;
  j["verdict"] = cmp::verdict_name(r);
  j["storage_limited"] = r.storage_limited;
  j["exit_status"] = cmp::exit_status(r);
  j["reference"] = side_meta(r.ref_path, r.ref_meta);
  j["candidate"] = side_meta(r.cand_path, r.cand_meta);
  j["floor"] = r.floor_path.empty() ? json(nullptr) : json({{"path", r.floor_path}});
  j["model_dims"] = r.ref_meta.dims.to_json();
  j["profile"] = r.profile_name;
  j["map"] = r.map_origin.empty() ? json(nullptr) : json(r.map_origin);
  auto tap_ref = [&](int i) -> json {
    if (i < 0) return nullptr;
    const auto& t = r.taps[static_cast<std::size_t>(i)];
    json v = {{"tap", t.name},
              {"index", i},
              {"attribution", t.attribution},
              {"upstream", t.upstream.empty() ? json(nullptr) : json(t.upstream)},
              {"jump", opt_num(t.jump)}};
    v["violations"] = json::array();
    for (const auto& x : t.violations) v["violations"].push_back(violation(x));
    return v;
  };
  j["first_divergence"] = tap_ref(r.first_divergence);
  j["first_warning"] = tap_ref(r.first_warning);
  if (r.changepoint >= 0) {
    j["changepoint"] = {{"tap", r.taps[static_cast<std::size_t>(r.changepoint)].name},
                        {"index", r.changepoint},
                        {"jump", jnum(r.changepoint_jump)}};
  } else {
    j["changepoint"] = nullptr;
  }
  j["hints"] = r.hints;
  if (r.transcripts) {
    const auto& x = *r.transcripts;
    j["transcripts"] = {{"reference", x.ref},
                        {"candidate", x.cand},
                        {"identical", x.ref == x.cand},
                        {"word_errors",
                         {{"substitutions", x.words.substitutions},
                          {"deletions", x.words.deletions},
                          {"insertions", x.words.insertions},
                          {"reference_words", x.words.ref_words}}},
                        {"wer", jnum(x.words.wer())}};
  } else {
    j["transcripts"] = nullptr;
  }
  j["replay"] = r.replay ? cmp::replay_json(*r.replay) : nlohmann::json();
  if (r.impact) {
    const auto& x = *r.impact;
    auto top = [](const std::vector<cmp::TokenProb>& t) {
      nlohmann::json a = nlohmann::json::array();
      for (const auto& p : t) a.push_back({{"token", p.token}, {"p", jnum(p.p)}});
      return a;
    };
    auto rep = [](const cmp::Repetition& p) {
      return nlohmann::json{
          {"ngram", p.ngram}, {"repeats", p.repeats}, {"start", p.start}, {"flagged", p.flagged}};
    };
    nlohmann::json kl = nlohmann::json::array();
    for (double k : x.kl) kl.push_back(jnum(k));
    j["transcript_impact"] = {
        {"reference_tokens", x.ref_tokens},
        {"candidate_tokens", x.cand_tokens},
        {"agree", x.agree},
        {"positions", x.positions},
        {"agreement", jnum(x.agreement())},
        {"first_diff", x.first_diff >= 0 ? nlohmann::json(x.first_diff) : nlohmann::json()},
        {"reference_top5", top(x.ref_top5)},
        {"candidate_top5", top(x.cand_top5)},
        {"reference_repetition", rep(x.ref_rep)},
        {"candidate_repetition", rep(x.cand_rep)},
        {"teacher_forced", x.teacher_forced},
        {"kl_per_step", kl},
        {"kl_mean", x.kl.empty() ? nlohmann::json() : jnum(x.kl_mean)},
        {"kl_max", x.kl.empty() ? nlohmann::json() : jnum(x.kl_max)},
        {"kl_max_step", x.kl_max_step >= 0 ? nlohmann::json(x.kl_max_step) : nlohmann::json()},
        {"reference_wer_vs_expected",
         x.ref_vs_expected ? jnum(x.ref_vs_expected->wer()) : nlohmann::json()},
        {"candidate_wer_vs_expected",
         x.cand_vs_expected ? jnum(x.cand_vs_expected->wer()) : nlohmann::json()}};
  } else {
    j["transcript_impact"] = nullptr;
  }
  j["budget"] = r.budget ? cmp::budget_assessment_json(*r.budget) : nlohmann::json(nullptr);
  j["gate"] = std::string(name_of(cmp::kGateNames, r.gate));
  j["only_reference"] = r.only_ref;
  j["only_candidate"] = r.only_cand;
  j["missing_floor"] = r.missing_floor;
  if (r.histogram) {
    j["histogram"] = {{"tap", r.histogram->tap},
                      {"lo", jnum(r.histogram->lo)},
                      {"hi", jnum(r.histogram->hi)},
                      {"counts", r.histogram->counts}};
  } else {
    j["histogram"] = nullptr;
  }
  j["elements"] = r.elements;
  j["seconds"] = r.seconds;
  json taps = json::array();
  for (const auto& t : r.taps) {
    json x;
    x["name"] = t.name;
    x["index"] = t.order;
    x["ref_name"] = t.ref_name;
    x["cand_name"] = t.cand_name;
    x["shape"] = t.shape;
    x["layout"] = t.layout;
    x["ref_dtype"] = t.ref_dtype;
    x["cand_dtype"] = t.cand_dtype;
    x["status"] = std::string(cmp::level_name(t.status));
    x["storage_floor"] = t.storage_floor;
    x["storage_limited"] = t.storage_limited;
    if (!t.rounded_to.empty()) {
      x["rounded_to"] = t.rounded_to;
      x["rounded_exactly"] = t.rounded_exactly;
      x["cast_rounding"] = t.cast_rounding;
    } else {
      x["rounded_to"] = nullptr;
    }
    x["violations"] = json::array();
    for (const auto& v : t.violations) x["violations"].push_back(violation(v));
    x["tolerance"] = {{"atol", t.tolerance.atol},
                      {"rtol", t.tolerance.rtol},
                      {"allow_nonfinite", t.tolerance.allow_nonfinite},
                      {"ignore", t.tolerance.ignore}};
    x["metrics"] = metrics(t.m);
    x["reference"] = side_stats(t.m.ref);
    x["candidate"] = side_stats(t.m.cand);
    x["floor"] = t.floor ? metrics(*t.floor) : json(nullptr);
    x["floor_x"] = opt_num(t.floor_x);
    x["attribution"] = t.attribution;
    x["upstream"] = t.upstream.empty() ? json(nullptr) : json(t.upstream);
    x["jump"] = opt_num(t.jump);
    x["hints"] = t.hints;
    json worst = json::array();
    for (const auto& w : t.m.worst) {
      worst.push_back({{"index", w.index},
                       {"coords", w.coords},
                       {"ref", jnum(w.ref)},
                       {"cand", jnum(w.cand)},
                       {"abs_err", jnum(w.abs_err)},
                       {"tol_ratio", jnum(w.tol_ratio)},
                       {"kind", w.kind == 2 ? "nan" : (w.kind == 1 ? "inf" : "finite")}});
    }
    x["worst"] = worst;
    x["frame_axis"] = t.frame_axis.empty() ? json(nullptr) : json(t.frame_axis);
    if (!t.m.frames.empty()) {
      json rel = json::array(), mx = json::array();
      for (const auto& f : t.m.frames) {
        rel.push_back(jshort(f.rel_l2));
        mx.push_back(jshort(f.max_abs));
      }
      x["frames"] = {{"rel_l2", rel}, {"max_abs", mx}};
    } else {
      x["frames"] = nullptr;
    }
    if (!t.m.heads.empty()) {
      json rel = json::array(), mx = json::array(), cs = json::array();
      for (const auto& h : t.m.heads) {
        rel.push_back(jnum(h.rel_l2));
        mx.push_back(jnum(h.max_abs));
        cs.push_back(jnum(h.cosine));
      }
      x["heads"] = {{"rel_l2", rel}, {"max_abs", mx}, {"cosine", cs}};
    } else {
      x["heads"] = nullptr;
    }
    taps.push_back(std::move(x));
  }
  j["taps"] = std::move(taps);
  return j.dump(1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";  // a broken decoder may emit invalid UTF-8
}

}  // namespace wb::rep
