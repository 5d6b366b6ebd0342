// The LibTorch reference Whisper. Follows openai/whisper model.py and audio.py op by op:
// the same op order, dtypes and constants, so that its dumps are the target every port aims at.
#include "wb/reference/reference.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

#include "wb/core/audio.h"

namespace wb {

namespace {

using TT = torch::Tensor;  // torch tensors; wb::Tensor is the seam's
namespace F = torch::nn::functional;

torch::Dtype torch_dtype(DType d) {
  if (d == DType::f32) return torch::kFloat32;
  if (d == DType::f64) return torch::kFloat64;
  throw std::invalid_argument(
      fmt::format("reference computes in float32 or float64, not {}", dtype_name(d)));
}

TT to_torch(const wb::Tensor& t) {
  std::vector<int64_t> shape(t.shape().begin(), t.shape().end());
  auto dt = t.dtype() == DType::f64 ? torch::kFloat64 : torch::kFloat32;
  return torch::from_blob(const_cast<void*>(t.raw()), shape, torch::TensorOptions().dtype(dt))
      .clone();
}

wb::Tensor from_torch(const TT& x) {
  TT c = x.contiguous();
  Shape shape(c.sizes().begin(), c.sizes().end());
  const DType dt = c.scalar_type() == torch::kFloat64 ? DType::f64 : DType::f32;
  wb::Tensor out(dt, shape);
  std::memcpy(out.raw(), c.data_ptr(), static_cast<std::size_t>(c.numel()) * dtype_size(dt));
  return out;
}

// Reports x (any layout; made contiguous) under `name` if the sink wants it.
void tap(TapSink* sink, const std::string& name, const TT& x) {
  if (!wanted(sink, name)) return;
  TT c = x.contiguous();
  Shape shape(c.sizes().begin(), c.sizes().end());
  sink->put(name, TapView{shape, c.scalar_type() == torch::kFloat64 ? DType::f64 : DType::f32,
                          c.data_ptr()});
}

// Weights of one model converted once to the compute dtype; shared by encoder and decoder.
struct Weights {
  std::map<std::string, TT> w;
  const TT& operator[](const std::string& n) const {
    auto it = w.find(n);
    if (it == w.end()) throw std::invalid_argument(fmt::format("reference: no weight '{}'", n));
    return it->second;
  }
};

Weights convert(const Checkpoint& ck, torch::Dtype dt) {
  Weights out;
  for (const auto& [name, t] : ck.weights) out.w.emplace(name, to_torch(t).to(dt));
  return out;
}

// model.py LayerNorm: computed in float32 (float64 in the float64 run), eps 1e-5.
TT layer_norm(const Weights& W, const std::string& p, const TT& x) {
  return F::layer_norm(x, F::LayerNormFuncOptions({x.size(-1)})
                              .weight(W[p + ".weight"])
                              .bias(W[p + ".bias"])
                              .eps(1e-5));
}

TT linear(const Weights& W, const std::string& p, const TT& x, bool bias = true) {
  return bias ? torch::nn::functional::linear(x, W[p + ".weight"], W[p + ".bias"])
              : torch::nn::functional::linear(x, W[p + ".weight"]);
}

TT gelu_erf(const TT& x) { return torch::gelu(x); }  // exact erf GELU, as nn.GELU()

// x + mlp(mlp_ln(x)) of a residual block (encoder or decoder), with its taps up to '.out'.
TT mlp_residual(const Weights& W, const std::string& p, const TT& x, TapSink* taps) {
  TT h = layer_norm(W, p + ".mlp_ln", x);
  tap(taps, p + ".mlp_ln", h);
  TT f1 = linear(W, p + ".mlp.0", h);
  tap(taps, p + ".mlp.fc1", f1);
  TT g = gelu_erf(f1);
  tap(taps, p + ".mlp.gelu", g);
  TT f2 = linear(W, p + ".mlp.2", g);
  tap(taps, p + ".mlp.fc2", f2);
  TT out = x + f2;
  tap(taps, p + ".out", out);
  return out;
}

// MultiHeadAttention.qkv_attention: q and k each scaled by d_head^-0.25, softmax in float32.
// q [n_q, C], k and v [n_kv, C] (batch dim omitted). Returns the weighted values [n_q, C].
TT qkv_attention(const TT& q, const TT& k, const TT& v, int n_head, bool causal) {
  const int64_t nq = q.size(0), nk = k.size(0), c = q.size(1), dh = c / n_head;
  const double scale = std::pow(static_cast<double>(dh), -0.25);
  TT qh = q.view({nq, n_head, dh}).permute({1, 0, 2}) * scale;  // [H, nq, dh]
  TT kh = k.view({nk, n_head, dh}).permute({1, 2, 0}) * scale;  // [H, dh, nk]
  TT vh = v.view({nk, n_head, dh}).permute({1, 0, 2});          // [H, nk, dh]
  TT qk = torch::matmul(qh, kh);                                // [H, nq, nk]
  if (causal) {
    TT mask =
        torch::full({nq, nk}, -std::numeric_limits<double>::infinity(), qk.options()).triu_(1);
    qk = qk + mask;
  }
  TT w = torch::softmax(qk, -1);
  return torch::matmul(w, vh).permute({1, 0, 2}).reshape({nq, c});
}

class ReferenceEncoder final : public Encoder {
 public:
  ReferenceEncoder(std::shared_ptr<const Checkpoint> ck, DType compute)
      : ck_(std::move(ck)), compute_(compute), dt_(torch_dtype(compute)), W_(convert(*ck_, dt_)) {
    const auto f = mel_filters(ck_->dims.n_mels);
    filters_ = torch::from_blob(const_cast<double*>(f.data()), {ck_->dims.n_mels, kNFft / 2 + 1},
                                torch::kFloat64)
                   .clone()
                   .to(dt_);
  }

  std::string implementation() const override { return "reference"; }
  int n_layers() const override { return ck_->dims.n_audio_layer; }
  nlohmann::json run_info() const override {
    return {{"precision", std::string(dtype_name(compute_))},
            {"device", "cpu"},
            {"backend", fmt::format("libtorch {}", TORCH_VERSION)},
            {"threads", at::get_num_threads()}};
  }

  // audio.py log_mel_spectrogram on pad_or_trim(audio): centered STFT with reflect padding,
  // periodic Hann, last frame dropped, power, Slaney mel, log10(clamp 1e-10), floor at max-8,
  // (x + 4) / 4.
  wb::Tensor log_mel(const std::vector<float>& pcm16k, TapSink* taps) override {
    torch::NoGradGuard ng;
    std::vector<float> a = pad_or_trim(pcm16k);
    TT audio = torch::from_blob(a.data(), {static_cast<int64_t>(a.size())}, torch::kFloat32)
                   .clone()
                   .to(dt_);
    TT window = torch::hann_window(kNFft, torch::TensorOptions().dtype(dt_));  // periodic
    TT stft =
        torch::stft(audio, kNFft, kHop, kNFft, window, /*center=*/true, /*pad_mode=*/"reflect",
                    /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);
    TT magnitudes =
        stft.index({torch::indexing::Slice(), torch::indexing::Slice(0, -1)}).abs().pow(2);
    TT mel = torch::matmul(filters_, magnitudes);
    TT log_spec = torch::clamp(mel, 1e-10).log10();
    log_spec = torch::maximum(log_spec, log_spec.max() - 8.0);
    log_spec = (log_spec + 4.0) / 4.0;
    tap(taps, "mel", log_spec);
    return from_torch(log_spec);
  }

  // AudioEncoder.forward up to the blocks: conv1 (k3 p1), GELU, conv2 (k3 s2 p1), GELU,
  // permute to [T, C], + positional embedding.
  wb::Tensor stem(const wb::Tensor& mel_in, TapSink* taps) override {
    torch::NoGradGuard ng;
    const ModelDims& d = ck_->dims;
    TT mel = to_torch(mel_in).to(dt_);
    if (mel.dim() != 2 || mel.size(0) != d.n_mels || mel.size(1) != 2 * d.n_audio_ctx)
      throw std::invalid_argument(fmt::format("reference stem: mel {} does not match dims [{}, {}]",
                                              shape_str(mel_in.shape()), d.n_mels,
                                              2 * d.n_audio_ctx));
    TT x = gelu_erf(F::conv1d(mel.unsqueeze(0), W_["encoder.conv1.weight"],
                              F::Conv1dFuncOptions().bias(W_["encoder.conv1.bias"]).padding(1)));
    tap(taps, "encoder.conv1", x[0].t());
    x = gelu_erf(
        F::conv1d(x, W_["encoder.conv2.weight"],
                  F::Conv1dFuncOptions().bias(W_["encoder.conv2.bias"]).stride(2).padding(1)));
    x = x[0].t();  // [T, C]
    tap(taps, "encoder.conv2", x);
    x = x + W_["encoder.positional_embedding"];
    tap(taps, "encoder.pos_embed", x);
    return from_torch(x);
  }

  // ResidualAttentionBlock (no cross-attention): x + attn(attn_ln(x)); x + mlp(mlp_ln(x)).
  wb::Tensor block(int i, const wb::Tensor& x_in, TapSink* taps) override {
    torch::NoGradGuard ng;
    const ModelDims& d = ck_->dims;
    if (i < 0 || i >= d.n_audio_layer)
      throw std::invalid_argument(fmt::format("reference: no encoder block {}", i));
    if (x_in.ndim() != 2 || x_in.dim(1) != d.n_audio_state)
      throw std::invalid_argument(fmt::format("reference block {}: input {} is not [T, {}]", i,
                                              shape_str(x_in.shape()), d.n_audio_state));
    const std::string p = fmt::format("encoder.blocks.{}", i);
    TT x = to_torch(x_in).to(dt_);
    TT h = layer_norm(W_, p + ".attn_ln", x);
    tap(taps, p + ".attn_ln", h);
    TT q = linear(W_, p + ".attn.query", h), k = linear(W_, p + ".attn.key", h, false),
       v = linear(W_, p + ".attn.value", h);
    tap(taps, p + ".attn.q", q);
    tap(taps, p + ".attn.k", k);
    tap(taps, p + ".attn.v", v);
    TT a = linear(W_, p + ".attn.out", qkv_attention(q, k, v, d.n_audio_head, false));
    tap(taps, p + ".attn.out", a);
    x = x + a;
    tap(taps, p + ".resid_attn", x);
    return from_torch(mlp_residual(W_, p, x, taps));
  }

  wb::Tensor ln_post(const wb::Tensor& x_in, TapSink* taps) override {
    torch::NoGradGuard ng;
    TT x = layer_norm(W_, "encoder.ln_post", to_torch(x_in).to(dt_));
    tap(taps, "encoder.ln_post", x);
    return from_torch(x);
  }

 private:
  std::shared_ptr<const Checkpoint> ck_;
  DType compute_;
  torch::Dtype dt_;
  Weights W_;
  TT filters_;
};

}  // namespace

void set_reference_threads(int n) {
  if (n > 0) at::set_num_threads(n);
}

std::unique_ptr<Encoder> make_reference_encoder(std::shared_ptr<const Checkpoint> model,
                                                DType compute) {
  if (!model) throw std::invalid_argument("make_reference_encoder: no model");
  return std::make_unique<ReferenceEncoder>(std::move(model), compute);
}

// ---------------------------------------------------------------------------------------------
// TextDecoder: token + learned positional embedding, blocks with causal self-attention and
// cross-attention on the encoder output, ln, logits against the token embedding.
struct ReferenceDecoder::Impl {
  std::shared_ptr<const Checkpoint> ck;
  torch::Dtype dt;
  Weights W;

  // Cross-attention keys and values depend only on the encoder output: computed once per
  // decode (the same ops and values as recomputing them at every step).
  std::vector<std::pair<TT, TT>> cross_kv(const TT& xa) {
    std::vector<std::pair<TT, TT>> kv;
    for (int i = 0; i < ck->dims.n_text_layer; ++i) {
      const std::string p = fmt::format("decoder.blocks.{}.cross_attn", i);
      kv.emplace_back(linear(W, p + ".key", xa, false), linear(W, p + ".value", xa));
    }
    return kv;
  }

  TT attention(const std::string& p, const TT& x, const TT& k, const TT& v, int n_head, bool causal,
               TapSink* taps, bool self) {
    TT q = linear(W, p + ".query", x);
    tap(taps, p + ".q", q);
    if (self) {
      tap(taps, p + ".k", k);
      tap(taps, p + ".v", v);
    }
    TT out = linear(W, p + ".out", qkv_attention(q, k, v, n_head, causal));
    tap(taps, p + ".out", out);
    return out;
  }

  // Logits [n, n_vocab] for tokens [n] (teacher-forced, full recompute).
  // With last_only, logits of the last position only (greedy steps).
  TT forward(const std::vector<int>& tokens, const std::vector<std::pair<TT, TT>>& xkv,
             TapSink* taps, bool last_only = false) {
    const ModelDims& d = ck->dims;
    const auto n = static_cast<int64_t>(tokens.size());
    TT ids = torch::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), torch::kInt64);
    TT x = W["decoder.token_embedding.weight"].index_select(0, ids) +
           W["decoder.positional_embedding"].slice(0, 0, n);
    tap(taps, "decoder.embed", x);
    for (int i = 0; i < d.n_text_layer; ++i) {
      const std::string p = fmt::format("decoder.blocks.{}", i);
      TT h = layer_norm(W, p + ".attn_ln", x);
      tap(taps, p + ".attn_ln", h);
      x = x + attention(p + ".attn", h, linear(W, p + ".attn.key", h, false),
                        linear(W, p + ".attn.value", h), d.n_text_head, true, taps, true);
      tap(taps, p + ".resid_attn", x);
      h = layer_norm(W, p + ".cross_attn_ln", x);
      tap(taps, p + ".cross_attn_ln", h);
      x = x + attention(p + ".cross_attn", h, xkv[static_cast<std::size_t>(i)].first,
                        xkv[static_cast<std::size_t>(i)].second, d.n_text_head, false, taps, false);
      tap(taps, p + ".resid_cross", x);
      x = mlp_residual(W, p, x, taps);
    }
    x = layer_norm(W, "decoder.ln", x);
    tap(taps, "decoder.ln", x);
    if (last_only) x = x.slice(0, n - 1, n);
    TT logits = torch::matmul(x, W["decoder.token_embedding.weight"].t());
    tap(taps, "logits", logits);
    return logits;
  }
};

ReferenceDecoder::ReferenceDecoder(std::shared_ptr<const Checkpoint> model, DType compute)
    : impl_(std::make_unique<Impl>()) {
  impl_->ck = std::move(model);
  impl_->dt = torch_dtype(compute);
  impl_->W = convert(*impl_->ck, impl_->dt);
}

ReferenceDecoder::~ReferenceDecoder() = default;

// Greedy decoding without timestamps: prompt sot <|en|> transcribe notimestamps; at each step
// special tokens other than eot are suppressed (text-only decoding), and eot is suppressed at
// the first step (whisper's SuppressBlank). Stops at eot or after n_text_ctx/2 tokens.
DecodeResult ReferenceDecoder::greedy(const wb::Tensor& encoder_out, TapSink* taps,
                                      int max_tokens) {
  torch::NoGradGuard ng;
  const ModelDims& d = impl_->ck->dims;
  const Vocabulary& v = impl_->ck->vocab;
  if (encoder_out.ndim() != 2 || encoder_out.dim(1) != d.n_text_state)
    throw std::invalid_argument(fmt::format("decoder: encoder output {} is not [T, {}]",
                                            shape_str(encoder_out.shape()), d.n_text_state));
  const auto xkv = impl_->cross_kv(to_torch(encoder_out).to(impl_->dt));
  std::vector<int> tokens = v.initial_prompt();
  const int prompt = static_cast<int>(tokens.size());
  const int limit = std::min(max_tokens > 0 ? max_tokens : d.n_text_ctx / 2, d.n_text_ctx - prompt);
  DecodeResult r;
  for (int step = 0; step < limit; ++step) {
    TT logits = impl_->forward(tokens, xkv, nullptr, true).select(0, 0).clone();
    logits.slice(0, v.eot() + 1, d.n_vocab).fill_(-std::numeric_limits<double>::infinity());
    if (step == 0) logits[v.eot()] = -std::numeric_limits<double>::infinity();
    const int next = static_cast<int>(logits.argmax().item<int64_t>());
    if (next == v.eot()) break;
    tokens.push_back(next);
    r.tokens.push_back(next);
  }
  if (taps != nullptr) impl_->forward(tokens, xkv, taps);
  r.text = v.decode(r.tokens);
  return r;
}

}  // namespace wb
