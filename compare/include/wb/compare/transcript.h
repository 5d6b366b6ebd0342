// Transcript impact: does the layer drift matter for what the decoder says? From two decodes of
// the same clip (reference and candidate encoder, the reference decoder on both): token
// agreement, the first differing token with both sides' top-5 there, a repetition detector (the
// classic symptom of a broken encoder), word errors against an expected text, and the
// teacher-forced KL: both sides' next-token distributions over the *same* (the reference's)
// tokens, KL(p_ref || p_cand) per step.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "wb/core/tensor.h"
#include "wb/core/wer.h"

namespace wb::cmp {

struct TokenProb {
  int token = 0;
  double p = 0.0;
};

struct Repetition {
  int ngram = 0;         // length of the looping n-gram (1: one token repeated)
  int repeats = 0;       // back-to-back occurrences of it
  int start = -1;        // first token of the loop
  bool flagged = false;  // repeats >= 4 (and the loop covers >= 8 tokens)
};
// The longest back-to-back loop of an n-gram (n <= 8) in a token sequence.
Repetition find_repetition(const std::vector<int>& tokens);

struct TranscriptImpact {
  std::vector<int> ref_tokens, cand_tokens;    // generated tokens (prompt and eot excluded)
  int agree = 0;                               // positions with the same token (aligned by index)
  int positions = 0;                           // max of the two lengths
  int first_diff = -1;                         // -1: identical sequences
  std::vector<TokenProb> ref_top5, cand_top5;  // at first_diff (empty without logits)
  Repetition ref_rep, cand_rep;
  // Teacher-forced: KL(p_ref || p_cand) in nats for each step over the reference's tokens
  // (steps 0..n: the last predicts the end of text). Empty when the logits do not cover the
  // same tokens (decoder taps of each side's own tokens that differ).
  bool teacher_forced = false;
  std::vector<double> kl;
  double kl_mean = 0.0, kl_max = 0.0;
  int kl_max_step = -1;
  std::optional<WerCounts> ref_vs_expected, cand_vs_expected;
  double agreement() const { return positions ? static_cast<double>(agree) / positions : 1.0; }
};

// logits: [prompt + n, n_vocab] decoder logits over prompt + tokens (the `logits` tap), or empty
// tensors. cand_logits_follow_ref: the candidate's logits are over the reference's tokens (a
// teacher-forced pass), else over its own. Throws std::invalid_argument on inconsistent shapes.
TranscriptImpact transcript_impact(const std::vector<int>& ref_tokens,
                                   const std::vector<int>& cand_tokens, const Tensor& ref_logits,
                                   const Tensor& cand_logits, bool cand_logits_follow_ref);

}  // namespace wb::cmp
