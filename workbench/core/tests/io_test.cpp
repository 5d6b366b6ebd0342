// Checkpoint readers/writers, HDF5 dumps and audio decoding: round trips and refusals.
#include <H5Cpp.h>
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "wb/core/audio.h"
#include "wb/core/dump.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"
#include "wb/core/weights.h"
#include "wb/testing/paths.h"
#include "wb/testing/scratch.h"

using namespace wb;
namespace fs = std::filesystem;

namespace {
const fs::path& scratch() { return wb::testing::scratch_dir(); }

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// The message of the runtime_error thrown by f, or "" if none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

DumpMeta meta_for(const ModelDims& d) {
  DumpMeta m;
  m.implementation = "test";
  m.precision = "float32";
  m.model_sha256 = "00";
  m.dims = d;
  m.tool_version = tool_version();
  m.created = utc_now_iso8601();
  return m;
}
}  // namespace

TEST_CASE("sha256: FIPS 180-4 test vectors, bytes and file alike, across block boundaries") {
  CHECK(sha256_bytes("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_bytes("abc", 3) ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";  // 56 bytes
  CHECK(sha256_bytes(two.data(), two.size()) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  const std::string million(1000000, 'a');  // many blocks; the file path reads it in 1 MiB parts
  CHECK(sha256_bytes(million.data(), million.size()) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  const auto f = std::filesystem::temp_directory_path() / fmt::format("wb-sha-{}", ::getpid());
  std::ofstream(f, std::ios::binary) << million;
  CHECK(sha256_file(f.string()) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  std::filesystem::remove(f);
}

TEST_CASE("random weights: the numbers of one engine drawn in order, whatever the thread count") {
  const Checkpoint ck = random_checkpoint(ModelDims::preset("tiny"), 1);
  // The first drawn tensor (conv1, 92 160 values: the threaded path) against one thread drawing
  // and transforming in turn: Box-Muller on two raw draws, std 1/sqrt(fan_in).
  std::mt19937_64 rng(1);
  const Tensor& w = ck.at("encoder.conv1.weight");
  const double sd = 1.0 / std::sqrt(static_cast<double>(w.shape()[1] * w.shape()[2]));
  for (int64_t i = 0; i < w.numel(); ++i) {
    const double u1 = (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
    REQUIRE(w.f32()[i] == static_cast<float>(sd * z));
  }
  // Every tensor, in the table's order: the digest of the single-threaded generator's output
  // (this function before its draws and transforms were split, 8c3f8d3), so that `wb
  // fixture-model` and `--random-dims` keep making the same models (and dumps' model_sha256).
  std::string digests;
  for (const auto& s : weight_table(ck.dims)) {
    const Tensor& t = ck.at(s.name);
    digests += sha256_bytes(t.raw(), static_cast<std::size_t>(t.numel()) * 4);
  }
  CHECK(sha256_bytes(digests.data(), digests.size()) ==
        "a864bea94826d0acfcb44b1a8cff24d16445cc36427b6553f4f48f44a4372e10");
}

TEST_CASE("HF and ggml writers round-trip the same weights bit for bit") {
  const Checkpoint ck = random_checkpoint(ModelDims::preset("nano"), 7);
  const auto hf = scratch() / "hf", gg = scratch() / "m.bin";
  save_hf(ck, hf.string(), DType::f32);
  save_ggml(ck, gg.string(), DType::f32);
  const Checkpoint a = load_checkpoint(hf.string()), b = load_checkpoint(gg.string());
  CHECK(a.dims == ck.dims);
  CHECK(b.dims == ck.dims);
  CHECK(a.vocab.base_tokens() == ck.vocab.base_tokens());
  CHECK(b.vocab.base_tokens() == ck.vocab.base_tokens());
  for (const auto& s : weight_table(ck.dims)) {
    const Tensor &x = ck.at(s.name), &y = a.at(s.name), &z = b.at(s.name);
    REQUIRE(std::memcmp(x.raw(), y.raw(), x.numel() * 4) == 0);
    REQUIRE(std::memcmp(x.raw(), z.raw(), x.numel() * 4) == 0);
  }
  CHECK(a.sha256.size() == 64);
  // float16 storage: every weight equals its rounding to half.
  save_ggml(ck, (scratch() / "h.bin").string(), DType::f16);
  const Checkpoint h = load_checkpoint((scratch() / "h.bin").string());
  CHECK(h.stored_dtype == "float16");
  const Tensor& q = h.at("encoder.blocks.0.attn.query.weight");
  const Tensor& q0 = ck.at("encoder.blocks.0.attn.query.weight");
  for (int64_t i = 0; i < q.numel(); ++i)
    REQUIRE(q.f32()[i] == half_to_float(float_to_half(q0.f32()[i])));
}

TEST_CASE("checkpoint readers refuse corrupt files with the file and the problem") {
  const Checkpoint ck = random_checkpoint(ModelDims::preset("nano"), 7);
  const auto gg = scratch() / "ok.bin";
  save_ggml(ck, gg.string(), DType::f32);
  const std::string bytes = read_file(gg.string());
  SUBCASE("truncated ggml") {
    write_bytes(scratch() / "trunc.bin", bytes.substr(0, bytes.size() / 2));
    CHECK(error_of([&] {
            load_checkpoint((scratch() / "trunc.bin").string());
          }).find("trunc.bin") != std::string::npos);
  }
  SUBCASE("wrong magic") {
    write_bytes(scratch() / "magic.bin", "GGUF" + bytes.substr(4));
    CHECK(error_of([&] {
            load_checkpoint((scratch() / "magic.bin").string());
          }).find("not a whisper.cpp ggml file") != std::string::npos);
  }
  SUBCASE("lying dims: n_audio_state doubled") {
    std::string b = bytes;
    int32_t state = 128;
    std::memcpy(b.data() + 4 + 2 * 4, &state, 4);
    write_bytes(scratch() / "dims.bin", b);
    const std::string e = error_of([&] { load_checkpoint((scratch() / "dims.bin").string()); });
    CHECK(e.find("got [") != std::string::npos);
    CHECK(e.find("expected [") != std::string::npos);
  }
  SUBCASE("zero-length file") {
    write_bytes(scratch() / "empty.bin", "");
    CHECK(error_of([&] {
            load_checkpoint((scratch() / "empty.bin").string());
          }).find("truncated") != std::string::npos);
  }
  SUBCASE("safetensors with a lying header length") {
    const auto hf = scratch() / "hf_bad";
    save_hf(ck, hf.string(), DType::f16);
    std::string st = read_file((hf / "model.safetensors").string());
    uint64_t huge = uint64_t{1} << 40;
    std::memcpy(st.data(), &huge, 8);
    write_bytes(hf / "model.safetensors", st);
    CHECK(error_of([&] { load_checkpoint(hf.string()); }).find("header length") !=
          std::string::npos);
  }
  SUBCASE("config of another size") {
    const auto hf = scratch() / "hf_cfg";
    save_hf(ck, hf.string(), DType::f32);
    std::string cfg = read_file((hf / "config.json").string());
    cfg.replace(cfg.find("\"encoder_layers\": 2"), 19, "\"encoder_layers\": 3");
    write_bytes(hf / "config.json", cfg);
    CHECK(error_of([&] {
            load_checkpoint(hf.string());
          }).find("missing tensor 'encoder.blocks.2") != std::string::npos);
  }
}

TEST_CASE("dump round trip: attributes, taps, float16 storage, decode, timing") {
  const ModelDims d = ModelDims::preset("nano");
  const auto path = (scratch() / "rt.h5").string();
  Tensor mel(DType::f32, {d.n_mels, 2 * d.n_audio_ctx});
  for (int64_t i = 0; i < mel.numel(); ++i) mel.f32()[i] = std::sin(0.001f * i) * 3.0f;
  Tensor lnp(DType::f64, {d.n_audio_ctx, d.n_audio_state});
  for (int64_t i = 0; i < lnp.numel(); ++i) lnp.f64()[i] = std::cos(0.01 * i);
  for (DType store : {DType::f32, DType::f16}) {
    CAPTURE(dtype_name(store));
    {
      DumpWriter w(path, meta_for(d), TapSelector("mel,encoder.ln_post"), DumpOptions{store, 1});
      CHECK_FALSE(w.wants("encoder.conv1"));
      report(&w, "mel", mel.shape(), DType::f32, mel.raw());
      report(&w, "encoder.ln_post", lnp.shape(), DType::f64, lnp.raw());
      w.set_decode({1, 2, 3}, "hi");
      w.set_timing("encoder", 0.5);
      // Nothing new is visible before finish(): no file, or the previous complete dump intact.
      if (store == DType::f32)
        CHECK_FALSE(fs::exists(path));
      else
        CHECK(DumpReader(path).taps()[1].stored == DType::f32);
      w.finish();
    }
    DumpReader r(path);
    CHECK(r.meta().dims == d);
    REQUIRE(r.taps().size() == 2);
    CHECK(r.taps()[0].name == "mel");
    CHECK(r.taps()[1].stored == store);
    const Tensor back = r.read("mel");
    for (int64_t i = 0; i < mel.numel(); ++i) {
      const float want =
          store == DType::f16 ? half_to_float(float_to_half(mel.f32()[i])) : mel.f32()[i];
      REQUIRE(back.f32()[i] == want);
    }
    std::vector<double> rows;
    r.read_rows("encoder.ln_post", 10, 3, rows);
    CHECK(rows.size() == 3u * d.n_audio_state);
    CHECK(rows[0] == doctest::Approx(std::cos(0.01 * 10 * d.n_audio_state))
                         .epsilon(store == DType::f16 ? 1e-3 : 1e-7));
    CHECK(r.tokens().value() == std::vector<int>{1, 2, 3});
    CHECK(r.text().value() == "hi");
    CHECK(r.timings().at("encoder") == 0.5);
  }
}

TEST_CASE("dump reader refuses incomplete, foreign and mismatched files") {
  const ModelDims d = ModelDims::preset("nano");
  SUBCASE("abandoned writer leaves nothing") {
    const auto path = (scratch() / "abandoned.h5").string();
    { DumpWriter w(path, meta_for(d), TapSelector("all")); }
    CHECK_FALSE(fs::exists(path));
    for (const auto& e : fs::directory_iterator(scratch()))
      CHECK(e.path().filename().string().find("abandoned.h5.partial") == std::string::npos);
  }
  SUBCASE("no complete attribute") {
    const auto path = (scratch() / "incomplete.h5").string();
    {
      H5::H5File f(path, H5F_ACC_TRUNC);
      H5::StrType s(H5::PredType::C_S1, H5T_VARIABLE);
      f.createAttribute("schema", s, H5::DataSpace(H5S_SCALAR)).write(s, std::string(kDumpSchema));
    }
    CHECK(error_of([&] { DumpReader r(path); }).find("incomplete") != std::string::npos);
  }
  SUBCASE("foreign HDF5") {
    const auto path = (scratch() / "foreign.h5").string();
    {
      H5::H5File f(path, H5F_ACC_TRUNC);
      f.createGroup("/data");
    }
    CHECK(error_of([&] { DumpReader r(path); }).find("not a whisper-fidelity dump") !=
          std::string::npos);
  }
  SUBCASE("not HDF5 at all") {
    write_bytes(scratch() / "text.h5", "hello");
    CHECK(error_of([&] {
            DumpReader r((scratch() / "text.h5").string());
          }).find("not an HDF5 file") != std::string::npos);
  }
  SUBCASE("tap shape disagrees with dims") {
    const auto path = (scratch() / "mismatch.h5").string();
    Tensor wrong(DType::f32, {d.n_audio_ctx, d.n_audio_state + 1});
    DumpWriter w(path, meta_for(d), TapSelector("all"));
    report(&w, "encoder.ln_post", wrong.shape(), DType::f32, wrong.raw());
    w.finish();
    CHECK(error_of([&] { DumpReader r(path); }).find("expected [1500, 64]") != std::string::npos);
  }
}

TEST_CASE("audio: fixture clip decodes and resamples; bad files are refused") {
  const Audio a = load_audio(std::string(wb::testing::source_dir()) + "/fixtures/audio/hello.wav");
  CHECK(a.source_rate == 22050);  // espeak-ng's rate: the resampler is exercised
  CHECK(a.seconds == doctest::Approx(a.pcm.size() / 16000.0));
  CHECK(a.seconds > 1.0);
  CHECK(pad_or_trim(a.pcm).size() == static_cast<std::size_t>(kNSamples));
  // Resampling a 1 kHz tone 22050 -> 16000 keeps its frequency (zero crossings per second).
  std::vector<float> tone(22050);
  for (std::size_t i = 0; i < tone.size(); ++i) tone[i] = std::sin(2 * M_PI * 1000.0 * i / 22050.0);
  const auto r = resample(tone, 22050, 16000);
  CHECK(std::abs(static_cast<long>(r.size()) - 16000) <= 2);
  int crossings = 0;
  for (std::size_t i = 100; i + 100 < r.size(); ++i) crossings += (r[i - 1] < 0) != (r[i] < 0);
  CHECK(std::abs(crossings - 2 * 1000 * static_cast<int>(r.size() - 200) / 16000) <= 2);
  write_bytes(scratch() / "bad.wav", "RIFF\x10\x00\x00\x00WAVEfmt garbage");
  CHECK(error_of([&] { load_audio((scratch() / "bad.wav").string()); }).find("bad.wav") !=
        std::string::npos);
}

TEST_CASE("append_line_durable: whole lines appended in order; a newline in a line is refused") {
  const std::string log = (scratch() / "steps.jsonl").string();
  fs::remove(log);
  append_line_durable(log, R"({"step": 1})");
  append_line_durable(log, R"({"step": 2})");
  CHECK(read_file(log) == "{\"step\": 1}\n{\"step\": 2}\n");
  CHECK_THROWS_AS(append_line_durable(log, "two\nlines"), std::invalid_argument);
  CHECK(read_file(log) == "{\"step\": 1}\n{\"step\": 2}\n");
  CHECK_THROWS_AS(append_line_durable((scratch() / "no-such-dir" / "x").string(), "x"),
                  std::runtime_error);
}
