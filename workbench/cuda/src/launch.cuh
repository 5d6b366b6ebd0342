// Kernel launches that may be programmatic dependents (Hopper's programmatic dependent launch:
// kernels.h, Queue), and the wait each kernel so launched makes before it touches global memory.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

#include "kernels.h"

namespace wb::cuda {
namespace {

// In a kernel launched as a programmatic dependent: waits until the kernel before it on the
// stream has completed and its writes are visible; then lets the kernel after it, if that is a
// programmatic dependent, be launched once every block of this one has got here (its blocks
// then wait in turn: nothing of this kernel's output is read early). After an ordinary launch,
// or compiled for a device before compute capability 9.0, the wait does nothing. Every kernel
// that launch_k may launch calls it before its first global load or store of anything another
// kernel writes (weights may be read before it: no kernel writes them).
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

// The launch itself, once per file rather than once per kernel: `args` point at the kernel's
// parameters, already of its parameter types.
[[gnu::noinline]] void launch_raw(const char* what, const void* kernel, dim3 grid, dim3 block,
                                  std::size_t smem, Queue q, void** args) {
  cudaLaunchAttribute dep{};
  dep.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  dep.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = q.s;
  cfg.attrs = &dep;
  cfg.numAttrs = q.dependent ? 1 : 0;
  const cudaError_t e = cudaLaunchKernelExC(&cfg, kernel, args);
  if (e != cudaSuccess) {
    cudaGetLastError();  // reported here, not again by the next launch's check
    throw std::runtime_error(std::string("CUDA launch ") + what + ": " + cudaGetErrorString(e));
  }
}

// kernel<<<grid, block, smem, q.s>>>(args...), a programmatic dependent of the kernel before it
// when q.dependent. Throws std::runtime_error ("CUDA launch <what>: ...") if the launch fails:
// the launchers that use it need no check after it.
template <class... P, class... A>
void launch_k(const char* what, void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem,
              Queue q, A&&... args) {
  // the arguments converted to the parameters' types first, as <<<...>>> converts them
  [&](P... param) {
    void* ptrs[] = {static_cast<void*>(&param)...};
    launch_raw(what, reinterpret_cast<const void*>(kernel), grid, block, smem, q, ptrs);
  }(std::forward<A>(args)...);
}

}  // namespace
}  // namespace wb::cuda
