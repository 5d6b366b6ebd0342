// The tap registry: the single list of observable points, named after OpenAI's module paths,
// and the observer interface through which implementations report them.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "wb/core/dims.h"
#include "wb/core/tensor.h"

namespace wb {

struct TapSpec {
  std::string name;
  Shape shape;
  std::string layout;  // "mel,frame" for mel, "frame,channel" for encoder taps, "token,channel"
};

// Encoder taps in execution order. Layouts: mel [n_mels, 2*n_audio_ctx]; all others [T, C].
//   mel, encoder.conv1 (after GELU) [2T, C], encoder.conv2 (after GELU) [T, C],
//   encoder.pos_embed (x + positional embedding),
//   encoder.blocks.{i}.{attn_ln, attn.q, attn.k, attn.v, attn.out, resid_attn, mlp_ln,
//                       mlp.fc1, mlp.gelu, mlp.fc2, out},
//   encoder.ln_post.
// attn.q/k/v are the projection outputs before the d_head^-0.25 scale; attn.out is after the
// output projection; mlp.fc1 is before the GELU.
std::vector<TapSpec> encoder_taps(const ModelDims& d);
// Decoder taps of a teacher-forced pass over n_tokens tokens, then logits [n_tokens, n_vocab].
std::vector<TapSpec> decoder_taps(const ModelDims& d, int n_tokens);
// Position of a tap name in execution order (encoder first), or -1 if not in the registry.
int tap_order(const ModelDims& d, std::string_view name);

// '*' matches within one dot-separated segment, '**' across segments, '?' one non-dot character.
bool glob_match(std::string_view pattern, std::string_view text);

// --taps selection: comma-separated globs or levels.
// Levels: all, encoder, decoder, blocks (mel, stem, block outputs, ln_post, logits),
//         minimal (mel, encoder.ln_post, logits).
class TapSelector {
 public:
  explicit TapSelector(std::string_view spec = "all");
  bool selected(std::string_view name) const;
  const std::string& spec() const { return spec_; }

 private:
  std::string spec_;
  std::vector<std::string> globs_;
};

// Observer of taps. Implementations ask wants() first and build nothing for an unwanted tap.
class TapSink {
 public:
  virtual ~TapSink() = default;
  virtual bool wants(std::string_view name) const = 0;
  virtual void put(std::string_view name, const TapView& view) = 0;
};

// Reports a tap if the sink wants it (sink may be null).
inline void report(TapSink* sink, std::string_view name, const Shape& shape, DType dt,
                   const void* data) {
  if (sink != nullptr && sink->wants(name)) sink->put(name, TapView{shape, dt, data});
}
inline bool wanted(TapSink* sink, std::string_view name) {
  return sink != nullptr && sink->wants(name);
}

}  // namespace wb
