// The sweep aggregation (wb/reports/sweep.h) on hand-made per-clip results: per-tap statistics and
// worst clips against values computed here, non-finite metrics kept as such, the exit-status
// precedence (internal error > tolerance exceeded > unreadable clip > pass), and that the
// aggregate depends only on the results (the same input twice gives the same report but `run`).
#include <doctest/doctest.h>

#include <cmath>
#include <limits>

#include "wb/reports/sweep.h"

using nlohmann::json;
using wb::rep::aggregate_sweep;
using wb::rep::json_number;

namespace {

json tap(const std::string& name, double rel, const std::string& status = "pass") {
  return {
      {"name", name},        {"status", status},    {"rel_l2", json_number(rel)},
      {"cosine", 1.0 - rel}, {"max_abs", rel * 10}, {"snr_db", json_number(-20 * std::log10(rel))},
      {"share_beyond", 0.0}, {"nan_mismatch", 0},   {"inf_mismatch", 0},
      {"attribution", ""}};
}

json ok_clip(const std::string& name, double rel_mel, double rel_out,
             const std::string& verdict = "pass") {
  const bool fail = verdict == "fail";
  return {{"clip", name},
          {"status", "ok"},
          {"verdict", verdict},
          {"first_divergent_tap", fail ? json("encoder.ln_post") : json(nullptr)},
          {"taps", json::array({tap("mel", rel_mel),
                                tap("encoder.ln_post", rel_out, fail ? "fail" : "pass")})},
          {"transcripts",
           {{"expected", "a b"},
            {"reference", "a b"},
            {"candidate", fail ? "a a a" : "a b"},
            {"identical", !fail},
            {"candidate_vs_reference",
             {{"errors", fail ? 2 : 0}, {"ref_words", 2}, {"wer", fail ? 1.0 : 0.0}}},
            {"reference_vs_expected", {{"errors", 0}, {"ref_words", 2}, {"wer", 0.0}}},
            {"candidate_vs_expected",
             {{"errors", fail ? 2 : 0}, {"ref_words", 2}, {"wer", fail ? 1.0 : 0.0}}}}}};
}

json err_clip(const std::string& name, const std::string& kind) {
  return {{"clip", name},
          {"status", "error"},
          {"error", {{"kind", kind}, {"message", name + ": truncated WAV"}}}};
}

}  // namespace

TEST_CASE("sweep aggregate: per-tap mean, std, worst clip, failing counts") {
  const std::vector<json> clips = {ok_clip("a.wav", 1e-7, 2e-7),
                                   ok_clip("b.wav", 3e-7, 0.5, "fail"),
                                   ok_clip("c.wav", 2e-7, 4e-7)};
  const json r = aggregate_sweep({{"impl", "candidate"}}, clips, {{"created", "x"}});
  const json& out = r["taps"][1];
  CHECK(out["name"] == "encoder.ln_post");
  CHECK(out["clips"] == 3);
  CHECK(out["failing_clips"] == 1);
  const double mean = (2e-7 + 0.5 + 4e-7) / 3;
  const double var =
      (std::pow(2e-7 - mean, 2) + std::pow(0.5 - mean, 2) + std::pow(4e-7 - mean, 2)) / 3;
  CHECK(out["rel_l2"]["mean"].get<double>() == doctest::Approx(mean).epsilon(1e-12));
  CHECK(out["rel_l2"]["std"].get<double>() == doctest::Approx(std::sqrt(var)).epsilon(1e-12));
  CHECK(out["rel_l2"]["worst_clip"] == "b.wav");
  CHECK(out["cosine"]["worst_clip"] == "b.wav");  // lowest cosine is the worst
  CHECK(out["worst_link"] == "clips/b.wav.json");
  CHECK(r["taps"][0]["rel_l2"]["worst_clip"] == "b.wav");
  CHECK(r["summary"]["first_divergent_taps"] ==
        json::array({{{"tap", "encoder.ln_post"}, {"clips", 1}}}));
  CHECK(r["transcripts"]["identical"] == 2);
  CHECK(r["transcripts"]["candidate_wer"].get<double>() == doctest::Approx(2.0 / 6));
  CHECK(r["exit_status"] == 1);
}

TEST_CASE("sweep aggregate: non-finite metrics stay non-finite, worst is the infinite one") {
  const double inf = std::numeric_limits<double>::infinity();
  const json r =
      aggregate_sweep({}, {ok_clip("a.wav", 1e-7, 2e-7), ok_clip("b.wav", 1e-7, inf, "fail")}, {});
  const json& out = r["taps"][1]["rel_l2"];
  CHECK(out["max"] == "inf");
  CHECK(out["mean"] == "inf");
  CHECK(out["worst_clip"] == "b.wav");
  CHECK(std::isinf(wb::rep::from_json_number(out["worst"])));
}

TEST_CASE("sweep exit status: internal > tolerance > unreadable > pass") {
  const json pass = ok_clip("a.wav", 1e-7, 2e-7), fail = ok_clip("b.wav", 1e-7, 0.5, "fail");
  const json bad = err_clip("c.wav", "bad_input"), internal = err_clip("d.wav", "internal");
  CHECK(aggregate_sweep({}, {pass}, {})["exit_status"] == 0);
  CHECK(aggregate_sweep({}, {pass, bad}, {})["exit_status"] == 2);
  CHECK(aggregate_sweep({}, {pass, bad, fail}, {})["exit_status"] == 1);
  CHECK(aggregate_sweep({}, {bad, fail, internal}, {})["exit_status"] == 3);
  const json r = aggregate_sweep({}, {bad, pass}, {});
  CHECK(r["errors"][0]["clip"] == "c.wav");
  CHECK(r["summary"]["unreadable"] == 1);
  CHECK(r["summary"]["compared"] == 1);
}

TEST_CASE("sweep aggregate: a function of the results; Markdown capped, run line last") {
  std::vector<json> clips;
  for (int i = 0; i < 300; ++i)
    clips.push_back(ok_clip("clip" + std::to_string(1000 + i) + ".wav", 1e-7 * (i + 1), 2e-7));
  json a = aggregate_sweep({{"impl", "candidate"}}, clips, {{"created", "t1"}, {"shards", 1}});
  json b = aggregate_sweep({{"impl", "candidate"}}, clips, {{"created", "t2"}, {"shards", 3}});
  CHECK(a != b);
  a.erase("run");
  b.erase("run");
  CHECK(a == b);
  const json r = aggregate_sweep({}, clips, {{"created", "t"}});
  const std::string md = wb::rep::render_sweep_markdown(r, 4000);
  CHECK(md.size() <= 4000);
  CHECK(md.find("truncated") != std::string::npos);
  CHECK(md.rfind("_Run: created t") != std::string::npos);
  CHECK_THROWS_AS(aggregate_sweep({}, {json{{"clip", "x"}, {"status", "ok"}}}, {}),
                  std::runtime_error);
}

TEST_CASE("sweep aggregate with a budget: per-clip verdicts, the median share decides, the gate") {
  const json bj = {{"schema", wb::cmp::kBudgetSchema},
                   {"model", {{"sha256", std::string(64, 'a')}}},
                   {"corpus", {{"clips", json::array({"x"})}}},
                   {"taps",
                    {{{"tap", "mel"}, {"budget", 0.01}, {"bound", "exact"}},
                     {{"tap", "encoder.ln_post"}, {"budget", 0.1}, {"bound", "exact"}}}}};
  const wb::cmp::Budget b = wb::cmp::Budget::from_json(bj, "b.json");
  // ln_post shares 0.02, 6, 0.04: the median 0.04 is harmless though one clip breaks
  const std::vector<json> clips = {ok_clip("a.wav", 1e-4, 0.002),
                                   ok_clip("b.wav", 1e-4, 0.6, "fail"),
                                   ok_clip("c.wav", 1e-4, 0.004)};
  const json r = aggregate_sweep({}, clips, {}, &b, wb::cmp::Gate::budget);
  const json& bud = r["budget"];
  CHECK(bud["verdict"] == "harmless");
  CHECK(bud["taps"][1]["median_share"].get<double>() == doctest::Approx(0.04));
  CHECK(bud["taps"][1]["max_share"].get<double>() == doctest::Approx(6.0));
  CHECK(bud["taps"][1]["worst_clip"] == "b.wav");
  CHECK(bud["clips_by_verdict"]["breaks transcripts"] == 1);
  CHECK(r["clips"][1]["budget_verdict"] == "breaks transcripts");
  CHECK(r["exit_status"] == 0);  // the gate follows the budget, not the failing clip
  CHECK(aggregate_sweep({}, clips, {}, &b)["exit_status"] == 1);
  // two of three clips over: the median breaks, exit 1 under the budget gate
  const std::vector<json> bad = {ok_clip("a.wav", 1e-4, 0.2), ok_clip("b.wav", 1e-4, 0.6),
                                 ok_clip("c.wav", 1e-4, 0.004)};
  const json rb = aggregate_sweep({}, bad, {}, &b, wb::cmp::Gate::budget);
  CHECK(rb["budget"]["verdict"] == "breaks transcripts");
  CHECK(rb["budget"]["worst_tap"] == "encoder.ln_post");
  CHECK(rb["exit_status"] == 1);
  CHECK(wb::rep::render_sweep_markdown(rb).find("transcript budget: breaks transcripts") !=
        std::string::npos);
}
