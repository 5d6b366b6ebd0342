// Finding the culprit: replay (each candidate stage fed the reference's input to that stage, so
// its own error is measured apart from what it inherits) and layer bisection (hybrid encoders,
// candidate stages before k and reference stages from k on, binary-searched for the stage whose
// swap breaks the criterion). Both work through the seam (wb/core/encoder.h) on any backend.
#pragma once
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "wb/compare/profile.h"
#include "wb/core/dump.h"
#include "wb/core/encoder.h"
#include "wb/core/taps.h"

namespace wb::cmp {

// The encoder's stages in execution order, as the tap registry divides the encoder: frontend
// (audio -> mel), stem (mel -> encoder.pos_embed), block i (-> encoder.blocks.i.out), ln_post
// (-> encoder.ln_post); a stage's output is the last tap the registry gives it.
struct Stage {
  std::string name;        // display: the stage's name, "block 3" for a block
  std::string input_tap;   // "" for the front end (its input is the audio file)
  std::string output_tap;  // the tap holding the stage's output
  int block = -1;
  TapStage stage = TapStage::frontend;
};
std::vector<Stage> encoder_stages(const ModelDims& d);

// Runs stage s of `enc` on x (the front end runs on pcm instead).
Tensor run_stage(Encoder& enc, const Stage& s, const Tensor& x, const std::vector<float>& pcm,
                 TapSink* taps);

constexpr double kNoValue = std::numeric_limits<double>::quiet_NaN();

struct StageReplay {
  Stage stage;
  std::string refused;  // non-empty: not replayed, and why (which taps the dump needs)
  // rel L2 against the reference's output tap of:
  double own = kNoValue;  // the stage run on the reference's input: the error it makes itself
  double out = kNoValue;  // the stage in the candidate's own chain: own + inherited
  // rel L2 of the input the candidate's chain hands the stage (vs the reference's input)
  double received = kNoValue;
  // ||stage(chain input) - stage(ref input)|| / ||stage(ref input)||, divided by `received`:
  // how the stage propagates the error it receives (the candidate's own error cancels).
  double amplification = kNoValue;
  double limit = kNoValue;  // the profile's fail limit on rel L2 at the output tap
  bool own_fails = false;   // own > limit (or non-finite)
};

struct ReplayResult {
  std::string implementation;
  nlohmann::json run_info;
  std::vector<StageReplay> stages;
  int culprit = -1;  // the first stage whose own error fails the profile (-1: none)
};

// ref: a reference dump holding each stage's input and output taps in float32/float64 (a stage
// whose taps are missing or stored in float16 is refused, with the taps to dump named); pcm: the
// audio that dump names (the caller checks its sha256). The candidate also runs end to end on
// pcm, its taps going to chain_taps (may be null).
ReplayResult replay(Encoder& cand, const DumpReader& ref, const std::vector<float>& pcm,
                    const ToleranceProfile& profile, TapSink* chain_taps = nullptr);

nlohmann::json replay_json(const ReplayResult& r);
ReplayResult replay_from_json(const nlohmann::json& j);  // throws std::runtime_error

// ---------------------------------------------------------------------------------------------
// Layer bisection

// Did a hybrid's encoder output fail? score: the figure the verdict rests on (rel L2, or word
// errors), for the printout.
using HybridCriterion = std::function<bool(const Tensor& encoder_out, double* score)>;

struct HybridRun {
  std::string mix;  // "C C C R R" per stage: C candidate, R reference
  int k = 0;        // candidate for stages < k (-1: the single-stage confirmation)
  double score = kNoValue;
  bool fails = false;
};

struct LayerBisection {
  std::vector<Stage> stages;
  std::vector<HybridRun> runs;
  int culprit = -1;        // stage index, -1: the candidate passes, nothing to find
  bool confirmed = false;  // the culprit stage alone, all else reference, fails too
};

// The reference's own output of a stage when it is known without running it (a cached
// reference dump, wb/core/ref_cache.h), else nullopt.
using KnownOutputs = std::function<std::optional<Tensor>(const Stage&)>;

// Binary search over k for the smallest hybrid that fails; then the culprit alone is swapped in
// as a check. At most ceil(log2(stages)) + 2 hybrid runs (the all-candidate run, the search, the
// check). Assumes a single culprit (or the first of several, in execution order). A hybrid's
// leading candidate stages are computed once and reused by the later hybrids (the candidate's
// chain does not depend on k); its leading reference stages come from `known` when given.
LayerBisection bisect_layers(Encoder& cand, Encoder& ref, const std::vector<float>& pcm,
                             const HybridCriterion& fails, const KnownOutputs& known = {});

}  // namespace wb::cmp
