// The one table of canonical weight names: OpenAI's state-dict paths and shapes.
// Loaders of every format map onto these names and are validated against this table.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "wb/core/dims.h"
#include "wb/core/tensor.h"
#include "wb/core/tokenizer.h"

namespace wb {

struct WeightSpec {
  std::string name;  // e.g. "encoder.blocks.0.attn.query.weight"
  Shape shape;       // PyTorch shape, e.g. Linear [out, in], Conv1d [out, in, k]
};

// Every weight a Whisper model of these dims has, encoder first, in state-dict order.
std::vector<WeightSpec> weight_table(const ModelDims& d);
// Total element count of weight_table(d), computed without building it: loaders check dims taken
// from a header against the file size before building tables or allocating anything.
int64_t weight_numel(const ModelDims& d);

// A loaded model: weights converted to float32, immutable and shared by all runs.
struct Checkpoint {
  ModelDims dims;
  std::map<std::string, Tensor> weights;  // canonical name -> float32 tensor
  Vocabulary vocab;
  std::string sha256;        // of the checkpoint file (safetensors file for HF directories)
  std::string format;        // "hf" or "ggml"
  std::string stored_dtype;  // dtype of the matrices in the file: float32, float16, bfloat16
  std::string path;

  const Tensor& at(const std::string& name) const;  // throws std::invalid_argument if absent
};

// Loads an HF Whisper directory (config.json + model.safetensors) or a whisper.cpp ggml file.
// Every name and shape is validated; errors are std::runtime_error naming the file.
Checkpoint load_checkpoint(const std::string& path);

// Writers, used by `wb fixture-model` and tests (round trips).
void save_hf(const Checkpoint& ck, const std::string& dir, DType stored);     // f32/f16/bf16
void save_ggml(const Checkpoint& ck, const std::string& file, DType stored);  // f32/f16

// Deterministic random weights for fixtures, scaled so activations stay well-conditioned.
Checkpoint random_checkpoint(const ModelDims& dims, uint64_t seed);

}  // namespace wb
