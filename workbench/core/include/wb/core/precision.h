// The candidates' precision mode (CPU and CUDA): weights (and, where the hardware computes in it,
// GEMM inputs) in that type, float32 accumulation, float32 residual stream and layer-norm
// statistics. One enum and one name table for the CLI, the candidate, the CUDA candidate and
// wb-cuda-dump; the reference's compute dtype is a DType (float32 | float64), not this.
#pragma once
#include <array>
#include <string>
#include <string_view>

#include "wb/core/enum_names.h"

namespace wb {

enum class Precision { float32, bfloat16, float16 };

inline constexpr std::array<NameEntry<Precision>, 3> kPrecisionNames{{
    {Precision::float32, "float32"},
    {Precision::bfloat16, "bfloat16"},
    {Precision::float16, "float16"},
}};

std::string_view to_string(Precision p);  // "float32", "bfloat16", "float16"
std::string precision_names();            // "float32, bfloat16, float16"
// Throws wb::UsageError "--precision 'X': expected one of float32, bfloat16, float16".
Precision parse_precision(std::string_view s);

}  // namespace wb
