// fc1 with its bias and the exact (erf) GELU in one cuDNN operation graph (a matmul and two
// pointwise operations cuDNN fuses into the GEMM's epilogue): y = gelu(x W^T + b), x [M, K] and
// W [N, K] 16-bit, b [N] float32, float32 accumulation, bias and GELU on the float32 accumulator,
// y [M, N] 16-bit rounded once. cuBLASLt's GELU epilogue is the tanh approximation (the
// gelu-tanh fault), so without this the GELU is a kernel of its own (kernels.h).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "kernels.h"

namespace wb::cuda {

class CudnnGemmGelu {
 public:
  // Throws std::invalid_argument (float32, or sizes not multiples of 8) or std::runtime_error
  // (cuDNN missing, or no engine of it for this graph) with the reason.
  // tanh: the tanh approximation instead of erf (the gelu-tanh fault).
  CudnnGemmGelu(Act a, int64_t m, int64_t n, int64_t k, cudaStream_t s, bool tanh = false);
  ~CudnnGemmGelu();
  CudnnGemmGelu(const CudnnGemmGelu&) = delete;
  CudnnGemmGelu& operator=(const CudnnGemmGelu&) = delete;

  void run(const void* x, const void* w, const float* bias, void* y);
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wb::cuda
