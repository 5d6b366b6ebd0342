// The seam: one encoder interface that the reference, the CPU candidate and any later backend
// implement. Blocks are callable one by one so the workbench can replay a block on the other
// side's input (local vs inherited error) and run hybrids for layer bisection.
#pragma once
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "wb/core/taps.h"
#include "wb/core/tensor.h"

namespace wb {

class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual std::string implementation() const = 0;  // "reference", "candidate", ...
  // precision, device, isa, threads, faults: recorded in every dump's metadata.
  virtual nlohmann::json run_info() const = 0;
  virtual int n_layers() const = 0;

  // 16 kHz mono PCM (any length; padded or trimmed to 30 s) -> log-mel [n_mels, 3000]. Tap "mel".
  virtual Tensor log_mel(const std::vector<float>& pcm16k, TapSink* taps) = 0;
  // conv1, GELU, conv2, GELU, + positional embedding: [n_mels, 2T] -> [T, C].
  virtual Tensor stem(const Tensor& mel, TapSink* taps) = 0;
  // Pre-norm residual block i: [T, C] -> [T, C].
  virtual Tensor block(int i, const Tensor& x, TapSink* taps) = 0;
  virtual Tensor ln_post(const Tensor& x, TapSink* taps) = 0;

  // Audio -> encoder output in one call, every stage's taps reported. The default runs the seam
  // stage by stage; an encoder that runs best whole (an external port's `run` request) says so
  // with runs_whole() and overrides it.
  virtual bool runs_whole() const { return false; }
  virtual Tensor encode(const std::vector<float>& pcm16k, TapSink* taps);
};

// mel -> stem -> blocks -> ln_post, all through the seam.
Tensor run_encoder(Encoder& enc, const Tensor& mel, TapSink* taps);

}  // namespace wb
