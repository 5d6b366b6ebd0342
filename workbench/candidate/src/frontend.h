// The candidate's own log-mel front end: FFTW float STFT + Slaney filterbank, no LibTorch.
#pragma once
#include <vector>

#include "faults.h"
#include "kernels.h"
#include "thread_pool.h"

namespace wb::cand {

class LogMel {
 public:
  LogMel(int n_mels, int n_frames);
  ~LogMel();
  LogMel(const LogMel&) = delete;
  LogMel& operator=(const LogMel&) = delete;

  int n_mels() const { return n_mels_; }
  int n_frames() const { return n_frames_; }
  // pcm: exactly n_frames * hop samples (already padded/trimmed). out: [n_mels, n_frames].
  void compute(const float* pcm, float* out, const Faults& faults, const KernelTable& k,
               ThreadPool& pool);

 private:
  int n_mels_, n_frames_;
  void* plan_ = nullptr;        // fftwf_plan for one 400-point r2c transform (new-array execute)
  std::vector<float> window_;   // periodic Hann [400]
  std::vector<float> filters_;  // Slaney mel filters [n_mels, 201], float32
  std::vector<float> power_;    // |STFT|^2 [n_frames, 201]
};

}  // namespace wb::cand
