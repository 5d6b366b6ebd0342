// The oracle: Whisper in LibTorch, following openai/whisper model.py / audio.py op order exactly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "wb/core/encoder.h"
#include "wb/core/weights.h"

namespace wb {

// Threads of the reference: LibTorch's intra-op threads and its BLAS's (OpenBLAS) threads, which
// another library in the process (the candidate, a GEMM benchmark) may have changed since; call it
// again before timing the reference. 0: leave the defaults. Recorded in run_info().
void set_reference_threads(int n);
// "libtorch <version>": part of every reference cache key (a LibTorch upgrade may change bits).
std::string reference_backend_version();

// compute: DType::f32 or DType::f64 (the float64 run is the noise floor, on the CPU).
// device: "cpu", or "cuda" where LibTorch has CUDA (large dims quickly; the decoder stays on the
// CPU); throws std::runtime_error where it has none (Debian's LibTorch), std::invalid_argument
// for any other name.
std::unique_ptr<Encoder> make_reference_encoder(std::shared_ptr<const Checkpoint> model,
                                                DType compute = DType::f32,
                                                const std::string& device = "cpu");

struct DecodeOptions {
  int max_tokens = 0;  // stop after N generated tokens (0: n_text_ctx / 2)
  // true: a self-attention KV cache, each step runs the new token only (the prompt in one
  // chunk first). false: every step recomputes the whole prefix (the decoder before the
  // cache, kept so tests and `wb transcribe --no-kv-cache` can compare the two).
  bool kv_cache = true;
  bool keep_logits = false;  // fill DecodeResult::logits
};

struct DecodeResult {
  std::vector<int> tokens;  // generated tokens (prompt excluded, eot excluded)
  std::string text;
  // With keep_logits: raw logits of every greedy step, before suppression, [n_steps, n_vocab]
  // row-major in the compute dtype; row s scored position prompt + s - 1 (an eot that ended the
  // decode has its row, so n_steps is tokens.size() or tokens.size() + 1).
  Tensor logits;
};

// Greedy decoding with the reference decoder on an encoder output [n_audio_ctx, C]
// (any implementation's). Cross-attention K/V are computed once per decode. Taps of a final
// teacher-forced full pass over prompt+tokens are reported (that pass recomputes every position
// because taps are whole [n_tokens, C] tensors; an untapped decode skips it).
class ReferenceDecoder {
 public:
  explicit ReferenceDecoder(std::shared_ptr<const Checkpoint> model, DType compute = DType::f32);
  ~ReferenceDecoder();
  DecodeResult greedy(const Tensor& encoder_out, TapSink* taps = nullptr, int max_tokens = 0);
  DecodeResult greedy(const Tensor& encoder_out, TapSink* taps, const DecodeOptions& opts);
  // Teacher-forced logits [n, n_vocab] of tokens [n] (prompt included). kv_cache: the first
  // initial_prompt().size() tokens in one pass, then one token at a time through the cache,
  // i.e. the shapes of a cached greedy decode (whose logits rows equal these bit for bit);
  // otherwise one full pass over all n tokens. With taps, always the full pass.
  Tensor teacher_forced(const Tensor& encoder_out, const std::vector<int>& tokens,
                        TapSink* taps = nullptr, bool kv_cache = true);
  // What greedy() picks after each prefix of a teacher-forced sequence: `logits` are
  // teacher_forced(prompt + tokens) rows; choice s is picked from row prompt - 1 + s with
  // greedy's suppression (specials after eot, eot too at s = 0). A greedy decode of the same
  // encoder output yields `tokens` exactly when choice s equals tokens[s] for every s and the
  // last choice is eot (or the decode stopped at its limit) — so whether a perturbed encoder
  // output changes a transcript is known from one teacher-forced pass, with no free-running
  // decode that could loop.
  std::vector<int> greedy_choices(const Tensor& logits) const;
  int eot() const;
  int prompt_length() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wb
