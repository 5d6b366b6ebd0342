#include "wb/core/weights.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "checkpoint_io.h"

namespace wb {

namespace {
void add_linear(std::vector<WeightSpec>& t, const std::string& p, int64_t out, int64_t in,
                bool bias = true) {
  t.push_back({p + ".weight", {out, in}});
  if (bias) t.push_back({p + ".bias", {out}});
}
void add_norm(std::vector<WeightSpec>& t, const std::string& p, int64_t c) {
  t.push_back({p + ".weight", {c}});
  t.push_back({p + ".bias", {c}});
}
// model.py ResidualAttentionBlock: attn (query, key without bias, value, out), attn_ln,
// [cross_attn, cross_attn_ln], mlp (0: Linear(C, 4C), 2: Linear(4C, C)), mlp_ln.
void add_block(std::vector<WeightSpec>& t, const std::string& p, int64_t c, bool cross) {
  for (const char* a :
       cross ? std::vector<const char*>{"attn", "cross_attn"} : std::vector<const char*>{"attn"}) {
    const std::string q = p + "." + a;
    add_linear(t, q + ".query", c, c);
    add_linear(t, q + ".key", c, c, false);
    add_linear(t, q + ".value", c, c);
    add_linear(t, q + ".out", c, c);
    add_norm(t, p + "." + a + "_ln", c);
  }
  add_linear(t, p + ".mlp.0", 4 * c, c);
  add_linear(t, p + ".mlp.2", c, 4 * c);
  add_norm(t, p + ".mlp_ln", c);
}
}  // namespace

std::vector<WeightSpec> weight_table(const ModelDims& d) {
  std::vector<WeightSpec> t;
  const int64_t c = d.n_audio_state;
  t.push_back({"encoder.positional_embedding", {d.n_audio_ctx, c}});
  t.push_back({"encoder.conv1.weight", {c, d.n_mels, 3}});
  t.push_back({"encoder.conv1.bias", {c}});
  t.push_back({"encoder.conv2.weight", {c, c, 3}});
  t.push_back({"encoder.conv2.bias", {c}});
  for (int i = 0; i < d.n_audio_layer; ++i)
    add_block(t, fmt::format("encoder.blocks.{}", i), c, false);
  add_norm(t, "encoder.ln_post", c);
  const int64_t s = d.n_text_state;
  t.push_back({"decoder.positional_embedding", {d.n_text_ctx, s}});
  t.push_back({"decoder.token_embedding.weight", {d.n_vocab, s}});
  for (int i = 0; i < d.n_text_layer; ++i)
    add_block(t, fmt::format("decoder.blocks.{}", i), s, true);
  add_norm(t, "decoder.ln", s);
  return t;
}

int64_t weight_numel(const ModelDims& d) {
  // Per block (see add_block): attention 4C^2 + 5C (key has no bias) and its layer norm 2C,
  // twice in decoder blocks (cross-attention); MLP 8C^2 + 5C and its layer norm 2C.
  const auto block = [](int64_t c, bool cross) {
    return (cross ? 2 : 1) * (4 * c * c + 5 * c) + 8 * c * c + 7 * c;
  };
  const int64_t c = d.n_audio_state, s = d.n_text_state;
  const int64_t enc = int64_t{d.n_audio_ctx} * c + c * d.n_mels * 3 + c + c * c * 3 + c +
                      d.n_audio_layer * block(c, false) + 2 * c;
  const int64_t dec =
      int64_t{d.n_text_ctx} * s + int64_t{d.n_vocab} * s + d.n_text_layer * block(s, true) + 2 * s;
  return enc + dec;
}

const Tensor& Checkpoint::at(const std::string& name) const {
  auto it = weights.find(name);
  if (it == weights.end())
    throw std::invalid_argument(fmt::format("checkpoint has no tensor '{}'", name));
  return it->second;
}

Checkpoint load_checkpoint(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(path, ec)) return detail::load_hf(path);
  if (!fs::exists(path, ec))
    throw std::runtime_error(fmt::format("{}: no such file or directory", path));
  if (path.size() > 12 && path.substr(path.size() - 12) == ".safetensors")
    return detail::load_hf(fs::path(path).parent_path().string());
  return detail::load_ggml(path);
}

namespace {
// Box-Muller on two raw draws of the engine (u1 first): the same numbers with any standard library.
double box_muller(uint64_t r1, uint64_t r2) {
  const double u1 = (static_cast<double>(r1 >> 11) + 0.5) * 0x1.0p-53;
  const double u2 = static_cast<double>(r2 >> 11) * 0x1.0p-53;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

// p[i] = f(normal i) for i < n, normal i from draws 2i and 2i + 1 of rng: the numbers of one
// thread drawing and transforming in turn. The draws are cheap and taken here in order, a chunk
// at a time; the transforms (log, sqrt, cos: most of the time) run on every core. large-v3's
// 1.55 G weights took over a minute in one thread.
template <class F>
void fill_normal(std::mt19937_64& rng, float* p, int64_t n, F f) {
  constexpr int64_t kChunk = int64_t{1} << 20;
  const int64_t threads =
      n < (int64_t{1} << 16) ? 1 : std::max<int64_t>(1, std::thread::hardware_concurrency());
  std::vector<uint64_t> raw(static_cast<std::size_t>(2 * std::min(n, kChunk)));
  for (int64_t at = 0; at < n; at += kChunk) {
    const int64_t m = std::min(kChunk, n - at);
    for (int64_t i = 0; i < 2 * m; ++i) raw[static_cast<std::size_t>(i)] = rng();
    const auto part = [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i)
        p[at + i] = f(box_muller(raw[static_cast<std::size_t>(2 * i)],
                                 raw[static_cast<std::size_t>(2 * i + 1)]));
    };
    std::vector<std::thread> pool;
    for (int64_t k = 1; k < threads; ++k)
      pool.emplace_back(part, m * k / threads, m * (k + 1) / threads);
    part(0, m / threads);
    for (std::thread& t : pool) t.join();
  }
}
}  // namespace

Checkpoint random_checkpoint(const ModelDims& d, uint64_t seed) {
  d.validate();
  std::mt19937_64 rng(seed);
  Checkpoint ck;
  ck.dims = d;
  ck.format = "random";
  ck.stored_dtype = "float32";
  for (const WeightSpec& w : weight_table(d)) {
    Tensor t(DType::f32, w.shape);
    float* p = t.f32();
    const std::string& n = w.name;
    const auto ends = [&n](std::string_view s) {
      return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0;
    };
    if (n == "encoder.positional_embedding") {
      // model.py sinusoids(): concat(sin, cos) with inv_timescales exp(-ln(10000)/(C/2-1) * i).
      const int64_t len = w.shape[0], ch = w.shape[1], half = ch / 2;
      const double inc = std::log(10000.0) / static_cast<double>(half - 1);
      for (int64_t tpos = 0; tpos < len; ++tpos)
        for (int64_t i = 0; i < half; ++i) {
          const double a = static_cast<double>(tpos) * std::exp(-inc * static_cast<double>(i));
          p[tpos * ch + i] = static_cast<float>(std::sin(a));
          p[tpos * ch + half + i] = static_cast<float>(std::cos(a));
        }
    } else if (w.shape.size() >= 2) {
      // Scaled like PyTorch's default init: std 1/sqrt(fan_in) keeps activations O(1).
      int64_t fan_in = w.shape[1] * (w.shape.size() == 3 ? w.shape[2] : 1);
      double std = 1.0 / std::sqrt(static_cast<double>(fan_in));
      if (n == "decoder.positional_embedding") std = 0.02;
      if (n == "decoder.token_embedding.weight")
        std = 1.0 / std::sqrt(static_cast<double>(w.shape[1]));
      fill_normal(rng, p, t.numel(), [std](double z) { return static_cast<float>(std * z); });
    } else if ((ends("_ln.weight") || ends("ln_post.weight") || n == "decoder.ln.weight")) {
      fill_normal(rng, p, t.numel(), [](double z) { return static_cast<float>(1.0 + 0.1 * z); });
    } else {  // biases
      fill_normal(rng, p, t.numel(), [](double z) { return static_cast<float>(0.02 * z); });
    }
    ck.weights.emplace(w.name, std::move(t));
  }
  // Byte-level base vocabulary: token i is the single byte i.
  std::vector<std::string> base(256);
  for (int b = 0; b < 256; ++b)
    base[static_cast<std::size_t>(b)] = std::string(1, static_cast<char>(b));
  ck.vocab = Vocabulary(std::move(base), d.n_vocab);
  return ck;
}

}  // namespace wb
