// MemorySource: taps held in memory (tests, the synthetic benchmark, replay), read like a dump.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "wb/compare/compare.h"

namespace wb::cmp {

void MemorySource::add(const std::string& name, Shape shape, std::vector<double> values,
                       const std::string& layout, int order) {
  if (static_cast<int64_t>(values.size()) != shape_numel(shape)) {
    throw std::invalid_argument(fmt::format("MemorySource::add '{}': {} values for shape {}", name,
                                            values.size(), shape_str(shape)));
  }
  TapInfo t;
  t.name = name;
  t.shape = std::move(shape);
  t.stored = DType::f64;
  t.order = order >= 0 ? order : static_cast<int>(taps_.size());
  t.layout = layout;
  t.compute_dtype = "float64";
  taps_.push_back(t);
  data_.push_back(std::move(values));
}

std::vector<double>& MemorySource::values(const std::string& name) {
  for (std::size_t i = 0; i < taps_.size(); ++i)
    if (taps_[i].name == name) return data_[i];
  throw std::invalid_argument(fmt::format("MemorySource: no tap '{}'", name));
}

void MemorySource::read_rows(const std::string& name, int64_t row0, int64_t n,
                             std::vector<double>& out) const {
  for (std::size_t i = 0; i < taps_.size(); ++i) {
    if (taps_[i].name != name) continue;
    const Shape& s = taps_[i].shape;
    int64_t row_len = 1;
    for (std::size_t k = 1; k < s.size(); ++k) row_len *= s[k];
    const int64_t rows = s.empty() ? 1 : s[0];
    if (row0 < 0 || n < 0 || row0 + n > rows) {
      throw std::runtime_error(fmt::format("{}: tap '{}': rows [{}, {}) outside {}", label_, name,
                                           row0, row0 + n, shape_str(s)));
    }
    out.assign(data_[i].begin() + row0 * row_len, data_[i].begin() + (row0 + n) * row_len);
    return;
  }
  throw std::runtime_error(fmt::format("{}: no tap '{}'", label_, name));
}

}  // namespace wb::cmp
