// The perturbations against independent computations: the achieved relative L2 in float64, the
// bfloat16 shape against LibTorch's own bfloat16 cast, the channel shape on a closed form.
#include "wb/budget/perturb.h"

#include <doctest/doctest.h>
#include <torch/torch.h>

#include <cmath>

#include "wb/testing/random.h"

using namespace wb;
using namespace wb::budget;

namespace {

Tensor random_tensor(int64_t r, int64_t c, uint64_t seed) {
  return Tensor::from_f32({r, c},
                          testing::randn(static_cast<std::size_t>(r * c), seed, 1.3f, 0.2f));
}

}  // namespace

TEST_CASE("every shape reaches the asked relative L2") {
  const Tensor x = random_tensor(150, 64, 7);
  for (const auto& [shape, name] : kPerturbationNames)
    for (double eps : {1e-3, 3e-2, 1.0, 4.0}) {
      CAPTURE(name);
      CAPTURE(eps);
      const Tensor y = perturb(x, shape, eps, 11, 1);
      // The float32 store of x + d rounds each element by at most 2^-24 of its size: at most
      // 6e-8 ||x'|| on the difference, i.e. 1e-6 relative to eps >= 1e-3 with room to spare.
      CHECK(std::abs(rel_l2(y, x) - eps) <= 1e-6 * (1 + eps) + 1e-7);
    }
}

TEST_CASE("the direction is fixed by the seed: only its size follows epsilon") {
  const Tensor x = random_tensor(80, 300, 3);
  for (const auto& [shape, name] : kPerturbationNames) {
    CAPTURE(name);
    const Tensor a = perturb(x, shape, 0.01, 5, 0), b = perturb(x, shape, 0.02, 5, 0);
    const Tensor a2 = perturb(x, shape, 0.01, 5, 0);
    double worst = 0, scale = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
      CHECK(a.f32()[i] == a2.f32()[i]);  // same seed, same tensor, bit for bit
      const double da = static_cast<double>(a.f32()[i]) - x.f32()[i];
      const double db = static_cast<double>(b.f32()[i]) - x.f32()[i];
      worst = std::max(worst, std::abs(db - 2 * da));
      scale = std::max(scale, std::abs(db));
    }
    // float32 rounding of both stores: a few units of 2^-24 |x| (|x| < 8 here)
    CHECK(worst <= 8 * 6e-8 * 8);
    CHECK(scale > 0);
  }
  // another seed, another direction (the bf16 shape has none to choose)
  const Tensor c = perturb(x, Perturbation::noise, 0.01, 6, 0);
  const Tensor d = perturb(x, Perturbation::noise, 0.01, 5, 0);
  int differ = 0;
  for (int64_t i = 0; i < x.numel(); ++i) differ += c.f32()[i] != d.f32()[i];
  CHECK(differ > x.numel() / 2);
  CHECK(derive_seed(1, "a.wav", "mel", "noise") != derive_seed(1, "a.wav", "mel", "bf16"));
  CHECK(derive_seed(1, "ab", "c", "noise") != derive_seed(1, "a", "bc", "noise"));
}

TEST_CASE("the bf16 shape at its own size is LibTorch's bfloat16 cast") {
  const Tensor x = random_tensor(64, 96, 9);
  const torch::Tensor tx = torch::from_blob(const_cast<float*>(x.f32()), {64, 96}, torch::kFloat32);
  const torch::Tensor cast = tx.to(torch::kBFloat16).to(torch::kFloat32);
  const double eps = (cast - tx).to(torch::kFloat64).norm().item<double>() /
                     tx.to(torch::kFloat64).norm().item<double>();
  REQUIRE(eps > 1e-4);  // bfloat16 rounding: about 2^-9 relative
  const Tensor y = perturb(x, Perturbation::bf16, eps, 0, 1);
  const float* c = cast.data_ptr<float>();
  for (int64_t i = 0; i < x.numel(); ++i)  // alpha = 1 up to the rounding of eps: one float32 ulp
    CHECK(std::abs(y.f32()[i] - c[i]) <= std::abs(c[i]) * 1.2e-7f);
}

TEST_CASE("the channel shape drifts each channel by one scale and one bias") {
  // x constant: every element of a channel moves by the same amount (s_c + b_c) * 1
  const Tensor x = Tensor::from_f32({20, 6}, std::vector<float>(120, 1.0f));
  for (int axis : {0, 1}) {
    const Tensor y = perturb(x, Perturbation::channel, 0.5, 3, axis);
    for (int64_t r = 0; r < 20; ++r)
      for (int64_t c = 0; c < 6; ++c) {
        const float first = axis == 1 ? y.f32()[c] : y.f32()[r * 6];
        CHECK(y.f32()[r * 6 + c] == first);
      }
  }
}

TEST_CASE("bad input is refused") {
  const Tensor zero(DType::f32, {4, 4});
  CHECK_THROWS_AS(perturb(zero, Perturbation::noise, 0.1, 1, 1), std::invalid_argument);
  const Tensor x = random_tensor(4, 4, 1);
  CHECK_THROWS_AS(perturb(x, Perturbation::noise, -1, 1, 1), std::invalid_argument);
  CHECK_THROWS_AS(perturb(x, Perturbation::noise, NAN, 1, 1), std::invalid_argument);
  const Tensor exact = Tensor::from_f32({2, 2}, {1.0f, 0.5f, -2.0f, 0.25f});  // bf16-exact
  CHECK_THROWS_AS(perturb(exact, Perturbation::bf16, 0.1, 1, 1), std::invalid_argument);
}
