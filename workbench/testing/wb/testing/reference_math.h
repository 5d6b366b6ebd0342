// Float64 reference computations shared by the kernel tests of every backend and the reference's
// own tests: written once, so each backend is measured against the same definition.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

namespace wb::testing {

// Mean and biased variance of x[0, n), in float64 (two passes): a layer norm's statistics.
template <class T>
std::pair<double, double> mean_var_f64(const T* x, int64_t n) {
  double m = 0, v = 0;
  for (int64_t c = 0; c < n; ++c) m += x[c];
  m /= static_cast<double>(n);
  for (int64_t c = 0; c < n; ++c) v += (x[c] - m) * (x[c] - m);
  return {m, v / static_cast<double>(n)};
}

// Row i of head h's attention probabilities softmax_j(alpha q_i . k_j), j in [0, t), in float64,
// from qkv [t, 3c] (q | k | v, heads of dh columns each); into p (resized to t).
inline void attention_probs_f64(const std::vector<float>& qkv, int t, int c, int dh, int h, int i,
                                double alpha, std::vector<double>& p) {
  p.resize(static_cast<std::size_t>(t));
  double mx = -1e300, sum = 0;
  for (int j = 0; j < t; ++j) {
    double d = 0;
    for (int e = 0; e < dh; ++e)
      d += static_cast<double>(qkv[i * 3 * c + h * dh + e]) * qkv[j * 3 * c + c + h * dh + e];
    p[j] = d * alpha;
    mx = std::max(mx, p[j]);
  }
  for (int j = 0; j < t; ++j) sum += (p[j] = std::exp(p[j] - mx));
  for (int j = 0; j < t; ++j) p[j] /= sum;
}

}  // namespace wb::testing
