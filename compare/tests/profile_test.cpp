#include "wb/compare/profile.h"

#include <doctest/doctest.h>

#include <fstream>
#include <limits>

#include "wb/compare/name_map.h"
#include "wb/core/util.h"
#include "wb/testing/name_tables.h"
#include "wb/testing/paths.h"

using namespace wb::cmp;

TEST_CASE("the built-in profiles: one per precision, each fixtures/profiles/<precision>.json") {
  const std::vector<wb::Precision> all = {wb::Precision::float32, wb::Precision::bfloat16,
                                          wb::Precision::float16};
  const std::vector<std::string> files = builtin_profile_files();
  REQUIRE(files.size() == all.size());
  for (std::size_t i = 0; i < all.size(); ++i) {
    const std::string name(wb::to_string(all[i]));
    INFO(name);
    CHECK(files[i] == "fixtures/profiles/" + name + ".json");
    const auto file =
        ToleranceProfile::load(std::string(wb::testing::source_dir()) + "/" + files[i]);
    CHECK(file.name() == name);  // the profile is named after its precision
    CHECK(ToleranceProfile::for_precision(all[i]).source() == file.source());
    CHECK(ToleranceProfile::for_precision(name).source() == file.source());
    CHECK(default_profile_for(all[i]).name() == name);
  }
  CHECK(ToleranceProfile().source() == ToleranceProfile::for_precision("float32").source());
  CHECK_THROWS_AS(ToleranceProfile::for_precision("int8"), std::invalid_argument);
}

TEST_CASE("the default profile is the candidate dump's declared precision's") {
  wb::DumpMeta m;
  for (const auto& [precision, profile] :
       std::vector<std::pair<std::string, std::string>>{{"float32", "float32"},
                                                        {"float64", "float32"},
                                                        {"bfloat16", "bfloat16"},
                                                        {"float16", "float16"}}) {
    m.precision = precision;
    CHECK_MESSAGE(default_profile_for(m, "cand.h5").name() == profile, precision);
  }
  m.precision = "int8";
  CHECK_THROWS_WITH_AS(default_profile_for(m, "cand.h5"),
                       doctest::Contains("cand.h5: precision 'int8'"), std::runtime_error);
}

// A cosine bound next to a rel L2 limit r can never fail when 1 - min <= r^2 / 2
// (docs/report-json.md); the committed profiles hold none, and each precision's limit is no looser
// than the coarser precision's.
TEST_CASE("committed profiles: no dead cosine thresholds; float32 <= float16 <= bfloat16") {
  const std::string dir = std::string(wb::testing::source_dir()) + "/fixtures/profiles/";
  const ToleranceProfile f32, f16 = ToleranceProfile::load(dir + "float16.json"),
                              bf16 = ToleranceProfile::load(dir + "bfloat16.json");
  for (const char* tap : {"mel", "encoder.conv1", "encoder.pos_embed", "encoder.blocks.0.attn_ln",
                          "encoder.blocks.0.out", "encoder.blocks.5.attn.out",
                          "encoder.blocks.31.mlp.fc2", "encoder.ln_post", "logits"}) {
    for (const ToleranceProfile* p : {&f32, &f16, &bf16}) {
      const TapTolerance t = p->for_tap(tap);
      for (const auto* level : {&t.warn, &t.fail}) {
        double rel = std::numeric_limits<double>::infinity();
        for (const Threshold& th : *level)
          if (th.metric == "rel_l2" && th.max) rel = *th.max;
        for (const Threshold& th : *level)
          if (th.metric == "cosine" && th.min)
            CHECK_MESSAGE(1 - *th.min > rel * rel / 2,
                          p->name() << " " << tap << ": cosine >= " << *th.min
                                    << " cannot fail next to rel_l2 <= " << rel);
      }
    }
    CHECK_MESSAGE(f32.rel_l2_fail_limit(tap) <= f16.rel_l2_fail_limit(tap), tap);
    CHECK_MESSAGE(f16.rel_l2_fail_limit(tap) <= bf16.rel_l2_fail_limit(tap), tap);
  }
}

TEST_CASE("rules apply in order, later matches override per metric") {
  const auto p = ToleranceProfile::parse_text(R"({
    "name": "t", "atol": 1e-5, "rtol": 1e-3,
    "fail": {"rel_l2": {"max": 1e-3}, "cosine": {"min": 0.99}},
    "warn": {"rel_l2": {"max": 1e-4}},
    "rules": [
      {"taps": "encoder.blocks.**", "fail": {"rel_l2": {"max": 1e-2}}, "atol": 1e-4},
      {"taps": ["encoder.blocks.1.**"], "fail": {"cosine": null}, "ignore": false},
      {"taps": "mel", "ignore": true}
    ]})",
                                              "t.json");
  const auto t0 = p.for_tap("encoder.conv1");
  REQUIRE(t0.fail.size() == 2);
  CHECK(t0.fail[0].metric == "rel_l2");
  CHECK(*t0.fail[0].max == 1e-3);
  const auto t1 = p.for_tap("encoder.blocks.0.attn_ln");
  CHECK(*t1.fail[0].max == 1e-2);
  CHECK(t1.atol == 1e-4);
  CHECK(t1.rtol == 1e-3);
  const auto t2 = p.for_tap("encoder.blocks.1.out");
  REQUIRE(t2.fail.size() == 1);
  CHECK(p.for_tap("mel").ignore);

  DiffMetrics m;
  m.rel_l2 = 5e-3;
  m.cosine = 0.5;
  auto v = p.evaluate(t0, m, nullptr);
  REQUIRE(v.size() == 2);
  CHECK(v[0].metric == "rel_l2");  // relative error before the rest
  CHECK(v[1].metric == "cosine");
  CHECK(v[0].level == Level::fail);
  m.nan_mismatch = 2;
  v = p.evaluate(t0, m, nullptr);
  CHECK(v[0].metric == "nan_mismatch");  // NaN first
  m.nan_mismatch = 0;
  m.rel_l2 = 5e-4;
  m.cosine = 1.0;
  v = p.evaluate(t0, m, nullptr);
  REQUIRE(v.size() == 1);
  CHECK(v[0].level == Level::warn);
  CHECK(p.evaluate(p.for_tap("mel"), m, nullptr).empty());
}

TEST_CASE("floor multiples replace the constant when a floor is given") {
  const auto p = ToleranceProfile::parse_text(
      R"({"fail": {"rel_l2": {"max": 1e-3, "max_floor": 10}}})", "t.json");
  const auto t = p.for_tap("x");
  DiffMetrics m, floor;
  m.rel_l2 = 5e-4;
  floor.rel_l2 = 1e-5;
  auto v = p.evaluate(t, m, &floor);  // 5e-4 > 10 x 1e-5
  REQUIRE(v.size() == 1);
  CHECK(v[0].floor);
  CHECK(v[0].text().find("x floor") != std::string::npos);
  CHECK(p.evaluate(t, m, nullptr).empty());  // 5e-4 <= 1e-3
}

TEST_CASE("a floor multiple never exceeds the absolute ceiling") {
  // A noisy floor (1e-5) times 50 would allow 5e-4; the ceiling holds the limit at 1e-4.
  const auto p = ToleranceProfile::parse_text(
      R"({"fail": {"rel_l2": {"max": 5e-5, "max_floor": 50, "ceiling": 1e-4}}})", "t.json");
  const auto t = p.for_tap("x");
  DiffMetrics m, floor;
  floor.rel_l2 = 1e-5;
  m.rel_l2 = 2e-4;
  auto v = p.evaluate(t, m, &floor);
  REQUIRE(v.size() == 1);
  CHECK(v[0].capped);
  CHECK(v[0].limit == 1e-4);
  CHECK(v[0].text().find("ceiling") != std::string::npos);
  m.rel_l2 = 9e-5;  // under the ceiling, above the constant: the floor applies
  CHECK(p.evaluate(t, m, &floor).empty());
  floor.rel_l2 = 1e-7;  // a quiet floor: 50 x 1e-7 = 5e-6 < 9e-5, not capped
  v = p.evaluate(t, m, &floor);
  REQUIRE(v.size() == 1);
  CHECK_FALSE(v[0].capped);
  CHECK(v[0].limit == doctest::Approx(5e-6));
  // Without "ceiling" the threshold's "max" is the ceiling: the floor can only tighten.
  const auto q = ToleranceProfile::parse_text(
      R"({"fail": {"rel_l2": {"max": 5e-5, "max_floor": 50}}})", "t.json");
  floor.rel_l2 = 1e-5;
  m.rel_l2 = 9e-5;
  v = q.evaluate(q.for_tap("x"), m, &floor);
  REQUIRE(v.size() == 1);
  CHECK(v[0].capped);
  CHECK(v[0].limit == 5e-5);
  // The shipped float32 profile states its ceiling: a floor of 1e-3 cannot lift the limit.
  const ToleranceProfile builtin;
  floor.rel_l2 = 1e-3;
  m.rel_l2 = 1e-3;
  v = builtin.evaluate(builtin.for_tap("encoder.blocks.0.attn_ln"), m, &floor);
  REQUIRE_FALSE(v.empty());
  CHECK(v[0].level == Level::fail);
  CHECK(v[0].capped);
}

TEST_CASE("malformed profiles are refused with one line naming the place") {
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"{", "not valid JSON"},
      {"[]", "expected a JSON object"},
      {R"({"fail": {"rel_2": {"max": 1}}})", "unknown metric 'rel_2'"},
      {R"({"fail": {"rel_l2": {"maximum": 1}}})", "unknown key 'maximum'"},
      {R"({"fail": {"rel_l2": {"max": "x"}}})", "expected a number"},
      {R"({"rules": [{"fail": {}}]})", "missing \"taps\""},
      {R"({"rules": {}})", "rules: expected an array"},
      {R"({"tolerance": 1})", "unknown key 'tolerance'"},
      {R"({"fail": {"cosine": {"max_floor": 3}}})", "max_floor applies"},
      {R"({"fail": {"rel_l2": {"max_floor": 3}}})", "needs an absolute ceiling"},
      {R"({"fail": {"rel_l2": {"max": 1e-3, "ceiling": 1e-2}}})", "ceiling applies to max_floor"},
      {R"({"fail": {"rel_l2": {"max_floor": 3, "ceiling": 0}}})", "must be > 0"},
      {R"({"changepoint": {"ratio": 0.5}})", "changepoint.ratio"},
  };
  for (const auto& [text, want] : bad) {
    INFO(text);
    try {
      (void)ToleranceProfile::parse_text(text, "p.json");
      FAIL("accepted");
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      CHECK(msg.rfind("p.json: ", 0) == 0);
      CHECK(msg.find(want) != std::string::npos);
      CHECK(msg.find('\n') == std::string::npos);
    }
  }
}

TEST_CASE("name maps rename, expand {i} and refuse unknown targets") {
  const auto m = NameMap::parse(nlohmann::json::parse(R"({
    "description": "test",
    "model.encoder.layers.{i}.self_attn_layer_norm": "encoder.blocks.{i}.attn_ln",
    "model.encoder.layer_norm": "encoder.ln_post"})"),
                                "m.json");
  CHECK(m.size() == 2);
  CHECK(m.canonical("model.encoder.layers.12.self_attn_layer_norm") == "encoder.blocks.12.attn_ln");
  CHECK(m.canonical("model.encoder.layer_norm") == "encoder.ln_post");
  CHECK(m.canonical("mel") == "mel");
  CHECK(m.canonical("model.encoder.layers.x.self_attn_layer_norm") ==
        "model.encoder.layers.x.self_attn_layer_norm");
  wb::ModelDims d = wb::ModelDims::preset("tiny");
  CHECK_NOTHROW(m.validate(d));
  const auto bad =
      NameMap::parse(nlohmann::json::parse(R"({"a": "encoder.blocks.0.nope"})"), "m.json");
  CHECK_THROWS_WITH_AS(bad.validate(d), "m.json: maps 'a' to unknown tap 'encoder.blocks.0.nope'",
                       std::runtime_error);
  CHECK_THROWS_AS(NameMap::parse(nlohmann::json::parse(R"({"a": 3})"), "m.json"),
                  std::runtime_error);
}

TEST_CASE("the shipped Hugging Face map parses and names registry taps only") {
  const std::string path = std::string(wb::testing::source_dir()) + "/fixtures/maps/hf.json";
  const auto m = NameMap::load(path);
  CHECK(m.size() > 10);
  CHECK_NOTHROW(m.validate(wb::ModelDims::preset("tiny")));
  CHECK(m.canonical("encoder.layers.3.fc1") == "encoder.blocks.3.mlp.fc1");
  CHECK(m.canonical("encoder.layers.3") == "encoder.blocks.3.out");
  CHECK(m.canonical("input_features") == "mel");
}

TEST_CASE("verdict levels: one name per value, round trip") {
  wb::testing::check_name_table(kLevelNames, "Level", Level::fail);
}
