// The CUDA candidate's weights on the device, uploaded once and immutable for the encoder's life
// (the per-run buffers are layers.h's RunState). Matrices are [rows, cols] row-major in the GEMM
// input type (Act); vectors (biases, layer-norm parameters, positions) are float32.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "device.h"
#include "kernels.h"
#include "wb/core/dims.h"
#include "wb/core/weights.h"

namespace wb::cuda {

struct LnW {
  Buf g, b;  // [C] float32
};

struct BlockW {
  LnW attn_ln, mlp_ln;
  // qkv [3C, C] (query | key | value rows), qkv_b [3C] = [bq, 0, bv] (the key has no bias),
  // out [C, C], fc1 [4C, C], fc2 [C, 4C]
  Buf qkv, qkv_b, out, out_b, fc1, fc1_b, fc2, fc2_b;
  Buf qkv_b16, fc1_b16;  // reduced modes: biases in the 16-bit type (GEMMs with 16-bit outputs)
};

struct Model {
  ModelDims d;
  Act act = Act::f32;
  // conv1 [C, 3 n_mels] (column ci * 3 + k, as PyTorch stores it); conv2 repacked [C, 3C] with
  // column k * C + ci, so that its im2col rows are row copies; pos [T, C].
  Buf conv1, conv1_b, conv2, conv2_b, pos;
  std::vector<BlockW> blocks;
  LnW ln_post;
  // Front end constants: the periodic Hann window [n_fft] and the Slaney mel filters
  // [n_mels, n_fft / 2 + 1], float32.
  Buf window, filters;
};

// Uploads the weights of `ck` (every name and shape checked), or, with ck == nullptr (timing
// runs), generates uniform random weights from `seed` on the device, matrices scaled by
// 1/sqrt(fan_in) so activations stay in range. conv_bias_drop: the fault of that name (conv1's
// bias of output channel 0 zeroed on the device). Returns once everything is on the device.
Model load_model(const ModelDims& d, const Checkpoint* ck, uint64_t seed, Act act,
                 bool conv_bias_drop, cudaStream_t s);

}  // namespace wb::cuda
