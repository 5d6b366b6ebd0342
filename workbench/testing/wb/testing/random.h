// Seeded test inputs shared by the kernel tests of every backend (CPU candidate, CUDA candidate):
// the seeds are printed with each case, so a failure is reproduced by its seed alone.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace wb::testing {

inline constexpr uint64_t kCpuKernelSeed = 20261125;   // the CPU candidate's kernel tests
inline constexpr uint32_t kCudaKernelSeed = 20261127;  // the CUDA candidate's kernel tests

// n values offset + scale * N(0, 1) from the engine Rng seeded with `seed`.
template <class Rng = std::mt19937_64>
std::vector<float> randn(std::size_t n, typename Rng::result_type seed, float scale = 1.0f,
                         float offset = 0.0f) {
  Rng rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = offset + scale * nd(rng);
  return v;
}

}  // namespace wb::testing
