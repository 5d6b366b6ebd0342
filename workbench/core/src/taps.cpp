#include "wb/core/taps.h"

#include <fmt/format.h>

namespace wb {

namespace {
// Suffixes of a block's taps in execution order; the single list for encoder blocks.
constexpr const char* kEncoderBlockTaps[] = {"attn_ln",  "attn.q",     "attn.k", "attn.v",
                                             "attn.out", "resid_attn", "mlp_ln", "mlp.fc1",
                                             "mlp.gelu", "mlp.fc2",    "out"};
constexpr const char* kDecoderBlockTaps[] = {
    "attn_ln",    "attn.q",        "attn.k",       "attn.v",         "attn.out",
    "resid_attn", "cross_attn_ln", "cross_attn.q", "cross_attn.out", "resid_cross",
    "mlp_ln",     "mlp.fc1",       "mlp.gelu",     "mlp.fc2",        "out"};
}  // namespace

std::vector<TapSpec> encoder_taps(const ModelDims& d) {
  const int64_t t = d.n_audio_ctx, c = d.n_audio_state;
  std::vector<TapSpec> taps;
  taps.push_back({"mel", {d.n_mels, 2 * t}, "mel,frame"});
  taps.push_back({"encoder.conv1", {2 * t, c}, "frame,channel"});
  taps.push_back({"encoder.conv2", {t, c}, "frame,channel"});
  taps.push_back({"encoder.pos_embed", {t, c}, "frame,channel"});
  for (int i = 0; i < d.n_audio_layer; ++i)
    for (const char* s : kEncoderBlockTaps) {
      const bool wide = std::string_view(s) == "mlp.fc1" || std::string_view(s) == "mlp.gelu";
      taps.push_back(
          {fmt::format("encoder.blocks.{}.{}", i, s), {t, wide ? 4 * c : c}, "frame,channel"});
    }
  taps.push_back({"encoder.ln_post", {t, c}, "frame,channel"});
  return taps;
}

std::vector<TapSpec> decoder_taps(const ModelDims& d, int n_tokens) {
  const int64_t n = n_tokens, c = d.n_text_state;
  std::vector<TapSpec> taps;
  taps.push_back({"decoder.embed", {n, c}, "token,channel"});
  for (int i = 0; i < d.n_text_layer; ++i)
    for (const char* s : kDecoderBlockTaps) {
      const bool wide = std::string_view(s) == "mlp.fc1" || std::string_view(s) == "mlp.gelu";
      taps.push_back(
          {fmt::format("decoder.blocks.{}.{}", i, s), {n, wide ? 4 * c : c}, "token,channel"});
    }
  taps.push_back({"decoder.ln", {n, c}, "token,channel"});
  taps.push_back({"logits", {n, d.n_vocab}, "token,vocab"});
  return taps;
}

int tap_order(const ModelDims& d, std::string_view name) {
  int i = 0;
  for (const auto& t : encoder_taps(d)) {
    if (t.name == name) return i;
    ++i;
  }
  for (const auto& t : decoder_taps(d, 1)) {
    if (t.name == name) return i;
    ++i;
  }
  return -1;
}

// '*' matches within one dot-separated segment, '**' across segments, '?' one character
// (not '.'). So "encoder.blocks.*.out" is every block's output and not its "attn.out".
bool glob_match(std::string_view p, std::string_view s) {
  if (p.empty()) return s.empty();
  if (p.size() >= 2 && p[0] == '*' && p[1] == '*') {
    for (std::size_t i = 0; i <= s.size(); ++i)
      if (glob_match(p.substr(2), s.substr(i))) return true;
    return false;
  }
  if (p[0] == '*') {
    for (std::size_t i = 0; i <= s.size(); ++i) {
      if (glob_match(p.substr(1), s.substr(i))) return true;
      if (i < s.size() && s[i] == '.') break;
    }
    return false;
  }
  if (s.empty()) return false;
  if (p[0] == '?' ? s[0] != '.' : p[0] == s[0]) return glob_match(p.substr(1), s.substr(1));
  return false;
}

TapSelector::TapSelector(std::string_view spec) : spec_(spec) {
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    std::size_t end = spec.find(',', pos);
    if (end == std::string_view::npos) end = spec.size();
    std::string item(spec.substr(pos, end - pos));
    pos = end + 1;
    if (item.empty()) continue;
    if (item == "all") {
      globs_.push_back("**");
    } else if (item == "encoder") {
      globs_.insert(globs_.end(), {"mel", "encoder.**"});
    } else if (item == "decoder") {
      globs_.insert(globs_.end(), {"decoder.**", "logits"});
    } else if (item == "blocks") {
      globs_.insert(globs_.end(), {"mel", "encoder.conv1", "encoder.conv2", "encoder.pos_embed",
                                   "encoder.blocks.*.out", "encoder.ln_post",
                                   "decoder.blocks.*.out", "decoder.ln", "logits"});
    } else if (item == "minimal") {
      globs_.insert(globs_.end(), {"mel", "encoder.ln_post", "logits"});
    } else if (item == "none") {
    } else {
      globs_.push_back(item);
    }
  }
  if (globs_.empty() && spec_ != "none")
    throw std::invalid_argument(fmt::format("--taps '{}' selects nothing", spec));
}

bool TapSelector::selected(std::string_view name) const {
  for (const auto& g : globs_)
    if (glob_match(g, name)) return true;
  return false;
}

}  // namespace wb
