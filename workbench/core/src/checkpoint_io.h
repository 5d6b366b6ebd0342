// Format-specific readers/writers behind load_checkpoint/save_hf/save_ggml (internal).
#pragma once
#include <string>

#include "wb/core/weights.h"

namespace wb::detail {

Checkpoint load_hf(const std::string& dir);
Checkpoint load_ggml(const std::string& file);

// Checks a name->tensor map against weight_table(dims): every expected name present with its
// shape, nothing unknown. Throws std::runtime_error "<file>: tensor 'x': got [..], expected [..]".
void validate_weights(const std::string& file, const ModelDims& dims,
                      const std::map<std::string, Tensor>& weights);

}  // namespace wb::detail
