#include "wb/core/faults.h"

#include <cmath>
#include <cstdlib>

#include "wb/core/util.h"

namespace wb {

std::vector<std::string> fault_names() {
  return {"no-ln-post", "mel-db",    "stft-no-reflect", "stft-keep-last-frame", "ln-eps",
          "attn-scale", "gelu-tanh", "conv-pad",        "no-pos-embed",         "ln-fp16"};
}

std::string fault_usage() {
  return "no-ln-post, mel-db, stft-no-reflect, stft-keep-last-frame, ln-eps=VALUE, "
         "attn-scale=none|double, gelu-tanh, conv-pad=VALUE, no-pos-embed, ln-fp16";
}

namespace {
[[noreturn]] void bad(const std::string& spec, const std::string& why) {
  throw UsageError("fault '" + spec + "': " + why + " (valid: " + fault_usage() + ")");
}
}  // namespace

Faults parse_faults(const std::vector<std::string>& specs) {
  Faults f;
  for (const std::string& spec : specs) {
    const auto eq = spec.find('=');
    const std::string name = spec.substr(0, eq);
    const bool has_value = eq != std::string::npos;
    const std::string value = has_value ? spec.substr(eq + 1) : std::string();
    const bool needs_value = name == "ln-eps" || name == "attn-scale" || name == "conv-pad";
    if (needs_value && !has_value) bad(spec, "needs a value");
    if (!needs_value && has_value) {
      bool known = false;
      for (const auto& n : fault_names()) known = known || n == name;
      if (known) bad(spec, "takes no value");
    }
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
      bad(spec, "unknown fault");
    }
    f.specs.push_back(spec);
  }
  return f;
}

}  // namespace wb
