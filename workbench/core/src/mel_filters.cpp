// The mel filterbank: plain arithmetic, in a file of its own so that what needs only the filters
// (the ggml writer of the light front) does not bring libsndfile and libsamplerate with audio.cpp.
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "wb/core/audio.h"

namespace wb {

// librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney"):
// Slaney's mel scale (linear below 1 kHz, log above), triangles on the FFT bin frequencies,
// each normalised to unit area (2 / (f_hi - f_lo)).
std::vector<double> mel_filters(int n_mels, int n_fft, int sr) {
  if (n_mels <= 0 || n_fft <= 0)
    throw std::invalid_argument("mel_filters: n_mels and n_fft must be positive");
  const double f_sp = 200.0 / 3, min_log_hz = 1000.0, min_log_mel = min_log_hz / f_sp;
  const double logstep = std::log(6.4) / 27.0;
  auto hz_to_mel = [&](double f) {
    return f >= min_log_hz ? min_log_mel + std::log(f / min_log_hz) / logstep : f / f_sp;
  };
  auto mel_to_hz = [&](double m) {
    return m >= min_log_mel ? min_log_hz * std::exp(logstep * (m - min_log_mel)) : f_sp * m;
  };
  const int n_bins = n_fft / 2 + 1;
  std::vector<double> fft_freqs(n_bins);
  for (int k = 0; k < n_bins; ++k) fft_freqs[k] = k * static_cast<double>(sr) / n_fft;
  const double mel_lo = hz_to_mel(0.0), mel_hi = hz_to_mel(sr / 2.0);
  std::vector<double> pts(n_mels + 2);
  for (int i = 0; i < n_mels + 2; ++i)
    pts[i] = mel_to_hz(mel_lo + (mel_hi - mel_lo) * i / (n_mels + 1));
  std::vector<double> w(static_cast<std::size_t>(n_mels) * n_bins, 0.0);
  for (int m = 0; m < n_mels; ++m) {
    const double lo = pts[m], c = pts[m + 1], hi = pts[m + 2];
    const double enorm = 2.0 / (hi - lo);
    for (int k = 0; k < n_bins; ++k) {
      const double up = (fft_freqs[k] - lo) / (c - lo), down = (hi - fft_freqs[k]) / (hi - c);
      w[static_cast<std::size_t>(m) * n_bins + k] = std::max(0.0, std::min(up, down)) * enorm;
    }
  }
  return w;
}

}  // namespace wb
