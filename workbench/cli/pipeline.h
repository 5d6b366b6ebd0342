// What several subcommands share: loading a model, choosing an encoder implementation, running
// audio through it (taps to a sink) and decoding with the reference decoder.
#pragma once
#include <CLI/CLI.hpp>
#include <memory>
#include <string>
#include <vector>

#include "wb/core/audio.h"
#include "wb/core/encoder.h"
#include "wb/core/weights.h"
#include "wb/reference/reference.h"

namespace wb::cli {

struct EncoderChoice {
  std::string impl = "reference";     // reference | candidate | cuda
  std::string dtype = "float32";      // reference compute dtype: float32 | float64
  std::string precision = "float32";  // candidate, cuda: float32 | bfloat16 | float16
  std::vector<std::string> faults;    // candidate, cuda fault switches
  int threads = 0;                    // 0: all cores
  std::string device = "cpu";         // reference: cpu | cuda (LibTorch with CUDA)
};

void add_encoder_options(CLI::App* sub, EncoderChoice& c);
std::shared_ptr<const Checkpoint> load_model(const std::string& path);
std::unique_ptr<Encoder> make_encoder(std::shared_ptr<const Checkpoint> model,
                                      const EncoderChoice& c);
DType decoder_dtype(const EncoderChoice& c);  // float64 only for the float64 reference run

struct RunResult {
  Tensor encoder_out;
  DecodeResult decoded;
  double seconds_mel = 0, seconds_encoder = 0, seconds_decode = 0;
};

// One 30 s window: log-mel, encoder, greedy decode (with `decode_opts`), each timed. Taps go to
// `taps` (may be null).
RunResult run_pipeline(Encoder& enc, ReferenceDecoder& dec, const Audio& audio, TapSink* taps,
                       bool decode = true, const DecodeOptions& decode_opts = {});

// An expect file: lines "<file>\t<expected text>" ('#' comments, blank lines and CRLF allowed);
// throws std::runtime_error naming the file and line.
struct ExpectLine {
  std::string file, text;
};
std::vector<ExpectLine> read_expect(const std::string& path);

}  // namespace wb::cli
