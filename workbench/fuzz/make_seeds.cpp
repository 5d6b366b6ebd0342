// Writes the seed corpora of the fuzz harnesses (fixtures/fuzz/<harness>/seed-*) with wb's own
// writers, so every seed is a real, valid file of the tiny model (fuzz_model.h) and small:
//   wb_fuzz_seeds SOURCE_DIR OUT_DIR      (OUT_DIR is normally SOURCE_DIR/fixtures/fuzz)
// Repros of fixed findings (crash-*, oom-*, timeout-*) are committed beside the seeds by hand.
#include <fmt/format.h>
#include <sndfile.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "fuzz_model.h"
#include "wb/core/dump.h"
#include "wb/core/util.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void copy_to(const fs::path& from, const fs::path& to) {
  fs::copy_file(from, to, fs::copy_options::overwrite_existing);
}
void text(const fs::path& to, const std::string& s) {
  wb::fuzz::write_bytes(to, s.data(), s.size());
}

// A short tone (n frames) in the given container/encoding; libsndfile does the encoding.
void audio(const fs::path& to, int format, int rate, int channels, int frames) {
  SF_INFO info{};
  info.samplerate = rate;
  info.channels = channels;
  info.format = format;
  SNDFILE* f = sf_open(to.c_str(), SFM_WRITE, &info);
  if (f == nullptr) {
    std::fprintf(stderr, "skip %s: %s\n", to.c_str(), sf_strerror(nullptr));
    return;
  }
  std::vector<float> pcm(static_cast<std::size_t>(frames * channels));
  for (int i = 0; i < frames; ++i)
    for (int c = 0; c < channels; ++c)
      pcm[static_cast<std::size_t>(i * channels + c)] = 0.5f * std::sin(0.3f * i + c);
  sf_writef_float(f, pcm.data(), frames);
  sf_close(f);
}

void dump(const fs::path& to, wb::DumpOptions opts, const std::string& taps, bool decode) {
  wb::DumpMeta m;
  m.implementation = "reference";
  m.precision = "float32";
  m.model_sha256 = std::string(64, '0');
  m.dims = wb::fuzz::tiny_dims();
  m.audio_name = "tone.wav";
  m.tool_version = "seed";
  m.created = "2000-01-01T00:00:00Z";
  m.run_info = {{"isa", "seed"}};
  const std::string tmp = to.string() + ".tmp";
  wb::DumpWriter w(tmp, m, wb::TapSelector(taps), opts);
  auto all = wb::encoder_taps(m.dims);
  for (const auto& t : wb::decoder_taps(m.dims, 2)) all.push_back(t);
  for (const auto& t : all) {
    if (!w.wants(t.name)) continue;
    std::vector<float> v(static_cast<std::size_t>(wb::shape_numel(t.shape)));
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::cos(0.7f * static_cast<float>(i));
    wb::report(&w, t.name, t.shape, wb::DType::f32, v.data());
  }
  if (decode) {
    w.set_decode({1, 2, 3}, "seed");
    w.set_timing("encoder", 0.25);
  }
  w.finish();
  fs::rename(tmp, to);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: wb_fuzz_seeds SOURCE_DIR OUT_DIR\n");
    return 2;
  }
  const fs::path src = argv[1], out = argv[2];
  auto dir = [&](const char* h) {
    fs::create_directories(out / h);
    return out / h;
  };

  // fuzz_audio: each container and encoding libsndfile reads, a few hundred frames.
  const fs::path a = dir("fuzz_audio");
  audio(a / "seed-pcm16-8k-mono.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_16, 8000, 1, 200);
  audio(a / "seed-float-44k-stereo.wav", SF_FORMAT_WAV | SF_FORMAT_FLOAT, 44100, 2, 300);
  audio(a / "seed-u8-22k-mono.wav", SF_FORMAT_WAV | SF_FORMAT_PCM_U8, 22050, 1, 200);
  audio(a / "seed-ima-adpcm-16k.wav", SF_FORMAT_WAV | SF_FORMAT_IMA_ADPCM, 16000, 1, 505);
  audio(a / "seed-ms-adpcm-16k.wav", SF_FORMAT_WAV | SF_FORMAT_MS_ADPCM, 16000, 1, 500);
  audio(a / "seed-pcm24-16k.w64", SF_FORMAT_W64 | SF_FORMAT_PCM_24, 16000, 1, 100);
  audio(a / "seed-pcm16-16k.flac", SF_FORMAT_FLAC | SF_FORMAT_PCM_16, 16000, 1, 400);
  audio(a / "seed-vorbis-16k.ogg", SF_FORMAT_OGG | SF_FORMAT_VORBIS, 16000, 1, 400);
  audio(a / "seed-opus-48k.opus", SF_FORMAT_OGG | SF_FORMAT_OPUS, 48000, 1, 960);
  audio(a / "seed-pcm16-16k.aiff", SF_FORMAT_AIFF | SF_FORMAT_PCM_16, 16000, 2, 100);
  audio(a / "seed-ulaw-8k.au", SF_FORMAT_AU | SF_FORMAT_ULAW, 8000, 1, 100);
  audio(a / "seed-double-16k.caf", SF_FORMAT_CAF | SF_FORMAT_DOUBLE, 16000, 1, 100);
  audio(a / "seed-mp3-16k.mp3", SF_FORMAT_MPEG | SF_FORMAT_MPEG_LAYER_III, 16000, 1, 1152);

  // fuzz_safetensors and fuzz_hf_config: the tiny model in each stored dtype, its config, vocab.
  const wb::Checkpoint ck = wb::random_checkpoint(wb::fuzz::tiny_dims(), 1);
  const fs::path tmp = wb::fuzz::scratch();
  const fs::path st = dir("fuzz_safetensors"), cf = dir("fuzz_hf_config");
  for (const auto& [dt, name] :
       {std::pair{wb::DType::f32, "f32"}, {wb::DType::f16, "f16"}, {wb::DType::bf16, "bf16"}}) {
    wb::save_hf(ck, (tmp / name).string(), dt);
    copy_to(tmp / name / "model.safetensors", st / fmt::format("seed-tiny-{}.safetensors", name));
  }
  const std::string config = wb::read_file((tmp / "f32" / "config.json").string());
  const std::string vocab = wb::read_file((tmp / "f32" / "vocab.json").string());
  json tok = {{"model", {{"type", "BPE"}, {"vocab", json::parse(vocab)}}},
              {"added_tokens",
               json::array({{{"id", 256}, {"content", "<|endoftext|>"}, {"special", true}}})}};
  text(cf / "seed-config.json", config);
  text(cf / "seed-config-vocab.json", config + "\n#--\n" + vocab);
  text(cf / "seed-config-tokenizer.json", config + "\n#--\n\n#--\n" + tok.dump());
  copy_to(src / "fixtures/models/nano-hf/config.json", cf / "seed-nano-config.json");

  // fuzz_ggml: the tiny model in both stored types.
  const fs::path gg = dir("fuzz_ggml");
  wb::save_ggml(ck, (gg / "seed-tiny-f32.bin").string(), wb::DType::f32);
  wb::save_ggml(ck, (gg / "seed-tiny-f16.bin").string(), wb::DType::f16);

  // fuzz_dump: dumps of the tiny model as wb writes them (all storage types, chunked, gzip).
  const fs::path du = dir("fuzz_dump");
  dump(du / "seed-encoder-f32.h5", {wb::DType::f32, 0}, "encoder", true);
  dump(du / "seed-decoder-f32.h5", {wb::DType::f32, 0}, "decoder", false);
  dump(du / "seed-blocks-f16-gzip.h5", {wb::DType::f16, 4}, "blocks", true);
  dump(du / "seed-minimal-f64.h5", {wb::DType::f64, 0}, "minimal", false);
  dump(du / "seed-mel-f32.h5", {wb::DType::f32, 0}, "mel", true);

  // fuzz_profile and fuzz_name_map: the committed ones plus small edge cases.
  const fs::path pr = dir("fuzz_profile"), nm = dir("fuzz_name_map");
  for (const char* p : {"float32", "bfloat16"})
    copy_to(src / "fixtures/profiles" / fmt::format("{}.json", p),
            pr / fmt::format("seed-{}.json", p));
  text(pr / "seed-floor-rule.json",
       R"({"name": "x", "atol": 0, "rtol": 0, // comment
  "fail": {"rel_l2": {"max": 1e-3}}, "warn": {"cosine": {"min": 0.999}},
  "rules": [{"taps": ["mel", "encoder.**"], "fail": {"max_abs": {"max_floor": 50, "max": 1}}, "ignore": false},
            {"taps": "encoder.blocks.?.mlp.*", "allow_nonfinite": true, "atol": 1e-6}],
  "changepoint": {"ratio": 30, "min_rel_l2": 1e-5}, "attribution": {"local_ratio": 4}}
)");
  copy_to(src / "fixtures/maps/hf.json", nm / "seed-hf.json");
  text(
      nm / "seed-nested.json",
      R"({"description": "d", "map": {"enc.{i}.ln1": "encoder.blocks.{i}.attn_ln", "frontend": "mel"}})");
  text(nm / "seed-flat.json", R"({"model.encoder.layer_norm": "encoder.ln_post", "version": 1})");
  std::printf("seeds written under %s\n", out.c_str());
  return 0;
}
