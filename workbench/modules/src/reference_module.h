// The wb-reference module's table: the LibTorch reference (reference/) as wb-engine calls it.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "module.h"
#include "wb/reference/reference.h"

namespace wb::modules {

// ReferenceDecoder's operations behind its PImpl: the module's decoder implements it, the
// engine's ReferenceDecoder (reference_loader.cpp) holds one and forwards to it.
class DecoderBackend {
 public:
  virtual ~DecoderBackend() = default;
  virtual DecodeResult greedy(const Tensor& encoder_out, TapSink* taps,
                              const DecodeOptions& opts) = 0;
  virtual Tensor teacher_forced(const Tensor& encoder_out, const std::vector<int>& tokens,
                                TapSink* taps, bool kv_cache) = 0;
  virtual std::vector<int> greedy_choices(const Tensor& logits) const = 0;
  virtual int eot() const = 0;
  virtual int prompt_length() const = 0;
};

struct ReferenceModule {
  Stamp stamp;
  void (*set_threads)(int n);
  std::string (*backend_version)();
  std::unique_ptr<Encoder> (*make_encoder)(std::shared_ptr<const Checkpoint> model, DType compute,
                                           const std::string& device);
  std::unique_ptr<DecoderBackend> (*make_decoder)(std::shared_ptr<const Checkpoint> model,
                                                  DType compute);
};

inline constexpr ModuleSpec kReferenceModule{"the LibTorch reference", "wb-reference.so",
                                             "WB_REFERENCE_MODULE", "wb_reference_module_v1"};

}  // namespace wb::modules
