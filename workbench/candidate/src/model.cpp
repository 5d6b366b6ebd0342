#include "model.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "wb/core/util.h"

namespace wb::cand {

namespace {

const Tensor& weight(const Checkpoint& ck, const std::string& name, const Shape& want) {
  const Tensor& t = ck.at(name);
  if (t.shape() != want)
    throw std::invalid_argument("candidate: weight " + name + ": got " + shape_str(t.shape()) +
                                ", expected " + shape_str(want));
  if (t.dtype() != DType::f32)
    throw std::invalid_argument("candidate: weight " + name + " is not float32");
  return t;
}

std::vector<float> vec(const Tensor& t) { return {t.f32(), t.f32() + t.numel()}; }

LayerNormW load_ln(const Checkpoint& ck, const std::string& p, int c) {
  return {vec(weight(ck, p + ".weight", {c})), vec(weight(ck, p + ".bias", {c}))};
}

}  // namespace

std::unique_ptr<Model> load_model(const Checkpoint& ck, Precision prec, GemmBackend g) {
  auto m = std::make_unique<Model>();
  const ModelDims& d = ck.dims;
  d.validate();
  m->d = d;
  m->prec = prec;
  const int c = d.n_audio_state, nm = d.n_mels, t = d.n_audio_ctx;
  {
    const Tensor& w = weight(ck, "encoder.conv1.weight", {c, nm, 3});
    m->conv1 = WeightMatrix(w.f32(), c, nm * 3, prec, g);
    m->conv1_b = vec(weight(ck, "encoder.conv1.bias", {c}));
  }
  {
    const Tensor& w = weight(ck, "encoder.conv2.weight", {c, c, 3});
    std::vector<float> r(static_cast<std::size_t>(c) * 3 * c);
    const float* src = w.f32();
    for (int co = 0; co < c; ++co)
      for (int ci = 0; ci < c; ++ci)
        for (int k = 0; k < 3; ++k)
          r[(static_cast<std::size_t>(co) * 3 + k) * c + ci] =
              src[(static_cast<std::size_t>(co) * c + ci) * 3 + k];
    m->conv2 = WeightMatrix(r.data(), c, 3 * c, prec, g);
    m->conv2_b = vec(weight(ck, "encoder.conv2.bias", {c}));
  }
  m->pos = vec(weight(ck, "encoder.positional_embedding", {t, c}));
  for (int i = 0; i < d.n_audio_layer; ++i) {
    const std::string p = "encoder.blocks." + std::to_string(i) + ".";
    BlockW b;
    b.attn_ln = load_ln(ck, p + "attn_ln", c);
    b.mlp_ln = load_ln(ck, p + "mlp_ln", c);
    {
      const std::size_t cc = static_cast<std::size_t>(c) * c;
      std::vector<float> w(3 * cc);
      std::memcpy(w.data(), weight(ck, p + "attn.query.weight", {c, c}).f32(), cc * 4);
      std::memcpy(w.data() + cc, weight(ck, p + "attn.key.weight", {c, c}).f32(), cc * 4);
      std::memcpy(w.data() + 2 * cc, weight(ck, p + "attn.value.weight", {c, c}).f32(), cc * 4);
      b.qkv = WeightMatrix(w.data(), 3 * c, c, prec, g);
      b.qkv_b.assign(static_cast<std::size_t>(3 * c), 0.0f);
      const Tensor& qb = weight(ck, p + "attn.query.bias", {c});
      const Tensor& vb = weight(ck, p + "attn.value.bias", {c});
      std::copy(qb.f32(), qb.f32() + c, b.qkv_b.begin());
      std::copy(vb.f32(), vb.f32() + c, b.qkv_b.begin() + 2 * c);
    }
    b.out = WeightMatrix(weight(ck, p + "attn.out.weight", {c, c}).f32(), c, c, prec, g);
    b.out_b = vec(weight(ck, p + "attn.out.bias", {c}));
    b.fc1 = WeightMatrix(weight(ck, p + "mlp.0.weight", {4 * c, c}).f32(), 4 * c, c, prec, g);
    b.fc1_b = vec(weight(ck, p + "mlp.0.bias", {4 * c}));
    b.fc2 = WeightMatrix(weight(ck, p + "mlp.2.weight", {c, 4 * c}).f32(), c, 4 * c, prec, g);
    b.fc2_b = vec(weight(ck, p + "mlp.2.bias", {c}));
    m->blocks.push_back(std::move(b));
  }
  m->ln_post = load_ln(ck, "encoder.ln_post", c);
  return m;
}

}  // namespace wb::cand
