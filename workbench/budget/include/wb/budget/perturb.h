// Controlled perturbations of one tap's tensor for error budgets (docs/budget.md): the perturbed
// tensor x' = x + d with ||d|| / ||x|| = epsilon exactly (in float64, before the float32 store), in
// a direction fixed by the shape, the tap's values and a seed, so only the size changes with
// epsilon and the same seed gives the same tensors everywhere (no std:: distribution is used:
// their outputs differ between standard libraries).
#pragma once
#include <array>
#include <cstdint>
#include <string_view>

#include "wb/core/enum_names.h"
#include "wb/core/tensor.h"

namespace wb::budget {

enum class Perturbation {
  noise,    // white Gaussian noise
  bf16,     // the tap's own bfloat16 rounding error, scaled: x + a (round_bf16(x) - x)
  channel,  // a per-channel scale and bias drift: d[c] = s_c x[c] + b_c rms(x), s, b ~ N(0, 1)
};
inline constexpr std::array<NameEntry<Perturbation>, 3> kPerturbationNames{{
    {Perturbation::noise, "noise"},
    {Perturbation::bf16, "bf16"},
    {Perturbation::channel, "channel"},
}};

// A 64-bit seed from a base seed and names (FNV-1a over the bytes): one stream per clip, tap and
// shape.
uint64_t derive_seed(uint64_t seed, std::string_view clip, std::string_view tap,
                     std::string_view shape);

// x (2-D, float32) perturbed to relative L2 epsilon. channel_axis: the axis of channels (0 for
// mel [n_mels, frames], 1 for [frames, C]). Throws std::invalid_argument for an all-zero x, a
// negative or non-finite epsilon, or a bf16 shape on a tensor that bfloat16 holds exactly.
Tensor perturb(const Tensor& x, Perturbation shape, double epsilon, uint64_t seed,
               int channel_axis);

// ||a - b|| / ||b|| in float64.
double rel_l2(const Tensor& a, const Tensor& b);

}  // namespace wb::budget
