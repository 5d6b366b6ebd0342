// wb transcribe: audio -> text with the chosen encoder and the reference decoder.
//   --timing          print the mel, encoder and decode seconds on stderr
//   --no-kv-cache     decode with the full-recompute decoder (every step reruns the prefix)
//   --bench-decode    decode twice on the same encoder output, KV-cached then full-recompute,
//                     and print both decode times, their ratio and whether the tokens agree
//                     (exit 1 when they do not)
#include <fmt/format.h>

#include <chrono>

#include "command.h"
#include "pipeline.h"

namespace wb::cli {
namespace {

// Times one greedy decode of `encoder_out` (seconds).
double timed_decode(ReferenceDecoder& dec, const Tensor& encoder_out, const DecodeOptions& o,
                    DecodeResult& out) {
  const auto t0 = std::chrono::steady_clock::now();
  out = dec.greedy(encoder_out, nullptr, o);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Cached first (it bears any warm-up), then the full-recompute path on the same input.
int bench_decode(ReferenceDecoder& dec, const RunResult& r) {
  DecodeOptions full;
  full.kv_cache = false;
  DecodeResult uncached;
  const double t_full = timed_decode(dec, r.encoder_out, full, uncached);
  const bool same = uncached.tokens == r.decoded.tokens;
  fmt::print(
      "decode: kv-cache {:.3f} s ({} tokens, {:.2f} ms/token), full recompute {:.3f} s ({} "
      "tokens, {:.2f} ms/token), speed-up {:.1f}x, tokens {}\n",
      r.seconds_decode, r.decoded.tokens.size(),
      1e3 * r.seconds_decode / std::max<std::size_t>(1, r.decoded.tokens.size()), t_full,
      uncached.tokens.size(), 1e3 * t_full / std::max<std::size_t>(1, uncached.tokens.size()),
      t_full / r.seconds_decode, same ? "identical" : "DIFFER");
  return same ? 0 : 1;
}

}  // namespace

void add_transcribe(CLI::App& app, Registry& reg) {
  struct Opts {
    EncoderChoice enc;
    std::string model, audio;
    bool tokens = false, no_kv_cache = false, bench_decode = false, timing = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub =
      app.add_subcommand("transcribe", "transcribe the first 30 s of an audio file (greedy)");
  sub->add_option("--model", o->model, "HF Whisper directory or whisper.cpp ggml file")->required();
  sub->add_option("--audio", o->audio, "audio file (WAV, FLAC, OGG)")->required();
  sub->add_flag("--tokens", o->tokens, "also print the token ids");
  sub->add_flag("--timing", o->timing, "print the mel, encoder and decode seconds (stderr)");
  auto* nkv = sub->add_flag("--no-kv-cache", o->no_kv_cache,
                            "decode without the self-attention KV cache (recompute the prefix at "
                            "every step, as before the cache)");
  sub->add_flag("--bench-decode", o->bench_decode,
                "decode with and without the KV cache, print both times and their ratio")
      ->excludes(nkv);
  add_encoder_options(sub, o->enc);
  reg.add(sub, [o]() {
    auto model = load_model(o->model);
    const Audio audio = load_audio(o->audio);
    auto enc = make_encoder(model, o->enc);
    ReferenceDecoder dec(model, decoder_dtype(o->enc));
    DecodeOptions dopts;
    dopts.kv_cache = !o->no_kv_cache;
    const RunResult r = run_pipeline(*enc, dec, audio, nullptr, true, dopts);
    if (o->tokens) fmt::print("tokens: {}\n", fmt::join(r.decoded.tokens, " "));
    fmt::print("{}\n", r.decoded.text);
    if (o->timing)
      fmt::print(stderr, "mel {:.3f} s, encoder {:.3f} s, decode {:.3f} s ({} tokens)\n",
                 r.seconds_mel, r.seconds_encoder, r.seconds_decode, r.decoded.tokens.size());
    return o->bench_decode ? bench_decode(dec, r) : 0;
  });
}

}  // namespace wb::cli
