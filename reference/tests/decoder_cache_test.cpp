// The KV-cached reference decoder against the full-recompute decoder (DecodeOptions::kv_cache =
// false: every step reruns the whole prefix, the decoder as it was before the cache).
//
// Both run the same ops in the same order; only the shapes differ (a cached step multiplies one
// row [1, C] where the full pass multiplies [n, C]), so BLAS may sum in another order and the
// logits move by round-off. Bound, per greedy step, on the logits row's relative L2
// (‖cached − full‖ / ‖full‖): the round-off rule of reference_test.cpp, 4 sqrt(K) eps per op,
// K the longest reduction of a decoder block (max(4 C, n_audio_ctx): fc2 or cross-attention
// over the audio frames), times a depth of 2 per block (self/cross attention and MLP each
// feed the residual stream) plus 2 (decoder.ln, logits). Tokens must be identical.
// Measured (this file's cases, 2-core AMD EPYC, OpenBLAS 0.3.21): worst row 8.1e-7 in float32
// against bounds of 1.1e-4 (nano) to 1.9e-4 (tiny), 1.9e-15 in float64 against 2.1e-13 to
// 3.5e-13; a cache bug (positions restarting at 0) changes the tokens, and a 1e-3 scale error
// on the cached logits alone fails the bound (both tried).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "wb/core/audio.h"
#include "wb/reference/reference.h"
#include "wb/testing/paths.h"

using namespace wb;

namespace {

double logits_bound(const ModelDims& d, DType dt) {
  const double eps = dt == DType::f64 ? 2.22e-16 : 1.19e-7;
  const double k = std::max(4.0 * d.n_text_state, static_cast<double>(d.n_audio_ctx));
  return (2.0 * d.n_text_layer + 2.0) * 4.0 * std::sqrt(k) * eps;
}

struct RowDiff {
  double rel_l2 = 0, max_abs = 0, max_abs_over_max = 0;  // worst row of each
  int nonfinite = 0;
};

// Row-wise differences of two [n, V] logits tensors (b against a).
RowDiff row_diff(const Tensor& a_in, const Tensor& b_in) {
  REQUIRE(a_in.shape() == b_in.shape());
  const Tensor a = a_in.to(DType::f64), b = b_in.to(DType::f64);
  const int64_t rows = a.dim(0), cols = a.dim(1);
  RowDiff r;
  for (int64_t i = 0; i < rows; ++i) {
    double num = 0, den = 0, mx = 0, big = 0;
    for (int64_t j = 0; j < cols; ++j) {
      const double x = a.f64()[i * cols + j], y = b.f64()[i * cols + j];
      if (!std::isfinite(x) || !std::isfinite(y)) ++r.nonfinite;
      num += (x - y) * (x - y);
      den += x * x;
      mx = std::max(mx, std::abs(x - y));
      big = std::max(big, std::abs(x));
    }
    r.rel_l2 = std::max(r.rel_l2, std::sqrt(num / den));
    r.max_abs = std::max(r.max_abs, mx);
    r.max_abs_over_max = std::max(r.max_abs_over_max, mx / big);
  }
  return r;
}

// Rows [from, from + n) of a [rows, V] tensor, as float64.
std::vector<double> rows_of(const Tensor& t, int64_t from, int64_t n) {
  const Tensor d = t.to(DType::f64);
  const int64_t v = t.dim(1);
  return {d.f64() + from * v, d.f64() + (from + n) * v};
}

void check_cache(const std::string& id, const std::shared_ptr<const Checkpoint>& ck,
                 const Tensor& encoder_out, DType dt, int max_tokens) {
  ReferenceDecoder dec(ck, dt);
  DecodeOptions o;
  o.max_tokens = max_tokens;
  o.keep_logits = true;
  const DecodeResult cached = dec.greedy(encoder_out, nullptr, o);
  o.kv_cache = false;
  const DecodeResult full = dec.greedy(encoder_out, nullptr, o);
  const std::string case_id = fmt::format("{} {}", id, dtype_name(dt));
  REQUIRE_MESSAGE(cached.tokens == full.tokens, case_id);
  CHECK(cached.text == full.text);
  REQUIRE(cached.logits.dtype() == dt);
  const RowDiff g = row_diff(full.logits, cached.logits);
  const double bound = logits_bound(ck->dims, dt);
  MESSAGE(
      fmt::format("{}: {} tokens, {} steps; greedy logits cached vs full: worst row rel L2 "
                  "{:.3e} (bound {:.2e}), max abs {:.3e}, max abs / row max {:.3e}",
                  case_id, cached.tokens.size(), cached.logits.dim(0), g.rel_l2, bound, g.max_abs,
                  g.max_abs_over_max));
  CHECK(g.nonfinite == 0);
  CHECK_MESSAGE(g.rel_l2 <= bound, case_id);

  // Teacher-forced over prompt + tokens: cached against one full pass, same bound; from the
  // first single-token step on, the cached rows are the greedy's own rows bit for bit.
  std::vector<int> seq = ck->vocab.initial_prompt();
  const auto prompt = static_cast<int64_t>(seq.size());
  seq.insert(seq.end(), cached.tokens.begin(), cached.tokens.end());
  const Tensor tf = dec.teacher_forced(encoder_out, seq, nullptr, true);
  const Tensor tf_full = dec.teacher_forced(encoder_out, seq, nullptr, false);
  const RowDiff t = row_diff(tf_full, tf);
  MESSAGE(
      fmt::format("{}: teacher-forced logits cached vs full, {} positions: worst row rel L2 "
                  "{:.3e}, max abs {:.3e}",
                  case_id, seq.size(), t.rel_l2, t.max_abs));
  CHECK(t.nonfinite == 0);
  CHECK_MESSAGE(t.rel_l2 <= bound, case_id);
  const int64_t same =
      std::min<int64_t>(cached.logits.dim(0), static_cast<int64_t>(seq.size()) - prompt + 1) - 1;
  if (same > 0)
    CHECK_MESSAGE(rows_of(tf, prompt, same) == rows_of(cached.logits, 1, same), case_id);
}

Tensor encode(const std::shared_ptr<const Checkpoint>& ck, const std::vector<float>& pcm,
              DType dt) {
  auto enc = make_reference_encoder(ck, dt);
  return run_encoder(*enc, enc->log_mel(pcm, nullptr), nullptr);
}

const std::string kSrc = wb::testing::source_dir();

}  // namespace

TEST_CASE("KV-cached decoder: nano fixture model, same tokens and logits within the bound") {
  auto ck = std::make_shared<const Checkpoint>(load_checkpoint(kSrc + "/fixtures/models/nano-hf"));
  const Audio a = load_audio(kSrc + "/fixtures/audio/hello.wav");
  for (DType dt : {DType::f32, DType::f64})
    check_cache("nano-hf hello.wav", ck, encode(ck, a.pcm, dt), dt, 0);
}

TEST_CASE("KV-cached decoder: trained fixture model on a held-out clip") {
  auto ck = std::make_shared<const Checkpoint>(load_checkpoint(kSrc + "/fixtures/trained"));
  const Audio a = load_audio(kSrc + "/fixtures/heldout/clip000.flac");
  // The whole decode (77 tokens) in float32; float64 to 40 tokens keeps the full-recompute side
  // (quadratic in the length) short.
  check_cache("trained clip000", ck, encode(ck, a.pcm, DType::f32), DType::f32, 0);
  check_cache("trained clip000", ck, encode(ck, a.pcm, DType::f64), DType::f64, 40);
}

TEST_CASE("KV-cached decoder: random tiny-dims model, seeded encoder output") {
  // Random weights decode no eot: 24 tokens keep the full-recompute side short.
  auto ck = std::make_shared<const Checkpoint>(random_checkpoint(ModelDims::preset("tiny"), 5));
  const ModelDims& d = ck->dims;
  std::mt19937 rng(77);
  std::normal_distribution<float> nd(0.f, 1.f);
  Tensor x(DType::f32, {d.n_audio_ctx, d.n_audio_state});
  for (int64_t i = 0; i < x.numel(); ++i) x.f32()[i] = nd(rng);
  MESSAGE("tiny dims, random weights seed 5, encoder output N(0, 1) seed 77");
  for (DType dt : {DType::f32, DType::f64}) check_cache("tiny random", ck, x, dt, 24);
}
