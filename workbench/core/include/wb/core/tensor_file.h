// Tensor files: small HDF5 files of the dump contract's datasets (`/taps/<name>` in the
// registry's shapes and layouts, and `/samples`), through which an external port's inputs and
// answers travel (docs/ports.md). Not a dump: no root attributes, no `complete` flag. The
// workbench writes the inputs here and reads the answers with DumpReader's tensor-file
// constructor (the same structure guard and per-tap checks as a dump).
#pragma once
#include <string>
#include <vector>

#include "wb/core/tensor.h"

namespace wb {

struct NamedTensor {
  std::string name;  // a registry tap name
  const Tensor* tensor;
};

// Writes `/samples` (when samples is non-null: float32 [n], attribute sample_rate = 16000) and
// `/taps/<name>` (float32, contiguous) for each tensor. Throws std::runtime_error.
void write_tensor_file(const std::string& path, const std::vector<float>* samples,
                       const std::vector<NamedTensor>& taps);

}  // namespace wb
