// The candidate: a from-scratch accelerated Whisper encoder (no LibTorch), behind the seam.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "wb/core/encoder.h"
#include "wb/core/precision.h"
#include "wb/core/weights.h"

namespace wb {

struct CandidateOptions {
  Precision precision =
      Precision::float32;           // weights (and GEMM inputs where native); fp32 accumulation
  std::vector<std::string> faults;  // "NAME" or "NAME=VALUE", see wb/core/faults.h
  int threads = 0;                  // 0: hardware concurrency
};

// Throws wb::UsageError for an unknown fault (the message lists the valid ones).
std::unique_ptr<Encoder> make_candidate_encoder(std::shared_ptr<const Checkpoint> model,
                                                const CandidateOptions& opts);

}  // namespace wb
