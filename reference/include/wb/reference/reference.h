// The oracle: Whisper in LibTorch, following openai/whisper model.py / audio.py op order exactly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "wb/core/encoder.h"
#include "wb/core/weights.h"

namespace wb {

// Intra-op threads of LibTorch (0: leave LibTorch's default). Recorded in run_info().
void set_reference_threads(int n);

// compute: DType::f32 or DType::f64 (the float64 run is the noise floor).
std::unique_ptr<Encoder> make_reference_encoder(std::shared_ptr<const Checkpoint> model,
                                                DType compute = DType::f32);

struct DecodeResult {
  std::vector<int> tokens;  // generated tokens (prompt excluded, eot excluded)
  std::string text;
};

// Greedy decoding with the reference decoder on an encoder output [n_audio_ctx, C]
// (any implementation's). Taps of a final teacher-forced pass over prompt+tokens are reported.
class ReferenceDecoder {
 public:
  explicit ReferenceDecoder(std::shared_ptr<const Checkpoint> model, DType compute = DType::f32);
  ~ReferenceDecoder();
  DecodeResult greedy(const Tensor& encoder_out, TapSink* taps = nullptr, int max_tokens = 0);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wb
