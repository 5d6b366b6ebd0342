// cuDNN's backend API as the CUDA candidate uses it (internal; only where WB_HAVE_CUDNN): the
// library opened at first use (libcudnn.so.9 from the loader path: nothing links against it),
// owned descriptors, tensors, and one execution plan of an operation graph (the heuristic's first
// engine configuration cuDNN can make a plan of, with its workspace). The backends built on it:
// attention_cudnn.cpp (fused attention), gemm_gelu_cudnn.cpp (a GEMM with bias and exact GELU).
#pragma once
#if WB_HAVE_CUDNN
#include <cudnn.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "device.h"

namespace wb::cuda::cudnn {

// Empty when libcudnn.so.9 loaded with every entry point used here and is 9.10 or later, else
// why not (one line).
const std::string& unavailable_reason();
std::size_t version();
// Throws std::runtime_error("cuDNN WHAT: status: detail") unless st is success.
void ok(cudnnStatus_t st, const char* what);

// An owned backend descriptor.
class Desc {
 public:
  explicit Desc(cudnnBackendDescriptorType_t type);
  ~Desc();
  Desc(Desc&& o) noexcept : d_(std::exchange(o.d_, nullptr)) {}
  Desc& operator=(Desc&& o) noexcept {
    std::swap(d_, o.d_);
    return *this;
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }

  Desc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t n,
            const void* v, const char* what);
  Desc& set_desc(cudnnBackendAttributeName_t name, const Desc& v, const char* what);
  Desc& finalize(const char* what);

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

// A finalized tensor descriptor (16-byte alignment). virtual_: an intermediate of the graph;
// by_value: a host scalar passed at execution.
Desc tensor(int64_t uid, cudnnDataType_t type, const std::vector<int64_t>& dims,
            const std::vector<int64_t>& strides, bool virtual_ = false, bool by_value = false);

// A cuDNN handle on a stream.
class Handle {
 public:
  explicit Handle(cudaStream_t s);
  ~Handle();
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  cudnnHandle_t get() const { return h_; }

 private:
  cudnnHandle_t h_ = nullptr;
};

struct Plan {
  Desc plan{CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR};
  Buf workspace;
  int64_t engine = -1;  // cuDNN's global engine index
};

// The operation graph of `ops` (finalized operation descriptors) and its plan; throws
// std::runtime_error naming `what` where cuDNN offers no engine that makes one.
Plan make_plan(const Handle& h, const std::vector<const Desc*>& ops, const std::string& what);

// Runs the plan on the handle's stream with the tensors `uids` at `ptrs` (device pointers; a
// by-value scalar's host address).
void execute(const Handle& h, Plan& p, const std::vector<int64_t>& uids,
             const std::vector<void*>& ptrs);

}  // namespace wb::cuda::cudnn
#endif
