// Conversions, dims, tokenizer layout, tap registry, mel filters: each against a closed form.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <cmath>
#include <cstring>

#include "wb/core/audio.h"
#include "wb/core/dims.h"
#include "wb/core/taps.h"
#include "wb/core/tensor.h"
#include "wb/core/tokenizer.h"

using namespace wb;

TEST_CASE("half conversions: known encodings and an exhaustive round trip") {
  CHECK(float_to_half(1.0f) == 0x3c00);
  CHECK(float_to_half(-2.0f) == 0xc000);
  CHECK(float_to_half(65504.0f) == 0x7bff);
  CHECK(float_to_half(65520.0f) == 0x7c00);                      // rounds up to inf
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001);         // smallest subnormal
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie -> even
  CHECK(float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const auto v = static_cast<uint16_t>(h);
    const float f = half_to_float(v);
    if (std::isnan(f)) continue;
    REQUIRE_MESSAGE(float_to_half(f) == v, fmt::format("half {:#06x}", h));
  }
  // Each finite half value equals its closed form (-1)^s 2^(e-15) (1 + m/1024).
  CHECK(half_to_float(0x3555) == static_cast<float>(std::ldexp(1.0 + 0x155 / 1024.0, -2)));
}

TEST_CASE("bfloat16 conversions round to nearest even") {
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // tie -> even
  CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie -> even (up)
  CHECK(std::isnan(bf16_to_float(float_to_bf16(NAN))));
}

TEST_CASE("model dims: JSON round trip and validation") {
  for (const char* p : {"nano", "tiny", "base", "small", "medium", "large-v2", "large-v3"}) {
    const ModelDims d = ModelDims::preset(p);
    CHECK(ModelDims::from_json(d.to_json()) == d);
  }
  nlohmann::json j = ModelDims::preset("tiny").to_json();
  j["n_audio_head"] = 5;  // 384 not divisible by 5
  CHECK_THROWS_AS(ModelDims::from_json(j), std::invalid_argument);
  j.erase("n_audio_head");
  CHECK_THROWS_AS(ModelDims::from_json(j), std::invalid_argument);
  CHECK_THROWS_AS(ModelDims::preset("huge"), std::invalid_argument);
}

TEST_CASE("tokenizer: Whisper's special-token ids for the real vocabularies") {
  // openai/whisper tokenizer.py: multilingual (51865), English-only (51864), large-v3 (51866).
  Vocabulary multi(std::vector<std::string>(50257, "x"), 51865);
  CHECK(multi.eot() == 50257);
  CHECK(multi.sot() == 50258);
  CHECK(multi.language(0) == 50259);
  CHECK(multi.translate() == 50358);
  CHECK(multi.transcribe() == 50359);
  CHECK(multi.nospeech() == 50362);
  CHECK(multi.notimestamps() == 50363);
  CHECK(multi.timestamp_begin() == 50364);
  Vocabulary en(std::vector<std::string>(50256, "x"), 51864);
  CHECK(en.eot() == 50256);
  CHECK(en.sot() == 50257);
  CHECK(en.translate() == 50357);
  CHECK(en.notimestamps() == 50362);
  Vocabulary v3(std::vector<std::string>(50257, "x"), 51866);
  CHECK(v3.n_languages() == 100);
  CHECK(v3.notimestamps() == 50364);
  CHECK(v3.timestamp_begin() == 50365);
  CHECK_THROWS_AS(Vocabulary(std::vector<std::string>(256, "x"), 1000), std::invalid_argument);
}

TEST_CASE("tokenizer: GPT-2 byte map is a bijection and decode drops specials") {
  for (int b = 0; b < 256; ++b) {
    const std::string s(1, static_cast<char>(b));
    REQUIRE(gpt2_unicode_to_bytes(bytes_to_gpt2_unicode(s)) == s);
  }
  CHECK(bytes_to_gpt2_unicode(" hi") == "\xC4\xA0hi");  // space -> U+0120 'Ġ'
  std::vector<std::string> base(256);
  for (int b = 0; b < 256; ++b) base[b] = std::string(1, static_cast<char>(b));
  Vocabulary v(base, 256 + 1510);
  CHECK(v.decode({v.sot(), 'h', 'i', v.eot()}) == "hi");
  CHECK(v.token_text(v.timestamp_begin() + 50) == "<|1.00|>");
}

TEST_CASE("tap registry and selection") {
  const ModelDims d = ModelDims::preset("tiny");
  const auto taps = encoder_taps(d);
  CHECK(taps.size() == 4 + 11 * 4 + 1);
  CHECK(taps.front().name == "mel");
  CHECK(taps.front().shape == Shape{80, 3000});
  CHECK(taps.back().name == "encoder.ln_post");
  CHECK(tap_order(d, "encoder.blocks.1.attn.q") > tap_order(d, "encoder.blocks.0.out"));
  CHECK(tap_order(d, "logits") > tap_order(d, "encoder.ln_post"));
  CHECK(tap_order(d, "nonsense") == -1);
  CHECK(glob_match("encoder.blocks.*.out", "encoder.blocks.12.out"));
  CHECK_FALSE(glob_match("encoder.blocks.*.out", "encoder.blocks.1.attn.out2"));
  CHECK(glob_match("a?c*", "abcdef"));
  CHECK_FALSE(glob_match("encoder.blocks.*.out", "encoder.blocks.0.attn.out"));
  CHECK(glob_match("encoder.**.out", "encoder.blocks.0.attn.out"));
  CHECK(glob_match("**", "encoder.blocks.0.attn.out"));
  CHECK_FALSE(glob_match("encoder.*", "encoder.blocks.0.out"));
  TapSelector blocks("blocks");
  CHECK(blocks.selected("encoder.blocks.3.out"));
  CHECK_FALSE(blocks.selected("encoder.blocks.3.attn.q"));
  TapSelector mix("minimal,encoder.blocks.0.**");
  CHECK(mix.selected("encoder.blocks.0.attn.q"));
  CHECK(mix.selected("logits"));
  CHECK_FALSE(mix.selected("encoder.blocks.1.out"));
  CHECK_THROWS_AS(TapSelector(","), std::invalid_argument);
}

TEST_CASE("Slaney mel filters match the closed form at hand-computed points") {
  // 80 mels, n_fft 400, 16 kHz: mel points are linear in Slaney mel between 0 and
  // hz_to_mel(8000) = 15 + ln(8) / (ln(6.4) / 27); below 1 kHz one mel is 200/3 Hz.
  const auto w = mel_filters(80);
  const double mel_max = 15.0 + std::log(8.0) / (std::log(6.4) / 27.0);
  const double step_hz = mel_max / 81.0 * 200.0 / 3.0;  // first filters lie below 1 kHz
  // Filter 0 spans [0, 2 step]; bin 1 (40 Hz) on its falling edge; area normalisation 2/(2 step).
  const double expect = (2 * step_hz - 40.0) / step_hz * (2.0 / (2 * step_hz));
  CHECK(w[1] == doctest::Approx(expect).epsilon(1e-12));
  CHECK(w[0] == 0.0);  // 0 Hz is the filter's lower edge
  // Known value from Whisper's mel_filters.npz (librosa, float32): 0.02486259.
  CHECK(w[1] == doctest::Approx(0.02486259).epsilon(1e-6));
  // Every filter is non-negative and non-empty.
  for (int m = 0; m < 80; ++m) {
    double s = 0;
    for (int k = 0; k < 201; ++k) s += w[m * 201 + k];
    CHECK(s > 0);
  }
  CHECK(mel_filters(128).size() == 128u * 201u);
}

TEST_CASE("shape arithmetic rejects overflow and negative dims") {
  CHECK(shape_numel({3, 4}) == 12);
  CHECK_THROWS_AS(shape_numel({-1, 4}), std::invalid_argument);
  CHECK_THROWS_AS(shape_numel({int64_t{1} << 40, int64_t{1} << 40}), std::invalid_argument);
  Tensor t = Tensor::from_f32({2, 2}, {1, 2, 3, 4});
  CHECK(t.to(DType::f64).f64()[3] == 4.0);
  CHECK_THROWS_AS(t.reshaped({3}), std::invalid_argument);
}
