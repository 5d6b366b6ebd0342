#include "wb/core/tensor.h"

#include <fmt/format.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

namespace wb {

std::string_view dtype_name(DType t) { return name_of(kDTypeNames, t); }

namespace {
// Short spellings also read (checkpoint and dump headers written elsewhere use them).
constexpr std::array<NameEntry<DType>, 4> kDTypeShortNames{{
    {DType::f32, "f32"},
    {DType::f64, "f64"},
    {DType::f16, "f16"},
    {DType::bf16, "bf16"},
}};
}  // namespace

DType dtype_from_name(std::string_view n) {
  if (auto v = find_value(kDTypeNames, n)) return *v;
  if (auto v = find_value(kDTypeShortNames, n)) return *v;
  throw std::invalid_argument(
      fmt::format("unknown dtype '{}' (expected {})", n, names_of(kDTypeNames)));
}

std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::f16:
    case DType::bf16:
      return 2;
  }
  return 0;
}

std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0)
      throw std::invalid_argument(fmt::format("negative dimension in shape {}", shape_str(s)));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      throw std::invalid_argument(fmt::format("shape {} overflows", shape_str(s)));
    n *= d;
  }
  return n;
}

float half_to_float(uint16_t h) {
  const uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400u) == 0);
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

uint16_t float_to_half(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return sign | 0x7c00u | (ax > 0x7f800000u ? 0x200u : 0);  // inf/nan
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // rounds to >= 65520: overflow to inf
  if (ax < 0x38800000u) {                        // below smallest normal half: subnormal
    const float a = std::bit_cast<float>(ax);
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));  // a / 2^-24
  }
  uint32_t r = ax - 0x38000000u;      // rebias exponent 127 -> 15 (in place, mantissa 23 bits)
  r = r + 0xfffu + ((r >> 13) & 1u);  // round to nearest even on the 13 dropped bits
  return sign | static_cast<uint16_t>(r >> 13);
}

float bf16_to_float(uint16_t b) { return std::bit_cast<float>(static_cast<uint32_t>(b) << 16); }

uint16_t float_to_bf16(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u)
    return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet nan
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>(x >> 16);
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  if (dtype != DType::f32 && dtype != DType::f64)
    throw std::invalid_argument(
        fmt::format("Tensor holds float32 or float64, not {}", dtype_name(dtype)));
  numel_ = shape_numel(shape_);
  const std::size_t bytes = static_cast<std::size_t>(numel_) * dtype_size(dtype);
  bytes_.assign((bytes + 7) / 8, 0.0);
}

Tensor Tensor::from_f32(Shape shape, std::vector<float> values) {
  Tensor t(DType::f32, std::move(shape));
  if (static_cast<int64_t>(values.size()) != t.numel_)
    throw std::invalid_argument(
        fmt::format("{} values for shape {}", values.size(), shape_str(t.shape_)));
  if (!values.empty()) std::memcpy(t.raw(), values.data(), values.size() * sizeof(float));
  return t;
}

float* Tensor::f32() {
  if (dtype_ != DType::f32) throw std::invalid_argument("tensor is not float32");
  return reinterpret_cast<float*>(bytes_.data());
}
const float* Tensor::f32() const { return const_cast<Tensor*>(this)->f32(); }
double* Tensor::f64() {
  if (dtype_ != DType::f64) throw std::invalid_argument("tensor is not float64");
  return bytes_.data();
}
const double* Tensor::f64() const { return const_cast<Tensor*>(this)->f64(); }

Tensor Tensor::to(DType dtype) const {
  if (dtype == dtype_) return *this;
  Tensor out(dtype, shape_);
  if (dtype == DType::f64) {
    const float* s = f32();
    double* d = out.f64();
    for (int64_t i = 0; i < numel_; ++i) d[i] = s[i];
  } else {
    const double* s = f64();
    float* d = out.f32();
    for (int64_t i = 0; i < numel_; ++i) d[i] = static_cast<float>(s[i]);
  }
  return out;
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel_)
    throw std::invalid_argument(
        fmt::format("cannot reshape {} to {}", shape_str(shape_), shape_str(shape)));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

}  // namespace wb
