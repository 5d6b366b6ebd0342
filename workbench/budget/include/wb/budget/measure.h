// Measuring per-layer error budgets (docs/budget.md): perturb the reference's own forward at one
// stage output to a controlled relative L2 epsilon, run the rest of the reference encoder and
// the reference decoder on it, and see whether each clip keeps its tokens and how far the
// next-token distributions move (teacher-forced KL). A tap's budget is the largest epsilon at
// which at most max(1, 2 %) of the clips change their tokens and the mean KL stays under a bound.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "wb/budget/perturb.h"
#include "wb/compare/budget.h"
#include "wb/core/encoder.h"
#include "wb/core/weights.h"
#include "wb/reference/reference.h"

namespace wb::budget {

struct Criterion {
  double max_changed_fraction = 0.02;  // clips whose tokens may change: max(1, floor(f * n))
  int min_changed_allowed = 1;
  // Mean over the clips of each clip's mean per-step KL(p_ref || p_perturbed), in nats, over the
  // unperturbed tokens (teacher-forced).
  double kl_bound = 0.05;
  int allowed(int n_clips) const;
  nlohmann::json to_json(int n_clips) const;
};

struct SearchOptions {
  // Coarse epsilons, ascending; climbed until a level fails the criterion and at least
  // stop_changed_fraction of the clips changed (or the ladder ends), then `refine` bisection
  // steps (geometric midpoints) between the last passing and the first failing epsilon.
  std::vector<double> ladder{4e-3, 1.6e-2, 6.4e-2, 0.256, 1.024, 4.096};
  int refine = 2;
  double stop_changed_fraction = 0.25;
  nlohmann::json to_json() const;
  // UsageError for an empty ladder, one not positive and ascending, or refine outside 0..8.
  void check() const;
};

// The outcome of every clip at one epsilon.
struct Level {
  double epsilon = 0;
  int clips = 0, kept = 0, changed = 0;
  std::vector<std::string> changed_clips;
  double kl_mean = 0, kl_max = 0;  // over clips of each clip's mean per-step KL
  bool pass = false;
  nlohmann::json to_json() const;
  static Level from_json(const nlohmann::json& j);
};

struct SearchResult {
  std::vector<Level> levels;  // ascending epsilon
  double budget = 0;
  cmp::BudgetBound bound = cmp::BudgetBound::exact;
  int max_rise = 0;  // the largest rise of `kept` from one epsilon to the next larger
};

// The search over epsilon. evaluate(eps) runs (or recalls) one level; the budget is the largest
// epsilon below the first failing one that passed (levels passing again above a failure do not
// count: the budget is a bound every smaller error also keeps).
SearchResult search_budget(const SearchOptions& o, const Criterion& c, int n_clips,
                           const std::function<Level(double)>& evaluate);

// One clip's reference run: each stage output, the tokens and their teacher-forced logits.
struct ClipRun {
  std::string clip;
  std::vector<Tensor> stage_out;  // by index into BudgetRunner::taps()
  std::vector<int> tokens;        // generated, prompt and eot excluded
  std::vector<int> forced;        // prompt + tokens: what the perturbed runs are forced along
  Tensor logits;                  // teacher-forced [prompt + tokens, n_vocab]
  bool at_limit = false;          // the decode stopped at its token limit (no eot)
};

struct RunCounts {
  std::atomic<int64_t> tails{0}, blocks{0}, decodes{0};
};

// fn(0) .. fn(n - 1) on `jobs` threads (the caller's among them); the first exception thrown is
// rethrown once all have stopped.
void parallel_for(std::size_t n, int jobs, const std::function<void(std::size_t)>& fn);

// The reference encoder and decoder (float32, CPU) of one model, and the stage taps. evaluate()
// runs the clips on `jobs` threads at once; call set_reference_threads(1) first so that each
// LibTorch op runs on one thread (2 cores, a mel level of 4 clips: 1.1 s with 2 jobs of 1
// thread, 2.9 s with 1 job of 1 thread, 6.1 s with 1 job of 2 LibTorch threads under load: the
// decoder's small ops do not parallelise).
class BudgetRunner {
 public:
  explicit BudgetRunner(std::shared_ptr<const Checkpoint> model, int jobs = 1);
  ~BudgetRunner();
  // The stage outputs: mel, the stem's output (encoder.pos_embed), every block's output,
  // encoder.ln_post; their registry names in execution order.
  const std::vector<std::string>& taps() const { return taps_; }
  int tap_index(const std::string& name) const;  // -1 when not a stage output
  ClipRun prepare(const std::string& clip, const std::vector<float>& pcm16k);
  int jobs() const { return jobs_; }
  // Each clip perturbed at `tap` to `epsilon` (seeded per clip, tap and shape), the rest of the
  // encoder and the decoder run on it.
  Level evaluate(const std::vector<ClipRun>& clips, int tap, Perturbation shape, double epsilon,
                 uint64_t seed, const Criterion& c);
  // Whether one perturbed encoder output keeps the clip's tokens, and its mean per-step KL: one
  // full teacher-forced pass along the clip's tokens (greedy_choices() of its rows).
  std::pair<bool, double> judge(const ClipRun& clip, const Tensor& encoder_out);
  Tensor tail(int tap, const Tensor& x);  // the encoder from the output of `tap` on
  const RunCounts& counts() const { return counts_; }
  ReferenceDecoder& decoder() { return *dec_; }

 private:
  int jobs_;
  std::shared_ptr<const Checkpoint> model_;
  std::unique_ptr<Encoder> enc_;
  std::unique_ptr<ReferenceDecoder> dec_;
  std::vector<std::string> taps_;
  RunCounts counts_;
};

}  // namespace wb::budget
