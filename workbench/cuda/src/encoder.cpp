// The CUDA candidate encoder. Weights are uploaded once (immutable for the encoder's life);
// per-call buffers live on the device; the seam's host tensors are uploaded at each stage's entry
// and its result downloaded at its exit. A tap is copied to the host only when the sink wants it.
#include <cublasLt.h>
#include <cuda_runtime.h>
#include <cufft.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <stdexcept>
#include <tuple>

#include "device.h"
#include "kernels.h"
#include "wb/core/audio.h"
#include "wb/core/faults.h"
#include "wb/core/util.h"
#include "wb/cuda/cuda_encoder.h"

namespace wb::cuda {
namespace {

Act act_of(Precision p) {
  switch (p) {
    case Precision::bfloat16:
      return Act::bf16;
    case Precision::float16:
      return Act::f16;
    case Precision::float32:
      break;
  }
  return Act::f32;
}
// The shared table's switches: this backend implements every one (unknown names fail here).
Faults parse_supported_faults(const std::vector<std::string>& specs) { return parse_faults(specs); }

std::string device_reason(int device) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("no CUDA device: {}", cudaGetErrorString(e));
  }
  if (n == 0) return "no CUDA device: none found";
  if (device < 0 || device >= n)
    return fmt::format("no CUDA device {}: {} device(s) present", device, n);
  return {};
}

struct LnW {
  Buf g, b;
};
struct BlockW {
  LnW attn_ln, mlp_ln;
  Buf qkv, qkv_b, out, out_b, fc1, fc1_b, fc2, fc2_b;  // matrices in the GEMM input type
  Buf qkv_b16, fc1_b16;  // reduced modes: biases in the 16-bit type (GEMMs with 16-bit outputs)
};

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

class CudaEncoder final : public Encoder {
 public:
  CudaEncoder(const ModelDims& d, std::shared_ptr<const Checkpoint> ckpt, const Options& o,
              uint64_t seed)
      : ck_(std::move(ckpt)),
        d_(d),
        act_(act_of(o.precision)),
        faults_(parse_supported_faults(o.faults)),
        sync_taps_(o.sync_taps) {
    d_.validate();
    if (const std::string why = device_reason(o.device); !why.empty())
      throw std::runtime_error(why);
    ck(cudaSetDevice(o.device), "cudaSetDevice");
    cudaDeviceProp prop{};
    ck(cudaGetDeviceProperties(&prop, o.device), "cudaGetDeviceProperties");
    device_name_ = prop.name;
    ck(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "stream");
    gemm_ = std::make_unique<Gemm>(act_, s_);
    load(seed);
    alloc();
  }
  ~CudaEncoder() override {
    if (copy_s_ != nullptr) cudaStreamSynchronize(copy_s_);
    if (snap_done_ != nullptr) cudaEventDestroy(snap_done_);
    if (copy_s_ != nullptr) cudaStreamDestroy(copy_s_);
    if (stage_host_ != nullptr) cudaFreeHost(stage_host_);
    if (graph_exec_ != nullptr) cudaGraphExecDestroy(graph_exec_);
    if (fft_ != 0) cufftDestroy(fft_);
    if (pinned_ != nullptr) cudaFreeHost(pinned_);
    gemm_.reset();
    if (s_ != nullptr) cudaStreamDestroy(s_);
  }

  std::string implementation() const override { return "cuda"; }
  nlohmann::json run_info() const override {
    return {
        {"precision", act_name(act_)},
        {"device", "cuda:" + device_name_},
        {"threads", 1},
        {"faults", faults_.specs},
        {"gemm", gemm_->describe()},
        {"attention",
         flash_ ? "FlashAttention-2 style on tensor cores (mma.sync m16n8k16; 16-bit q, k, v "
                  "and P; float32 softmax statistics and accumulation)"
                : "flash-style, one query per thread, online softmax, float32 on CUDA cores "
                  "(inputs rounded to the GEMM type in reduced modes)"},
        {"gemm_16bit_outputs",
         act_ == Act::f32 ? std::string("none")
                          : std::string(flash_ && qkv16_direct_ ? "qkv; " : "") +
                                (fc1_16_direct_ ? "fc1 (GELU on the 16-bit pre-activation)" : "")},
        {"frontend", "cuFFT R2C float32"}};
  }
  int n_layers() const override { return d_.n_audio_layer; }
  const CopyCounts& copy_counts() const { return copies_; }

  Tensor log_mel(const std::vector<float>& pcm16k, TapSink* taps) override {
    const std::vector<float> pcm = pad_or_trim(pcm16k, kNSamples);
    ck(cudaMemcpyAsync(pcm_.get(), pcm.data(), pcm.size() * 4, cudaMemcpyHostToDevice, s_),
       "upload pcm");
    mel_dev();
    Tensor mel(DType::f32, {d_.n_mels, kNFrames});
    download(mel_.f(), mel);
    ++copies_.result_copies;
    report(taps, "mel", mel.shape(), DType::f32, mel.f32());
    return mel;
  }

  Tensor stem(const Tensor& mel, TapSink* taps) override {
    check(mel, {d_.n_mels, 2 * d_.n_audio_ctx}, "stem: mel");
    upload(mel, mel_.f());
    stem_dev(taps);
    Tensor y = result(x_.f());
    flush(taps);
    return y;
  }

  Tensor block(int i, const Tensor& x, TapSink* taps) override {
    if (i < 0 || i >= d_.n_audio_layer)
      throw std::invalid_argument(
          fmt::format("cuda block: index {} not in [0, {})", i, d_.n_audio_layer));
    check(x, {d_.n_audio_ctx, d_.n_audio_state}, "block: input");
    upload(x, x_.f());
    block_dev(i, taps);
    Tensor y = result(x_.f());
    flush(taps);
    return y;
  }

  Tensor ln_post(const Tensor& x, TapSink* taps) override {
    check(x, {d_.n_audio_ctx, d_.n_audio_state}, "ln_post: input");
    upload(x, x_.f());
    ln_post_dev(taps);
    Tensor y = result(y_.f());
    flush(taps);
    return y;
  }

  // Timing: stem + blocks + ln_post from the mel already on the device, no taps.
  void forward_dev() {
    stem_dev(nullptr);
    for (int i = 0; i < d_.n_audio_layer; ++i) block_dev(i, nullptr);
    ln_post_dev(nullptr);
  }
  void random_mel() { launch_fill_uniform(mel_.get(), Act::f32, mel_numel(), 7, 1.0f, 0.0f, s_); }
  cudaStream_t stream() const { return s_; }
  const std::string& device_name() const { return device_name_; }
  void capture() {
    cudaGraph_t g = nullptr;
    ck(cudaStreamBeginCapture(s_, cudaStreamCaptureModeThreadLocal), "begin capture");
    forward_dev();
    ck(cudaStreamEndCapture(s_, &g), "end capture");
    ck(cudaGraphInstantiate(&graph_exec_, g, 0), "graph instantiate");
    cudaGraphDestroy(g);
  }
  void replay() { ck(cudaGraphLaunch(graph_exec_, s_), "graph launch"); }
  // One stream run with an event after every op: milliseconds per op kind.
  std::map<std::string, double> profile_once() {
    prof_on_ = true;
    mark("start");
    forward_dev();
    prof_on_ = false;
    ck(cudaStreamSynchronize(s_), "profile sync");
    std::map<std::string, double> ms;
    for (std::size_t i = 1; i < marks_.size(); ++i) {
      float x = 0;
      ck(cudaEventElapsedTime(&x, marks_[i - 1].second, marks_[i].second), "elapsed");
      ms[marks_[i].first] += x;
    }
    for (auto& [l, e] : marks_) cudaEventDestroy(e);
    marks_.clear();
    return ms;
  }

 private:
  int64_t mel_numel() const { return static_cast<int64_t>(d_.n_mels) * 2 * d_.n_audio_ctx; }

  void load(uint64_t seed) {
    WeightSource w(ck_.get(), seed, act_, s_);
    const int c = d_.n_audio_state, nm = d_.n_mels, t = d_.n_audio_ctx;
    const float bias_scale = 0.02f;
    conv1_ = w.matrix(w.host("encoder.conv1.weight", {c, nm, 3}), c, nm * 3);
    conv1_b_ = w.vec("encoder.conv1.bias", {c}, bias_scale, 0);
    // Fault conv-bias-drop: conv1's bias of output channel 0 not added (zeroed on the device).
    if (faults_.conv_bias_drop) ck(cudaMemsetAsync(conv1_b_.get(), 0, 4, s_), "memset");
    {
      // conv2 repacked [C, 3C] with column k * C + ci, so im2col rows are row copies.
      const float* src = w.host("encoder.conv2.weight", {c, c, 3});
      std::vector<float> r;
      if (src != nullptr) {
        r.resize(static_cast<std::size_t>(c) * 3 * c);
        for (int co = 0; co < c; ++co)
          for (int ci = 0; ci < c; ++ci)
            for (int k = 0; k < 3; ++k)
              r[(static_cast<std::size_t>(co) * 3 + k) * c + ci] =
                  src[(static_cast<std::size_t>(co) * c + ci) * 3 + k];
      }
      conv2_ = w.matrix(src != nullptr ? r.data() : nullptr, c, 3 * c);
    }
    conv2_b_ = w.vec("encoder.conv2.bias", {c}, bias_scale, 0);
    pos_ = w.vec("encoder.positional_embedding", {t, c}, 1.0f, 0);
    auto ln = [&](const std::string& p) {
      return LnW{w.vec(p + ".weight", {c}, 0.1f, 1.0f), w.vec(p + ".bias", {c}, bias_scale, 0)};
    };
    for (int i = 0; i < d_.n_audio_layer; ++i) {
      const std::string p = fmt::format("encoder.blocks.{}.", i);
      BlockW b;
      b.attn_ln = ln(p + "attn_ln");
      b.mlp_ln = ln(p + "mlp_ln");
      {
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
          launch_fill_uniform(b.qkv_b.get(), Act::f32, 3 * c, seed + 1000 + i, bias_scale, 0, s_);
        else
          ck(cudaMemcpy(b.qkv_b.get(), qkv_b.data(), qkv_b.size() * 4, cudaMemcpyHostToDevice),
             "upload");
        if (act_ != Act::f32) {
          b.qkv_b16 = Buf(2 * static_cast<std::size_t>(3 * c));
          launch_convert(b.qkv_b.f(), b.qkv_b16.get(), act_, 3 * c, s_);
        }
      }
      b.out = w.matrix(w.host(p + "attn.out.weight", {c, c}), c, c);
      b.out_b = w.vec(p + "attn.out.bias", {c}, bias_scale, 0);
      b.fc1 = w.matrix(w.host(p + "mlp.0.weight", {4 * c, c}), 4 * c, c);
      b.fc1_b = w.vec(p + "mlp.0.bias", {4 * c}, bias_scale, 0);
      if (act_ != Act::f32) {
        b.fc1_b16 = Buf(2 * static_cast<std::size_t>(4 * c));
        launch_convert(b.fc1_b.f(), b.fc1_b16.get(), act_, 4 * c, s_);
      }
      b.fc2 = w.matrix(w.host(p + "mlp.2.weight", {c, 4 * c}), c, 4 * c);
      b.fc2_b = w.vec(p + "mlp.2.bias", {c}, bias_scale, 0);
      blocks_.push_back(std::move(b));
    }
    ln_post_ = ln("encoder.ln_post");
    // Front end constants: periodic Hann window and Slaney filters.
    std::vector<float> win(kNFft);
    for (int n = 0; n < kNFft; ++n)
      win[static_cast<std::size_t>(n)] =
          static_cast<float>(0.5 - 0.5 * std::cos(2.0 * M_PI * n / static_cast<double>(kNFft)));
    window_ = Buf(win.size() * 4);
    ck(cudaMemcpy(window_.get(), win.data(), win.size() * 4, cudaMemcpyHostToDevice), "upload");
    const std::vector<double> f64 = mel_filters(nm, kNFft, kSampleRate);
    const std::vector<float> f32(f64.begin(), f64.end());
    filters_ = Buf(f32.size() * 4);
    ck(cudaMemcpy(filters_.get(), f32.data(), f32.size() * 4, cudaMemcpyHostToDevice), "upload");
    ck(cudaStreamSynchronize(s_), "load");
  }

  void alloc() {
    flash_ = act_ != Act::f32 && d_.n_audio_state == 64 * d_.n_audio_head;
    const int64_t c = d_.n_audio_state, t = d_.n_audio_ctx, t2 = 2 * t, nm = d_.n_mels;
    const int as = act_size(act_);
    pcm_ = Buf(kNSamples * 4);
    frames_ = Buf(static_cast<std::size_t>(kNFrames) * kNFft * 4);
    spec_ = Buf(static_cast<std::size_t>(kNFrames) * (kNFft / 2 + 1) * 8);
    mel_ = Buf(static_cast<std::size_t>(nm * t2) * 4);
    scratch_ = Buf(64);
    col_ = Buf(static_cast<std::size_t>(std::max(t2 * nm * 3, t * 3 * c) * as));
    h1_ = Buf(static_cast<std::size_t>(t2 * c) * 4);
    x_ = Buf(static_cast<std::size_t>(t * c) * 4);
    y_ = Buf(static_cast<std::size_t>(t * c) * 4);
    a_ = Buf(static_cast<std::size_t>(t * c) * 4);
    ln32_ = Buf(static_cast<std::size_t>(t * c) * 4);
    lnact_ = Buf(static_cast<std::size_t>(t * c) * as);
    qkv_ = Buf(static_cast<std::size_t>(t * 3 * c) * 4);
    // 16-bit q | k | v for the tensor-core attention: rows padded to whole tiles, kept zero.
    if (flash_) {
      const std::size_t bytes = static_cast<std::size_t>(flash_rows(d_.n_audio_ctx)) * 3 * c * 2;
      qkv16_ = Buf(bytes);
      ck(cudaMemset(qkv16_.get(), 0, bytes), "memset");
      flash_ws_ = Buf(flash_workspace_bytes(d_.n_audio_ctx, d_.n_audio_state));
      qkv16_direct_ =
          gemm_->supported(d_.n_audio_ctx, 3 * d_.n_audio_state, d_.n_audio_state, true, act_);
    }
    fc1_16_direct_ =
        act_ != Act::f32 && (4 * c) % 8 == 0 &&
        gemm_->supported(d_.n_audio_ctx, 4 * d_.n_audio_state, d_.n_audio_state, true, act_);
    o_ = Buf(static_cast<std::size_t>(t * c) * as);
    f_ = Buf(static_cast<std::size_t>(t * 4 * c) * 4);
    g_ = Buf(static_cast<std::size_t>(t * 4 * c) * as);
    if (sync_taps_) {
      pinned_bytes_ = static_cast<std::size_t>(std::max({t * 4 * c, nm * t2, t2 * c})) * 4;
      ck(cudaMallocHost(&pinned_, pinned_bytes_), "cudaMallocHost");
    }
    int n = kNFft;
    ck(cufftPlanMany(&fft_, 1, &n, nullptr, 1, kNFft, nullptr, 1, kNFft / 2 + 1, CUFFT_R2C,
                     kNFrames),
       "plan");
    ck(cufftSetStream(fft_, s_), "set stream");
  }

  // ---- stages on the device ----
  void mel_dev() {
    // Fault stft-keep-last-frame: frames 1..3000 instead of 0..2999; stft-no-reflect: zeros.
    launch_frame_window(pcm_.f(), kNSamples, window_.f(), frames_.f(), kNFrames, kNFft, kHop,
                        faults_.stft_keep_last ? 1 : 0, !faults_.stft_no_reflect, s_);
    ck(cufftExecR2C(fft_, frames_.f(), static_cast<cufftComplex*>(spec_.get())), "R2C");
    launch_mel_power(spec_.f(), filters_.f(), mel_.f(), d_.n_mels, kNFrames, kNFft / 2 + 1, s_);
    launch_log_mel(mel_.f(), mel_numel(), faults_.mel_db, static_cast<uint32_t*>(scratch_.get()),
                   s_);
  }

  void stem_dev(TapSink* taps) {
    const Faults fs = faults_.at(-1);
    const int c = d_.n_audio_state, nm = d_.n_mels, t = d_.n_audio_ctx, t2 = 2 * t;
    const int pad = fs.conv_pad;
    const bool tanh = fs.gelu_tanh;
    // conv1 (k3, s1, p1): im2col [2T, 3 n_mels] x W1^T + b1, GELU
    launch_im2col_conv1(mel_.f(), col_.get(), act_, nm, t2, pad, s_);
    mark("im2col");
    gemm(col_.get(), conv1_.get(), conv1_b_.f(), nullptr, h1_.f(), t2, c, nm * 3);
    launch_gelu(h1_.f(), h1_.f(), nullptr, Act::f32, static_cast<int64_t>(t2) * c, tanh, s_);
    mark("gelu");
    tap(taps, "encoder.conv1", h1_.f(), t2, c);
    // conv2 (k3, s2, p1): im2col [T, 3C] x W2^T + b2, GELU, + positions
    launch_im2col_conv2(h1_.f(), col_.get(), act_, c, t2, t, pad, s_);
    mark("im2col");
    gemm(col_.get(), conv2_.get(), conv2_b_.f(), nullptr, x_.f(), t, c, 3 * c);
    launch_gelu(x_.f(), x_.f(), nullptr, Act::f32, static_cast<int64_t>(t) * c, tanh, s_);
    mark("gelu");
    tap(taps, "encoder.conv2", x_.f(), t, c);
    // Fault no-pos-embed: x reported unchanged under encoder.pos_embed.
    if (!fs.no_pos_embed) launch_add(x_.f(), pos_.f(), x_.f(), static_cast<int64_t>(t) * c, s_);
    mark("add");
    tap(taps, "encoder.pos_embed", x_.f(), t, c);
  }

  // x_ -> x_ (through y_).
  void block_dev(int i, TapSink* taps) {
    const Faults fs = faults_.at(i);
    const int c = d_.n_audio_state, t = d_.n_audio_ctx, heads = d_.n_audio_head;
    const BlockW& b = blocks_[static_cast<std::size_t>(i)];
    auto tn = [i](std::string_view part) { return block_tap(TapSide::encoder, i, part); };
    const float eps = fs.ln_eps.value_or(1e-5f);
    // attn_ln
    layer_norm(x_.f(), b.attn_ln, taps, tn("attn_ln"), eps, fs.ln_fp16);
    // q | k | v = h Wqkv^T + [bq, 0, bv]   [T, 3C]: float32, or straight into the 16-bit buffer
    // of the tensor-core attention when no q/k/v tap is wanted
    const char* names[3] = {"attn.q", "attn.k", "attn.v"};
    bool want_qkv = false;
    for (const char* n : names) want_qkv = want_qkv || wanted(taps, tn(n));
    if (flash_ && qkv16_direct_) {
      // taps show the 16-bit values the attention reads
      gemm(lnact_.get(), b.qkv.get(), b.qkv_b16.get(), nullptr, qkv16_.get(), t, 3 * c, c, act_);
      if (want_qkv) {
        launch_to_f32(qkv16_.get(), act_, qkv_.f(), static_cast<int64_t>(t) * 3 * c, s_);
        for (int j = 0; j < 3; ++j) tap(taps, tn(names[j]), qkv_.f() + j * c, t, c, 3 * c);
      }
    } else {
      gemm(lnact_.get(), b.qkv.get(), b.qkv_b.f(), nullptr, qkv_.f(), t, 3 * c, c);
      for (int j = 0; j < 3; ++j) tap(taps, tn(names[j]), qkv_.f() + j * c, t, c, 3 * c);
      if (flash_) {
        launch_convert(qkv_.f(), qkv16_.get(), act_, static_cast<int64_t>(t) * 3 * c, s_);
        mark("convert");
      }
    }
    // softmax(q k^T / sqrt(d_head)) v; faults: attn-scale=none (1), =double (1 / d_head)
    const double dh = static_cast<double>(c / heads);
    double alpha = 1.0 / std::sqrt(dh);
    if (fs.attn_scale == AttnScale::none) alpha = 1.0;
    if (fs.attn_scale == AttnScale::twice) alpha = 1.0 / dh;
    if (flash_)
      launch_flash_attention(qkv16_.get(), o_.get(), act_, t, c, heads, static_cast<float>(alpha),
                             flash_ws_.f(), s_);
    else
      launch_attention(qkv_.f(), o_.get(), act_, t, c, heads, static_cast<float>(alpha),
                       act_ != Act::f32, s_);
    mark("attention");
    // y = x + (o Wo^T + bo), the residual in the GEMM's epilogue. The attn.out tap is a second
    // GEMM without the residual, so that selecting it leaves y as it is without taps.
    gemm(o_.get(), b.out.get(), b.out_b.f(), x_.f(), y_.f(), t, c, c);
    if (wanted(taps, tn("attn.out"))) {
      gemm(o_.get(), b.out.get(), b.out_b.f(), nullptr, a_.f(), t, c, c);
      tap(taps, tn("attn.out"), a_.f(), t, c);
    }
    tap(taps, tn("resid_attn"), y_.f(), t, c);
    // mlp_ln, fc1 + bias (epilogue), exact GELU (own kernel: cuBLASLt's GELU is tanh)
    layer_norm(y_.f(), b.mlp_ln, taps, tn("mlp_ln"), eps, fs.ln_fp16);
    const int c4 = 4 * c;
    if (fc1_16_direct_) {
      // Reduced modes: fc1 writes 16-bit pre-activations (float32 accumulation), GELU in place;
      // taps show those 16-bit values, so observing changes nothing.
      gemm(lnact_.get(), b.fc1.get(), b.fc1_b16.get(), nullptr, g_.get(), t, c4, c, act_);
      if (wanted(taps, tn("mlp.fc1"))) {
        launch_to_f32(g_.get(), act_, f_.f(), static_cast<int64_t>(t) * c4, s_);
        tap(taps, tn("mlp.fc1"), f_.f(), t, c4);
      }
      launch_gelu16(g_.get(), act_, static_cast<int64_t>(t) * c4, fs.gelu_tanh, s_);
      mark("gelu");
      if (wanted(taps, tn("mlp.gelu"))) {
        launch_to_f32(g_.get(), act_, f_.f(), static_cast<int64_t>(t) * c4, s_);
        tap(taps, tn("mlp.gelu"), f_.f(), t, c4);
      }
    } else {
      gemm(lnact_.get(), b.fc1.get(), b.fc1_b.f(), nullptr, f_.f(), t, c4, c);
      tap(taps, tn("mlp.fc1"), f_.f(), t, c4);
      const bool want_gelu = wanted(taps, tn("mlp.gelu"));
      if (act_ == Act::f32) {
        launch_gelu(f_.f(), f_.f(), nullptr, Act::f32, static_cast<int64_t>(t) * c4, fs.gelu_tanh,
                    s_);
        mark("gelu");
        tap(taps, tn("mlp.gelu"), f_.f(), t, c4);
      } else {
        launch_gelu(f_.f(), want_gelu ? f_.f() : nullptr, g_.get(), act_,
                    static_cast<int64_t>(t) * c4, fs.gelu_tanh, s_);
        mark("gelu");
        if (want_gelu) tap(taps, tn("mlp.gelu"), f_.f(), t, c4);
      }
    }
    const void* g = act_ == Act::f32 ? f_.get() : g_.get();
    // x = y + (g W2^T + b2), likewise (the mlp.fc2 tap a second GEMM)
    gemm(g, b.fc2.get(), b.fc2_b.f(), y_.f(), x_.f(), t, c, c4);
    if (wanted(taps, tn("mlp.fc2"))) {
      gemm(g, b.fc2.get(), b.fc2_b.f(), nullptr, a_.f(), t, c, c4);
      tap(taps, tn("mlp.fc2"), a_.f(), t, c);
    }
    tap(taps, tn("out"), x_.f(), t, c);
  }

  // x_ -> y_
  void ln_post_dev(TapSink* taps) {
    const Faults fs = faults_.at(-1);
    const int c = d_.n_audio_state, t = d_.n_audio_ctx;
    if (fs.no_ln_post)  // fault: the output is the last block's, unnormalised
      ck(cudaMemcpyAsync(y_.get(), x_.get(), static_cast<std::size_t>(t) * c * 4,
                         cudaMemcpyDeviceToDevice, s_),
         "copy");
    else if (fs.ln_fp16)  // as the CPU candidate: an unlimited ln-fp16 reaches ln_post too
      launch_layer_norm_f16_stats(x_.f(), ln_post_.g.f(), ln_post_.b.f(), y_.f(), nullptr, Act::f32,
                                  t, c, fs.ln_eps.value_or(1e-5f), s_);
    else
      launch_layer_norm(x_.f(), ln_post_.g.f(), ln_post_.b.f(), y_.f(), nullptr, Act::f32, t, c,
                        fs.ln_eps.value_or(1e-5f), s_);
    mark("layer_norm");
    tap(taps, "encoder.ln_post", y_.f(), t, c);
  }

  void gemm(const void* x, const void* w, const void* bias, const float* r, void* y, int m, int n,
            int k, Act out = Act::f32) {
    gemm_->run(x, w, bias, r, y, m, n, k, out);
    mark("gemm");
  }

  // Profiling (timing mode, stream launches only): an event after each op; the time since the
  // previous event is the op's.
  void mark(const char* label) {
    if (!prof_on_) return;
    cudaEvent_t e = nullptr;
    ck(cudaEventCreate(&e), "event");
    ck(cudaEventRecord(e, s_), "record");
    marks_.emplace_back(label, e);
  }

  // LN(x) -> lnact_ (GEMM input); the float32 values go to the tap when it is wanted.
  // f16_stats: the fault ln-fp16.
  void layer_norm(const float* x, const LnW& w, TapSink* taps, const std::string& name, float eps,
                  bool f16_stats) {
    const int c = d_.n_audio_state, t = d_.n_audio_ctx;
    const bool want = wanted(taps, name);
    float* y32 = act_ == Act::f32 ? nullptr : (want ? ln32_.f() : nullptr);
    if (f16_stats)
      launch_layer_norm_f16_stats(x, w.g.f(), w.b.f(), y32, lnact_.get(), act_, t, c, eps, s_);
    else
      launch_layer_norm(x, w.g.f(), w.b.f(), y32, lnact_.get(), act_, t, c, eps, s_);
    mark("layer_norm");
    if (want) tap(taps, name, act_ == Act::f32 ? lnact_.f() : ln32_.f(), t, c);
  }

  // A wanted [rows, cols] float tap (row stride ld) on its way to the host. Asynchronous (the
  // default): a device-to-device snapshot on the compute stream (later kernels may overwrite the
  // source), then, once an event says the snapshot is done, a device-to-host copy of it into
  // pinned memory on the copy stream, overlapping the stage's remaining kernels; the sink gets
  // the taps in order at the end of the stage (flush). Options::sync_taps: copy and report at
  // once (the synchronous path the asynchronous one is checked against). Unwanted: nothing.
  void tap(TapSink* taps, const std::string& name, const float* dev, int64_t rows, int64_t cols,
           int64_t ld = 0) {
    if (!wanted(taps, name)) return;
    if (ld == 0) ld = cols;
    const std::size_t bytes = static_cast<std::size_t>(rows * cols) * 4;
    ++copies_.tap_copies;
    copies_.tap_bytes += static_cast<int64_t>(bytes);
    if (sync_taps_) {
      ck(cudaMemcpy2DAsync(pinned_, cols * 4, dev, ld * 4, cols * 4, rows, cudaMemcpyDeviceToHost,
                           s_),
         "tap copy");
      ck(cudaStreamSynchronize(s_), "tap sync");
      taps->put(name, TapView{Shape{rows, cols}, DType::f32, pinned_});
      return;
    }
    staging();
    if (stage_used_ + bytes > stage_bytes_)
      throw std::logic_error(
          fmt::format("cuda: taps of one stage exceed the {} B staging arena", stage_bytes_));
    char* snap = static_cast<char*>(stage_dev_.get()) + stage_used_;
    char* host = static_cast<char*>(stage_host_) + stage_used_;
    ck(cudaMemcpy2DAsync(snap, cols * 4, dev, ld * 4, cols * 4, rows, cudaMemcpyDeviceToDevice, s_),
       "tap snapshot");
    ck(cudaEventRecord(snap_done_, s_), "record");
    ck(cudaStreamWaitEvent(copy_s_, snap_done_, 0), "wait");
    ck(cudaMemcpyAsync(host, snap, bytes, cudaMemcpyDeviceToHost, copy_s_), "tap copy");
    pending_.push_back(Pending{name, Shape{rows, cols}, host});
    stage_used_ += (bytes + 255) / 256 * 256;
  }
  // End of a seam stage: waits for the copy stream and reports the stage's taps in order.
  void flush(TapSink* taps) {
    if (pending_.empty()) return;
    ck(cudaStreamSynchronize(copy_s_), "tap copies");
    for (const Pending& p : pending_) taps->put(p.name, TapView{p.shape, DType::f32, p.host});
    pending_.clear();
    stage_used_ = 0;
  }
  // The staging arenas (device snapshot, pinned host), made at the first wanted tap, sized for
  // the largest stage: a block with every tap (attn_ln, q, k, v, attn.out, resid_attn, mlp_ln,
  // fc2, out: 9 x [T, C]; fc1, gelu: 2 x [T, 4C]) or the stem (conv1 [2T, C], conv2, pos_embed).
  void staging() {
    if (stage_host_ != nullptr) return;
    const std::size_t tc = static_cast<std::size_t>(d_.n_audio_ctx) * d_.n_audio_state * 4;
    stage_bytes_ = 17 * tc + 17 * 256;
    stage_dev_ = Buf(stage_bytes_);
    ck(cudaMallocHost(&stage_host_, stage_bytes_), "cudaMallocHost");
    ck(cudaStreamCreateWithFlags(&copy_s_, cudaStreamNonBlocking), "copy stream");
    ck(cudaEventCreateWithFlags(&snap_done_, cudaEventDisableTiming), "event");
  }

  void check(const Tensor& x, const Shape& want, const char* what) const {
    if (x.shape() != want)
      throw std::invalid_argument(
          fmt::format("cuda {} {}, expected {}", what, shape_str(x.shape()), shape_str(want)));
    if (x.dtype() != DType::f32 && x.dtype() != DType::f64)
      throw std::invalid_argument(fmt::format("cuda {}: must be float32 or float64", what));
  }
  void upload(const Tensor& x, float* dev) {
    Tensor f = x.dtype() == DType::f32 ? Tensor() : x.to(DType::f32);
    const Tensor& src = x.dtype() == DType::f32 ? x : f;
    ck(cudaMemcpyAsync(dev, src.f32(), static_cast<std::size_t>(src.numel()) * 4,
                       cudaMemcpyHostToDevice, s_),
       "upload");
    ck(cudaStreamSynchronize(s_), "upload sync");
  }
  void download(const float* dev, Tensor& out) {
    ck(cudaMemcpyAsync(out.f32(), dev, static_cast<std::size_t>(out.numel()) * 4,
                       cudaMemcpyDeviceToHost, s_),
       "download");
    ck(cudaStreamSynchronize(s_), "download sync");
  }
  Tensor result(const float* dev) {
    Tensor y(DType::f32, {d_.n_audio_ctx, d_.n_audio_state});
    download(dev, y);
    ++copies_.result_copies;
    return y;
  }

  std::shared_ptr<const Checkpoint> ck_;
  ModelDims d_;
  Act act_;
  Faults faults_;
  std::string device_name_;
  cudaStream_t s_ = nullptr;
  std::unique_ptr<Gemm> gemm_;
  Buf conv1_, conv1_b_, conv2_, conv2_b_, pos_, window_, filters_;
  std::vector<BlockW> blocks_;
  LnW ln_post_;
  Buf pcm_, frames_, spec_, mel_, scratch_, col_, h1_, x_, y_, a_, ln32_, lnact_, qkv_, o_, f_, g_;
  Buf flash_ws_;                // partial O, m, l of the key-split attention
  Buf qkv16_;                   // [flash_rows(T), 3C] 16-bit, for the tensor-core attention
  bool flash_ = false;          // reduced precision and d_head 64: tensor-core attention
  bool qkv16_direct_ = false;   // the qkv GEMM writes the 16-bit q | k | v itself
  bool fc1_16_direct_ = false;  // fc1 writes 16-bit pre-activations, GELU in place on them
  void* pinned_ = nullptr;      // the synchronous tap path's buffer
  std::size_t pinned_bytes_ = 0;
  // Asynchronous taps: staging arenas, the copy stream, the stage's taps not yet reported.
  struct Pending {
    std::string name;
    Shape shape;
    const void* host;
  };
  bool sync_taps_ = false;
  Buf stage_dev_;
  void* stage_host_ = nullptr;
  std::size_t stage_bytes_ = 0, stage_used_ = 0;
  cudaStream_t copy_s_ = nullptr;
  cudaEvent_t snap_done_ = nullptr;
  std::vector<Pending> pending_;
  CopyCounts copies_;
  cufftHandle fft_ = 0;
  cudaGraphExec_t graph_exec_ = nullptr;
  bool prof_on_ = false;
  std::vector<std::pair<std::string, cudaEvent_t>> marks_;
};

double encoder_gflop(const ModelDims& d) {
  const double c = d.n_audio_state, t = d.n_audio_ctx, nm = d.n_mels;
  double f = 2 * (2 * t) * c * nm * 3 + 2 * t * c * 3 * c;
  const double block = 2 * t * c * 3 * c + 2 * t * c * c + 2 * 2 * t * c * 4 * c + 4 * t * t * c;
  f += d.n_audio_layer * block;
  return f / 1e9;
}

}  // namespace

std::string device_unavailable_reason() { return device_reason(0); }

std::vector<std::string> supported_faults() {
  std::vector<std::string> out;
  for (const FaultInfo& f : fault_table()) out.emplace_back(f.name);
  return out;
}

CopyCounts copy_counts(const Encoder& enc) {
  const auto* c = dynamic_cast<const CudaEncoder*>(&enc);
  if (c == nullptr) throw std::invalid_argument("cuda::copy_counts: not a CUDA encoder");
  return c->copy_counts();
}

std::unique_ptr<Encoder> make_encoder(std::shared_ptr<const Checkpoint> model, const Options& o) {
  if (!model) throw std::invalid_argument("cuda::make_encoder: null checkpoint");
  const ModelDims d = model->dims;
  return std::make_unique<CudaEncoder>(d, std::move(model), o, 0);
}

Timing time_encoder(const ModelDims& dims, Precision precision, int iters, int warmup, bool graph,
                    uint64_t seed) {
  if (iters < 1) throw UsageError("time_encoder: iters must be >= 1");
  Options o;
  o.precision = precision;
  CudaEncoder enc(dims, nullptr, o, seed);
  enc.random_mel();
  cudaStream_t s = enc.stream();
  for (int i = 0; i < warmup; ++i) enc.forward_dev();  // also fixes every GEMM plan
  ck(cudaStreamSynchronize(s), "warm-up");
  if (graph) {
    enc.capture();
    for (int i = 0; i < 3; ++i) enc.replay();
    ck(cudaStreamSynchronize(s), "graph warm-up");
  }
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  ck(cudaEventCreate(&e0), "event");
  ck(cudaEventCreate(&e1), "event");
  Timing r;
  r.graph = graph;
  r.device = enc.device_name();
  r.gflop = encoder_gflop(dims);
  for (int i = 0; i < iters; ++i) {
    ck(cudaEventRecord(e0, s), "record");
    if (graph)
      enc.replay();
    else
      enc.forward_dev();
    ck(cudaEventRecord(e1, s), "record");
    ck(cudaEventSynchronize(e1), "sync");
    float ms = 0;
    ck(cudaEventElapsedTime(&ms, e0, e1), "elapsed");
    r.ms.push_back(ms);
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  // Breakdown: median over 5 profiled stream runs of each op kind's share.
  std::map<std::string, std::vector<double>> runs;
  for (int i = 0; i < 5; ++i)
    for (const auto& [k, v] : enc.profile_once()) runs[k].push_back(v);
  for (auto& [k, v] : runs) {
    std::sort(v.begin(), v.end());
    r.breakdown_ms[k] = v[v.size() / 2];
  }
  std::vector<double> v = r.ms;
  std::sort(v.begin(), v.end());
  r.median_ms = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  return r;
}

}  // namespace wb::cuda
