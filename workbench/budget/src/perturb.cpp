#include "wb/budget/perturb.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace wb::budget {

uint64_t derive_seed(uint64_t seed, std::string_view clip, std::string_view tap,
                     std::string_view shape) {
  uint64_t h = 1469598103934665603ull ^ seed;
  auto mix = [&h](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
    h ^= 0xff;  // a separator: ("ab", "c") and ("a", "bc") differ
    h *= 1099511628211ull;
  };
  mix(clip);
  mix(tap);
  mix(shape);
  return h;
}

namespace {

// splitmix64: a small, well-tested generator with a stated output for every seed.
struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }  // (0, 1)
};

// Standard normal draws by Box-Muller (both outputs used).
class Gaussian {
 public:
  explicit Gaussian(uint64_t seed) : rng_{seed} {}
  double next() {
    if (have_) {
      have_ = false;
      return spare_;
    }
    const double r = std::sqrt(-2.0 * std::log(rng_.uniform()));
    const double t = 2.0 * M_PI * rng_.uniform();
    spare_ = r * std::sin(t);
    have_ = true;
    return r * std::cos(t);
  }

 private:
  SplitMix64 rng_;
  bool have_ = false;
  double spare_ = 0;
};

float round_bf16(float x) {
  if (!std::isfinite(x)) return x;
  uint32_t u;
  std::memcpy(&u, &x, 4);
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
  u &= 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

}  // namespace

Tensor perturb(const Tensor& x, Perturbation shape, double epsilon, uint64_t seed,
               int channel_axis) {
  if (x.dtype() != DType::f32 || x.ndim() != 2)
    throw std::invalid_argument(
        fmt::format("perturb: expects a 2-D float32 tensor, got {}", shape_str(x.shape())));
  if (!(epsilon >= 0) || !std::isfinite(epsilon))
    throw std::invalid_argument(fmt::format("perturb: epsilon {} is not finite and >= 0", epsilon));
  if (channel_axis != 0 && channel_axis != 1)
    throw std::invalid_argument("perturb: channel_axis must be 0 or 1");
  const int64_t rows = x.dim(0), cols = x.dim(1), n = rows * cols;
  const float* xv = x.f32();
  double xx = 0;
  for (int64_t i = 0; i < n; ++i) xx += static_cast<double>(xv[i]) * xv[i];
  if (!(xx > 0) || !std::isfinite(xx))
    throw std::invalid_argument("perturb: the tensor is all zeros or not finite");
  std::vector<double> d(static_cast<std::size_t>(n));
  switch (shape) {
    case Perturbation::noise: {
      Gaussian g(seed);
      for (auto& v : d) v = g.next();
      break;
    }
    case Perturbation::bf16:
      for (int64_t i = 0; i < n; ++i)
        d[static_cast<std::size_t>(i)] =
            static_cast<double>(round_bf16(xv[i])) - static_cast<double>(xv[i]);
      break;
    case Perturbation::channel: {
      Gaussian g(seed);
      const int64_t nc = channel_axis == 0 ? rows : cols;
      std::vector<double> s(static_cast<std::size_t>(nc)), b(static_cast<std::size_t>(nc));
      for (int64_t c = 0; c < nc; ++c) {
        s[static_cast<std::size_t>(c)] = g.next();
        b[static_cast<std::size_t>(c)] = g.next();
      }
      const double rms = std::sqrt(xx / static_cast<double>(n));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const auto ch = static_cast<std::size_t>(channel_axis == 0 ? r : c);
          d[static_cast<std::size_t>(r * cols + c)] = s[ch] * xv[r * cols + c] + b[ch] * rms;
        }
      break;
    }
  }
  double dd = 0;
  for (double v : d) dd += v * v;
  if (!(dd > 0))
    throw std::invalid_argument(fmt::format(
        "perturb: the {} shape has no direction on this tensor (bfloat16 holds it exactly)",
        name_of(kPerturbationNames, shape)));
  const double a = epsilon * std::sqrt(xx / dd);
  Tensor out(DType::f32, x.shape());
  float* o = out.f32();
  for (int64_t i = 0; i < n; ++i)
    o[i] = static_cast<float>(static_cast<double>(xv[i]) + a * d[static_cast<std::size_t>(i)]);
  return out;
}

double rel_l2(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != DType::f32 || b.dtype() != DType::f32)
    throw std::invalid_argument("rel_l2: two float32 tensors of one shape expected");
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const double e = static_cast<double>(a.f32()[i]) - b.f32()[i];
    num += e * e;
    den += static_cast<double>(b.f32()[i]) * b.f32()[i];
  }
  return std::sqrt(num / den);
}

}  // namespace wb::budget
