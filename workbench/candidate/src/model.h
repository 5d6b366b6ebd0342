// The candidate's model: weights checked against the checkpoint's names and shapes, then
// repacked once for the kernels (fused q|k|v, conv2 columns in im2col order, the chosen
// precision). Immutable after loading and shared by every call of one encoder.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ops.h"
#include "wb/core/dims.h"
#include "wb/core/precision.h"
#include "wb/core/weights.h"

namespace wb::cand {

struct LayerNormW {
  std::vector<float> g, b;
};

struct BlockW {
  LayerNormW attn_ln, mlp_ln;
  WeightMatrix qkv;          // [3C, C]: query | key | value rows
  std::vector<float> qkv_b;  // [3C]: query bias | 0 (key has none) | value bias
  WeightMatrix out;
  std::vector<float> out_b;
  WeightMatrix fc1;  // [4C, C]
  std::vector<float> fc1_b;
  WeightMatrix fc2;  // [C, 4C]
  std::vector<float> fc2_b;
};

struct Model {
  ModelDims d;
  Precision prec;
  WeightMatrix conv1;  // [C, n_mels * 3], column ci * 3 + k (PyTorch order)
  std::vector<float> conv1_b;
  WeightMatrix conv2;  // [C, 3 * C], column k * C + ci (repacked: im2col rows are row copies)
  std::vector<float> conv2_b;
  std::vector<float> pos;  // [T, C]
  std::vector<BlockW> blocks;
  LayerNormW ln_post;
};

// Throws std::invalid_argument naming the weight, what it got and what it expected.
// Weights are packed for the GEMM backend `g` (ops.h).
std::unique_ptr<Model> load_model(const Checkpoint& ck, Precision prec, GemmBackend g);
}  // namespace wb::cand
