// The candidate: a from-scratch accelerated Whisper encoder (no LibTorch), behind the seam.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "wb/core/encoder.h"
#include "wb/core/faults.h"
#include "wb/core/precision.h"
#include "wb/core/weights.h"

namespace wb {

struct CandidateOptions {
  Precision precision =
      Precision::float32;  // weights (and GEMM inputs where native); fp32 accumulation
  Faults faults;           // parsed by the caller against the table (wb/core/faults.h)
  int threads = 0;         // 0: hardware concurrency
};

// Throws wb::UsageError for a fault limited to a block the model lacks ("@N").
std::unique_ptr<Encoder> make_candidate_encoder(std::shared_ptr<const Checkpoint> model,
                                                const CandidateOptions& opts);

// The candidate's kernel ISAs (the one list, narrowest first) and whether this CPU runs each.
struct CandidateIsa {
  std::string name;
  bool supported = false;
};
std::vector<CandidateIsa> candidate_isas();
std::string candidate_best_isa();  // the widest this CPU runs (the default without $WB_ISA)

}  // namespace wb
