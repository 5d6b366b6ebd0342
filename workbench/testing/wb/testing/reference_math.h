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

// A kernel-3 convolution with padding 1 and the given stride, then act, in float64:
// y[t, co] = act(b[co] + sum_{ci, k} w[(co * c_in + ci) * 3 + k] in(ci, stride * t + k - 1)) for
// t < t_out, terms outside [0, t_in) left out. in(ci, src) reads the input in any layout.
template <class W, class In, class Act>
std::vector<double> conv3_f64(const W* w, const W* b, int64_t c_out, int64_t c_in, int64_t t_out,
                              int64_t t_in, int64_t stride, In in, Act act) {
  std::vector<double> y(static_cast<std::size_t>(t_out * c_out));
  for (int64_t t = 0; t < t_out; ++t)
    for (int64_t co = 0; co < c_out; ++co) {
      double s = b[co];
      for (int64_t ci = 0; ci < c_in; ++ci)
        for (int64_t k = 0; k < 3; ++k) {
          const int64_t src = stride * t + k - 1;
          if (src >= 0 && src < t_in)
            s +=
                static_cast<double>(w[(co * c_in + ci) * 3 + k]) * static_cast<double>(in(ci, src));
        }
      y[static_cast<std::size_t>(t * c_out + co)] = act(s);
    }
  return y;
}

}  // namespace wb::testing
