// Plain host tensors at the seam between implementations: row-major, owning, float32 or float64.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "wb/core/enum_names.h"

namespace wb {

// Element types. f32/f64 are compute types; f16/bf16 occur in checkpoints and dumps only.
enum class DType { f32, f64, f16, bf16 };
inline constexpr std::array<NameEntry<DType>, 4> kDTypeNames{{
    {DType::f32, "float32"},
    {DType::f64, "float64"},
    {DType::f16, "float16"},
    {DType::bf16, "bfloat16"},
}};

std::string_view dtype_name(DType t);
DType dtype_from_name(std::string_view name);  // throws std::invalid_argument
std::size_t dtype_size(DType t);

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[80, 3000]"
int64_t shape_numel(const Shape& s);    // throws std::invalid_argument on negative dims or overflow

// IEEE half / bfloat16 conversions (round to nearest even), used by loaders and the dump writer.
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

class Tensor {
 public:
  Tensor() = default;
  Tensor(DType dtype, Shape shape);  // zero-filled; dtype must be f32 or f64
  static Tensor from_f32(Shape shape, std::vector<float> values);

  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(static_cast<std::size_t>(i)); }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t numel() const { return numel_; }
  bool empty() const { return numel_ == 0; }

  float* f32();
  const float* f32() const;
  double* f64();
  const double* f64() const;
  const void* raw() const { return bytes_.data(); }
  void* raw() { return bytes_.data(); }

  Tensor to(DType dtype) const;  // f32 <-> f64 conversion (copy)
  Tensor reshaped(Shape shape) const;

 private:
  DType dtype_ = DType::f32;
  Shape shape_;
  int64_t numel_ = 0;
  std::vector<double> bytes_;  // storage in 8-byte units: aligned for both types
};

// A non-owning view handed to tap observers: no copy is made for a tap nobody selected.
struct TapView {
  const Shape& shape;
  DType dtype;  // f32 or f64
  const void* data;
};

}  // namespace wb
