#include "wb/core/precision.h"

#include <fmt/format.h>

#include <array>
#include <utility>

#include "wb/core/util.h"

namespace wb {
namespace {

constexpr std::array<std::pair<Precision, std::string_view>, 3> kPrecisions{{
    {Precision::float32, "float32"},
    {Precision::bfloat16, "bfloat16"},
    {Precision::float16, "float16"},
}};

}  // namespace

std::string_view to_string(Precision p) {
  for (const auto& [v, n] : kPrecisions)
    if (v == p) return n;
  return "?";
}

std::string precision_names() {
  std::string s;
  for (const auto& entry : kPrecisions) s += (s.empty() ? "" : ", ") + std::string(entry.second);
  return s;
}

Precision parse_precision(std::string_view s) {
  for (const auto& [v, n] : kPrecisions)
    if (n == s) return v;
  throw UsageError(fmt::format("--precision '{}': expected one of {}", s, precision_names()));
}

}  // namespace wb
