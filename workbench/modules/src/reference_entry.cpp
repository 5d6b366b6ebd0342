// The wb-reference module: reference/'s LibTorch reference (linked in from wb_reference) behind
// the table of reference_module.h. Its one exported symbol is the entry point below.
#include <memory>
#include <utility>

#include "reference_module.h"
#include "wb_module_build.h"

namespace wb::modules {
namespace {

class Decoder final : public DecoderBackend {
 public:
  Decoder(std::shared_ptr<const Checkpoint> model, DType compute)
      : dec_(std::move(model), compute) {}
  DecodeResult greedy(const Tensor& encoder_out, TapSink* taps,
                      const DecodeOptions& opts) override {
    return dec_.greedy(encoder_out, taps, opts);
  }
  Tensor teacher_forced(const Tensor& encoder_out, const std::vector<int>& tokens, TapSink* taps,
                        bool kv_cache) override {
    return dec_.teacher_forced(encoder_out, tokens, taps, kv_cache);
  }
  std::vector<int> greedy_choices(const Tensor& logits) const override {
    return dec_.greedy_choices(logits);
  }
  int eot() const override { return dec_.eot(); }
  int prompt_length() const override { return dec_.prompt_length(); }

 private:
  ReferenceDecoder dec_;
};

std::unique_ptr<DecoderBackend> make_decoder(std::shared_ptr<const Checkpoint> model,
                                             DType compute) {
  return std::make_unique<Decoder>(std::move(model), compute);
}

const ReferenceModule kTable{{WB_MODULE_BUILD, sizeof(ReferenceModule)},
                             &set_reference_threads,
                             &reference_backend_version,
                             &make_reference_encoder,
                             &make_decoder};

}  // namespace
}  // namespace wb::modules

extern "C" const void* wb_reference_module_v1() { return &wb::modules::kTable; }
