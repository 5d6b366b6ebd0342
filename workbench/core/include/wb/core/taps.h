// The tap registry: the single list of observable points, named after OpenAI's module paths,
// and the observer interface through which implementations report them.
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "wb/core/dims.h"
#include "wb/core/enum_names.h"
#include "wb/core/tensor.h"

namespace wb {

enum class TapSide { encoder, decoder };
// What a tap observes. Diagnosis and reports read this instead of parsing names.
enum class TapKind {
  features,    // mel: the front end's output, the encoder's input
  conv,        // encoder.conv1/conv2 (after their GELU)
  embedding,   // encoder.pos_embed (x + positions), decoder.embed (tokens + positions)
  norm,        // attn_ln, mlp_ln, cross_attn_ln, encoder.ln_post, decoder.ln
  projection,  // attn.q/k/v, cross_attn.q, mlp.fc1, mlp.fc2
  attention,   // attn.out, cross_attn.out (attention + output projection)
  activation,  // mlp.gelu
  residual,    // resid_attn, resid_cross, out
  logits,      // logits
};
// Where in the model a tap sits: the stages of the encoder seam, and the decoder's.
enum class TapStage { frontend, stem, block, ln_post, embed, final_ln, head };

inline constexpr std::array<NameEntry<TapKind>, 9> kTapKindNames{{
    {TapKind::features, "features"},
    {TapKind::conv, "conv"},
    {TapKind::embedding, "embedding"},
    {TapKind::norm, "norm"},
    {TapKind::projection, "projection"},
    {TapKind::attention, "attention"},
    {TapKind::activation, "activation"},
    {TapKind::residual, "residual"},
    {TapKind::logits, "logits"},
}};
inline constexpr std::array<NameEntry<TapStage>, 7> kTapStageNames{{
    {TapStage::frontend, "frontend"},
    {TapStage::stem, "stem"},
    {TapStage::block, "block"},
    {TapStage::ln_post, "ln_post"},
    {TapStage::embed, "embed"},
    {TapStage::final_ln, "final_ln"},
    {TapStage::head, "head"},
}};

// The taps outside the blocks, each spelt once: emitters, readers and the registry itself use
// these, so a misspelt tap fails to compile. Block taps are spelt by block_tap().
inline constexpr std::string_view kMel = "mel";
inline constexpr std::string_view kConv1 = "encoder.conv1";
inline constexpr std::string_view kConv2 = "encoder.conv2";
inline constexpr std::string_view kPosEmbed = "encoder.pos_embed";
inline constexpr std::string_view kLnPost = "encoder.ln_post";
inline constexpr std::string_view kDecoderEmbed = "decoder.embed";
inline constexpr std::string_view kDecoderLn = "decoder.ln";
inline constexpr std::string_view kLogits = "logits";

struct TapSpec {
  std::string name;
  Shape shape;
  std::string layout;  // "mel,frame" for mel, "frame,channel" for encoder taps, "token,..."
  TapSide side = TapSide::encoder;
  TapStage stage = TapStage::frontend;
  int block = -1;     // block index when stage == block
  std::string part;   // inside a block: "attn_ln", "attn.q", ...; else ""
  std::string group;  // "encoder.blocks.3", "encoder", "decoder", "" (mel, logits)
  std::string leaf;   // the name within its group: "attn.q", "conv1", "mel"
  TapKind kind = TapKind::features;
  int heads = 0;                      // attention heads of a q/k/v projection, else 0
  bool per_token = false;             // rows are decoded tokens (count follows the decode)
  std::vector<std::string> upstream;  // the taps it is computed from (dataflow)
};

std::string_view tap_kind_name(TapKind k);
std::string_view tap_stage_name(TapStage s);

// The one helper that spells a block tap's name: "encoder.blocks.3.attn.q".
std::string block_tap(TapSide side, int block, std::string_view part);

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

// Every tap of a model (encoder then decoder, decoder shapes for one token), built once per
// dims and shared; lookup by name is O(1).
class TapRegistry {
 public:
  static const TapRegistry& of(const ModelDims& d);
  const std::vector<TapSpec>& taps() const { return taps_; }
  const TapSpec* find(std::string_view name) const;  // nullptr: not in the registry
  int order(std::string_view name) const;            // execution order, -1: not in it
  const ModelDims& dims() const { return dims_; }

 private:
  explicit TapRegistry(const ModelDims& d);
  ModelDims dims_;
  std::vector<TapSpec> taps_;
  std::unordered_map<std::string, int> index_;
};

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
  // Refuses (UsageError) a selection item -- a glob or a level -- that selects no tap of the run
  // at hand (the encoder taps of d, plus the decoder taps when decode), naming the nearest tap
  // names: a typo would otherwise give a dump with no taps and exit 0.
  void check_against(const ModelDims& d, bool decode) const;

 private:
  struct Item {
    std::string text;                // as given: a glob or a level name
    std::vector<std::string> globs;  // what it expands to
  };
  std::string spec_;
  std::vector<Item> items_;
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
