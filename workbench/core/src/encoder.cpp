#include "wb/core/encoder.h"

namespace wb {

Tensor run_encoder(Encoder& enc, const Tensor& mel, TapSink* taps) {
  Tensor x = enc.stem(mel, taps);
  for (int i = 0; i < enc.n_layers(); ++i) x = enc.block(i, x, taps);
  return enc.ln_post(x, taps);
}

}  // namespace wb

namespace wb {

Tensor Encoder::encode(const std::vector<float>& pcm16k, TapSink* taps) {
  return run_encoder(*this, log_mel(pcm16k, taps), taps);
}

}  // namespace wb
