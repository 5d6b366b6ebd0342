// cuDNN's fused attention as a second attention backend (`Options::attention`, `wb-cuda-dump
// --attention cudnn`): the same contract as launch_flash_attention (16-bit q | k | v in the
// tensor-core attention's padded layout, 16-bit output [B T, C]), run by cuDNN's scaled dot
// product attention operation through its backend API. Two attentions the workbench can hold
// against each other tap by tap, and cuDNN's speed as the yardstick of our own kernel.
//
// Built where CMake finds cuDNN's headers (WB_HAVE_CUDNN); libcudnn.so.9 is opened only when this
// backend is asked for (a GPU host with PyTorch has it in its wheel: put that folder on the
// loader path), so the tool runs without cuDNN everywhere else.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <string>

#include "kernels.h"

namespace wb::cuda {

// Empty when cuDNN's attention can be used here (built with its headers, libcudnn.so.9 loads),
// else why not, in one line.
std::string cudnn_attention_unavailable_reason();

class CudnnAttention {
 public:
  // heads of d_head = c / heads (a multiple of 8, at most 128) over t queries and keys, `a`
  // bf16 or f16; q | k | v of a clip start every clip_rows rows of 3c values; out [B][t, c].
  // Throws std::runtime_error (cuDNN missing, or no engine of it for this shape) with the reason.
  CudnnAttention(Act a, int t, int c, int heads, int64_t clip_rows, cudaStream_t s);
  ~CudnnAttention();
  CudnnAttention(const CudnnAttention&) = delete;
  CudnnAttention& operator=(const CudnnAttention&) = delete;

  // softmax(alpha q k^T) v for `batch` clips, enqueued on the stream (graph-capturable). The
  // plan for a batch size is made on its first call.
  void run(const void* qkv, void* out, float alpha, int batch);
  // cuDNN's version and the engine its heuristic chose, for run_info.
  std::string describe() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wb::cuda
