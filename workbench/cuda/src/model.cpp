#include "model.h"

#include <fmt/format.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "wb/core/audio.h"
#include "wb/core/util.h"

namespace wb::cuda {
namespace {

// Where weights come from: a checkpoint, or (timing runs) uniform random numbers generated on
// the device, scaled by 1/sqrt(fan_in) so activations stay in range.
class WeightSource {
 public:
  WeightSource(const Checkpoint* ck, uint64_t seed, Act a, cudaStream_t s)
      : ck_(ck), seed_(seed), act_(a), s_(s) {}

  // A float32 vector (bias, layer-norm parameter, positional embedding).
  Buf vec(const std::string& name, const Shape& shape, float rnd_scale, float rnd_offset) {
    const int64_t n = shape_numel(shape);
    Buf b(static_cast<std::size_t>(n) * 4);
    if (ck_ == nullptr) {
      launch_fill_uniform(b.get(), Act::f32, n, ++seed_, rnd_scale, rnd_offset, s_);
      return b;
    }
    const Tensor& t = checked(name, shape);
    ck(cudaMemcpy(b.get(), t.f32(), static_cast<std::size_t>(n) * 4, cudaMemcpyHostToDevice),
       "upload");
    return b;
  }
  // A matrix [rows, cols] in the GEMM input type, from host floats already in that layout.
  Buf matrix(const float* host, int64_t rows, int64_t cols) {
    const int64_t n = rows * cols;
    Buf b(static_cast<std::size_t>(n * act_size(act_)));
    if (host == nullptr) {
      launch_fill_uniform(b.get(), act_, n, ++seed_, 1.0f / std::sqrt(static_cast<float>(cols)),
                          0.0f, s_);
      return b;
    }
    if (act_ == Act::f32) {
      ck(cudaMemcpy(b.get(), host, static_cast<std::size_t>(n) * 4, cudaMemcpyHostToDevice),
         "upload");
    } else {
      std::vector<uint16_t> h(static_cast<std::size_t>(n));
      for (int64_t i = 0; i < n; ++i)
        h[static_cast<std::size_t>(i)] =
            act_ == Act::bf16 ? float_to_bf16(host[i]) : float_to_half(host[i]);
      ck(cudaMemcpy(b.get(), h.data(), h.size() * 2, cudaMemcpyHostToDevice), "upload");
    }
    return b;
  }
  const float* host(const std::string& name, const Shape& shape) {
    return ck_ == nullptr ? nullptr : checked(name, shape).f32();
  }
  bool random() const { return ck_ == nullptr; }

 private:
  const Tensor& checked(const std::string& name, const Shape& want) {
    const Tensor& t = ck_->at(name);
    if (t.shape() != want)
      throw std::invalid_argument(fmt::format("cuda: weight {}: got {}, expected {}", name,
                                              shape_str(t.shape()), shape_str(want)));
    if (t.dtype() != DType::f32)
      throw std::invalid_argument("cuda: weight " + name + " is not float32");
    return t;
  }
  const Checkpoint* ck_;
  uint64_t seed_;
  Act act_;
  cudaStream_t s_;
};

constexpr float kBiasScale = 0.02f;  // random biases: uniform in [-0.02, 0.02]

LnW layer_norm_w(WeightSource& w, const std::string& p, int c) {
  return LnW{w.vec(p + ".weight", {c}, 0.1f, 1.0f), w.vec(p + ".bias", {c}, kBiasScale, 0)};
}

// conv2 [C, C, 3] repacked [C, 3C] with column k * C + ci (null for random weights).
std::vector<float> repack_conv2(const float* src, int c) {
  std::vector<float> r;
  if (src == nullptr) return r;
  r.resize(static_cast<std::size_t>(c) * 3 * c);
  for (int co = 0; co < c; ++co)
    for (int ci = 0; ci < c; ++ci)
      for (int k = 0; k < 3; ++k)
        r[(static_cast<std::size_t>(co) * 3 + k) * c + ci] =
            src[(static_cast<std::size_t>(co) * c + ci) * 3 + k];
  return r;
}

// q | k | v stacked into one [3C, C] matrix and its bias [bq, 0, bv]; the 16-bit copy of the bias
// in the reduced modes.
void load_qkv(WeightSource& w, BlockW& b, const std::string& p, int c, uint64_t seed, int i,
              Act act, cudaStream_t s) {
  const std::size_t cc = static_cast<std::size_t>(c) * c;
  std::vector<float> qkv, qkv_b;
  if (!w.random()) {
    qkv.resize(3 * cc);
    std::memcpy(qkv.data(), w.host(p + "attn.query.weight", {c, c}), cc * 4);
    std::memcpy(qkv.data() + cc, w.host(p + "attn.key.weight", {c, c}), cc * 4);
    std::memcpy(qkv.data() + 2 * cc, w.host(p + "attn.value.weight", {c, c}), cc * 4);
    qkv_b.assign(static_cast<std::size_t>(3 * c), 0.0f);  // key has no bias
    std::memcpy(qkv_b.data(), w.host(p + "attn.query.bias", {c}), sizeof(float) * c);
    std::memcpy(qkv_b.data() + 2 * c, w.host(p + "attn.value.bias", {c}), sizeof(float) * c);
  }
  b.qkv = w.matrix(w.random() ? nullptr : qkv.data(), 3 * c, c);
  b.qkv_b = Buf(sizeof(float) * 3 * c);
  if (w.random())
    launch_fill_uniform(b.qkv_b.get(), Act::f32, 3 * c, seed + 1000 + i, kBiasScale, 0, s);
  else
    ck(cudaMemcpy(b.qkv_b.get(), qkv_b.data(), qkv_b.size() * 4, cudaMemcpyHostToDevice), "upload");
  if (act != Act::f32) {
    b.qkv_b16 = Buf(2 * static_cast<std::size_t>(3 * c));
    launch_convert(b.qkv_b.f(), b.qkv_b16.get(), act, 3 * c, s);
  }
}

BlockW load_block(WeightSource& w, int i, int c, uint64_t seed, Act act, cudaStream_t s) {
  const std::string p = fmt::format("encoder.blocks.{}.", i);
  BlockW b;
  b.attn_ln = layer_norm_w(w, p + "attn_ln", c);
  b.mlp_ln = layer_norm_w(w, p + "mlp_ln", c);
  load_qkv(w, b, p, c, seed, i, act, s);
  b.out = w.matrix(w.host(p + "attn.out.weight", {c, c}), c, c);
  b.out_b = w.vec(p + "attn.out.bias", {c}, kBiasScale, 0);
  b.fc1 = w.matrix(w.host(p + "mlp.0.weight", {4 * c, c}), 4 * c, c);
  b.fc1_b = w.vec(p + "mlp.0.bias", {4 * c}, kBiasScale, 0);
  if (act != Act::f32) {
    b.fc1_b16 = Buf(2 * static_cast<std::size_t>(4 * c));
    launch_convert(b.fc1_b.f(), b.fc1_b16.get(), act, 4 * c, s);
  }
  b.fc2 = w.matrix(w.host(p + "mlp.2.weight", {c, 4 * c}), c, 4 * c);
  b.fc2_b = w.vec(p + "mlp.2.bias", {c}, kBiasScale, 0);
  return b;
}

Buf upload(const std::vector<float>& h) {
  Buf b(h.size() * 4);
  ck(cudaMemcpy(b.get(), h.data(), h.size() * 4, cudaMemcpyHostToDevice), "upload");
  return b;
}

}  // namespace

Model load_model(const ModelDims& d, const Checkpoint* ckpt, uint64_t seed, Act act,
                 bool conv_bias_drop, cudaStream_t s) {
  WeightSource w(ckpt, seed, act, s);
  const int c = d.n_audio_state, nm = d.n_mels, t = d.n_audio_ctx;
  Model m;
  m.d = d;
  m.act = act;
  m.conv1 = w.matrix(w.host("encoder.conv1.weight", {c, nm, 3}), c, nm * 3);
  m.conv1_b = w.vec("encoder.conv1.bias", {c}, kBiasScale, 0);
  // Fault conv-bias-drop: conv1's bias of output channel 0 not added (zeroed on the device).
  if (conv_bias_drop) ck(cudaMemsetAsync(m.conv1_b.get(), 0, 4, s), "memset");
  const std::vector<float> conv2 = repack_conv2(w.host("encoder.conv2.weight", {c, c, 3}), c);
  m.conv2 = w.matrix(conv2.empty() ? nullptr : conv2.data(), c, 3 * c);
  m.conv2_b = w.vec("encoder.conv2.bias", {c}, kBiasScale, 0);
  m.pos = w.vec("encoder.positional_embedding", {t, c}, 1.0f, 0);
  for (int i = 0; i < d.n_audio_layer; ++i) m.blocks.push_back(load_block(w, i, c, seed, act, s));
  m.ln_post = layer_norm_w(w, "encoder.ln_post", c);
  // Front end constants: periodic Hann window and Slaney filters.
  std::vector<float> win(kNFft);
  for (int n = 0; n < kNFft; ++n)
    win[static_cast<std::size_t>(n)] =
        static_cast<float>(0.5 - 0.5 * std::cos(2.0 * M_PI * n / static_cast<double>(kNFft)));
  m.window = upload(win);
  const std::vector<double> f64 = mel_filters(nm, kNFft, kSampleRate);
  m.filters = upload(std::vector<float>(f64.begin(), f64.end()));
  ck(cudaStreamSynchronize(s), "load");
  return m;
}

}  // namespace wb::cuda
