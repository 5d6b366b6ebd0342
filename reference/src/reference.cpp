// The LibTorch reference Whisper. Follows openai/whisper model.py and audio.py op by op:
// the same op order, dtypes and constants, so that its dumps are the target every port aims at.
#include "wb/reference/reference.h"

#include <fmt/format.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>
#include <optional>
#include <stdexcept>

#include "wb/core/audio.h"

extern "C" void openblas_set_num_threads(int);  // the BLAS LibTorch is linked with here

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
  TT c = x.to(torch::kCPU).contiguous();  // no copy for a CPU tensor
  Shape shape(c.sizes().begin(), c.sizes().end());
  const DType dt = c.scalar_type() == torch::kFloat64 ? DType::f64 : DType::f32;
  wb::Tensor out(dt, shape);
  std::memcpy(out.raw(), c.data_ptr(), static_cast<std::size_t>(c.numel()) * dtype_size(dt));
  return out;
}

// Reports x (any layout; made contiguous) under `name` if the sink wants it.
void tap(TapSink* sink, std::string_view name, const TT& x) {
  if (!wanted(sink, name)) return;
  TT c = x.to(torch::kCPU).contiguous();
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

Weights convert(const Checkpoint& ck, torch::Dtype dt, torch::Device dev = torch::kCPU) {
  Weights out;
  for (const auto& [name, t] : ck.weights) out.w.emplace(name, to_torch(t).to(dev, dt));
  return out;
}

// model.py LayerNorm: computed in float32 (float64 in the float64 run), eps 1e-5.
TT layer_norm(const Weights& W, const std::string& p, const TT& x) {
  return F::layer_norm(x, F::LayerNormFuncOptions({x.size(-1)})
                              .weight(W[p + ".weight"])
                              .bias(W[p + ".bias"])
                              .eps(1e-5));
}

// y [n, out] = x [n, in] W^T + b. A single row (a cached decoder step) as a matrix-vector
// product: BLAS gemv streams W once, where gemm on one row first packs all of W (measured: the
// packing dominated a cached step). Only a one-row x takes it: the encoder (n_audio_ctx rows)
// and a full decoder pass (prompt and more) keep the gemm.
TT linear(const Weights& W, const std::string& p, const TT& x, bool bias = true) {
  if (x.dim() == 2 && x.size(0) == 1)
    return (bias ? torch::addmv(W[p + ".bias"], W[p + ".weight"], x[0])
                 : torch::mv(W[p + ".weight"], x[0]))
        .unsqueeze(0);
  return bias ? torch::nn::functional::linear(x, W[p + ".weight"], W[p + ".bias"])
              : torch::nn::functional::linear(x, W[p + ".weight"]);
}

TT gelu_erf(const TT& x) { return torch::gelu(x); }  // exact erf GELU, as nn.GELU()

// x + mlp(mlp_ln(x)) of a residual block (encoder or decoder), with its taps up to '.out'.
TT mlp_residual(const Weights& W, const std::string& p, TapSide side, int block, const TT& x,
                TapSink* taps) {
  auto tn = [&](std::string_view part) { return block_tap(side, block, part); };
  TT h = layer_norm(W, p + ".mlp_ln", x);
  tap(taps, tn("mlp_ln"), h);
  TT f1 = linear(W, p + ".mlp.0", h);
  tap(taps, tn("mlp.fc1"), f1);
  TT g = gelu_erf(f1);
  tap(taps, tn("mlp.gelu"), g);
  TT f2 = linear(W, p + ".mlp.2", g);
  tap(taps, tn("mlp.fc2"), f2);
  TT out = x + f2;
  tap(taps, tn("out"), out);
  return out;
}

// MultiHeadAttention.qkv_attention, split so that constant keys/values can be prepared once:
// q and k each scaled by d_head^-0.25, softmax in float32. Rows [n, C] (batch dim omitted)
// become head views: q -> [H, n, dh] scaled, k -> [H, dh, n] scaled, v -> [H, n, dh].
TT heads_q(const TT& q, int n_head) {
  const int64_t n = q.size(0), c = q.size(1);
  return q.view({n, n_head, c / n_head}).permute({1, 0, 2}) *
         std::pow(static_cast<double>(c / n_head), -0.25);
}
TT heads_k(const TT& k, int n_head) {
  const int64_t n = k.size(0), c = k.size(1);
  return k.view({n, n_head, c / n_head}).permute({1, 2, 0}) *
         std::pow(static_cast<double>(c / n_head), -0.25);
}
TT heads_v(const TT& v, int n_head) {
  const int64_t n = v.size(0), c = v.size(1);
  return v.view({n, n_head, c / n_head}).permute({1, 0, 2});
}

// Weighted values [n_q, C] of head views qh [H, n_q, dh], kh [H, dh, n_kv], vh [H, n_kv, dh].
// causal: query row r sits at position q_offset + r and sees keys 0 .. q_offset + r (a cached
// decoder step has q_offset = n_kv - n_q; a full pass 0, model.py's mask[:n_ctx, :n_ctx]).
TT attend(const TT& qh, const TT& kh, const TT& vh, bool causal, int64_t q_offset = 0) {
  const int64_t nq = qh.size(1), nk = kh.size(2);
  TT qk = torch::matmul(qh, kh);  // [H, nq, nk]
  // A mask with no -inf entry (one query at the last position) would add zeros: skipped.
  if (causal && nk > q_offset + 1) {
    TT mask = torch::full({nq, nk}, -std::numeric_limits<double>::infinity(), qk.options())
                  .triu_(1 + q_offset);
    qk = qk + mask;
  }
  TT w = torch::softmax(qk, -1);
  return torch::matmul(w, vh).permute({1, 0, 2}).reshape({nq, qh.size(0) * qh.size(2)});
}

// q [n_q, C], k and v [n_kv, C]. Returns the weighted values [n_q, C].
TT qkv_attention(const TT& q, const TT& k, const TT& v, int n_head, bool causal,
                 int64_t q_offset = 0) {
  return attend(heads_q(q, n_head), heads_k(k, n_head), heads_v(v, n_head), causal, q_offset);
}

class ReferenceEncoder final : public Encoder {
 public:
  // dev: where the encoder computes (--device cuda: LibTorch with CUDA); the seam's tensors and
  // the taps are copied to the host at each stage's exit.
  ReferenceEncoder(std::shared_ptr<const Checkpoint> ck, DType compute, torch::Device dev)
      : ck_(std::move(ck)),
        compute_(compute),
        dt_(torch_dtype(compute)),
        dev_(dev),
        W_(convert(*ck_, dt_, dev_)) {
    const auto f = mel_filters(ck_->dims.n_mels);
    filters_ = torch::from_blob(const_cast<double*>(f.data()), {ck_->dims.n_mels, kNFft / 2 + 1},
                                torch::kFloat64)
                   .clone()
                   .to(dev_, dt_);
  }

  std::string implementation() const override { return "reference"; }
  int n_layers() const override { return ck_->dims.n_audio_layer; }
  nlohmann::json run_info() const override {
    return {{"precision", std::string(dtype_name(compute_))},
            {"device", dev_.str()},
            {"backend", fmt::format("libtorch {}", TORCH_VERSION)},
            {"threads", at::get_num_threads()}};
  }

  // audio.py log_mel_spectrogram on pad_or_trim(audio): centered STFT with reflect padding,
  // periodic Hann, last frame dropped, power, Slaney mel, log10(clamp 1e-10), floor at max-8,
  // (x + 4) / 4.
  wb::Tensor log_mel(const std::vector<float>& pcm16k, TapSink* taps) override {
    c10::InferenceMode inference;  // no autograd bookkeeping at all (stronger than NoGradGuard)
    std::vector<float> a = pad_or_trim(pcm16k);
    TT audio = torch::from_blob(a.data(), {static_cast<int64_t>(a.size())}, torch::kFloat32)
                   .clone()
                   .to(dev_, dt_);
    TT window =
        torch::hann_window(kNFft, torch::TensorOptions().dtype(dt_).device(dev_));  // periodic
    TT stft =
        torch::stft(audio, kNFft, kHop, kNFft, window, /*center=*/true, /*pad_mode=*/"reflect",
                    /*normalized=*/false, /*onesided=*/true, /*return_complex=*/true);
    TT magnitudes =
        stft.index({torch::indexing::Slice(), torch::indexing::Slice(0, -1)}).abs().pow(2);
    TT mel = torch::matmul(filters_, magnitudes);
    TT log_spec = torch::clamp(mel, 1e-10).log10();
    log_spec = torch::maximum(log_spec, log_spec.max() - 8.0);
    log_spec = (log_spec + 4.0) / 4.0;
    tap(taps, kMel, log_spec);
    return from_torch(log_spec);
  }

  // AudioEncoder.forward up to the blocks: conv1 (k3 p1), GELU, conv2 (k3 s2 p1), GELU,
  // permute to [T, C], + positional embedding.
  wb::Tensor stem(const wb::Tensor& mel_in, TapSink* taps) override {
    c10::InferenceMode inference;  // no autograd bookkeeping at all (stronger than NoGradGuard)
    const ModelDims& d = ck_->dims;
    TT mel = to_torch(mel_in).to(dev_, dt_);
    if (mel.dim() != 2 || mel.size(0) != d.n_mels || mel.size(1) != 2 * d.n_audio_ctx)
      throw std::invalid_argument(fmt::format("reference stem: mel {} does not match dims [{}, {}]",
                                              shape_str(mel_in.shape()), d.n_mels,
                                              2 * d.n_audio_ctx));
    TT x = gelu_erf(F::conv1d(mel.unsqueeze(0), W_["encoder.conv1.weight"],
                              F::Conv1dFuncOptions().bias(W_["encoder.conv1.bias"]).padding(1)));
    tap(taps, kConv1, x[0].t());
    x = gelu_erf(
        F::conv1d(x, W_["encoder.conv2.weight"],
                  F::Conv1dFuncOptions().bias(W_["encoder.conv2.bias"]).stride(2).padding(1)));
    x = x[0].t();  // [T, C]
    tap(taps, kConv2, x);
    x = x + W_["encoder.positional_embedding"];
    tap(taps, kPosEmbed, x);
    return from_torch(x);
  }

  // ResidualAttentionBlock (no cross-attention): x + attn(attn_ln(x)); x + mlp(mlp_ln(x)).
  wb::Tensor block(int i, const wb::Tensor& x_in, TapSink* taps) override {
    c10::InferenceMode inference;  // no autograd bookkeeping at all (stronger than NoGradGuard)
    const ModelDims& d = ck_->dims;
    if (i < 0 || i >= d.n_audio_layer)
      throw std::invalid_argument(fmt::format("reference: no encoder block {}", i));
    if (x_in.ndim() != 2 || x_in.dim(1) != d.n_audio_state)
      throw std::invalid_argument(fmt::format("reference block {}: input {} is not [T, {}]", i,
                                              shape_str(x_in.shape()), d.n_audio_state));
    const std::string p = fmt::format("encoder.blocks.{}", i);  // weight names
    auto tn = [i](std::string_view part) { return block_tap(TapSide::encoder, i, part); };
    TT x = to_torch(x_in).to(dev_, dt_);
    TT h = layer_norm(W_, p + ".attn_ln", x);
    tap(taps, tn("attn_ln"), h);
    TT q = linear(W_, p + ".attn.query", h), k = linear(W_, p + ".attn.key", h, false),
       v = linear(W_, p + ".attn.value", h);
    tap(taps, tn("attn.q"), q);
    tap(taps, tn("attn.k"), k);
    tap(taps, tn("attn.v"), v);
    TT a = linear(W_, p + ".attn.out", qkv_attention(q, k, v, d.n_audio_head, false));
    tap(taps, tn("attn.out"), a);
    x = x + a;
    tap(taps, tn("resid_attn"), x);
    return from_torch(mlp_residual(W_, p, TapSide::encoder, i, x, taps));
  }

  wb::Tensor ln_post(const wb::Tensor& x_in, TapSink* taps) override {
    c10::InferenceMode inference;  // no autograd bookkeeping at all (stronger than NoGradGuard)
    TT x = layer_norm(W_, "encoder.ln_post", to_torch(x_in).to(dev_, dt_));
    tap(taps, kLnPost, x);
    return from_torch(x);
  }

 private:
  std::shared_ptr<const Checkpoint> ck_;
  DType compute_;
  torch::Dtype dt_;
  torch::Device dev_;
  Weights W_;
  TT filters_;
};

}  // namespace

std::string reference_backend_version() { return std::string("libtorch ") + TORCH_VERSION; }

void set_reference_threads(int n) {
  if (n <= 0) return;
  if (at::get_num_threads() != n) at::set_num_threads(n);
  openblas_set_num_threads(n);  // LibTorch's GEMMs here run in OpenBLAS, whose threads are its own
}

std::unique_ptr<Encoder> make_reference_encoder(std::shared_ptr<const Checkpoint> model,
                                                DType compute, const std::string& device) {
  if (!model) throw std::invalid_argument("make_reference_encoder: no model");
  if (device != "cpu" && device != "cuda")
    throw std::invalid_argument("reference: unknown device '" + device + "' (cpu or cuda)");
  if (device == "cuda" && !torch::cuda::is_available())
    throw std::runtime_error(fmt::format(
        "--device cuda: this LibTorch ({}) has no usable CUDA (Debian's is CPU-only); the "
        "reference runs on the CPU, --impl cuda is the GPU encoder",
        TORCH_VERSION));
  return std::make_unique<ReferenceEncoder>(
      std::move(model), compute, device == "cuda" ? torch::Device(torch::kCUDA) : torch::kCPU);
}

// ---------------------------------------------------------------------------------------------
// TextDecoder: token + learned positional embedding, blocks with causal self-attention and
// cross-attention on the encoder output, ln, logits against the token embedding.
//
// Self-attention KV cache (model.py's kv_cache hooks): per block, the keys and values of every
// position run so far, in buffers [n_text_ctx, C] row-major of which rows [0, n) are filled. A
// forward over m new tokens computes their rows only and attends over rows [0, n + m). A full
// pass is the same forward from an empty cache, so the uncached decoder (every step from an
// empty cache over the whole prefix) runs the ops of the decoder before the cache, on the same
// shapes (only the cross-attention head views are now made once per decode: same values).
struct SelfKV {
  std::vector<TT> k, v;  // per block, [n_text_ctx, C]
  int64_t n = 0;         // positions filled
};

struct ReferenceDecoder::Impl {
  std::shared_ptr<const Checkpoint> ck;
  torch::Dtype dt;
  Weights W;

  SelfKV new_cache() const {
    const ModelDims& d = ck->dims;
    SelfKV c;
    for (int i = 0; i < d.n_text_layer; ++i) {
      c.k.push_back(torch::empty({d.n_text_ctx, d.n_text_state}, torch::TensorOptions().dtype(dt)));
      c.v.push_back(torch::empty({d.n_text_ctx, d.n_text_state}, torch::TensorOptions().dtype(dt)));
    }
    return c;
  }

  // Cross-attention keys and values depend only on the encoder output: computed once per
  // decode, already as the scaled head views the attention multiplies (kh [H, dh, n_audio_ctx],
  // vh [H, n_audio_ctx, dh]): the same ops and values as recomputing them at every step, which
  // cost an elementwise pass over [n_audio_ctx, C] per block and step.
  std::vector<std::pair<TT, TT>> cross_kv(const TT& xa) {
    std::vector<std::pair<TT, TT>> kv;
    const int h = ck->dims.n_text_head;
    for (int i = 0; i < ck->dims.n_text_layer; ++i) {
      const std::string p = fmt::format("decoder.blocks.{}.cross_attn", i);
      kv.emplace_back(heads_k(linear(W, p + ".key", xa, false), h),
                      heads_v(linear(W, p + ".value", xa), h));
    }
    return kv;
  }

  // Self-attention of block i for the rows h [m, C] at positions cache.n .. cache.n + m - 1:
  // their keys/values go into the cache, the queries attend causally over rows [0, n + m).
  // Taps k and v are the cache rows [0, n + m) (in a full pass, all positions).
  TT self_attention(int i, const TT& h, SelfKV& cache, TapSink* taps) {
    const std::string p = fmt::format("decoder.blocks.{}.attn", i);
    const int64_t off = cache.n, m = h.size(0);
    TT q = linear(W, p + ".query", h);
    tap(taps, block_tap(TapSide::decoder, i, "attn.q"), q);
    auto ui = static_cast<std::size_t>(i);
    cache.k[ui].slice(0, off, off + m).copy_(linear(W, p + ".key", h, false));
    cache.v[ui].slice(0, off, off + m).copy_(linear(W, p + ".value", h));
    TT k = cache.k[ui].slice(0, 0, off + m), v = cache.v[ui].slice(0, 0, off + m);
    tap(taps, block_tap(TapSide::decoder, i, "attn.k"), k);
    tap(taps, block_tap(TapSide::decoder, i, "attn.v"), v);
    TT out = linear(W, p + ".out", qkv_attention(q, k, v, ck->dims.n_text_head, true, off));
    tap(taps, block_tap(TapSide::decoder, i, "attn.out"), out);
    return out;
  }

  TT cross_attention(int i, const TT& h, const std::pair<TT, TT>& kv, TapSink* taps) {
    const std::string p = fmt::format("decoder.blocks.{}.cross_attn", i);
    TT q = linear(W, p + ".query", h);
    tap(taps, block_tap(TapSide::decoder, i, "cross_attn.q"), q);
    TT out =
        linear(W, p + ".out", attend(heads_q(q, ck->dims.n_text_head), kv.first, kv.second, false));
    tap(taps, block_tap(TapSide::decoder, i, "cross_attn.out"), out);
    return out;
  }

  // Logits [m, n_vocab] of tokens [m] at positions cache.n .. cache.n + m - 1, whose keys and
  // values are appended to the cache. With last_only, logits of the last position only.
  TT forward(const std::vector<int>& tokens, const std::vector<std::pair<TT, TT>>& xkv,
             SelfKV& cache, TapSink* taps, bool last_only = false) {
    const ModelDims& d = ck->dims;
    const auto m = static_cast<int64_t>(tokens.size()), off = cache.n;
    if (m == 0 || off + m > d.n_text_ctx)
      throw std::invalid_argument(fmt::format("decoder: positions {}..{} outside n_text_ctx {}",
                                              off, off + m - 1, d.n_text_ctx));
    TT ids = torch::tensor(std::vector<int64_t>(tokens.begin(), tokens.end()), torch::kInt64);
    TT x = W["decoder.token_embedding.weight"].index_select(0, ids) +
           W["decoder.positional_embedding"].slice(0, off, off + m);
    tap(taps, kDecoderEmbed, x);
    for (int i = 0; i < d.n_text_layer; ++i) {
      const std::string p = fmt::format("decoder.blocks.{}", i);  // weight names
      auto tn = [i](std::string_view part) { return block_tap(TapSide::decoder, i, part); };
      TT h = layer_norm(W, p + ".attn_ln", x);
      tap(taps, tn("attn_ln"), h);
      x = x + self_attention(i, h, cache, taps);
      tap(taps, tn("resid_attn"), x);
      h = layer_norm(W, p + ".cross_attn_ln", x);
      tap(taps, tn("cross_attn_ln"), h);
      x = x + cross_attention(i, h, xkv[static_cast<std::size_t>(i)], taps);
      tap(taps, tn("resid_cross"), x);
      x = mlp_residual(W, p, TapSide::decoder, i, x, taps);
    }
    cache.n = off + m;
    x = layer_norm(W, "decoder.ln", x);
    tap(taps, kDecoderLn, x);
    const TT& emb = W["decoder.token_embedding.weight"];  // [n_vocab, C]
    if (last_only) x = x.slice(0, m - 1, m);
    // One new row: gemv, as in linear(); otherwise the gemm of model.py.
    TT logits = m == 1 ? torch::mv(emb, x[0]).unsqueeze(0) : torch::matmul(x, emb.t());
    tap(taps, kLogits, logits);
    return logits;
  }

  std::vector<std::pair<TT, TT>> checked_cross_kv(const wb::Tensor& encoder_out) {
    const ModelDims& d = ck->dims;
    if (encoder_out.ndim() != 2 || encoder_out.dim(1) != d.n_text_state)
      throw std::invalid_argument(fmt::format("decoder: encoder output {} is not [T, {}]",
                                              shape_str(encoder_out.shape()), d.n_text_state));
    return cross_kv(to_torch(encoder_out).to(dt));
  }
};

ReferenceDecoder::ReferenceDecoder(std::shared_ptr<const Checkpoint> model, DType compute)
    : impl_(std::make_unique<Impl>()) {
  impl_->ck = std::move(model);
  impl_->dt = torch_dtype(compute);
  impl_->W = convert(*impl_->ck, impl_->dt);
}

ReferenceDecoder::~ReferenceDecoder() = default;

DecodeResult ReferenceDecoder::greedy(const wb::Tensor& encoder_out, TapSink* taps,
                                      int max_tokens) {
  DecodeOptions o;
  o.max_tokens = max_tokens;
  return greedy(encoder_out, taps, o);
}

namespace {

// torch.argmax of logits [1, n_vocab] with every index above `last` set to -inf: the first index
// of the largest of logits[0 .. last], a NaN counting as the largest. A plain loop over the row,
// where the torch ops copied the n_vocab logits twice per step.
template <typename T>
int argmax_upto(const T* p, int last) {
  int best = 0;
  for (int i = 1; i <= last && !std::isnan(p[best]); ++i)
    if (std::isnan(p[i]) || p[i] > p[best]) best = i;
  return best;
}

// LibTorch's intra-op (OpenMP) threads set to 1 for a scope; BLAS keeps its own threads. A
// cached decoder step is a chain of small ops on one row; the few that cross LibTorch's
// parallel grain opened OpenMP regions whose workers then spun while OpenBLAS's threads ran the
// next matrix-vector product on the same cores: 224 tiny-dims steps took 31-41 s instead of
// 1.8-4.4 s on 2 cores (measured interleaved, 2 threads).
class SerialTorchOps {
 public:
  SerialTorchOps() : saved_(at::get_num_threads()) { at::set_num_threads(1); }
  ~SerialTorchOps() { at::set_num_threads(saved_); }
  SerialTorchOps(const SerialTorchOps&) = delete;
  SerialTorchOps& operator=(const SerialTorchOps&) = delete;

 private:
  int saved_;
};

int greedy_pick(const TT& logits, int last) {
  TT row = logits.contiguous();
  return row.scalar_type() == torch::kFloat64 ? argmax_upto(row.data_ptr<double>(), last)
                                              : argmax_upto(row.data_ptr<float>(), last);
}

}  // namespace

// Greedy decoding without timestamps: prompt sot <|en|> transcribe notimestamps; at each step
// special tokens other than eot are suppressed (text-only decoding), and eot is suppressed at
// the first step (whisper's SuppressBlank). Stops at eot or after n_text_ctx/2 tokens.
// Cached: step 0 runs the prompt, each later step the one token chosen before it.
DecodeResult ReferenceDecoder::greedy(const wb::Tensor& encoder_out, TapSink* taps,
                                      const DecodeOptions& opts) {
  c10::InferenceMode inference;  // no autograd bookkeeping at all (stronger than NoGradGuard)
  const ModelDims& d = impl_->ck->dims;
  const Vocabulary& v = impl_->ck->vocab;
  const auto xkv = impl_->checked_cross_kv(encoder_out);
  std::vector<int> tokens = v.initial_prompt();
  const int prompt = static_cast<int>(tokens.size());
  const int limit =
      std::min(opts.max_tokens > 0 ? opts.max_tokens : d.n_text_ctx / 2, d.n_text_ctx - prompt);
  SelfKV cache = impl_->new_cache();
  // Full-recompute steps are large (every position): they keep the configured threads.
  std::optional<SerialTorchOps> serial;
  if (opts.kv_cache) serial.emplace();
  std::vector<int> feed = tokens;  // what this step runs
  std::vector<TT> kept;
  DecodeResult r;
  for (int step = 0; step < limit; ++step) {
    if (!opts.kv_cache) {
      cache.n = 0;
      feed = tokens;
    }
    TT logits = impl_->forward(feed, xkv, cache, nullptr, true);  // [1, n_vocab]
    if (opts.keep_logits) kept.push_back(logits.select(0, 0).clone());
    // Specials after eot suppressed, eot too at step 0.
    const int next = greedy_pick(logits, step == 0 ? v.eot() - 1 : v.eot());
    if (next == v.eot()) break;
    tokens.push_back(next);
    r.tokens.push_back(next);
    feed.assign(1, next);
  }
  serial.reset();
  if (taps != nullptr) {
    SelfKV full = impl_->new_cache();
    impl_->forward(tokens, xkv, full, taps);
  }
  if (opts.keep_logits && !kept.empty()) r.logits = from_torch(torch::stack(kept));
  r.text = v.decode(r.tokens);
  return r;
}

wb::Tensor ReferenceDecoder::teacher_forced(const wb::Tensor& encoder_out,
                                            const std::vector<int>& tokens, TapSink* taps,
                                            bool kv_cache) {
  c10::InferenceMode inference;  // no autograd bookkeeping at all (stronger than NoGradGuard)
  const auto xkv = impl_->checked_cross_kv(encoder_out);
  SelfKV cache = impl_->new_cache();
  const auto n = static_cast<std::ptrdiff_t>(tokens.size());
  const auto prompt = static_cast<std::ptrdiff_t>(impl_->ck->vocab.initial_prompt().size());
  if (taps != nullptr || !kv_cache || n <= prompt)
    return from_torch(impl_->forward(tokens, xkv, cache, taps));
  const SerialTorchOps serial;
  std::vector<TT> rows{
      impl_->forward({tokens.begin(), tokens.begin() + prompt}, xkv, cache, nullptr)};
  for (std::ptrdiff_t i = prompt; i < n; ++i)
    rows.push_back(impl_->forward({tokens[static_cast<std::size_t>(i)]}, xkv, cache, nullptr));
  return from_torch(torch::cat(rows, 0));
}

std::vector<int> ReferenceDecoder::greedy_choices(const wb::Tensor& logits) const {
  const Vocabulary& v = impl_->ck->vocab;
  const auto prompt = static_cast<int64_t>(v.initial_prompt().size());
  if (logits.ndim() != 2 || logits.dim(0) < prompt || logits.dim(1) <= v.eot())
    throw std::invalid_argument(
        fmt::format("greedy_choices: logits {} are not teacher-forced rows of a prompt of {}",
                    shape_str(logits.shape()), prompt));
  const int64_t nv = logits.dim(1);
  std::vector<int> out;
  for (int64_t row = prompt - 1; row < logits.dim(0); ++row) {
    const int last = row == prompt - 1 ? v.eot() - 1 : v.eot();
    out.push_back(logits.dtype() == DType::f64 ? argmax_upto(logits.f64() + row * nv, last)
                                               : argmax_upto(logits.f32() + row * nv, last));
  }
  return out;
}

int ReferenceDecoder::eot() const { return impl_->ck->vocab.eot(); }

int ReferenceDecoder::prompt_length() const {
  return static_cast<int>(impl_->ck->vocab.initial_prompt().size());
}

}  // namespace wb
