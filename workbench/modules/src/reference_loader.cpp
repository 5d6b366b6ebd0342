// wb-engine's implementation of the reference's API (wb/reference/reference.h): every call goes
// through the wb-reference module, opened at the first call that needs LibTorch.
#include <memory>
#include <mutex>
#include <utility>

#include "reference_module.h"

namespace wb {
namespace {

std::mutex mutex;
const modules::ReferenceModule* loaded = nullptr;  // guarded by mutex
int pending_threads = 0;                           // guarded by mutex

const modules::ReferenceModule& module() {
  const std::lock_guard lock(mutex);
  if (loaded == nullptr) {
    const auto& m = modules::open_module_table<modules::ReferenceModule>(modules::kReferenceModule);
    if (pending_threads > 0) m.set_threads(pending_threads);
    loaded = &m;
  }
  return *loaded;
}

}  // namespace

// Every encoder command sets the reference's threads, whichever encoder it runs; a setting made
// before the module is open is kept and applied when it opens, so a command that never runs
// LibTorch does not load it for this. The threads LibTorch and OpenBLAS end with are the same.
void set_reference_threads(int n) {
  if (n <= 0) return;
  const std::lock_guard lock(mutex);
  if (loaded != nullptr)
    loaded->set_threads(n);
  else
    pending_threads = n;
}

std::string reference_backend_version() { return module().backend_version(); }

std::unique_ptr<Encoder> make_reference_encoder(std::shared_ptr<const Checkpoint> model,
                                                DType compute, const std::string& device) {
  return module().make_encoder(std::move(model), compute, device);
}

struct ReferenceDecoder::Impl {
  std::unique_ptr<modules::DecoderBackend> backend;
};

ReferenceDecoder::ReferenceDecoder(std::shared_ptr<const Checkpoint> model, DType compute)
    : impl_(std::make_unique<Impl>(Impl{module().make_decoder(std::move(model), compute)})) {}

ReferenceDecoder::~ReferenceDecoder() = default;

DecodeResult ReferenceDecoder::greedy(const Tensor& encoder_out, TapSink* taps, int max_tokens) {
  DecodeOptions o;
  o.max_tokens = max_tokens;
  return greedy(encoder_out, taps, o);
}

DecodeResult ReferenceDecoder::greedy(const Tensor& encoder_out, TapSink* taps,
                                      const DecodeOptions& opts) {
  return impl_->backend->greedy(encoder_out, taps, opts);
}

Tensor ReferenceDecoder::teacher_forced(const Tensor& encoder_out, const std::vector<int>& tokens,
                                        TapSink* taps, bool kv_cache) {
  return impl_->backend->teacher_forced(encoder_out, tokens, taps, kv_cache);
}

std::vector<int> ReferenceDecoder::greedy_choices(const Tensor& logits) const {
  return impl_->backend->greedy_choices(logits);
}

int ReferenceDecoder::eot() const { return impl_->backend->eot(); }

int ReferenceDecoder::prompt_length() const { return impl_->backend->prompt_length(); }

}  // namespace wb
