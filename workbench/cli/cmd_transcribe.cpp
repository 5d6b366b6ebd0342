// wb transcribe: audio -> text with the chosen encoder and the reference decoder.
#include <fmt/format.h>

#include "command.h"
#include "pipeline.h"

namespace wb::cli {

void add_transcribe(CLI::App& app, Registry& reg) {
  struct Opts {
    EncoderChoice enc;
    std::string model, audio;
    bool tokens = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub =
      app.add_subcommand("transcribe", "transcribe the first 30 s of an audio file (greedy)");
  sub->add_option("--model", o->model, "HF Whisper directory or whisper.cpp ggml file")->required();
  sub->add_option("--audio", o->audio, "audio file (WAV, FLAC, OGG)")->required();
  sub->add_flag("--tokens", o->tokens, "also print the token ids");
  add_encoder_options(sub, o->enc);
  reg.add(sub, [o]() {
    auto model = load_model(o->model);
    const Audio audio = load_audio(o->audio);
    auto enc = make_encoder(model, o->enc);
    ReferenceDecoder dec(model, decoder_dtype(o->enc));
    const RunResult r = run_pipeline(*enc, dec, audio, nullptr);
    if (o->tokens) fmt::print("tokens: {}\n", fmt::join(r.decoded.tokens, " "));
    fmt::print("{}\n", r.decoded.text);
    return 0;
  });
}

}  // namespace wb::cli
