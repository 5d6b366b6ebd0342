// The runner on the trained fixture and a spoken clip: the one-pass judgement (a teacher-forced
// pass, greedy choices along it) against free greedy decodes of the same perturbed encoder
// outputs; the tail from each stage output against the whole encoder.
#include <doctest/doctest.h>

#include <memory>

#include "wb/budget/measure.h"
#include "wb/core/audio.h"
#include "wb/testing/paths.h"

using namespace wb;
using namespace wb::budget;

namespace {

const std::string kSrc = wb::testing::source_dir();

BudgetRunner& runner() {
  static BudgetRunner r(
      std::make_shared<const Checkpoint>(load_checkpoint(kSrc + "/fixtures/trained")));
  return r;
}

const ClipRun& clip() {
  static const ClipRun c =
      runner().prepare("clip000.flac", load_audio(kSrc + "/fixtures/heldout/clip000.flac").pcm);
  return c;
}

}  // namespace

TEST_CASE("the stage taps: mel, the stem, every block, ln_post") {
  const auto& t = runner().taps();
  REQUIRE(t.size() == 7);  // the trained fixture has 4 blocks
  CHECK(t.front() == "mel");
  CHECK(t[1] == "encoder.pos_embed");
  CHECK(t[5] == "encoder.blocks.3.out");
  CHECK(t.back() == "encoder.ln_post");
  CHECK(runner().tap_index("encoder.blocks.0.attn.q") == -1);
}

TEST_CASE("the tail from every stage output is the encoder's own output, bit for bit") {
  const ClipRun& c = clip();
  REQUIRE(!c.tokens.empty());
  const Tensor& out = c.stage_out.back();
  for (int tap = 0; tap < static_cast<int>(c.stage_out.size()); ++tap) {
    CAPTURE(tap);
    const Tensor t = runner().tail(tap, c.stage_out[static_cast<std::size_t>(tap)]);
    REQUIRE(t.shape() == out.shape());
    int64_t differ = 0;
    for (int64_t i = 0; i < t.numel(); ++i) differ += t.f32()[i] != out.f32()[i];
    CHECK(differ == 0);
  }
  const auto [same, kl] = runner().judge(c, out);
  CHECK(same);
  // The clip's logits come from the cached pass of its decode, the judgement's from one full
  // pass: float32 round-off apart (logits ~1e-7 relative, so KL ~1e-14; 4.5e-15 measured).
  CHECK(kl <= 1e-10);
}

TEST_CASE("one teacher-forced pass judges as a free greedy decode does") {
  const ClipRun& c = clip();
  int kept = 0, changed = 0;
  for (int tap : {0, 3, 6})
    for (Perturbation shape : {Perturbation::noise, Perturbation::bf16})
      for (double eps : {0.01, 0.2, 1.0, 3.0}) {
        CAPTURE(tap);
        CAPTURE(eps);
        const Tensor x =
            perturb(c.stage_out[static_cast<std::size_t>(tap)], shape, eps, 1, tap == 0 ? 0 : 1);
        const Tensor out = runner().tail(tap, x);
        const bool judged = runner().judge(c, out).first;
        const DecodeResult d = runner().decoder().greedy(out, nullptr, 0);
        CHECK(judged == (d.tokens == c.tokens));
        (judged ? kept : changed)++;
      }
  // both outcomes occur, so the equivalence was tested both ways
  CHECK(kept > 0);
  CHECK(changed > 0);
}
