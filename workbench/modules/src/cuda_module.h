// The wb-cuda module's table: the CUDA candidate (workbench/cuda) as wb-engine calls it, which is
// only to make an encoder (workbench/cli/pipeline.cpp).
#pragma once
#include <memory>
#include <optional>
#include <string_view>

#include "module.h"
#include "wb/cuda/cuda_encoder.h"

namespace wb::modules {

struct CudaModule {
  Stamp stamp;
  std::optional<cuda::Backend> (*backend_of)(std::string_view name);
  std::unique_ptr<Encoder> (*make_encoder)(std::shared_ptr<const Checkpoint> model,
                                           const cuda::Options& o);
};

inline constexpr ModuleSpec kCudaModule{"the CUDA candidate", "wb-cuda.so", "WB_CUDA_MODULE",
                                        "wb_cuda_module_v1"};

}  // namespace wb::modules
