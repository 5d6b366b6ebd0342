// wb transcribe: audio -> text with the chosen encoder and the reference decoder.
//   --timing          print the mel, encoder and decode seconds on stderr
//   --no-kv-cache     decode with the full-recompute decoder (every step reruns the prefix)
//   --bench-decode    after the transcript (its decode the warm-up), decode the same encoder
//                     output KV-cached then full-recompute; print both decode times (wall and
//                     CPU), their ratio and whether the tokens agree (exit 1 when they do not)
//   --encoder-out D.h5  instead of --audio: decode the encoder.ln_post tap of each dump (any
//                     backend's, e.g. wb-cuda-dump's) with the reference decoder; one line per
//                     dump: "D.h5<TAB>tokens<TAB>text as a JSON string"
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "command.h"
#include "pipeline.h"
#include "wb/core/dump.h"
#include "wb/core/util.h"

namespace wb::cli {
namespace {

struct Timed {
  DecodeResult r;
  double wall = 0, cpu = 0;  // seconds; cpu: user + system of all the process's threads
};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * t.tv_usec; };
  return s(u.ru_utime) + s(u.ru_stime);
}

Timed timed_decode(ReferenceDecoder& dec, const Tensor& encoder_out, bool kv_cache) {
  DecodeOptions o;
  o.kv_cache = kv_cache;
  Timed t;
  const double c0 = cpu_seconds();
  const auto t0 = std::chrono::steady_clock::now();
  t.r = dec.greedy(encoder_out, nullptr, o);
  t.wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.cpu = cpu_seconds() - c0;
  return t;
}

std::string describe(const char* what, const Timed& t) {
  const auto n = static_cast<double>(std::max<std::size_t>(1, t.r.tokens.size()));
  return fmt::format("{} {:.3f} s (cpu {:.3f} s, {} tokens, {:.2f} ms/token)", what, t.wall, t.cpu,
                     t.r.tokens.size(), 1e3 * t.wall / n);
}

// The pipeline's decode was the warm-up; then the cached and the full-recompute decoder on the
// same encoder output, one after the other, each timed the same way.
int bench_decode(ReferenceDecoder& dec, const RunResult& r) {
  const Timed cached = timed_decode(dec, r.encoder_out, true);
  const Timed full = timed_decode(dec, r.encoder_out, false);
  const bool same = cached.r.tokens == full.r.tokens && cached.r.tokens == r.decoded.tokens;
  fmt::print("decode: {}, {}, speed-up {:.1f}x, tokens {}\n", describe("kv-cache", cached),
             describe("full recompute", full), full.wall / cached.wall,
             same ? "identical" : "DIFFER");
  return same ? 0 : 1;
}

// The reference decoder on each dump's encoder.ln_post (a dump of the same model).
int decode_dumps(const std::shared_ptr<const Checkpoint>& model, const EncoderChoice& c,
                 const std::vector<std::string>& dumps) {
  ReferenceDecoder dec(model, decoder_dtype(c));
  for (const std::string& f : dumps) {
    const DumpReader r(f);
    if (r.meta().model_sha256 != model->sha256)
      throw std::runtime_error(f + ": a dump of another model (model_sha256 differs)");
    const DecodeResult d = dec.greedy(r.read(std::string(kLnPost)), nullptr, DecodeOptions{});
    // the text as a JSON string: a line per dump even when the text holds newlines or tabs
    fmt::print(
        "{}\t{}\t{}\n", f, fmt::join(d.tokens, " "),
        nlohmann::json(d.text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  return 0;
}

}  // namespace

void add_transcribe(CLI::App& app, Registry& reg) {
  struct Opts {
    EncoderChoice enc;
    std::string model, audio;
    std::vector<std::string> encoder_out;
    bool tokens = false, no_kv_cache = false, bench_decode = false, timing = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub =
      app.add_subcommand("transcribe", "transcribe the first 30 s of an audio file (greedy)");
  sub->add_option("--model", o->model, "HF Whisper directory or whisper.cpp ggml file")->required();
  auto* audio = sub->add_option("--audio", o->audio, "audio file (WAV, FLAC, OGG)");
  sub->add_option("--encoder-out", o->encoder_out,
                  "instead of --audio: dumps whose encoder.ln_post the reference decoder decodes "
                  "(one line each: dump, tokens, the text as a JSON string)")
      ->excludes(audio);
  sub->add_flag("--tokens", o->tokens, "also print the token ids");
  sub->add_flag("--timing", o->timing, "print the mel, encoder and decode seconds (stderr)");
  auto* nkv = sub->add_flag("--no-kv-cache", o->no_kv_cache,
                            "decode without the self-attention KV cache (recompute the prefix at "
                            "every step, as before the cache)");
  sub->add_flag("--bench-decode", o->bench_decode,
                "decode with and without the KV cache, print both times and their ratio")
      ->excludes(nkv);
  add_encoder_options(sub, o->enc, kAllEncoderOptions & ~kPortOption);
  reg.add(sub, [o]() {
    if (o->audio.empty() && o->encoder_out.empty())
      throw UsageError("transcribe needs --audio or --encoder-out");
    auto model = load_model(o->model);
    if (!o->encoder_out.empty()) return decode_dumps(model, o->enc, o->encoder_out);
    const Audio audio = load_audio(o->audio);
    auto enc = make_encoder(model, o->enc);
    ReferenceDecoder dec(model, decoder_dtype(o->enc));
    DecodeOptions dopts;
    dopts.kv_cache = !o->no_kv_cache;
    const RunResult r = run_pipeline(*enc, &dec, audio, nullptr, true, dopts);
    if (o->tokens) fmt::print("tokens: {}\n", fmt::join(r.decoded.tokens, " "));
    fmt::print("{}\n", r.decoded.text);
    if (o->timing)
      fmt::print(stderr, "mel {:.3f} s, encoder {:.3f} s, decode {:.3f} s ({} tokens)\n",
                 r.seconds_mel, r.seconds_encoder, r.seconds_decode, r.decoded.tokens.size());
    return o->bench_decode ? bench_decode(dec, r) : 0;
  });
}

}  // namespace wb::cli
