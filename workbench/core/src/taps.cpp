#include "wb/core/taps.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <mutex>

#include "wb/core/util.h"

namespace wb {

namespace {
std::string str(std::string_view s) { return std::string(s); }

// A block's taps in execution order, with what each observes; the single list for blocks.
struct BlockPart {
  const char* part;
  TapKind kind;
  bool wide;  // [T, 4C] (the MLP's hidden layer)
};
constexpr BlockPart kEncoderBlock[] = {
    {"attn_ln", TapKind::norm, false},       {"attn.q", TapKind::projection, false},
    {"attn.k", TapKind::projection, false},  {"attn.v", TapKind::projection, false},
    {"attn.out", TapKind::attention, false}, {"resid_attn", TapKind::residual, false},
    {"mlp_ln", TapKind::norm, false},        {"mlp.fc1", TapKind::projection, true},
    {"mlp.gelu", TapKind::activation, true}, {"mlp.fc2", TapKind::projection, false},
    {"out", TapKind::residual, false}};
constexpr BlockPart kDecoderBlock[] = {{"attn_ln", TapKind::norm, false},
                                       {"attn.q", TapKind::projection, false},
                                       {"attn.k", TapKind::projection, false},
                                       {"attn.v", TapKind::projection, false},
                                       {"attn.out", TapKind::attention, false},
                                       {"resid_attn", TapKind::residual, false},
                                       {"cross_attn_ln", TapKind::norm, false},
                                       {"cross_attn.q", TapKind::projection, false},
                                       {"cross_attn.out", TapKind::attention, false},
                                       {"resid_cross", TapKind::residual, false},
                                       {"mlp_ln", TapKind::norm, false},
                                       {"mlp.fc1", TapKind::projection, true},
                                       {"mlp.gelu", TapKind::activation, true},
                                       {"mlp.fc2", TapKind::projection, false},
                                       {"out", TapKind::residual, false}};

// Dataflow inside block i: what each part is computed from. `input` is the block's input tap.
std::vector<std::string> block_upstream(TapSide side, int i, std::string_view s,
                                        const std::string& input) {
  auto p = [&](std::string_view part) { return block_tap(side, i, part); };
  const bool dec = side == TapSide::decoder;
  if (s == "attn_ln") return {input};
  if (s == "attn.q" || s == "attn.k" || s == "attn.v") return {p("attn_ln")};
  if (s == "attn.out") return {p("attn.q"), p("attn.k"), p("attn.v")};
  if (s == "resid_attn") return {p("attn.out"), input};
  if (s == "cross_attn_ln") return {p("resid_attn")};
  if (s == "cross_attn.q") return {p("cross_attn_ln")};
  if (s == "cross_attn.out") return {p("cross_attn.q"), str(kLnPost)};
  if (s == "resid_cross") return {p("cross_attn.out"), p("resid_attn")};
  if (s == "mlp_ln") return {dec ? p("resid_cross") : p("resid_attn")};
  if (s == "mlp.fc1") return {p("mlp_ln")};
  if (s == "mlp.gelu") return {p("mlp.fc1")};
  if (s == "mlp.fc2") return {p("mlp.gelu")};
  return {p("mlp.fc2"), dec ? p("resid_cross") : p("resid_attn")};  // out
}

template <std::size_t N>
void add_blocks(std::vector<TapSpec>& taps, TapSide side, int layers, int heads, int64_t rows,
                int64_t c, const std::string& layout, const BlockPart (&parts)[N],
                const std::string& first_input) {
  const bool dec = side == TapSide::decoder;
  for (int i = 0; i < layers; ++i) {
    const std::string input = i == 0 ? first_input : block_tap(side, i - 1, "out");
    for (const BlockPart& bp : parts) {
      TapSpec t;
      t.name = block_tap(side, i, bp.part);
      t.shape = {rows, bp.wide ? 4 * c : c};
      t.layout = layout;
      t.side = side;
      t.stage = TapStage::block;
      t.block = i;
      t.part = bp.part;
      t.group = fmt::format("{}.blocks.{}", dec ? "decoder" : "encoder", i);
      t.leaf = bp.part;
      t.kind = bp.kind;
      const std::string_view pv(bp.part);
      const bool qkv = pv == "attn.q" || pv == "attn.k" || pv == "attn.v" || pv == "cross_attn.q";
      t.heads = qkv ? heads : 0;
      t.per_token = dec;
      t.upstream = block_upstream(side, i, pv, input);
      taps.push_back(std::move(t));
    }
  }
}

// A tap outside the blocks: kMel, kLogits (no group), kConv1 (group "encoder", leaf "conv1").
TapSpec plain(std::string_view name, Shape shape, std::string layout, TapSide side, TapStage stage,
              TapKind kind, std::vector<std::string> upstream) {
  TapSpec t;
  t.name = name;
  const auto dot = name.find('.');
  t.group = dot == std::string_view::npos ? "" : name.substr(0, dot);
  t.leaf = dot == std::string_view::npos ? name : name.substr(dot + 1);
  t.shape = std::move(shape);
  t.layout = std::move(layout);
  t.side = side;
  t.stage = stage;
  t.kind = kind;
  t.per_token = side == TapSide::decoder;
  t.upstream = std::move(upstream);
  return t;
}
}  // namespace

std::string_view tap_kind_name(TapKind k) { return name_of(kTapKindNames, k); }
std::string_view tap_stage_name(TapStage s) { return name_of(kTapStageNames, s); }

std::string block_tap(TapSide side, int block, std::string_view part) {
  return fmt::format("{}.blocks.{}.{}", side == TapSide::encoder ? "encoder" : "decoder", block,
                     part);
}

std::vector<TapSpec> encoder_taps(const ModelDims& d) {
  const int64_t t = d.n_audio_ctx, c = d.n_audio_state;
  const auto E = TapSide::encoder;
  const std::string fc = "frame,channel";
  const std::string pos(kPosEmbed);
  std::vector<TapSpec> taps;
  taps.push_back(
      plain(kMel, {d.n_mels, 2 * t}, "mel,frame", E, TapStage::frontend, TapKind::features, {}));
  taps.push_back(plain(kConv1, {2 * t, c}, fc, E, TapStage::stem, TapKind::conv, {str(kMel)}));
  taps.push_back(plain(kConv2, {t, c}, fc, E, TapStage::stem, TapKind::conv, {str(kConv1)}));
  taps.push_back(
      plain(kPosEmbed, {t, c}, fc, E, TapStage::stem, TapKind::embedding, {str(kConv2)}));
  add_blocks(taps, E, d.n_audio_layer, d.n_audio_head, t, c, fc, kEncoderBlock, pos);
  const std::string last = d.n_audio_layer > 0 ? block_tap(E, d.n_audio_layer - 1, "out") : pos;
  taps.push_back(plain(kLnPost, {t, c}, fc, E, TapStage::ln_post, TapKind::norm, {last}));
  return taps;
}

std::vector<TapSpec> decoder_taps(const ModelDims& d, int n_tokens) {
  const int64_t n = n_tokens, c = d.n_text_state;
  const auto D = TapSide::decoder;
  const std::string tc = "token,channel";
  const std::string embed(kDecoderEmbed);
  std::vector<TapSpec> taps;
  taps.push_back(plain(kDecoderEmbed, {n, c}, tc, D, TapStage::embed, TapKind::embedding, {}));
  add_blocks(taps, D, d.n_text_layer, d.n_text_head, n, c, tc, kDecoderBlock, embed);
  const std::string last = d.n_text_layer > 0 ? block_tap(D, d.n_text_layer - 1, "out") : embed;
  taps.push_back(plain(kDecoderLn, {n, c}, tc, D, TapStage::final_ln, TapKind::norm, {last}));
  taps.push_back(plain(kLogits, {n, d.n_vocab}, "token,vocab", D, TapStage::head, TapKind::logits,
                       {str(kDecoderLn)}));
  return taps;
}

TapRegistry::TapRegistry(const ModelDims& d) : dims_(d), taps_(encoder_taps(d)) {
  for (auto& t : decoder_taps(d, 1)) taps_.push_back(std::move(t));
  index_.reserve(taps_.size());
  for (std::size_t i = 0; i < taps_.size(); ++i) index_.emplace(taps_[i].name, static_cast<int>(i));
}

const TapRegistry& TapRegistry::of(const ModelDims& d) {
  // A handful of dims per process (the models of one run); kept for the process's life.
  static std::mutex mu;
  // Keyed by the dims' fields (a JSON dump as the key cost more than the lookup it guards).
  static_assert(sizeof(ModelDims) == 10 * sizeof(int), "a field of ModelDims missing from the key");
  static std::map<std::array<int, 10>, std::unique_ptr<TapRegistry>> cache;
  const std::array<int, 10> key{d.n_mels,        d.n_audio_ctx, d.n_audio_state, d.n_audio_head,
                                d.n_audio_layer, d.n_vocab,     d.n_text_ctx,    d.n_text_state,
                                d.n_text_head,   d.n_text_layer};
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[key];
  if (!slot) slot.reset(new TapRegistry(d));
  return *slot;
}

const TapSpec* TapRegistry::find(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &taps_[static_cast<std::size_t>(it->second)];
}

int TapRegistry::order(std::string_view name) const {
  const auto it = index_.find(std::string(name));
  return it == index_.end() ? -1 : it->second;
}

int tap_order(const ModelDims& d, std::string_view name) { return TapRegistry::of(d).order(name); }

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
    std::vector<std::string> globs;
    if (item == "all") {
      globs = {"**"};
    } else if (item == "encoder") {
      globs = {str(kMel), "encoder.**"};
    } else if (item == "decoder") {
      globs = {"decoder.**", str(kLogits)};
    } else if (item == "blocks") {
      globs = {str(kMel),
               str(kConv1),
               str(kConv2),
               str(kPosEmbed),
               "encoder.blocks.*.out",
               str(kLnPost),
               "decoder.blocks.*.out",
               str(kDecoderLn),
               str(kLogits)};
    } else if (item == "minimal") {
      globs = {str(kMel), str(kLnPost), str(kLogits)};
    } else if (item == "none") {
      continue;
    } else {
      globs = {item};
    }
    items_.push_back({item, std::move(globs)});
  }
  if (items_.empty() && spec_ != "none")
    throw std::invalid_argument(fmt::format("--taps '{}' selects nothing", spec));
}

bool TapSelector::selected(std::string_view name) const {
  for (const auto& it : items_)
    for (const auto& g : it.globs)
      if (glob_match(g, name)) return true;
  return false;
}

namespace {
std::size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diag = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}
}  // namespace

void TapSelector::check_against(const ModelDims& d, bool decode) const {
  std::vector<TapSpec> run = encoder_taps(d);
  if (decode) {
    const auto dec = decoder_taps(d, 1);
    run.insert(run.end(), dec.begin(), dec.end());
  }
  for (const Item& it : items_) {
    bool any = false;
    for (const auto& t : run)
      for (const auto& g : it.globs) any = any || glob_match(g, t.name);
    if (any) continue;
    // Nearest names: the item with its wildcards read as block 0, by edit distance.
    std::string probe = it.text;
    for (std::size_t p; (p = probe.find_first_of("*?")) != std::string::npos;)
      probe.replace(p, probe.compare(p, 2, "**") == 0 ? 2 : 1, "0");
    std::vector<std::pair<std::size_t, std::string>> near;
    for (const auto& t : run) near.emplace_back(edit_distance(probe, t.name), t.name);
    std::stable_sort(near.begin(), near.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::string names;
    for (std::size_t k = 0; k < std::min<std::size_t>(3, near.size()); ++k)
      names += (k ? ", " : "") + near[k].second;
    const bool decoder_only = !decode && it.text.find("decoder") != std::string::npos;
    throw UsageError(
        fmt::format("--taps '{}' selects no tap of this run{} (nearest: {}; `wb taps` "
                    "lists them)",
                    it.text, decoder_only ? " (decoding is off: --no-decode)" : "", names));
  }
}

}  // namespace wb
