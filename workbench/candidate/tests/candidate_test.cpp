// The candidate encoder end to end: tap coverage, determinism, the front end and the convs
// against float64 computations, fault localisation (in-process and against the reference),
// fidelity against the LibTorch reference on random-weight models, every ISA path.
#include "wb/candidate/candidate.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <complex>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <numbers>
#include <random>
#include <string>
#include <vector>

#include "kernels.h"
#include "wb/compare/culprit.h"
#include "wb/compare/metrics.h"
#include "wb/compare/profile.h"
#include "wb/core/audio.h"
#include "wb/core/dump.h"
#include "wb/core/faults.h"
#include "wb/core/taps.h"
#include "wb/core/util.h"
#include "wb/core/weights.h"
#include "wb/testing/paths.h"
#include "wb/testing/reference_math.h"
#include "wb/testing/scratch.h"
#ifdef WB_HAVE_REFERENCE
#include "wb/reference/reference.h"
#endif

namespace {

constexpr uint64_t kSeed = 1234;
// Under AddressSanitizer (the sanitizer build) the two slowest cases run a subset whose code
// paths are those of the whole: the committed fixtures on their first clip only, and the taps
// all / minimal / none check on the best ISA only (every ISA's kernels are sanitized by
// wb_candidate_kernel_tests). The normal build runs them whole.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif

// Records every reported tap as float64, in order.
struct Recorder : wb::TapSink {
  std::vector<std::string> order;
  std::map<std::string, std::pair<wb::Shape, std::vector<double>>> taps;
  std::string only;  // if non-empty: the one tap wanted
  int puts = 0;
  bool wants(std::string_view name) const override { return only.empty() || name == only; }
  void put(std::string_view name, const wb::TapView& v) override {
    ++puts;
    const int64_t n = wb::shape_numel(v.shape);
    std::vector<double> d(static_cast<std::size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      d[static_cast<std::size_t>(i)] = v.dtype == wb::DType::f64
                                           ? static_cast<const double*>(v.data)[i]
                                           : static_cast<const float*>(v.data)[i];
    order.emplace_back(name);
    taps[std::string(name)] = {v.shape, std::move(d)};
  }
  const std::vector<double>& at(const std::string& n) const { return taps.at(n).second; }
};

struct NoSink : wb::TapSink {
  mutable int asked = 0;
  int puts = 0;
  bool wants(std::string_view) const override {
    ++asked;
    return false;
  }
  void put(std::string_view, const wb::TapView&) override { ++puts; }
};

struct Metrics {
  double rel_l2 = 0, cosine = 0, max_abs = 0;
  int nonfinite = 0;
};
// a: the reference side
Metrics metrics(const std::vector<double>& a, const std::vector<double>& b) {
  Metrics m;
  double na = 0, nb = 0, nd = 0, dot = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(b[i])) ++m.nonfinite;
    const double d = a[i] - b[i];
    nd += d * d;
    na += a[i] * a[i];
    nb += b[i] * b[i];
    dot += a[i] * b[i];
    m.max_abs = std::max(m.max_abs, std::fabs(d));
  }
  m.rel_l2 = na > 0 ? std::sqrt(nd / na) : std::sqrt(nd);
  m.cosine = (na > 0 && nb > 0) ? dot / std::sqrt(na * nb) : (na == nb ? 1.0 : 0.0);
  return m;
}

std::vector<float> test_pcm(double seconds, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  const auto n = static_cast<std::size_t>(seconds * wb::kSampleRate);
  std::vector<float> pcm(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double t = static_cast<double>(i) / wb::kSampleRate;
    const double f = 180.0 + 60.0 * t;  // a rising tone with harmonics, plus noise
    double s = 0.25 * std::sin(2 * std::numbers::pi * f * t + 0.3) +
               0.1 * std::sin(2 * std::numbers::pi * 3 * f * t) +
               0.05 * std::sin(2 * std::numbers::pi * 1234.5 * t);
    s *= 0.6 + 0.4 * std::sin(2 * std::numbers::pi * 1.7 * t);
    pcm[i] = static_cast<float>(s + 0.02 * nd(rng));
  }
  return pcm;
}

std::shared_ptr<const wb::Checkpoint> model(const std::string& preset) {
  static std::map<std::string, std::shared_ptr<const wb::Checkpoint>> cache;
  auto& m = cache[preset];
  if (!m)
    m = std::make_shared<const wb::Checkpoint>(
        wb::random_checkpoint(wb::ModelDims::preset(preset), kSeed));
  return m;
}

// mel -> stem -> blocks -> ln_post with every tap recorded.
Recorder run_all(wb::Encoder& enc, const std::vector<float>& pcm) {
  Recorder r;
  const wb::Tensor mel = enc.log_mel(pcm, &r);
  wb::run_encoder(enc, mel, &r);
  return r;
}

// The tap (in ref's order) where cand's rel L2 against ref is largest, and that rel L2; each tap's
// rel L2 also goes to `each` (for per-tap checks).
std::pair<std::string, double> worst_tap(
    const Recorder& ref, const Recorder& cand,
    const std::function<void(const std::string&, double)>& each = nullptr) {
  std::pair<std::string, double> worst{"", 0.0};
  for (const auto& name : ref.order) {
    const double e = metrics(ref.at(name), cand.at(name)).rel_l2;
    if (e > worst.second) worst = {name, e};
    if (each) each(name, e);
  }
  return worst;
}

std::unique_ptr<wb::Encoder> cand(const std::string& preset, std::vector<std::string> faults = {},
                                  std::string precision = "float32", int threads = 2) {
  wb::CandidateOptions o;
  o.precision = wb::parse_precision(precision);
  o.faults = wb::parse_faults(faults);
  o.threads = threads;
  return wb::make_candidate_encoder(model(preset), o);
}

const std::vector<float>& pcm12() {
  static const std::vector<float> p = test_pcm(12.0, kSeed);
  return p;
}

}  // namespace

TEST_CASE("candidate: reports exactly the registry's taps, in order, with its shapes") {
  auto enc = cand("nano");
  const Recorder r = run_all(*enc, pcm12());
  const auto specs = wb::encoder_taps(model("nano")->dims);
  REQUIRE(r.order.size() == specs.size());
  for (std::size_t i = 0; i < specs.size(); ++i) {
    CHECK(r.order[i] == specs[i].name);
    CHECK(r.taps.at(specs[i].name).first == specs[i].shape);
  }
  const auto info = enc->run_info();
  MESSAGE("run_info: " << info.dump());
  CHECK(info.at("device") == "cpu");
  CHECK(info.at("threads") == 2);
  CHECK(info.at("precision") == "float32");
}

TEST_CASE("candidate: a tap nobody selected is never built, and one selected tap alone works") {
  auto enc = cand("nano");
  NoSink none;
  const wb::Tensor mel = enc->log_mel(pcm12(), &none);
  const wb::Tensor out = wb::run_encoder(*enc, mel, &none);
  CHECK(none.puts == 0);
  CHECK(none.asked > 0);
  Recorder one;
  one.only = "encoder.blocks.1.mlp.fc1";
  const wb::Tensor out2 = wb::run_encoder(*enc, mel, &one);
  CHECK(one.puts == 1);
  CHECK(std::memcmp(out.raw(), out2.raw(), sizeof(float) * out.numel()) == 0);
  const wb::Tensor out3 = wb::run_encoder(*enc, mel, nullptr);
  CHECK(std::memcmp(out.raw(), out3.raw(), sizeof(float) * out.numel()) == 0);
}

TEST_CASE("candidate: deterministic: same thread count gives bit-identical taps") {
  for (int threads : {1, 2, 3}) {
    auto a = cand("nano", {}, "float32", threads);
    auto b = cand("nano", {}, "float32", threads);
    const Recorder ra = run_all(*a, pcm12());
    const Recorder rb = run_all(*b, pcm12());
    int differing = 0;
    for (const auto& [name, v] : ra.taps)
      if (v.second != rb.at(name)) ++differing;
    MESSAGE("threads=" << threads << ": taps differing between two runs: " << differing);
    CHECK(differing == 0);
    // and the same encoder called twice (workspace reuse)
    const Recorder rc = run_all(*a, pcm12());
    CHECK(rc.at("encoder.ln_post") == ra.at("encoder.ln_post"));
  }
}

TEST_CASE(
    "candidate: unknown fault, bad value, unknown precision -> UsageError naming the valid ones") {
  for (const char* bad : {"no-such-fault", "ln-eps", "ln-eps=abc", "attn-scale=triple",
                          "conv-pad=-1", "gelu-tanh=1"}) {
    try {
      cand("nano", {bad});
      FAIL("accepted " << bad);
    } catch (const wb::UsageError& e) {
      const std::string msg = e.what();
      CHECK(msg.find("no-ln-post") != std::string::npos);
      CHECK(msg.find("attn-scale=none|double") != std::string::npos);
    }
  }
  CHECK_THROWS_AS(cand("nano", {}, "int8"), wb::UsageError);
  // every table entry parses with each of its examples, and names its expected tap
  for (const wb::FaultInfo& f : wb::fault_table()) {
    CHECK(wb::tap_order(model("nano")->dims, f.first_tap) >= 0);
    for (auto ex : f.examples) CHECK_NOTHROW(cand("nano", {std::string(ex)}));
  }
}

TEST_CASE("candidate: log-mel vs a float64 DFT front end") {
  auto enc = cand("nano");
  Recorder r;
  const wb::Tensor mel = enc->log_mel(pcm12(), &r);
  // float64: reflect pad, periodic Hann, direct DFT, Slaney filters, log10, floor, scale.
  const std::vector<float> pcm = wb::pad_or_trim(pcm12());
  const int n = wb::kNSamples, nfft = wb::kNFft, hop = wb::kHop, bins = nfft / 2 + 1;
  const int nm = 80, frames = wb::kNFrames;
  const std::vector<double> filt = wb::mel_filters(nm);
  std::vector<double> cosv(nfft), sinv(nfft), win(nfft);
  for (int i = 0; i < nfft; ++i) {
    cosv[i] = std::cos(2 * std::numbers::pi * i / nfft);
    sinv[i] = std::sin(2 * std::numbers::pi * i / nfft);
    win[i] = 0.5 - 0.5 * cosv[i];
  }
  std::vector<double> ref(static_cast<std::size_t>(nm) * frames);
  std::vector<double> frame(nfft), power(bins);
  double mx = -1e300;
  for (int f = 0; f < frames; ++f) {
    for (int i = 0; i < nfft; ++i) {
      int j = f * hop + i - nfft / 2;
      if (j < 0) j = -j;
      if (j >= n) j = 2 * (n - 1) - j;
      frame[i] = pcm[j] * win[i];
    }
    for (int b = 0; b < bins; ++b) {
      double re = 0, im = 0;
      for (int i = 0; i < nfft; ++i) {
        const int k = (b * i) % nfft;
        re += frame[i] * cosv[k];
        im -= frame[i] * sinv[k];
      }
      power[b] = re * re + im * im;
    }
    for (int m = 0; m < nm; ++m) {
      double s = 0;
      for (int b = 0; b < bins; ++b) s += filt[m * bins + b] * power[b];
      const double l = std::log10(std::max(s, 1e-10));
      ref[static_cast<std::size_t>(m) * frames + f] = l;
      mx = std::max(mx, l);
    }
  }
  for (double& v : ref) v = (std::max(v, mx - 8.0) + 4.0) / 4.0;
  const Metrics m = metrics(ref, r.at("mel"));
  MESSAGE("mel vs float64 DFT: rel L2 " << m.rel_l2 << ", max abs " << m.max_abs);
  CHECK(m.nonfinite == 0);
  CHECK(m.rel_l2 <= 1e-6);
  CHECK(mel.shape() == wb::Shape{80, 3000});
}

TEST_CASE("candidate: conv1 (k3 s1) and conv2 (k3 s2) + GELU vs float64 direct convolution") {
  for (const char* prec : {"float32"}) {
    auto enc = cand("nano", {}, prec);
    const auto ck = model("nano");
    const int c = ck->dims.n_audio_state, nm = ck->dims.n_mels, t = ck->dims.n_audio_ctx;
    Recorder r;
    const wb::Tensor mel = enc->log_mel(pcm12(), &r);
    enc->stem(mel, &r);
    const float* w1 = ck->at("encoder.conv1.weight").f32();
    const float* b1 = ck->at("encoder.conv1.bias").f32();
    const float* w2 = ck->at("encoder.conv2.weight").f32();
    const float* b2 = ck->at("encoder.conv2.bias").f32();
    auto gelu = [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); };
    const float* mp = mel.f32();
    const std::vector<double> h1 = wb::testing::conv3_f64(
        w1, b1, c, nm, 2 * t, 2 * t, 1,
        [&](int64_t ci, int64_t src) { return mp[ci * 2 * t + src]; }, gelu);
    // conv2 on the candidate's own conv1 output (isolates conv2's error)
    const auto& c1 = r.at("encoder.conv1");
    const std::vector<double> h2 = wb::testing::conv3_f64(
        w2, b2, c, c, t, 2 * t, 2, [&](int64_t ci, int64_t src) { return c1[src * c + ci]; }, gelu);
    const Metrics m1 = metrics(h1, c1), m2 = metrics(h2, r.at("encoder.conv2"));
    // reduction lengths 3*n_mels = 240 and 3*C = 192: float32 error ~ eps * sqrt(K) relative
    MESSAGE("conv1 vs float64: rel L2 " << m1.rel_l2 << "; conv2: rel L2 " << m2.rel_l2);
    CHECK(m1.rel_l2 <= 240 * 1.2e-7);
    CHECK(m2.rel_l2 <= 192 * 1.2e-7);
  }
}

TEST_CASE("candidate: every supported ISA path gives the same encoder within float32 rounding") {
  const char* old = std::getenv("WB_ISA");
  const std::string saved = old ? old : "";
  Recorder base;
  {
    unsetenv("WB_ISA");
    auto enc = cand("nano");
    base = run_all(*enc, pcm12());
  }
  for (wb::cand::Isa isa : wb::cand::supported_isas()) {
    setenv("WB_ISA", std::string(wb::cand::isa_name(isa)).c_str(), 1);
    auto enc = cand("nano");
    CHECK(enc->run_info().at("isa") == std::string(wb::cand::isa_name(isa)));
    const Recorder r = run_all(*enc, pcm12());
    double worst = 0;
    for (const auto& [name, v] : base.taps)
      worst = std::max(worst, metrics(v.second, r.at(name)).rel_l2);
    MESSAGE("ISA " << wb::cand::isa_name(isa) << " vs default path: worst tap rel L2 " << worst);
    CHECK(worst <= 1e-5);
  }
  for (const auto& [isa, name] : wb::cand::kIsaNames) {
    if (wb::cand::isa_supported(isa)) continue;
    setenv("WB_ISA", std::string(name).c_str(), 1);
    CHECK_THROWS(cand("nano"));  // a path this CPU cannot run is refused
  }
  if (saved.empty())
    unsetenv("WB_ISA");
  else
    setenv("WB_ISA", saved.c_str(), 1);
}

// Selecting taps must not change the numbers: an unwanted tap lets the layers fuse the epilogue
// into the GEMM (layers.h linear_tapped), a wanted one splits it, with the same per-element
// operations either way. Every ISA path, every precision, plus the minimal/none selections.
TEST_CASE("candidate: taps all vs minimal vs none give a bit-identical encoder.ln_post") {
  struct LnPostOnly : wb::TapSink {
    std::vector<float> out;
    bool wants(std::string_view name) const override { return name == "encoder.ln_post"; }
    void put(std::string_view, const wb::TapView& v) override {
      const auto* p = static_cast<const float*>(v.data);
      out.assign(p, p + wb::shape_numel(v.shape));
    }
  };
  const char* old = std::getenv("WB_ISA");
  const std::string saved = old ? old : "";
  int cases = 0;
  std::vector<wb::cand::Isa> isas = wb::cand::supported_isas();
  if (kSanitized) isas = {isas.back()};
  for (wb::cand::Isa isa : isas) {
    setenv("WB_ISA", std::string(wb::cand::isa_name(isa)).c_str(), 1);
    for (const char* prec : {"float32", "bfloat16", "float16"}) {
      auto enc = cand("nano", {}, prec);
      const Recorder all = run_all(*enc, pcm12());
      LnPostOnly minimal;
      const wb::Tensor mel = enc->log_mel(pcm12(), &minimal);
      const wb::Tensor y = wb::run_encoder(*enc, mel, &minimal);
      const wb::Tensor none = wb::run_encoder(*enc, enc->log_mel(pcm12(), nullptr), nullptr);
      const auto& a = all.at("encoder.ln_post");
      REQUIRE(minimal.out.size() == a.size());
      int64_t differ = 0;
      for (std::size_t i = 0; i < a.size(); ++i)
        differ += static_cast<double>(minimal.out[i]) != a[i] || none.f32()[i] != minimal.out[i];
      MESSAGE(wb::cand::isa_name(isa) << " " << std::string(prec)
                                      << ": ln_post elements differing between taps all / "
                                         "minimal / none: "
                                      << differ);
      CHECK(differ == 0);
      CHECK(std::memcmp(y.raw(), none.raw(), sizeof(float) * y.numel()) == 0);
      ++cases;
    }
  }
  CHECK(cases >= 3);
  if (saved.empty())
    unsetenv("WB_ISA");
  else
    setenv("WB_ISA", saved.c_str(), 1);
}

TEST_CASE("candidate: float64 seam inputs are accepted (replay of the float64 reference)") {
  auto enc = cand("nano");
  const wb::Tensor mel = enc->log_mel(pcm12(), nullptr);
  const wb::Tensor x = enc->stem(mel, nullptr);
  const wb::Tensor y32 = enc->block(0, x, nullptr);
  const wb::Tensor y64 = enc->block(0, x.to(wb::DType::f64), nullptr);
  CHECK(std::memcmp(y32.raw(), y64.raw(), sizeof(float) * y32.numel()) == 0);
  CHECK_THROWS_AS(enc->block(7, x, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(enc->stem(x, nullptr), std::invalid_argument);
}

using wb::FaultCase;
std::vector<FaultCase> fault_cases() { return wb::fault_cases(); }

TEST_CASE(
    "candidate faults: each changes the dump at its tap and not before (vs un-faulted candidate)") {
  auto clean = cand("nano");
  const Recorder rc = run_all(*clean, pcm12());
  for (const FaultCase& fc : fault_cases()) {
    auto enc = cand("nano", {fc.spec});
    CHECK(enc->run_info().at("faults").at(0) == fc.spec);
    const Recorder r = run_all(*enc, pcm12());
    REQUIRE(r.order == rc.order);
    std::string first;
    for (const auto& name : rc.order)
      if (r.at(name) != rc.at(name)) {
        first = name;
        break;
      }
    const Metrics m = first.empty() ? Metrics{} : metrics(rc.at(first), r.at(first));
    MESSAGE("fault " << fc.spec << ": first differing tap " << first << " (rel L2 " << m.rel_l2
                     << ")");
    CHECK_MESSAGE(first == fc.first_tap,
                  fc.spec << ": expected " << fc.first_tap << ", got " << first);
  }
}

#ifdef WB_HAVE_REFERENCE
namespace {
// A profile's fail limit on rel L2 for a tap: the tests hold the candidate to what the
// comparator gates, per precision, as calibrated (docs/calibration.md): the built-in profile of
// each precision (float32 = fixtures/profiles/float32.json, bfloat16 = bfloat16.json,
// float16 = float16.json).
double profile_rel_l2_limit(const std::string& tap, const std::string& precision = "float32") {
  static std::map<std::string, wb::cmp::ToleranceProfile> profiles;
  auto it = profiles.find(precision);
  if (it == profiles.end())
    it = profiles.emplace(precision, wb::cmp::ToleranceProfile::for_precision(precision)).first;
  const auto& profile = it->second;
  const double limit = profile.rel_l2_fail_limit(tap);
  if (std::isinf(limit))
    throw std::logic_error("profile " + profile.name() + " has no rel_l2 limit for " + tap);
  return limit;
}

// First tap whose rel L2 vs the reference exceeds the float32 profile's fail limit (taps in
// execution order).
std::string first_beyond(const Recorder& ref, const Recorder& c, double* rel) {
  for (const auto& name : ref.order) {
    const Metrics m = metrics(ref.at(name), c.at(name));
    if (m.rel_l2 > profile_rel_l2_limit(name) || m.nonfinite > 0) {
      if (rel) *rel = m.rel_l2;
      return name;
    }
  }
  return "";
}

const Recorder& reference_run(const std::string& preset) {
  static std::map<std::string, Recorder> cache;
  auto it = cache.find(preset);
  if (it == cache.end()) {
    auto ref = wb::make_reference_encoder(model(preset), wb::DType::f32);
    it = cache.emplace(preset, run_all(*ref, pcm12())).first;
  }
  return it->second;
}
}  // namespace

TEST_CASE("candidate faults: localised to their tap against the reference") {
  const Recorder& rr = reference_run("nano");
  for (const FaultCase& fc : fault_cases()) {
    auto enc = cand("nano", {fc.spec});
    const Recorder r = run_all(*enc, pcm12());
    double rel = 0;
    const std::string first = first_beyond(rr, r, &rel);
    MESSAGE("fault " << fc.spec << " vs reference: first tap beyond the float32 profile: " << first
                     << " (rel L2 " << rel << ")");
    CHECK_MESSAGE(first == fc.first_tap,
                  fc.spec << ": expected " << fc.first_tap << ", got " << first);
  }
}

TEST_CASE("candidate fidelity vs the LibTorch reference (random weights), per precision") {
  for (const char* preset : {"nano", "tiny"}) {
    const Recorder& rr = reference_run(preset);
    for (const char* prec : {"float32", "bfloat16", "float16"}) {
      auto enc = cand(preset, {}, prec);
      const Recorder r = run_all(*enc, pcm12());
      REQUIRE(r.order == rr.order);
      const auto [worst_name, worst] = worst_tap(rr, r, [&](const std::string& name, double e) {
        CHECK_MESSAGE(e <= profile_rel_l2_limit(name, prec),
                      std::string(preset) << " " << prec << " " << name << " rel L2 " << e);
      });
      const Metrics mel = metrics(rr.at("mel"), r.at("mel"));
      const Metrics out = metrics(rr.at("encoder.ln_post"), r.at("encoder.ln_post"));
      MESSAGE(std::string(preset) << " " << std::string(prec) << ": mel rel L2 " << mel.rel_l2
                                  << "; ln_post cosine " << out.cosine << " (1-cos "
                                  << 1 - out.cosine << "), rel L2 " << out.rel_l2 << ", max abs "
                                  << out.max_abs << "; worst tap " << worst_name << " rel L2 "
                                  << worst);
      // rel L2 carries the gate (1 - cos <= rel_l2^2 / 2: a cosine bound next to it is dead).
      if (std::string(prec) == "float32") {
        CHECK(mel.rel_l2 <= 1e-5);
        CHECK(out.rel_l2 <= 1e-5);
      }
      CHECK(out.nonfinite == 0);
    }
  }
}

TEST_CASE("candidate: replayed block error is local (candidate block on reference input)") {
  const Recorder& rr = reference_run("tiny");
  auto enc = cand("tiny");
  const auto& d = model("tiny")->dims;
  for (int i = 0; i < d.n_audio_layer; ++i) {
    const std::string in =
        i == 0 ? "encoder.pos_embed" : "encoder.blocks." + std::to_string(i - 1) + ".out";
    const auto& v = rr.at(in);
    std::vector<float> f(v.begin(), v.end());
    const wb::Tensor x = wb::Tensor::from_f32({d.n_audio_ctx, d.n_audio_state}, f);
    const wb::Tensor y = enc->block(i, x, nullptr);
    const std::vector<double> yd(y.f32(), y.f32() + y.numel());
    const Metrics m = metrics(rr.at("encoder.blocks." + std::to_string(i) + ".out"), yd);
    MESSAGE("tiny block " << i << " replayed on reference input: rel L2 " << m.rel_l2);
    CHECK(m.rel_l2 <= 1e-5);
  }
}
#endif

#ifdef WB_HAVE_REFERENCE
TEST_CASE("candidate fidelity on the committed fixtures (models x clips), per precision") {
  namespace fs = std::filesystem;
  const fs::path root(wb::testing::source_dir());
  std::vector<fs::path> models;
  for (const char* m : {"fixtures/models/nano-hf", "fixtures/models/nano.bin", "fixtures/trained"})
    if (fs::exists(root / m)) models.push_back(root / m);
  std::vector<fs::path> clips;
  if (fs::exists(root / "fixtures/audio"))
    for (const auto& e : fs::directory_iterator(root / "fixtures/audio"))
      if (e.path().extension() == ".wav") clips.push_back(e.path());
  std::sort(clips.begin(), clips.end());
  if (kSanitized && clips.size() > 1) clips.resize(1);
  // The fixtures are committed: their absence is a broken checkout, not a reason to skip.
  REQUIRE_MESSAGE(models.size() == 3, "committed fixture models missing under " << root.string());
  REQUIRE_MESSAGE(!clips.empty(),
                  "no committed clips under " << (root / "fixtures/audio").string());
  for (const auto& mp : models) {
    auto ck = std::make_shared<const wb::Checkpoint>(wb::load_checkpoint(mp.string()));
    auto ref = wb::make_reference_encoder(ck, wb::DType::f32);
    for (const auto& clip : clips) {
      const wb::Audio audio = wb::load_audio(clip.string());
      const Recorder rr = run_all(*ref, audio.pcm);
      for (const char* prec : {"float32", "bfloat16", "float16"}) {
        wb::CandidateOptions o;
        o.precision = wb::parse_precision(prec);
        o.threads = 2;
        auto enc = wb::make_candidate_encoder(ck, o);
        const Recorder r = run_all(*enc, audio.pcm);
        REQUIRE(r.order == rr.order);
        const auto [worst_name, worst] = worst_tap(rr, r);
        const Metrics mel = metrics(rr.at("mel"), r.at("mel"));
        const Metrics out = metrics(rr.at("encoder.ln_post"), r.at("encoder.ln_post"));
        MESSAGE(mp.filename().string()
                << " " << clip.filename().string() << " " << std::string(prec) << ": mel rel L2 "
                << mel.rel_l2 << "; ln_post cosine " << out.cosine << " (1-cos " << 1 - out.cosine
                << "), rel L2 " << out.rel_l2 << "; worst tap " << worst_name << " " << worst);
        for (const auto& name : rr.order)
          CHECK_MESSAGE(metrics(rr.at(name), r.at(name)).rel_l2 <= profile_rel_l2_limit(name, prec),
                        mp.filename().string() << " " << prec << " " << name);
        if (std::string(prec) == "float32") {
          CHECK(mel.rel_l2 <= 1e-5);
          CHECK(out.rel_l2 <= 1e-5);
        }
        CHECK(out.nonfinite == 0);
      }
    }
  }
}
#endif

#ifdef WB_HAVE_REFERENCE
namespace {
// A reference dump of the nano model (stage taps, float32) written once for the culprit tests.
const std::string& nano_reference_dump() {
  static const std::string path = [] {
    namespace fs = std::filesystem;
    const fs::path& dir = wb::testing::scratch_dir();
    const auto ck = model("nano");
    auto ref = wb::make_reference_encoder(ck, wb::DType::f32);
    wb::DumpMeta meta;
    meta.implementation = "reference";
    meta.precision = "float32";
    meta.dims = ck->dims;
    const std::string p = (dir / "ref.h5").string();
    wb::DumpWriter w(p, meta, wb::TapSelector("blocks"));
    wb::run_encoder(*ref, ref->log_mel(pcm12(), &w), &w);
    w.finish();
    return p;
  }();
  return path;
}
}  // namespace

TEST_CASE("replay: a fault in block j is block j's own error, inherited after it; clean is clean") {
  const wb::DumpReader ref(nano_reference_dump());
  const wb::cmp::ToleranceProfile profile;
  {
    auto enc = cand("nano");
    const wb::cmp::ReplayResult r = wb::cmp::replay(*enc, ref, pcm12(), profile);
    CHECK(r.culprit == -1);
    for (const auto& s : r.stages) {
      MESSAGE("clean " << s.stage.name << ": own " << s.own << " received " << s.received
                       << " limit " << s.limit);
      CHECK(s.refused.empty());
      CHECK(s.own <= s.limit);
    }
  }
  for (int j : {0, 1}) {
    auto enc = cand("nano", {"attn-scale=double@" + std::to_string(j)});
    const wb::cmp::ReplayResult r = wb::cmp::replay(*enc, ref, pcm12(), profile);
    REQUIRE(r.culprit >= 0);
    CHECK(r.stages[static_cast<std::size_t>(r.culprit)].stage.name == "block " + std::to_string(j));
    for (const auto& s : r.stages) {
      MESSAGE("attn-scale=double@" << j << " " << s.stage.name << ": own " << s.own << " received "
                                   << s.received << " out " << s.out);
      const bool faulty = s.stage.block == j;
      CHECK(s.own_fails == faulty);  // own error at block j alone
      const bool after = s.stage.name == "ln_post" || s.stage.block > j;
      if (after) CHECK(s.received > s.limit);  // inherited downstream
    }
  }
  // A dump without the stage taps: those stages are refused, naming the taps to dump.
  namespace fs = std::filesystem;
  const auto ck = model("nano");
  const std::string p = (fs::path(nano_reference_dump()).parent_path() / "minimal.h5").string();
  {
    auto r = wb::make_reference_encoder(ck, wb::DType::f32);
    wb::DumpMeta meta;
    meta.implementation = "reference";
    meta.dims = ck->dims;
    wb::DumpWriter w(p, meta, wb::TapSelector("minimal"));
    wb::run_encoder(*r, r->log_mel(pcm12(), &w), &w);
    w.finish();
  }
  auto enc = cand("nano");
  const wb::cmp::ReplayResult r = wb::cmp::replay(*enc, wb::DumpReader(p), pcm12(), profile);
  CHECK(r.stages.front().refused.empty());  // the front end needs only mel
  CHECK(r.stages[1].refused.find("encoder.pos_embed") != std::string::npos);
}

TEST_CASE("bisect-layers: a fault in each stage of nano is found in <= ceil(log2 n) + 2 runs") {
  const auto ck = model("nano");
  auto ref = wb::make_reference_encoder(ck, wb::DType::f32);
  const wb::Tensor ref_out = wb::run_encoder(*ref, ref->log_mel(pcm12(), nullptr), nullptr);
  const double limit = profile_rel_l2_limit("encoder.ln_post");
  const wb::cmp::HybridCriterion fails = [&](const wb::Tensor& out, double* score) {
    *score = wb::cmp::diff(ref_out, out).rel_l2;
    return *score > limit;
  };
  const std::pair<const char*, const char*> cases[] = {{"mel-db", "frontend"},
                                                       {"conv-pad=2", "stem"},
                                                       {"attn-scale=double@0", "block 0"},
                                                       {"gelu-tanh@1", "block 1"},
                                                       {"no-ln-post", "ln_post"}};
  const int n = 2 + ck->dims.n_audio_layer + 1;
  const int bound = static_cast<int>(std::ceil(std::log2(n))) + 2;
  for (const auto& [fault, stage] : cases) {
    auto enc = cand("nano", {fault});
    const wb::cmp::LayerBisection b = wb::cmp::bisect_layers(*enc, *ref, pcm12(), fails);
    REQUIRE(b.culprit >= 0);
    MESSAGE(std::string(fault) << ": culprit " << b.stages[static_cast<std::size_t>(b.culprit)].name
                               << " in " << b.runs.size() << " runs (bound " << bound << ")");
    CHECK(b.stages[static_cast<std::size_t>(b.culprit)].name == stage);
    CHECK(b.confirmed);
    CHECK(static_cast<int>(b.runs.size()) <= bound);
  }
  auto clean = cand("nano");
  const wb::cmp::LayerBisection b = wb::cmp::bisect_layers(*clean, *ref, pcm12(), fails);
  CHECK(b.culprit == -1);
  CHECK(b.runs.size() == 1);
}
#endif

TEST_CASE("candidate: two runs with the same thread count write bit-identical HDF5 dumps") {
  namespace fs = std::filesystem;
  const auto ck = model("nano");
  const wb::testing::ScratchDir scratch("wb-cand-det");
  const fs::path& dir = scratch.path();
  std::vector<std::string> paths;
  for (int run = 0; run < 2; ++run) {
    auto enc = cand("nano", {}, "float32", 2);
    wb::DumpMeta meta;
    meta.implementation = enc->implementation();
    meta.precision = "float32";
    meta.dims = ck->dims;
    meta.threads = 2;
    meta.run_info = enc->run_info();
    const std::string path = (dir / ("run" + std::to_string(run) + ".h5")).string();
    wb::DumpWriter w(path, meta, wb::TapSelector("all"));
    const wb::Tensor mel = enc->log_mel(pcm12(), &w);
    wb::run_encoder(*enc, mel, &w);
    w.finish();
    paths.push_back(path);
  }
  wb::DumpReader a(paths[0]), b(paths[1]);
  REQUIRE(a.taps().size() == wb::encoder_taps(ck->dims).size());
  REQUIRE(a.taps().size() == b.taps().size());
  int differing = 0;
  for (const auto& info : a.taps()) {
    const wb::Tensor ta = a.read(info.name), tb = b.read(info.name);
    if (ta.shape() != tb.shape() ||
        std::memcmp(ta.raw(), tb.raw(), sizeof(float) * static_cast<std::size_t>(ta.numel())) != 0)
      ++differing;
  }
  MESSAGE("dump taps: " << a.taps().size() << ", differing between the two runs: " << differing
                        << "; run_info " << a.meta().run_info.dump());
  CHECK(differing == 0);
  CHECK(a.meta().run_info.at("isa") == b.meta().run_info.at("isa"));
  fs::remove_all(dir);
}
