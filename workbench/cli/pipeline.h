// What several subcommands share: loading a model, choosing an encoder implementation, running
// audio through it (taps to a sink) and decoding with the reference decoder.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "encoder_choice.h"
#include "wb/core/audio.h"
#include "wb/core/encoder.h"
#include "wb/core/weights.h"
#include "wb/reference/reference.h"

namespace wb::cli {

std::shared_ptr<const Checkpoint> load_model(const std::string& path);
// Sets the reference's threads (LibTorch and its BLAS) too: a candidate is timed and compared
// against a reference on the same threads. Throws wb::UsageError for options that do not go
// with the implementation (--fault on the reference, --dtype on a candidate).
std::unique_ptr<Encoder> make_encoder(std::shared_ptr<const Checkpoint> model,
                                      const EncoderChoice& c);
DType decoder_dtype(const EncoderChoice& c);
// With --timing and a port: its compute time and the workbench's overhead per request (stderr).
void print_port_timing(const Encoder& enc, const EncoderChoice& c);
// A port must serve every stage for replay and layer bisection: UsageError (exit 2) otherwise.
void require_stage_requests(
    const Encoder& enc, const std::string& command);  // float64 only for the float64 reference run

struct RunResult {
  Tensor encoder_out;
  DecodeResult decoded;
  double seconds_mel = 0, seconds_encoder = 0, seconds_decode = 0;
};

// One 30 s window: log-mel, encoder, greedy decode (with `decode_opts`), each timed. Taps go to
// `taps` (may be null). `dec` may be null when `decode` is false: a command that does not decode
// makes no decoder, so it does not open the LibTorch reference (workbench/modules).
RunResult run_pipeline(Encoder& enc, ReferenceDecoder* dec, const Audio& audio, TapSink* taps,
                       bool decode = true, const DecodeOptions& decode_opts = {});

// The reference cache key of a reference dump (wb/core/ref_cache.h): everything it depends on.
// ref: the reference's encoder choice (dtype, threads, device); store: the storage dtype; taps:
// the --taps selection; decode: the decode options ({} when the dump holds no decode).
nlohmann::json reference_cache_key(const Checkpoint& model, const std::string& audio_sha256,
                                   const EncoderChoice& ref, const std::string& store,
                                   const std::string& taps, const nlohmann::json& decode);

// An expect file: lines "<file>\t<expected text>" ('#' comments, blank lines and CRLF allowed);
// throws std::runtime_error naming the file and line.
struct ExpectLine {
  std::string file, text;
};
std::vector<ExpectLine> read_expect(const std::string& path);

// The clips of a corpus command (sweep, budget): the expect file's lines when given, else the
// folder's audio files (.wav .flac .ogg .mp3); sorted by name (byte order), so a shard's share
// does not depend on the file or directory order. Throws std::runtime_error for a missing
// folder, a clip listed twice, or no clips.
struct Clip {
  std::string file;      // relative to the audio folder
  std::string expected;  // "" when none
};
std::vector<Clip> list_clips(const std::string& dir, const std::string& expect);

}  // namespace wb::cli
