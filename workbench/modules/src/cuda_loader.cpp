// wb-engine's implementation of the part of the CUDA candidate's API it calls
// (wb/cuda/cuda_encoder.h: backend_of, make_encoder): through the wb-cuda module, opened at the
// first call. The rest of that API is for the tools and tests that link wb_cuda itself.
#include <memory>
#include <utility>

#include "cuda_module.h"

namespace wb::cuda {
namespace {

const modules::CudaModule& module() {
  // A throw leaves it unset: the next call tries again and reports the same error.
  static const modules::CudaModule& m =
      modules::open_module_table<modules::CudaModule>(modules::kCudaModule);
  return m;
}

}  // namespace

std::optional<Backend> backend_of(std::string_view name) { return module().backend_of(name); }

std::unique_ptr<Encoder> make_encoder(std::shared_ptr<const Checkpoint> model, const Options& o) {
  return module().make_encoder(std::move(model), o);
}

}  // namespace wb::cuda
