// Whisper log-mel (openai/whisper audio.py), computed with FFTW:
//   x padded by n_fft/2 = 200 samples on each side by reflection (x[-i] = x[i]),
//   frame f = x_pad[160 f, 160 f + 400) * periodic Hann (0.5 - 0.5 cos(2 pi n / 400)),
//   P[f, b] = |rfft(frame)[b]|^2 for the 3001 frames, the last one dropped -> 3000,
//   M = filters [n_mels, 201] @ P^T,  L = log10(max(M, 1e-10)),
//   L = max(L, max(L) - 8),  out = (L + 4) / 4.
#include "frontend.h"

#include <cblas.h>
#include <fftw3.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <numbers>
#include <stdexcept>

#include "wb/core/audio.h"

namespace wb::cand {

namespace {
constexpr int kBins = kNFft / 2 + 1;  // 201
// FFTW's planner is not thread-safe; execution with new arrays is.
std::mutex& fftw_planner_mutex() {
  static std::mutex mu;
  return mu;
}
}  // namespace

LogMel::LogMel(int n_mels, int n_frames) : n_mels_(n_mels), n_frames_(n_frames) {
  window_.resize(kNFft);
  for (int n = 0; n < kNFft; ++n)
    window_[static_cast<std::size_t>(n)] = static_cast<float>(
        0.5 - 0.5 * std::cos(2.0 * std::numbers::pi * n / static_cast<double>(kNFft)));
  const std::vector<double> f64 = mel_filters(n_mels, kNFft, kSampleRate);
  if (f64.size() != static_cast<std::size_t>(n_mels) * kBins)
    throw std::runtime_error("mel_filters: unexpected size");
  filters_.assign(f64.begin(), f64.end());
  power_.resize(static_cast<std::size_t>(n_frames) * kBins);
  std::vector<float> in(kNFft);
  std::vector<fftwf_complex> out(kBins);
  std::lock_guard<std::mutex> lk(fftw_planner_mutex());
  plan_ = fftwf_plan_dft_r2c_1d(kNFft, in.data(), out.data(), FFTW_ESTIMATE | FFTW_UNALIGNED);
  if (plan_ == nullptr) throw std::runtime_error("FFTW: cannot plan a 400-point r2c transform");
}

LogMel::~LogMel() {
  std::lock_guard<std::mutex> lk(fftw_planner_mutex());
  if (plan_ != nullptr) fftwf_destroy_plan(static_cast<fftwf_plan>(plan_));
}

void LogMel::compute(const float* pcm, float* out, const Faults& faults, const KernelTable& k,
                     ThreadPool& pool) {
  const int64_t n = static_cast<int64_t>(n_frames_) * kHop;
  const int pad = kNFft / 2;
  // Fault "stft-keep-last-frame": keep STFT frame 3000 and, to keep the [n_mels, 3000] shape,
  // drop frame 0 instead (every frame shifts by one hop).
  const int first = faults.stft_keep_last ? 1 : 0;
  // Fault "stft-no-reflect": centre padding with zeros (pad_mode="constant") instead of reflect.
  const bool reflect = !faults.stft_no_reflect;
  auto sample = [&](int64_t j) -> float {  // x_pad[j]
    int64_t i = j - pad;
    if (i < 0) {
      if (!reflect) return 0.0f;
      i = -i;
    } else if (i >= n) {
      if (!reflect) return 0.0f;
      i = 2 * (n - 1) - i;
    }
    return pcm[i];
  };
  const auto plan = static_cast<fftwf_plan>(plan_);
  pool.parallel_for(n_frames_, [&](int64_t f0, int64_t f1, int) {
    float frame[kNFft];
    fftwf_complex spec[kBins];
    for (int64_t f = f0; f < f1; ++f) {
      const int64_t start = (f + first) * kHop;
      if (start >= pad && start + kNFft - pad <= n) {
        const float* src = pcm + (start - pad);
        for (int i = 0; i < kNFft; ++i) frame[i] = src[i] * window_[static_cast<std::size_t>(i)];
      } else {
        for (int i = 0; i < kNFft; ++i)
          frame[i] = sample(start + i) * window_[static_cast<std::size_t>(i)];
      }
      fftwf_execute_dft_r2c(plan, frame, spec);
      k.power(&spec[0][0], power_.data() + f * kBins, kBins);
    }
  });
  // out[n_mels, frames] = filters [n_mels, 201] @ P^T, split over frame columns.
  pool.parallel_for(
      n_frames_,
      [&](int64_t f0, int64_t f1, int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n_mels_, static_cast<int>(f1 - f0),
                    kBins, 1.0f, filters_.data(), kBins, power_.data() + f0 * kBins, kBins, 0.0f,
                    out + f0, n_frames_);
      },
      16);
  const int64_t total = static_cast<int64_t>(n_mels_) * n_frames_;
  if (faults.mel_db) {
    // Fault "mel-db": librosa.power_to_db(S, ref=1.0, amin=1e-10, top_db=80.0), i.e.
    // 10 log10(max(S, 1e-10)) floored at its max - 80 dB, and no Whisper (x + 4) / 4 scaling.
    float mx = -1e30f;
    for (int64_t i = 0; i < total; ++i) {
      out[i] = 10.0f * std::log10(std::max(out[i], 1e-10f));
      mx = std::max(mx, out[i]);
    }
    for (int64_t i = 0; i < total; ++i) out[i] = std::max(out[i], mx - 80.0f);
    return;
  }
  float mx = -1e30f;
  for (int64_t i = 0; i < total; ++i) {
    out[i] = std::log10(std::max(out[i], 1e-10f));
    mx = std::max(mx, out[i]);
  }
  const float floor = mx - 8.0f;
  for (int64_t i = 0; i < total; ++i) out[i] = (std::max(out[i], floor) + 4.0f) / 4.0f;
}

}  // namespace wb::cand
