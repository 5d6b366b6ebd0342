// The comparator over in-memory dumps of nano dims: alignment, verdicts, first divergence,
// changepoint, attribution, hints, and the bad inputs that must be refused.
#include "wb/compare/compare.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <random>

using namespace wb::cmp;

namespace {

wb::DumpMeta nano_meta(const std::string& impl) {
  wb::DumpMeta m;
  m.implementation = impl;
  m.precision = "float32";
  m.model_sha256 = std::string(64, 'a');
  m.dims = wb::ModelDims::preset("nano");
  m.dims.n_audio_ctx = 40;  // small frames keep the test fast; shapes follow the registry
  return m;
}

// A reference with every encoder tap of the (shrunk) nano dims, and a candidate equal to it plus
// float32-like noise growing with depth; `fault` adds a bug at one tap that every later tap
// inherits (scaled down a little, as a real network would partly absorb it).
struct Pair {
  MemorySource ref{"ref.h5", nano_meta("reference")};
  MemorySource cand{"cand.h5", nano_meta("candidate")};
};

enum class Fault { none, offset, scale, noise, structural, nan };

std::unique_ptr<Pair> make_pair(const std::string& fault_tap, Fault fault, uint32_t seed = 5) {
  auto p = std::make_unique<Pair>();
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  const auto taps = wb::encoder_taps(p->ref.meta().dims);
  bool inherited = false;
  int depth = 0;
  for (const auto& t : taps) {
    const int64_t n = wb::shape_numel(t.shape);
    std::vector<double> a(static_cast<std::size_t>(n)), b;
    for (double& x : a) x = static_cast<float>(0.3 + nd(rng));
    b = a;
    const double eps = 3e-8 * (1 + depth);
    for (double& y : b) y += y * eps * nd(rng);
    const bool here = t.name == fault_tap;
    if (here || inherited) {
      const double k = here ? 1.0 : 0.8;
      switch (fault) {
        case Fault::none:
          break;
        case Fault::offset:
          for (double& y : b) y += 0.5 * k;
          break;
        case Fault::scale:
          for (double& y : b) y *= 1 + 0.3 * k;
          break;
        case Fault::noise:
          for (double& y : b) y += 3e-3 * k * nd(rng);
          break;
        case Fault::structural:
          std::reverse(b.begin(), b.end());
          break;
        case Fault::nan:
          if (here) b[3] = std::numeric_limits<double>::quiet_NaN();
          break;
      }
      inherited = true;
    }
    p->ref.add(t.name, t.shape, a, t.layout);
    p->cand.add(t.name, t.shape, b, t.layout);
    ++depth;
  }
  return p;
}

}  // namespace

TEST_CASE("self-compare: zero error, exit 0") {
  auto p = make_pair("", Fault::none);
  CompareOptions o;
  const auto r = compare(p->ref, p->ref, nullptr, o);
  CHECK(exit_status(r) == 0);
  CHECK(r.verdict == Level::pass);
  CHECK(r.first_divergence == -1);
  CHECK(r.changepoint == -1);
  REQUIRE(r.taps.size() == wb::encoder_taps(p->ref.meta().dims).size());
  for (const auto& t : r.taps) {
    CHECK(t.m.rel_l2 == 0.0);
    CHECK(t.m.max_abs == 0.0);
  }
  CHECK(r.taps.front().name == "mel");
  CHECK(r.taps.back().name == "encoder.ln_post");
}

TEST_CASE("float32-like noise passes; background and inline reading agree") {
  auto p = make_pair("", Fault::none);
  CompareOptions o;
  o.chunk_elements = 1000;  // many chunks per tap
  const auto r1 = compare(p->ref, p->cand, nullptr, o);
  o.background_read = false;
  const auto r2 = compare(p->ref, p->cand, nullptr, o);
  CHECK(exit_status(r1) == 0);
  REQUIRE(r1.taps.size() == r2.taps.size());
  for (std::size_t i = 0; i < r1.taps.size(); ++i)
    CHECK(r1.taps[i].m.rel_l2 == r2.taps[i].m.rel_l2);
  MESSAGE(fmt::format("ln_post rel_l2 {:.3g}", r1.taps.back().m.rel_l2));
}

TEST_CASE("fault table: first divergence, attribution, hint, swapped arguments") {
  struct Case {
    std::string tap;
    Fault fault;
    std::string hint;  // a word the first divergent tap's hints must contain
  };
  const std::vector<Case> cases = {
      {"encoder.ln_post", Fault::offset, "offset"},
      {"encoder.blocks.0.attn.out", Fault::scale, "scale"},
      {"encoder.blocks.1.attn_ln", Fault::noise, "noise-like"},
      {"encoder.conv1", Fault::structural, "structural"},
      {"mel", Fault::offset, "front end"},
      {"encoder.blocks.0.mlp.fc2", Fault::nan, "overflow"},
  };
  for (const auto& c : cases) {
    INFO(c.tap);
    auto p = make_pair(c.tap, c.fault);
    CompareOptions o;
    const auto r = compare(p->ref, p->cand, nullptr, o);
    CHECK(exit_status(r) == 1);
    REQUIRE(r.first_divergence >= 0);
    const auto& t = r.taps[static_cast<std::size_t>(r.first_divergence)];
    CHECK(t.name == c.tap);
    CHECK(t.attribution == (c.tap == "mel" ? "input" : "local"));
    std::string all;
    for (const auto& h : r.hints) all += h + "\n";
    CHECK(all.find(c.hint) != std::string::npos);
    MESSAGE(all);
    // Downstream of the fault, taps inherit.
    if (r.first_divergence + 1 < static_cast<int>(r.taps.size()) && c.fault != Fault::nan) {
      CHECK(r.taps[static_cast<std::size_t>(r.first_divergence) + 1].attribution == "inherited");
    }
    const auto s = compare(p->cand, p->ref, nullptr, o);  // swapped
    CHECK(exit_status(s) == exit_status(r));
    REQUIRE(s.first_divergence >= 0);
    CHECK(s.taps[static_cast<std::size_t>(s.first_divergence)].name == c.tap);
    if (c.fault != Fault::nan) CHECK(r.changepoint == r.first_divergence);
  }
}

TEST_CASE("one-sided taps are listed, not fatal; a map renames") {
  auto p = make_pair("", Fault::none);
  MemorySource cand("cand.h5", p->ref.meta());
  MemorySource ref("ref.h5", p->ref.meta());
  const auto taps = wb::encoder_taps(p->ref.meta().dims);
  for (std::size_t i = 0; i < taps.size(); ++i) {
    const auto& t = taps[i];
    if (i != 2) ref.add(t.name, t.shape, p->ref.values(t.name), t.layout);
    if (i == 5) continue;
    const std::string stored = t.name == "encoder.ln_post" ? "model.encoder.layer_norm" : t.name;
    cand.add(stored, t.shape, p->ref.values(t.name), t.layout);
  }
  CompareOptions o;
  o.map = NameMap::parse(
      nlohmann::json::parse(R"({"model.encoder.layer_norm": "encoder.ln_post"})"), "map.json");
  const auto r = compare(ref, cand, nullptr, o);
  CHECK(exit_status(r) == 0);
  CHECK(r.only_cand == std::vector<std::string>{taps[2].name});
  CHECK(r.only_ref == std::vector<std::string>{taps[5].name});
  CHECK(r.taps.back().name == "encoder.ln_post");
  CHECK(r.taps.back().cand_name == "model.encoder.layer_norm");
}

TEST_CASE("bad inputs: shapes, models, unknown mapped taps — one line, both sides named") {
  auto p = make_pair("", Fault::none);
  CompareOptions o;
  {
    MemorySource a("a.h5", p->ref.meta()), b("b.h5", p->ref.meta());
    a.add("encoder.conv2", {40, 64}, std::vector<double>(40 * 64, 1.0));
    b.add("encoder.conv2", {40, 32}, std::vector<double>(40 * 32, 1.0));
    CHECK_THROWS_WITH_AS(compare(a, b, nullptr, o),
                         "tap 'encoder.conv2': shape mismatch: a.h5 [40, 64] vs b.h5 [40, 32]",
                         std::runtime_error);
  }
  {
    auto m2 = p->ref.meta();
    m2.dims.n_audio_layer = 3;
    MemorySource a("a.h5", p->ref.meta()), b("b.h5", m2);
    try {
      (void)compare(a, b, nullptr, o);
      FAIL("accepted");
    } catch (const std::runtime_error& e) {
      const std::string msg = e.what();
      CHECK(msg.find("different models") != std::string::npos);
      CHECK(msg.find("n_audio_layer 2") != std::string::npos);
      CHECK(msg.find("n_audio_layer 3") != std::string::npos);
    }
    auto m3 = p->ref.meta();
    m3.model_sha256 = std::string(64, 'b');
    MemorySource c("c.h5", m3);
    a.add("mel", {2, 3}, std::vector<double>(6, 1.0), "mel,frame");
    c.add("mel", {2, 3}, std::vector<double>(6, 1.0), "mel,frame");
    CHECK_THROWS_WITH_AS(compare(a, c, nullptr, o), doctest::Contains("different models"),
                         std::runtime_error);
    o.allow_model_mismatch = true;
    CHECK_NOTHROW(compare(a, c, nullptr, o));
    o.allow_model_mismatch = false;
  }
  {
    o.map = NameMap::parse(nlohmann::json::parse(R"({"x": "encoder.blocks.9.out"})"), "map.json");
    CHECK_THROWS_WITH_AS(compare(p->ref, p->cand, nullptr, o),
                         "map.json: maps 'x' to unknown tap 'encoder.blocks.9.out'",
                         std::runtime_error);
  }
}

TEST_CASE("noise floor: error as a multiple of the float32-vs-float64 error") {
  auto p = make_pair("encoder.blocks.1.out", Fault::noise);
  // The floor: a float64 "run" = the reference minus tiny noise.
  MemorySource f("ref64.h5", p->ref.meta());
  std::mt19937 rng(11);
  std::normal_distribution<double> nd(0.0, 1.0);
  for (const auto& t : p->ref.taps()) {
    auto v = p->ref.values(t.name);
    for (double& x : v) x += x * 6e-8 * nd(rng);
    f.add(t.name, t.shape, v, t.layout);
  }
  f.mutable_meta().precision = "float64";
  CompareOptions o;
  const auto r = compare(p->ref, p->cand, &f, o);
  CHECK(exit_status(r) == 1);
  REQUIRE(r.first_divergence >= 0);
  CHECK(r.taps[static_cast<std::size_t>(r.first_divergence)].name == "encoder.blocks.1.out");
  for (const auto& t : r.taps) {
    REQUIRE(t.floor.has_value());
    REQUIRE(t.floor_x.has_value());
  }
  CHECK(*r.taps.front().floor_x < 30);
  CHECK(*r.taps[static_cast<std::size_t>(r.first_divergence)].floor_x > 300);
}

TEST_CASE("upstream dataflow and heads, as attribution reads them from the registry") {
  const auto d = wb::ModelDims::preset("tiny");
  const wb::TapRegistry& reg = wb::TapRegistry::of(d);
  auto up = [&](std::string_view n) { return reg.find(n)->upstream; };
  CHECK(up("encoder.blocks.0.attn_ln") == std::vector<std::string>{"encoder.pos_embed"});
  CHECK(up("encoder.blocks.2.attn_ln") == std::vector<std::string>{"encoder.blocks.1.out"});
  CHECK(up(wb::kLnPost) == std::vector<std::string>{"encoder.blocks.3.out"});
  CHECK(up(wb::kMel).empty());
  CHECK(reg.find("encoder.blocks.0.attn.q")->heads == 6);
  CHECK(reg.find("encoder.blocks.0.attn.out")->heads == 0);
}

TEST_CASE(
    "decoder taps of different token counts compare their common tokens; no common tap is an "
    "error") {
  auto meta = nano_meta("reference");
  MemorySource a("a.h5", meta), b("b.h5", meta);
  const int C = meta.dims.n_text_state;
  std::vector<double> va(5 * C), vb(7 * C);
  for (std::size_t i = 0; i < va.size(); ++i) va[i] = std::sin(0.1 * static_cast<double>(i));
  for (std::size_t i = 0; i < vb.size(); ++i) vb[i] = std::sin(0.1 * static_cast<double>(i));
  a.add("decoder.ln", {5, C}, va, "token,channel");
  b.add("decoder.ln", {7, C}, vb, "token,channel");
  CompareOptions o;
  const auto r = compare(a, b, nullptr, o);
  REQUIRE(r.taps.size() == 1);
  CHECK(r.taps[0].shape == wb::Shape{5, C});
  CHECK(r.taps[0].m.rel_l2 == 0.0);
  CHECK(exit_status(r) == 0);
  bool noted = false;
  for (const auto& h : r.hints) noted |= h.find("5 vs 7 tokens") != std::string::npos;
  CHECK(noted);

  MemorySource c("c.h5", meta);
  c.add("encoder.conv2", {40, 64}, std::vector<double>(40 * 64, 1.0));
  CHECK_THROWS_WITH_AS(compare(a, c, nullptr, o), doctest::Contains("have no tap in common"),
                       std::runtime_error);
}

TEST_CASE("a pure scale or shift is named as such, whatever its size") {
  // The tap is the reference times k (or plus d), rounded to float32 as a dump stores it: the
  // cosine (for a shift the correlation) is 1 to round-off, the error all along the reference.
  struct Case {
    std::string id;
    double scale, shift;
    std::string hint;  // the first divergent tap's hint must contain it
  };
  const std::vector<Case> cases = {
      {"scale 1.005", 1.005, 0.0, "scaled by 1.005"}, {"scale 1.01", 1.01, 0.0, "scaled by 1.01"},
      {"scale 1.02", 1.02, 0.0, "scaled by 1.02"},    {"scale 1.1", 1.1, 0.0, "scaled by 1.1"},
      {"scale 0.98", 0.98, 0.0, "scaled by 0.98"},    {"shift 0.05", 1.0, 0.05, "shifted by 0.05"},
  };
  const std::string tap = "encoder.blocks.0.attn.out";
  for (const auto& c : cases) {
    INFO(c.id);
    auto p = make_pair("", Fault::none);
    const std::vector<double>& a = p->ref.values(tap);
    std::vector<double>& b = p->cand.values(tap);
    for (std::size_t i = 0; i < a.size(); ++i) b[i] = static_cast<float>(c.scale * a[i] + c.shift);
    const auto r = compare(p->ref, p->cand, nullptr, CompareOptions{});
    REQUIRE(r.first_divergence >= 0);
    const auto& t = r.taps[static_cast<std::size_t>(r.first_divergence)];
    CHECK(t.name == tap);
    std::string all;
    for (const auto& h : t.hints) all += h + "\n";
    MESSAGE(all);
    CHECK(all.find(c.hint) != std::string::npos);
    CHECK(all.find("noise-like") == std::string::npos);
    if (c.shift == 0) {
      CHECK(all.find("d_head^-0.25") != std::string::npos);
      CHECK(all.find("shifted") == std::string::npos);
    } else {
      CHECK(all.find("bias") != std::string::npos);
      CHECK(all.find("scaled") == std::string::npos);
    }
  }
  // Noise of the same size is not a scale: the classification follows where the error points.
  auto p = make_pair("encoder.blocks.0.attn.out", Fault::noise);
  const auto r = compare(p->ref, p->cand, nullptr, CompareOptions{});
  REQUIRE(r.first_divergence >= 0);
  std::string all;
  for (const auto& h : r.taps[static_cast<std::size_t>(r.first_divergence)].hints) all += h + "\n";
  CHECK(all.find("noise-like") != std::string::npos);
  CHECK(all.find("scaled by") == std::string::npos);
  CHECK(all.find("shifted by") == std::string::npos);
}

TEST_CASE("without a profile, the candidate's declared precision chooses it") {
  for (const auto& [precision, profile] :
       std::vector<std::pair<std::string, std::string>>{{"float32", "float32"},
                                                        {"float64", "float32"},
                                                        {"bfloat16", "bfloat16"},
                                                        {"float16", "float16"}}) {
    INFO(precision);
    auto p = make_pair("", Fault::none);
    p->cand.mutable_meta().precision = precision;
    const auto r = compare(p->ref, p->cand, nullptr, CompareOptions{});
    CHECK(r.profile_name == profile);
    CompareOptions o;
    o.profile = ToleranceProfile::for_precision("float16");  // an explicit one wins
    CHECK(compare(p->ref, p->cand, nullptr, o).profile_name == "float16");
  }
}
