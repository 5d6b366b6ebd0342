#include "wb/core/faults.h"

#include <cmath>
#include <cstdlib>

#include "wb/core/taps.h"
#include "wb/core/util.h"

namespace wb {

const std::vector<FaultInfo>& fault_table() {
  static const std::vector<FaultInfo> table = {
      {"mel-db",
       "",
       TapStage::frontend,
       kMel,
       "librosa power_to_db (dB-scaled spectrogram) instead of Whisper's log-mel",
       {"mel-db"}},
      {"stft-no-reflect",
       "",
       TapStage::frontend,
       kMel,
       "STFT centre padding with zeros instead of reflection",
       {"stft-no-reflect"}},
      {"stft-keep-last-frame",
       "",
       TapStage::frontend,
       kMel,
       "STFT keeps the last frame and drops the first (off-by-one framing)",
       {"stft-keep-last-frame"}},
      {"gelu-tanh",
       "",
       TapStage::stem,
       kConv1,
       "tanh-approximate GELU instead of the exact erf GELU, everywhere (@N: block N's MLP only)",
       {"gelu-tanh", "gelu-tanh@1"},
       "mlp.gelu"},
      {"conv-pad",
       "VALUE",
       TapStage::stem,
       kConv1,
       "conv1/conv2 padding VALUE instead of 1 (integer in [0, 16])",
       {"conv-pad=0", "conv-pad=2"}},
      {"conv-bias-drop",
       "",
       TapStage::stem,
       kConv1,
       "conv1's bias not added in one output channel (channel 0), e.g. an off-by-one bias copy",
       {"conv-bias-drop"}},
      {"no-pos-embed",
       "",
       TapStage::stem,
       kPosEmbed,
       "sinusoidal positional embedding not added",
       {"no-pos-embed"}},
      {"ln-eps",
       "VALUE",
       TapStage::block,
       "encoder.blocks.0.attn_ln",
       "layer-norm epsilon VALUE instead of 1e-5 (every layer norm; @N: block N's only); "
       "1e-6 and 3e-5 lie below the float32 profile's floor (docs/calibration.md)",
       {"ln-eps=1e-2", "ln-eps=1e-3", "ln-eps=1e-4", "ln-eps=1e-3@1"},
       "attn_ln"},
      {"ln-fp16",
       "",
       TapStage::block,
       "encoder.blocks.0.attn_ln",
       "layer-norm statistics (mean, variance) accumulated in float16 (@N: block N's only)",
       {"ln-fp16"},
       "attn_ln"},
      {"attn-scale",
       "none|double",
       TapStage::block,
       "encoder.blocks.0.attn.out",
       "attention scale d_head^-0.5 left out (none) or applied twice, 1/d_head (double)",
       {"attn-scale=none", "attn-scale=double", "attn-scale=double@1"},
       "attn.out"},
      {"no-ln-post",
       "",
       TapStage::ln_post,
       kLnPost,
       "the final layer norm ln_post skipped: the output is the last block's, unnormalised",
       {"no-ln-post"}},
  };
  return table;
}

const FaultInfo* find_fault(std::string_view name) {
  for (const FaultInfo& f : fault_table())
    if (f.name == name) return &f;
  return nullptr;
}

std::string fault_usage() {
  std::string s;
  for (const FaultInfo& f : fault_table()) {
    if (!s.empty()) s += ", ";
    s += f.name;
    if (!f.value.empty()) s += "=" + std::string(f.value);
    if (!f.block_part.empty()) s += "[@N]";
  }
  return s;
}

namespace {
// "NAME[=VALUE]@N" -> N (-1 without "@"); the spec without the suffix in `base`.
int split_block(const std::string& spec, std::string& base) {
  const auto at = spec.rfind('@');
  base = spec.substr(0, at);
  if (at == std::string::npos) return -1;
  const std::string n = spec.substr(at + 1);
  char* end = nullptr;
  const long v = std::strtol(n.c_str(), &end, 10);
  if (n.empty() || *end != '\0' || v < 0 || v > 1000)
    throw UsageError("fault '" + spec + "': @N must be a block index");
  return static_cast<int>(v);
}

std::string case_tap(const FaultInfo& f, std::string_view example) {
  std::string base;
  const int block = split_block(std::string(example), base);
  return block < 0 ? std::string(f.first_tap) : block_tap(TapSide::encoder, block, f.block_part);
}
}  // namespace

std::vector<FaultCase> fault_cases() {
  std::vector<FaultCase> out;
  for (const FaultInfo& f : fault_table())
    for (auto ex : f.examples) out.push_back({std::string(ex), case_tap(f, ex)});
  return out;
}

Faults Faults::at(int block_index) const {
  if (block < 0 || block_index == block) return *this;
  Faults f = *this;  // outside the fault's block: the block-limitable switches are off
  f.gelu_tanh = false;
  f.ln_eps.reset();
  f.ln_fp16 = false;
  f.attn_scale = AttnScale::normal;
  return f;
}

nlohmann::json fault_table_json() {
  nlohmann::json out = nlohmann::json::array();
  for (const FaultInfo& f : fault_table()) {
    nlohmann::json ex = nlohmann::json::array();
    for (auto e : f.examples)
      ex.push_back({{"spec", std::string(e)}, {"first_tap", case_tap(f, e)}});
    out.push_back({{"name", std::string(f.name)},
                   {"value", f.value.empty() ? nlohmann::json(nullptr)
                                             : nlohmann::json(std::string(f.value))},
                   {"stage", std::string(tap_stage_name(f.stage))},
                   {"first_tap", std::string(f.first_tap)},
                   {"doc", std::string(f.doc)},
                   {"examples", ex},
                   {"block_limitable", !f.block_part.empty()}});
  }
  return out;
}

namespace {
[[noreturn]] void bad(const std::string& spec, const std::string& why) {
  throw UsageError("fault '" + spec + "': " + why + " (valid: " + fault_usage() + ")");
}

// Sets the switch of one table entry from its value (empty when the fault takes none).
void apply(Faults& f, std::string_view name, const std::string& spec, const std::string& value) {
  if (name == "no-ln-post") {
    f.no_ln_post = true;
  } else if (name == "mel-db") {
    f.mel_db = true;
  } else if (name == "stft-no-reflect") {
    f.stft_no_reflect = true;
  } else if (name == "stft-keep-last-frame") {
    f.stft_keep_last = true;
  } else if (name == "gelu-tanh") {
    f.gelu_tanh = true;
  } else if (name == "conv-bias-drop") {
    f.conv_bias_drop = true;
  } else if (name == "no-pos-embed") {
    f.no_pos_embed = true;
  } else if (name == "ln-fp16") {
    f.ln_fp16 = true;
  } else if (name == "ln-eps") {
    char* end = nullptr;
    const double v = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(v) || v < 0)
      bad(spec, "VALUE must be a non-negative number");
    f.ln_eps = static_cast<float>(v);
  } else if (name == "attn-scale") {
    if (value == "none")
      f.attn_scale = AttnScale::none;
    else if (value == "double")
      f.attn_scale = AttnScale::twice;
    else
      bad(spec, "VALUE must be none or double");
  } else if (name == "conv-pad") {
    char* end = nullptr;
    const long v = std::strtol(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || v < 0 || v > 16)
      bad(spec, "VALUE must be an integer in [0, 16]");
    f.conv_pad = static_cast<int>(v);
  } else {
    // A table entry without a switch here is a programming error, caught by the fault tests.
    throw std::logic_error("fault table entry without a switch: " + std::string(name));
  }
}
}  // namespace

Faults parse_faults(const std::vector<std::string>& specs) {
  Faults f;
  for (const std::string& spec : specs) {
    std::string base;
    const int block = split_block(spec, base);
    const auto eq = base.find('=');
    const std::string name = base.substr(0, eq);
    const bool has_value = eq != std::string::npos;
    const FaultInfo* info = find_fault(name);
    if (info == nullptr) bad(spec, "unknown fault");
    if (!info->value.empty() && !has_value) bad(spec, "needs a value");
    if (info->value.empty() && has_value) bad(spec, "takes no value");
    if (block >= 0) {
      if (info->block_part.empty()) bad(spec, "cannot be limited to one block (@N)");
      if (f.block >= 0 && f.block != block) bad(spec, "all @N faults must name the same block");
      f.block = block;
    }
    apply(f, info->name, spec, has_value ? base.substr(eq + 1) : std::string());
    f.specs.push_back(spec);
  }
  return f;
}

}  // namespace wb
