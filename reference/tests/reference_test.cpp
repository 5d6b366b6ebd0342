// The reference against an independent float64 computation written here with plain loops
// (direct DFT, direct convolution, textbook attention): every op of the encoder, in float64
// (must agree to float64 round-off) and in float32 (must agree to float32 round-off).
//
// Tolerances: a float32 dot product of length K has a relative error of about sqrt(K) * eps32
// for random-sign terms (eps32 = 1.19e-7); we allow 4 sqrt(K) eps32 in relative L2, K being the
// op's longest reduction. For float64 the same rule with eps64 (2.2e-16) gives < 1e-13.
#include "wb/reference/reference.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "wb/core/audio.h"
#include "wb/testing/reference_math.h"

using namespace wb;

namespace {

struct Capture : TapSink {
  std::map<std::string, Tensor> taps;
  bool wants(std::string_view) const override { return true; }
  void put(std::string_view name, const TapView& v) override {
    Tensor t(v.dtype, v.shape);
    std::memcpy(t.raw(), v.data, static_cast<std::size_t>(t.numel()) * dtype_size(v.dtype));
    taps[std::string(name)] = std::move(t);
  }
};

using Vec = std::vector<double>;

Vec as_f64(const Tensor& t) {
  Tensor d = t.to(DType::f64);
  return Vec(d.f64(), d.f64() + d.numel());
}

double rel_l2(const Vec& ref, const Vec& x) {
  REQUIRE(ref.size() == x.size());
  double num = 0, den = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    num += (ref[i] - x[i]) * (ref[i] - x[i]);
    den += ref[i] * ref[i];
  }
  return std::sqrt(num / den);
}

double tol32(double k) { return 4.0 * std::sqrt(k) * 1.19e-7; }
double tol64(double k) { return 4.0 * std::sqrt(k) * 2.2e-16; }

// ---- the independent float64 implementation ------------------------------------------------
const double kSqrtHalf = std::sqrt(0.5);
double gelu(double x) { return 0.5 * x * (1.0 + std::erf(x * kSqrtHalf)); }

const Vec& W(const Checkpoint& ck, const std::string& n, Vec& store) {
  store = as_f64(ck.at(n));
  return store;
}

// y[t, o] = b[o] + sum_i x[t, i] w[o, i]
Vec linear(const Vec& x, int64_t T, int64_t in, const Checkpoint& ck, const std::string& p,
           bool bias = true) {
  Vec w = as_f64(ck.at(p + ".weight"));
  const int64_t out = static_cast<int64_t>(w.size()) / in;
  Vec b = bias ? as_f64(ck.at(p + ".bias")) : Vec(static_cast<std::size_t>(out), 0.0);
  Vec y(static_cast<std::size_t>(T * out));
  for (int64_t t = 0; t < T; ++t)
    for (int64_t o = 0; o < out; ++o) {
      double s = b[o];
      for (int64_t i = 0; i < in; ++i) s += x[t * in + i] * w[o * in + i];
      y[t * out + o] = s;
    }
  return y;
}

Vec layer_norm(const Vec& x, int64_t T, int64_t C, const Checkpoint& ck, const std::string& p) {
  Vec g = as_f64(ck.at(p + ".weight")), b = as_f64(ck.at(p + ".bias")), y(x.size());
  for (int64_t t = 0; t < T; ++t) {
    const auto [m, v] = wb::testing::mean_var_f64(x.data() + t * C, C);
    for (int64_t c = 0; c < C; ++c)
      y[t * C + c] = (x[t * C + c] - m) / std::sqrt(v + 1e-5) * g[c] + b[c];
  }
  return y;
}

// softmax(q k^T / sqrt(d_head)) v per head; identical in exact arithmetic to scaling q and k by
// d_head^-0.25 each (model.py), so this also checks that the scale is applied exactly once.
Vec attention(const Vec& q, const Vec& k, const Vec& v, int64_t T, int64_t C, int64_t H) {
  const int64_t dh = C / H;
  Vec out(static_cast<std::size_t>(T * C));
  Vec s(static_cast<std::size_t>(T));
  for (int64_t h = 0; h < H; ++h)
    for (int64_t i = 0; i < T; ++i) {
      double mx = -1e300;
      for (int64_t j = 0; j < T; ++j) {
        double d = 0;
        for (int64_t e = 0; e < dh; ++e) d += q[i * C + h * dh + e] * k[j * C + h * dh + e];
        s[j] = d / std::sqrt(static_cast<double>(dh));
        mx = std::max(mx, s[j]);
      }
      double z = 0;
      for (int64_t j = 0; j < T; ++j) z += (s[j] = std::exp(s[j] - mx));
      for (int64_t e = 0; e < dh; ++e) {
        double a = 0;
        for (int64_t j = 0; j < T; ++j) a += s[j] * v[j * C + h * dh + e];
        out[i * C + h * dh + e] = a / z;
      }
    }
  return out;
}

// Centered STFT with reflect padding, periodic Hann, direct DFT, last frame dropped.
Vec naive_log_mel(const std::vector<float>& pcm, int n_mels) {
  const std::vector<float> a = pad_or_trim(pcm);
  const int64_t n = static_cast<int64_t>(a.size()), pad = kNFft / 2, frames = kNFrames,
                bins = kNFft / 2 + 1;
  auto sample = [&](int64_t i) {  // reflect padding: x[-i] = x[i], x[n-1+i] = x[n-1-i]
    i -= pad;
    if (i < 0) i = -i;
    if (i >= n) i = 2 * (n - 1) - i;
    return static_cast<double>(a[static_cast<std::size_t>(i)]);
  };
  Vec cosv(kNFft * bins), sinv(kNFft * bins), win(kNFft);
  for (int j = 0; j < kNFft; ++j) win[j] = 0.5 - 0.5 * std::cos(2 * M_PI * j / kNFft);
  for (int k = 0; k < bins; ++k)
    for (int j = 0; j < kNFft; ++j) {
      cosv[k * kNFft + j] = std::cos(2 * M_PI * k * j / kNFft);
      sinv[k * kNFft + j] = std::sin(2 * M_PI * k * j / kNFft);
    }
  const Vec filt = mel_filters(n_mels);
  Vec mel(static_cast<std::size_t>(n_mels * frames));
  Vec power(bins), x(kNFft);
  for (int64_t f = 0; f < frames; ++f) {
    for (int j = 0; j < kNFft; ++j) x[j] = sample(f * kHop + j) * win[j];
    for (int k = 0; k < bins; ++k) {
      double re = 0, im = 0;
      for (int j = 0; j < kNFft; ++j) {
        re += x[j] * cosv[k * kNFft + j];
        im -= x[j] * sinv[k * kNFft + j];
      }
      power[k] = re * re + im * im;
    }
    for (int m = 0; m < n_mels; ++m) {
      double s = 0;
      for (int k = 0; k < bins; ++k) s += filt[m * bins + k] * power[k];
      mel[m * frames + f] = std::log10(std::max(s, 1e-10));
    }
  }
  const double mx = *std::max_element(mel.begin(), mel.end());
  for (double& v : mel) v = (std::max(v, mx - 8.0) + 4.0) / 4.0;
  return mel;
}

struct Fixture {
  std::shared_ptr<const Checkpoint> ck =
      std::make_shared<const Checkpoint>(random_checkpoint(ModelDims::preset("nano"), 11));
  std::vector<float> pcm = [] {
    // A chirp plus seeded noise: energy across the band, 2.5 s of signal then silence (padding).
    std::mt19937 rng(1234);
    std::normal_distribution<float> nd(0.f, 0.05f);
    std::vector<float> p(40000);
    for (std::size_t i = 0; i < p.size(); ++i) {
      const double t = i / 16000.0;
      p[i] = static_cast<float>(0.5 * std::sin(2 * M_PI * (200 + 1500 * t) * t)) + nd(rng);
    }
    return p;
  }();
};

}  // namespace

TEST_CASE("reference encoder ops vs an independent float64 computation") {
  Fixture fx;
  const ModelDims& d = fx.ck->dims;
  const int64_t T = d.n_audio_ctx, C = d.n_audio_state, M = d.n_mels;
  MESSAGE("model: nano random weights, seed 11; audio: seeded chirp + noise (seed 1234)");

  // Independent float64 forward pass.
  const Vec mel = naive_log_mel(fx.pcm, static_cast<int>(M));
  Vec c1, c2;
  {
    Vec w1 = as_f64(fx.ck->at("encoder.conv1.weight")),
        b1 = as_f64(fx.ck->at("encoder.conv1.bias"));
    Vec w2 = as_f64(fx.ck->at("encoder.conv2.weight")),
        b2 = as_f64(fx.ck->at("encoder.conv2.bias"));
    c1 = wb::testing::conv3_f64(
        w1.data(), b1.data(), C, M, 2 * T, 2 * T, 1,
        [&](int64_t i, int64_t src) { return mel[i * 2 * T + src]; }, gelu);
    c2 = wb::testing::conv3_f64(
        w2.data(), b2.data(), C, C, T, 2 * T, 2,
        [&](int64_t i, int64_t src) { return c1[src * C + i]; }, gelu);
  }
  Vec x = c2;
  const Vec pos = as_f64(fx.ck->at("encoder.positional_embedding"));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] += pos[i];
  const Vec pos_embed = x;
  std::map<std::string, Vec> expect{
      {"mel", mel}, {"encoder.conv1", c1}, {"encoder.conv2", c2}, {"encoder.pos_embed", pos_embed}};
  for (int b = 0; b < d.n_audio_layer; ++b) {
    const std::string p = fmt::format("encoder.blocks.{}", b);
    const Vec h = layer_norm(x, T, C, *fx.ck, p + ".attn_ln");
    const Vec q = linear(h, T, C, *fx.ck, p + ".attn.query"),
              k = linear(h, T, C, *fx.ck, p + ".attn.key", false),
              v = linear(h, T, C, *fx.ck, p + ".attn.value");
    const Vec a = linear(attention(q, k, v, T, C, d.n_audio_head), T, C, *fx.ck, p + ".attn.out");
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += a[i];
    expect[p + ".attn_ln"] = h;
    expect[p + ".attn.q"] = q;
    expect[p + ".attn.k"] = k;
    expect[p + ".attn.v"] = v;
    expect[p + ".attn.out"] = a;
    expect[p + ".resid_attn"] = x;
    const Vec h2 = layer_norm(x, T, C, *fx.ck, p + ".mlp_ln");
    const Vec f1 = linear(h2, T, C, *fx.ck, p + ".mlp.0");
    Vec g = f1;
    for (double& e : g) e = gelu(e);
    const Vec f2 = linear(g, T, 4 * C, *fx.ck, p + ".mlp.2");
    for (std::size_t i = 0; i < x.size(); ++i) x[i] += f2[i];
    expect[p + ".mlp_ln"] = h2;
    expect[p + ".mlp.fc1"] = f1;
    expect[p + ".mlp.gelu"] = g;
    expect[p + ".mlp.fc2"] = f2;
    expect[p + ".out"] = x;
  }
  expect["encoder.ln_post"] = layer_norm(x, T, C, *fx.ck, "encoder.ln_post");

  // Longest reduction feeding each tap: the DFT (400) for mel, the conv (3 C_in) for the stem,
  // the attention over T keys for attention taps and everything after, 4C for fc2.
  auto reduction = [&](const std::string& name) -> double {
    if (name == "mel") return kNFft;
    if (name.rfind("encoder.conv", 0) == 0 || name == "encoder.pos_embed")
      return 3.0 * std::max<int64_t>(M, C);
    return static_cast<double>(std::max<int64_t>(T, 4 * C));
  };
  for (DType dt : {DType::f64, DType::f32}) {
    auto enc = make_reference_encoder(fx.ck, dt);
    Capture cap;
    const Tensor m = enc->log_mel(fx.pcm, &cap);
    run_encoder(*enc, m, &cap);
    REQUIRE(cap.taps.size() == encoder_taps(d).size());
    for (const auto& spec : encoder_taps(d)) {
      const Tensor& got = cap.taps.at(spec.name);
      REQUIRE(got.shape() == spec.shape);
      const double err = rel_l2(expect.at(spec.name), as_f64(got));
      const double k = reduction(spec.name);
      // Layer norm divides by a row std that can be small; blocks compound; the tolerance grows
      // with depth: (1 + block index) times the single-op bound.
      int depth = 1;
      if (auto pos2 = spec.name.find("blocks."); pos2 != std::string::npos)
        depth = 1 + std::stoi(spec.name.substr(pos2 + 7));
      if (spec.name == "encoder.ln_post") depth = 1 + d.n_audio_layer;
      const double tol = depth * (dt == DType::f64 ? tol64(k) : tol32(k));
      MESSAGE(fmt::format("{} {:<32} rel L2 {:.3e}  (tol {:.1e})", dtype_name(dt), spec.name, err,
                          tol));
      CHECK_MESSAGE(err <= tol, fmt::format("{} {}: rel L2 {:.3e} > {:.1e}", dtype_name(dt),
                                            spec.name, err, tol));
    }
  }
}

TEST_CASE("reference runs are bit-identical and blocks compose through the seam") {
  Fixture fx;
  auto enc = make_reference_encoder(fx.ck, DType::f32);
  Capture a, b;
  const Tensor m1 = enc->log_mel(fx.pcm, &a);
  const Tensor o1 = run_encoder(*enc, m1, &a);
  auto enc2 = make_reference_encoder(fx.ck, DType::f32);
  const Tensor m2 = enc2->log_mel(fx.pcm, &b);
  run_encoder(*enc2, m2, &b);
  for (const auto& [name, t] : a.taps)
    REQUIRE_MESSAGE(std::memcmp(t.raw(), b.taps.at(name).raw(), t.numel() * 4) == 0, name);
  // Replaying block 1 on the recorded input of block 1 reproduces its output exactly.
  const Tensor again = enc->block(1, a.taps.at("encoder.blocks.0.out"), nullptr);
  CHECK(std::memcmp(again.raw(), a.taps.at("encoder.blocks.1.out").raw(), again.numel() * 4) == 0);
  CHECK_THROWS_AS(enc->block(5, again, nullptr), std::invalid_argument);
  CHECK_THROWS_AS(enc->stem(Tensor(DType::f32, {80, 100}), nullptr), std::invalid_argument);
}

TEST_CASE("greedy decoder: deterministic, stops within the context, decoder taps shaped") {
  Fixture fx;
  auto enc = make_reference_encoder(fx.ck, DType::f32);
  const Tensor out = run_encoder(*enc, enc->log_mel(fx.pcm, nullptr), nullptr);
  ReferenceDecoder dec(fx.ck);
  Capture cap;
  const DecodeResult r1 = dec.greedy(out, &cap, 10);
  const DecodeResult r2 = dec.greedy(out, nullptr, 10);
  CHECK(r1.tokens == r2.tokens);
  CHECK(r1.tokens.size() <= 10u);
  for (int t : r1.tokens) CHECK((t < fx.ck->vocab.eot()));  // specials suppressed
  const auto n = static_cast<int64_t>(r1.tokens.size() + 4);
  CHECK(cap.taps.at("logits").shape() == Shape{n, fx.ck->dims.n_vocab});
  CHECK(cap.taps.at("decoder.blocks.1.out").shape() == Shape{n, fx.ck->dims.n_text_state});
  CHECK(cap.taps.size() == decoder_taps(fx.ck->dims, 1).size());
}
