// Transcript impact against closed forms: agreement, first difference, repetition, top-5 and
// teacher-forced KL on hand-built logits.
#include "wb/compare/transcript.h"

#include <doctest/doctest.h>

#include <cmath>
#include <stdexcept>

using namespace wb;
using namespace wb::cmp;

TEST_CASE("repetition: the longest back-to-back n-gram loop") {
  CHECK_FALSE(find_repetition({1, 2, 3, 4, 5, 6}).flagged);
  const Repetition one = find_repetition({7, 9, 9, 9, 9, 9, 9, 9, 9, 3});
  CHECK(one.ngram == 1);
  CHECK(one.repeats == 8);
  CHECK(one.start == 1);
  CHECK(one.flagged);
  const Repetition tri = find_repetition({5, 1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3, 8});
  CHECK(tri.ngram == 3);
  CHECK(tri.repeats == 4);
  CHECK(tri.start == 1);
  CHECK(tri.flagged);
  CHECK_FALSE(find_repetition({4, 4, 4}).flagged);  // 3 repeats of one token: not a loop yet
}

TEST_CASE("transcript impact: agreement, first difference, top-5, KL in closed form") {
  // prompt of 2, tokens of 3: logits rows 5, vocab 4. Row 1 predicts token 0, ..., row 4 eot.
  const std::vector<int> ref = {2, 0, 3}, cand = {2, 1, 3};
  Tensor rl(DType::f64, {5, 4}), cl(DType::f64, {5, 4});
  // Reference rows: uniform logits (p = 1/4 each); candidate rows: logits (ln 2, 0, 0, 0) on the
  // row predicting token 1, else equal to the reference.
  for (int i = 0; i < 20; ++i) rl.f64()[i] = cl.f64()[i] = 0.0;
  cl.f64()[2 * 4 + 0] = std::log(2.0);  // row 2 predicts generated token 1
  const TranscriptImpact x = transcript_impact(ref, cand, rl, cl, true);
  CHECK(x.agree == 2);
  CHECK(x.positions == 3);
  CHECK(x.first_diff == 1);
  REQUIRE(x.ref_top5.size() == 4);
  CHECK(x.ref_top5[0].p == doctest::Approx(0.25));
  CHECK(x.cand_top5[0].token == 0);
  CHECK(x.cand_top5[0].p == doctest::Approx(0.4));  // 2 / (2 + 1 + 1 + 1)
  CHECK(x.teacher_forced);
  REQUIRE(x.kl.size() == 4);  // steps 0..3 (the last predicts the end of text)
  // KL(u || q), u uniform, q = (0.4, 0.2, 0.2, 0.2): sum 0.25 ln(0.25 / q_j)
  const double want = 0.25 * std::log(0.25 / 0.4) + 0.75 * std::log(0.25 / 0.2);
  MESSAGE("KL at step 1: " << x.kl[1] << " vs closed form " << want);
  CHECK(x.kl[1] == doctest::Approx(want).epsilon(1e-12));
  CHECK(x.kl[0] == doctest::Approx(0.0).epsilon(1e-15));
  CHECK(x.kl_max_step == 1);
  CHECK(x.kl_mean == doctest::Approx(want / 4).epsilon(1e-12));
  // Logits over each side's own, different tokens: no KL, the top-5 still at the difference.
  const TranscriptImpact own = transcript_impact(ref, cand, rl, cl, false);
  CHECK_FALSE(own.teacher_forced);
  CHECK(own.kl.empty());
  CHECK(own.ref_top5.size() == 4);
  // Shapes that cannot hold prompt + tokens are refused.
  CHECK_THROWS_AS(transcript_impact(ref, cand, rl, Tensor(DType::f64, {3, 4}), true),
                  std::invalid_argument);
  // No logits: tokens only.
  const TranscriptImpact bare = transcript_impact(ref, ref, Tensor(), Tensor(), false);
  CHECK(bare.first_diff == -1);
  CHECK(bare.agreement() == 1.0);
}
