// The candidate encoder: weights repacked at construction (immutable, shared across calls),
// per-call buffers in a workspace, every tap of encoder_taps(dims) reported when wanted.
#include "wb/candidate/candidate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>

#include "faults.h"
#include "frontend.h"
#include "kernels.h"
#include "ops.h"
#include "thread_pool.h"
#include "wb/core/audio.h"
#include "wb/core/util.h"

namespace wb {
namespace cand {
namespace {

std::string shape_of(const Tensor& t) { return shape_str(t.shape()); }

// $WB_CAND_PROFILE=1: accumulated wall and process CPU time per op, printed to stderr when the
// encoder is destroyed.
double process_cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}
struct Profile {
  bool on = false;
  std::map<std::string, std::pair<double, double>> secs;  // wall, cpu
  ~Profile() {
    if (!on) return;
    double total = 0;
    for (const auto& [k, v] : secs) total += v.second;
    for (const auto& [k, v] : secs)
      std::fprintf(stderr, "candidate profile: %-12s wall %8.4f s  cpu %8.4f s  %5.1f%% of cpu\n",
                   k.c_str(), v.first, v.second, 100 * v.second / total);
  }
};
struct Timer {
  Profile& p;
  const char* name;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double c0 = p.on ? process_cpu_now() : 0.0;
  ~Timer() {
    if (!p.on) return;
    auto& e = p.secs[name];
    e.first += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    e.second += process_cpu_now() - c0;
  }
};

// Attributes the time since the previous lap to `name`.
struct Lap {
  Profile& p;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();
  double c0 = p.on ? process_cpu_now() : 0.0;
  void operator()(const char* name) {
    if (!p.on) return;
    const auto t1 = std::chrono::steady_clock::now();
    const double c1 = process_cpu_now();
    auto& e = p.secs[name];
    e.first += std::chrono::duration<double>(t1 - t0).count();
    e.second += c1 - c0;
    t0 = t1;
    c0 = c1;
  }
};

const Tensor& weight(const Checkpoint& ck, const std::string& name, const Shape& want) {
  const Tensor& t = ck.at(name);
  if (t.shape() != want)
    throw std::invalid_argument("candidate: weight " + name + ": got " + shape_of(t) +
                                ", expected " + shape_str(want));
  if (t.dtype() != DType::f32)
    throw std::invalid_argument("candidate: weight " + name + " is not float32");
  return t;
}

std::vector<float> vec(const Tensor& t) { return {t.f32(), t.f32() + t.numel()}; }

struct LayerNormW {
  std::vector<float> g, b;
};

struct BlockW {
  LayerNormW attn_ln, mlp_ln;
  WeightMatrix qkv;          // [3C, C]: query | key | value rows
  std::vector<float> qkv_b;  // [3C]: query bias | 0 (key has none) | value bias
  WeightMatrix out;
  std::vector<float> out_b;
  WeightMatrix fc1;  // [4C, C]
  std::vector<float> fc1_b;
  WeightMatrix fc2;  // [C, 4C]
  std::vector<float> fc2_b;
};

// Immutable model: shared by every call of one encoder.
struct Model {
  ModelDims d;
  Precision prec;
  WeightMatrix conv1;  // [C, n_mels * 3], column ci * 3 + k (PyTorch order)
  std::vector<float> conv1_b;
  WeightMatrix conv2;  // [C, 3 * C], column k * C + ci (repacked: im2col rows are row copies)
  std::vector<float> conv2_b;
  std::vector<float> pos;  // [T, C]
  std::vector<BlockW> blocks;
  LayerNormW ln_post;
};

LayerNormW load_ln(const Checkpoint& ck, const std::string& p, int c) {
  return {vec(weight(ck, p + ".weight", {c})), vec(weight(ck, p + ".bias", {c}))};
}

std::unique_ptr<Model> load_model(const Checkpoint& ck, Precision prec) {
  auto m = std::make_unique<Model>();
  const ModelDims& d = ck.dims;
  d.validate();
  m->d = d;
  m->prec = prec;
  const int c = d.n_audio_state, nm = d.n_mels, t = d.n_audio_ctx;
  {
    const Tensor& w = weight(ck, "encoder.conv1.weight", {c, nm, 3});
    m->conv1 = WeightMatrix(w.f32(), c, nm * 3, prec);
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
    m->conv2 = WeightMatrix(r.data(), c, 3 * c, prec);
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
      b.qkv = WeightMatrix(w.data(), 3 * c, c, prec);
      b.qkv_b.assign(static_cast<std::size_t>(3 * c), 0.0f);
      const Tensor& qb = weight(ck, p + "attn.query.bias", {c});
      const Tensor& vb = weight(ck, p + "attn.value.bias", {c});
      std::copy(qb.f32(), qb.f32() + c, b.qkv_b.begin());
      std::copy(vb.f32(), vb.f32() + c, b.qkv_b.begin() + 2 * c);
    }
    b.out = WeightMatrix(weight(ck, p + "attn.out.weight", {c, c}).f32(), c, c, prec);
    b.out_b = vec(weight(ck, p + "attn.out.bias", {c}));
    b.fc1 = WeightMatrix(weight(ck, p + "mlp.0.weight", {4 * c, c}).f32(), 4 * c, c, prec);
    b.fc1_b = vec(weight(ck, p + "mlp.0.bias", {4 * c}));
    b.fc2 = WeightMatrix(weight(ck, p + "mlp.2.weight", {c, 4 * c}).f32(), c, 4 * c, prec);
    b.fc2_b = vec(weight(ck, p + "mlp.2.bias", {c}));
    m->blocks.push_back(std::move(b));
  }
  m->ln_post = load_ln(ck, "encoder.ln_post", c);
  return m;
}

Precision parse_precision(const std::string& p) {
  if (p == "float32" || p == "fp32" || p == "f32") return Precision::f32;
  if (p == "bfloat16" || p == "bf16") return Precision::bf16;
  if (p == "float16" || p == "fp16" || p == "f16") return Precision::f16;
  throw UsageError("unknown precision '" + p + "' (valid: float32, bfloat16, float16)");
}

// A float32 view of a seam tensor (float64 inputs, e.g. from the float64 reference, converted).
struct F32In {
  Tensor holder;
  const float* p = nullptr;
  explicit F32In(const Tensor& t) {
    if (t.dtype() == DType::f32) {
      p = t.f32();
    } else if (t.dtype() == DType::f64) {
      holder = t.to(DType::f32);
      p = holder.f32();
    } else {
      throw std::invalid_argument("candidate: input tensor must be float32 or float64");
    }
  }
};

class CandidateEncoder final : public Encoder {
 public:
  CandidateEncoder(std::shared_ptr<const Checkpoint> ck, const CandidateOptions& opts)
      : ck_(std::move(ck)),
        prec_(parse_precision(opts.precision)),
        faults_(parse_faults(opts.faults)),
        isa_(select_isa()),
        k_(&kernels(isa_)),
        threads_(opts.threads > 0
                     ? opts.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
        pool_(threads_),
        model_(load_model(*ck_, prec_)),
        mel_(model_->d.n_mels, kNFrames) {
    ctx_.k = k_;
    ctx_.pool = &pool_;
    ctx_.prec = prec_;
    ctx_.attn = attention_impl_from_env();
    const char* prof = std::getenv("WB_CAND_PROFILE");
    prof_.on = prof != nullptr && *prof != '\0' && *prof != '0';
  }

  std::string implementation() const override { return "candidate"; }

  nlohmann::json run_info() const override {
    return {{"precision", std::string(precision_name(prec_))},
            {"device", "cpu"},
            {"isa", std::string(isa_name(isa_))},
            {"threads", threads_},
            {"faults", faults_.specs},
            {"gemm", "openblas sgemm (single-threaded per worker, rows split across threads)"},
            {"attention", ctx_.attn == AttnImpl::kernel ? "micro-kernels" : "openblas"}};
  }

  int n_layers() const override { return model_->d.n_audio_layer; }

  Tensor log_mel(const std::vector<float>& pcm16k, TapSink* taps) override {
    BlasSingleThread blas1;
    Timer tm{prof_, "mel"};
    const std::vector<float> pcm = pad_or_trim(pcm16k, kNSamples);
    Tensor mel(DType::f32, {model_->d.n_mels, kNFrames});
    mel_.compute(pcm.data(), mel.f32(), faults_, *k_, pool_);
    report(taps, "mel", mel.shape(), DType::f32, mel.f32());
    return mel;
  }

  Tensor stem(const Tensor& mel_in, TapSink* taps) override {
    BlasSingleThread blas1;
    const ModelDims& d = model_->d;
    const int c = d.n_audio_state, nm = d.n_mels, t = d.n_audio_ctx, t2 = 2 * t;
    if (mel_in.ndim() != 2 || mel_in.dim(0) != nm || mel_in.dim(1) != t2)
      throw std::invalid_argument("candidate stem: mel " + shape_of(mel_in) + ", expected " +
                                  shape_str({nm, t2}));
    F32In mel(mel_in);
    Timer tm{prof_, "stem"};
    const int pad = faults_.conv_pad;
    const bool tanh = faults_.gelu_tanh;
    // conv1 (k3, stride 1, pad 1) as im2col: X1[t, ci*3 + k] = mel[ci, t + k - pad], zero outside.
    // The fault conv-pad=P shifts the window (t + k - P) and keeps the output length.
    std::vector<float>& x1 = ws_.col;
    x1.resize(static_cast<std::size_t>(t2) * nm * 3);
    pool_.parallel_for(t2, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r) {
        float* row = x1.data() + r * nm * 3;
        for (int ci = 0; ci < nm; ++ci)
          for (int k = 0; k < 3; ++k) {
            const int64_t s = r + k - pad;
            row[ci * 3 + k] = (s >= 0 && s < t2) ? mel.p[static_cast<int64_t>(ci) * t2 + s] : 0.0f;
          }
      }
    });
    std::vector<float>& h1 = ws_.h1;
    h1.resize(static_cast<std::size_t>(t2) * c);
    linear(ctx_, x1.data(), t2, nm * 3, model_->conv1, h1.data(), c,
           [&](int64_t r0, int64_t r1, int) {
             k_->bias_gelu(h1.data() + r0 * c, r1 - r0, c, model_->conv1_b.data(), tanh);
           });
    report(taps, "encoder.conv1", {t2, c}, DType::f32, h1.data());
    // conv2 (k3, stride 2, pad 1): X2[t, k*C + ci] = h1[2t + k - pad, ci] (row copies).
    std::vector<float>& x2 = ws_.col;
    x2.resize(static_cast<std::size_t>(t) * 3 * c);
    pool_.parallel_for(t, [&](int64_t r0, int64_t r1, int) {
      for (int64_t r = r0; r < r1; ++r)
        for (int k = 0; k < 3; ++k) {
          const int64_t s = 2 * r + k - pad;
          float* dst = x2.data() + (r * 3 + k) * c;
          if (s >= 0 && s < t2)
            std::memcpy(dst, h1.data() + s * c, sizeof(float) * static_cast<std::size_t>(c));
          else
            std::fill(dst, dst + c, 0.0f);
        }
    });
    Tensor x(DType::f32, {t, c});
    float* xp = x.f32();
    const bool want_conv2 = wanted(taps, "encoder.conv2");
    const bool pos = !faults_.no_pos_embed;
    linear(ctx_, x2.data(), t, 3 * c, model_->conv2, xp, c, [&](int64_t r0, int64_t r1, int) {
      k_->bias_gelu(xp + r0 * c, r1 - r0, c, model_->conv2_b.data(), tanh);
      if (!want_conv2 && pos)
        k_->residual_add(model_->pos.data() + r0 * c, xp + r0 * c, xp + r0 * c, r1 - r0, c,
                         nullptr);
    });
    if (want_conv2) {
      report(taps, "encoder.conv2", {t, c}, DType::f32, xp);
      if (pos)
        pool_.parallel_for(t, [&](int64_t r0, int64_t r1, int) {
          k_->residual_add(model_->pos.data() + r0 * c, xp + r0 * c, xp + r0 * c, r1 - r0, c,
                           nullptr);
        });
    }
    // Fault "no-pos-embed": x is reported unchanged under encoder.pos_embed.
    report(taps, "encoder.pos_embed", {t, c}, DType::f32, xp);
    return x;
  }

  Tensor block(int i, const Tensor& x_in, TapSink* taps) override {
    BlasSingleThread blas1;
    const ModelDims& d = model_->d;
    if (i < 0 || i >= d.n_audio_layer)
      throw std::invalid_argument("candidate block: index " + std::to_string(i) + " not in [0, " +
                                  std::to_string(d.n_audio_layer) + ")");
    const int c = d.n_audio_state, t = d.n_audio_ctx, heads = d.n_audio_head;
    check_tc(x_in, "block");
    F32In xin(x_in);
    const float* x = xin.p;
    const BlockW& b = model_->blocks[static_cast<std::size_t>(i)];
    auto tn = [i](std::string_view part) { return block_tap(TapSide::encoder, i, part); };
    const Shape tc{t, c};
    Lap lap{prof_};
    auto& h = ws_.h;
    h.resize(static_cast<std::size_t>(t) * c);
    // attn_ln: h = LN(x)
    layer_norm(x, h.data(), t, c, b.attn_ln);
    report(taps, tn("attn_ln"), tc, DType::f32, h.data());
    // q | k | v = h Wqkv^T + [bq, 0, bv]   -> [T, 3C]
    auto& qkv = ws_.qkv;
    qkv.resize(static_cast<std::size_t>(t) * 3 * c);
    lap("layer_norm");
    linear(ctx_, h.data(), t, c, b.qkv, qkv.data(), 3 * c, [&](int64_t r0, int64_t r1, int) {
      k_->bias_add(qkv.data() + r0 * 3 * c, r1 - r0, 3 * c, b.qkv_b.data());
    });
    const char* names[3] = {"attn.q", "attn.k", "attn.v"};
    for (int j = 0; j < 3; ++j) {
      if (!wanted(taps, tn(names[j]))) continue;
      auto& tmp = ws_.tap;
      tmp.resize(static_cast<std::size_t>(t) * c);
      for (int64_t r = 0; r < t; ++r)
        std::memcpy(tmp.data() + r * c, qkv.data() + r * 3 * c + j * c, sizeof(float) * c);
      report(taps, tn(names[j]), tc, DType::f32, tmp.data());
    }
    // Reduced precision: q, k, v enter the attention matmuls rounded to the weight type.
    round_to_precision(ctx_, qkv.data(), static_cast<int64_t>(qkv.size()));
    // softmax(q k^T * s^2) v with s = d_head^-0.25 applied to q and k each (Whisper);
    // fault attn-scale=none drops it, attn-scale=double applies it twice to each (s^4).
    const double dh = static_cast<double>(c / heads);
    double alpha = 1.0 / std::sqrt(dh);
    if (faults_.attn_scale == AttnScale::none) alpha = 1.0;
    if (faults_.attn_scale == AttnScale::twice) alpha = 1.0 / dh;
    auto& o = ws_.o;
    o.resize(static_cast<std::size_t>(t) * c);
    lap("qkv");
    attention(ctx_, qkv.data(), t, c, heads, static_cast<float>(alpha), o.data(), 96, ctx_.attn);
    lap("attention");
    // attn.out = o Wo^T + bo;  resid = x + attn.out
    Tensor y(DType::f32, {t, c});
    float* yp = y.f32();
    auto& a = ws_.a;
    a.resize(static_cast<std::size_t>(t) * c);
    if (wanted(taps, tn("attn.out"))) {
      linear(ctx_, o.data(), t, c, b.out, a.data(), c, [&](int64_t r0, int64_t r1, int) {
        k_->bias_add(a.data() + r0 * c, r1 - r0, c, b.out_b.data());
      });
      report(taps, tn("attn.out"), tc, DType::f32, a.data());
      pool_.parallel_for(t, [&](int64_t r0, int64_t r1, int) {
        k_->residual_add(x + r0 * c, a.data() + r0 * c, yp + r0 * c, r1 - r0, c, nullptr);
      });
    } else {
      linear(ctx_, o.data(), t, c, b.out, a.data(), c, [&](int64_t r0, int64_t r1, int) {
        k_->residual_add(x + r0 * c, a.data() + r0 * c, yp + r0 * c, r1 - r0, c, b.out_b.data());
      });
    }
    report(taps, tn("resid_attn"), tc, DType::f32, yp);
    lap("attn_out");
    // mlp_ln: h = LN(resid)
    layer_norm(yp, h.data(), t, c, b.mlp_ln);
    report(taps, tn("mlp_ln"), tc, DType::f32, h.data());
    lap("layer_norm");
    // fc1 + exact GELU, fused unless the pre-GELU tap is wanted
    const int c4 = 4 * c;
    auto& f = ws_.f;
    f.resize(static_cast<std::size_t>(t) * c4);
    const bool tanh = faults_.gelu_tanh;
    if (wanted(taps, tn("mlp.fc1"))) {
      linear(ctx_, h.data(), t, c, b.fc1, f.data(), c4, [&](int64_t r0, int64_t r1, int) {
        k_->bias_add(f.data() + r0 * c4, r1 - r0, c4, b.fc1_b.data());
      });
      report(taps, tn("mlp.fc1"), {t, c4}, DType::f32, f.data());
      pool_.parallel_for(t, [&](int64_t r0, int64_t r1, int) {
        k_->bias_gelu(f.data() + r0 * c4, r1 - r0, c4, nullptr, tanh);
      });
    } else {
      linear(ctx_, h.data(), t, c, b.fc1, f.data(), c4, [&](int64_t r0, int64_t r1, int) {
        k_->bias_gelu(f.data() + r0 * c4, r1 - r0, c4, b.fc1_b.data(), tanh);
      });
    }
    report(taps, tn("mlp.gelu"), {t, c4}, DType::f32, f.data());
    lap("fc1+gelu");
    // fc2, then out = resid + fc2 (y updated in place)
    if (wanted(taps, tn("mlp.fc2"))) {
      linear(ctx_, f.data(), t, c4, b.fc2, a.data(), c, [&](int64_t r0, int64_t r1, int) {
        k_->bias_add(a.data() + r0 * c, r1 - r0, c, b.fc2_b.data());
      });
      report(taps, tn("mlp.fc2"), tc, DType::f32, a.data());
      pool_.parallel_for(t, [&](int64_t r0, int64_t r1, int) {
        k_->residual_add(yp + r0 * c, a.data() + r0 * c, yp + r0 * c, r1 - r0, c, nullptr);
      });
    } else {
      linear(ctx_, f.data(), t, c4, b.fc2, a.data(), c, [&](int64_t r0, int64_t r1, int) {
        k_->residual_add(yp + r0 * c, a.data() + r0 * c, yp + r0 * c, r1 - r0, c, b.fc2_b.data());
      });
    }
    report(taps, tn("out"), tc, DType::f32, yp);
    lap("fc2+residual");
    return y;
  }

  Tensor ln_post(const Tensor& x_in, TapSink* taps) override {
    const ModelDims& d = model_->d;
    check_tc(x_in, "ln_post");
    F32In xin(x_in);
    Timer tm{prof_, "ln_post"};
    Tensor y(DType::f32, {d.n_audio_ctx, d.n_audio_state});
    if (faults_.no_ln_post)  // fault: the output is the last block's output, unnormalised
      std::memcpy(y.f32(), xin.p, sizeof(float) * static_cast<std::size_t>(y.numel()));
    else
      layer_norm(xin.p, y.f32(), d.n_audio_ctx, d.n_audio_state, model_->ln_post);
    report(taps, "encoder.ln_post", y.shape(), DType::f32, y.f32());
    return y;
  }

 private:
  void check_tc(const Tensor& x, const char* what) const {
    const ModelDims& d = model_->d;
    if (x.ndim() != 2 || x.dim(0) != d.n_audio_ctx || x.dim(1) != d.n_audio_state)
      throw std::invalid_argument(std::string("candidate ") + what + ": input " + shape_of(x) +
                                  ", expected " + shape_str({d.n_audio_ctx, d.n_audio_state}));
  }

  // LayerNorm over rows of [T, C]; eps 1e-5 unless the ln-eps fault sets it; ln-fp16 fault
  // switches to float16 statistics.
  void layer_norm(const float* x, float* y, int64_t rows, int cols, const LayerNormW& w) {
    const float eps = faults_.ln_eps.value_or(1e-5f);
    const bool f16 = faults_.ln_fp16;
    pool_.parallel_for(rows, [&](int64_t r0, int64_t r1, int) {
      if (f16)
        layer_norm_f16_stats(x + r0 * cols, y + r0 * cols, r1 - r0, cols, w.g.data(), w.b.data(),
                             eps);
      else
        k_->layer_norm(x + r0 * cols, y + r0 * cols, r1 - r0, cols, w.g.data(), w.b.data(), eps);
    });
  }

  struct Workspace {
    std::vector<float> col, h1, h, qkv, o, a, f, tap;
  };

  std::shared_ptr<const Checkpoint> ck_;
  Precision prec_;
  Faults faults_;
  Isa isa_;
  const KernelTable* k_;
  int threads_;
  ThreadPool pool_;
  std::unique_ptr<Model> model_;
  LogMel mel_;
  OpContext ctx_;
  Workspace ws_;
  Profile prof_;
};

}  // namespace
}  // namespace cand

std::unique_ptr<Encoder> make_candidate_encoder(std::shared_ptr<const Checkpoint> model,
                                                const CandidateOptions& opts) {
  if (!model) throw std::invalid_argument("make_candidate_encoder: null checkpoint");
  return std::make_unique<cand::CandidateEncoder>(std::move(model), opts);
}

}  // namespace wb
