// Fault switches: each reproduces a real porting bug at one known tap (see DESIGN.md). The one
// list, shared by every encoder backend (CPU candidate, CUDA candidate).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace wb {

enum class AttnScale { normal, none, twice };

struct Faults {
  bool no_ln_post = false;       // ln_post skipped                      -> encoder.ln_post
  bool mel_db = false;           // librosa power_to_db instead of log-mel -> mel
  bool stft_no_reflect = false;  // zero (constant) centre padding       -> mel
  bool stft_keep_last = false;   // last STFT frame kept, first dropped  -> mel
  std::optional<float> ln_eps;   // layer-norm epsilon instead of 1e-5   -> blocks.0.attn_ln
  AttnScale attn_scale = AttnScale::normal;  //                           -> blocks.0.attn.out
  bool gelu_tanh = false;          // tanh-approximate GELU everywhere     -> encoder.conv1
  int conv_pad = 1;                // conv padding instead of 1            -> encoder.conv1
  bool no_pos_embed = false;       // positional embedding not added       -> encoder.pos_embed
  bool ln_fp16 = false;            // layer-norm statistics in float16     -> blocks.0.attn_ln
  std::vector<std::string> specs;  // as given, for run_info

  bool any() const { return !specs.empty(); }
};

// Parses "NAME" / "NAME=VALUE" specs; throws wb::UsageError naming the valid ones.
Faults parse_faults(const std::vector<std::string>& specs);
std::vector<std::string> fault_names();
std::string fault_usage();  // "no-ln-post, mel-db, ..., ln-eps=VALUE, ..."

}  // namespace wb
