// The candidate encoder behind the seam: the immutable Model (model.cpp), per-run state
// (layers.h RunState), the layers (layers.cpp) and the front end (frontend.cpp). Environment
// overrides are read once, validated, and recorded in run_info.
#include "wb/candidate/candidate.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>

#include "faults.h"
#include "frontend.h"
#include "kernels.h"
#include "layers.h"
#include "model.h"
#include "ops.h"
#include "profiler.h"
#include "thread_pool.h"
#include "wb/core/audio.h"
#include "wb/core/util.h"

namespace wb {
namespace cand {
namespace {

std::string shape_of(const Tensor& t) { return shape_str(t.shape()); }

// The environment's overrides, read once per encoder and validated here:
//   WB_ISA=NAME                  kernel path, a name of the ISA list (default: the widest)
//   WB_CAND_ATTN=kernel|blas|onednn  attention products: own float32 micro-kernels, OpenBLAS
//                                sgemm, or oneDNN bf16 matmuls (bfloat16 only; its default
//                                where oneDNN runs them on AMX)
//   WB_CAND_ATTN_BLOCK=N         queries per attention block, 1..512 (default 96)
//   WB_CAND_GEMM=onednn|openblas GEMM library of the projections and convs (default onednn)
//   WB_CAND_PROFILE=1            time per op, printed to stderr when the encoder is destroyed
// (oneDNN's own DNNL_MAX_CPU_ISA=AVX2 limits its JIT kernels; run_info records its ISA.)
struct EnvOverrides {
  Isa isa;
  AttnImpl attn;
  GemmBackend gemm;
  int attn_block = 96;
  bool profile = false;
};

EnvOverrides read_env(Precision p) {
  EnvOverrides e;
  e.isa = select_isa();
  e.attn = attention_impl_from_env(p);
  e.gemm = gemm_backend_from_env();
  if (const char* v = std::getenv("WB_CAND_ATTN_BLOCK"); v != nullptr && *v != '\0') {
    char* end = nullptr;
    const long n = std::strtol(v, &end, 10);
    if (*end != '\0' || n < 1 || n > 512)
      throw std::runtime_error(std::string("WB_CAND_ATTN_BLOCK=") + v +
                               ": expected an integer in [1, 512]");
    e.attn_block = static_cast<int>(n);
  }
  const char* prof = std::getenv("WB_CAND_PROFILE");
  e.profile = prof != nullptr && *prof != '\0' && *prof != '0';
  return e;
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
        prec_(internal_precision(opts.precision)),
        faults_(opts.faults),
        env_(read_env(prec_)),
        threads_(opts.threads > 0
                     ? opts.threads
                     : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()))),
        pool_(threads_),
        model_(load_model(*ck_, prec_, env_.gemm)),
        mel_(model_->d.n_mels, kNFrames) {
    rs_.k = &kernels(env_.isa);
    rs_.pool = &pool_;
    rs_.ctx.k = rs_.k;
    rs_.ctx.pool = &pool_;
    rs_.ctx.prec = prec_;
    rs_.ctx.attn = env_.attn;
    rs_.attn_block_rows = env_.attn_block;
    rs_.prof.on = env_.profile;
    if (faults_.block >= model_->d.n_audio_layer)
      throw UsageError("fault block @" + std::to_string(faults_.block) + ": the model has " +
                       std::to_string(model_->d.n_audio_layer) + " encoder blocks");
  }

  std::string implementation() const override { return "candidate"; }

  nlohmann::json run_info() const override {
    return {{"precision", std::string(precision_name(prec_))},
            {"device", "cpu"},
            {"isa", std::string(isa_name(env_.isa))},
            {"threads", threads_},
            {"faults", faults_.specs},
            {"gemm", gemm_info()},
            {"attention", attention_impl_info(env_.attn)},
            {"attention_block_rows", env_.attn_block}};
  }

  int n_layers() const override { return model_->d.n_audio_layer; }

  std::string gemm_info() const {
    if (const OnednnWeights* w = model_->blocks.empty() ? nullptr : model_->blocks[0].fc1.onednn())
      return "onednn matmul " + onednn_impl(*w) + ", cpu isa " + onednn_cpu_isa() + ", tiles of " +
             std::to_string(kGemmTileRows) + " rows claimed by the threads";
    return "openblas sgemm (single-threaded per worker, rows split across threads)";
  }

  Tensor log_mel(const std::vector<float>& pcm16k, TapSink* taps) override {
    BlasSingleThread blas1;
    Timer tm{rs_.prof, "mel"};
    const std::vector<float> pcm = pad_or_trim(pcm16k, kNSamples);
    Tensor mel(DType::f32, {model_->d.n_mels, kNFrames});
    mel_.compute(pcm.data(), mel.f32(), faults_, *rs_.k, pool_);
    report(taps, kMel, mel.shape(), DType::f32, mel.f32());
    return mel;
  }

  Tensor stem(const Tensor& mel_in, TapSink* taps) override {
    BlasSingleThread blas1;
    const ModelDims& d = model_->d;
    const int nm = d.n_mels, t2 = 2 * d.n_audio_ctx;
    if (mel_in.ndim() != 2 || mel_in.dim(0) != nm || mel_in.dim(1) != t2)
      throw std::invalid_argument("candidate stem: mel " + shape_of(mel_in) + ", expected " +
                                  shape_str({nm, t2}));
    F32In mel(mel_in);
    Timer tm{rs_.prof, "stem"};
    Tensor x(DType::f32, {d.n_audio_ctx, d.n_audio_state});
    conv_stem(rs_, *model_, faults_.at(-1), mel.p, x.f32(), taps);
    return x;
  }

  Tensor block(int i, const Tensor& x_in, TapSink* taps) override {
    BlasSingleThread blas1;
    const ModelDims& d = model_->d;
    if (i < 0 || i >= d.n_audio_layer)
      throw std::invalid_argument("candidate block: index " + std::to_string(i) + " not in [0, " +
                                  std::to_string(d.n_audio_layer) + ")");
    check_tc(x_in, "block");
    F32In xin(x_in);
    Tensor y(DType::f32, {d.n_audio_ctx, d.n_audio_state});
    const Faults f = faults_.at(i);
    attention_layer(rs_, *model_, f, i, xin.p, y.f32(), taps);
    mlp_layer(rs_, *model_, f, i, y.f32(), taps);
    return y;
  }

  Tensor ln_post(const Tensor& x_in, TapSink* taps) override {
    const ModelDims& d = model_->d;
    check_tc(x_in, "ln_post");
    F32In xin(x_in);
    Timer tm{rs_.prof, "ln_post"};
    Tensor y(DType::f32, {d.n_audio_ctx, d.n_audio_state});
    if (faults_.no_ln_post)  // fault: the output is the last block's output, unnormalised
      std::memcpy(y.f32(), xin.p, sizeof(float) * static_cast<std::size_t>(y.numel()));
    else
      layer_norm(rs_, faults_.at(-1), xin.p, y.f32(), d.n_audio_ctx, d.n_audio_state,
                 model_->ln_post);
    report(taps, kLnPost, y.shape(), DType::f32, y.f32());
    return y;
  }

 private:
  void check_tc(const Tensor& x, const char* what) const {
    const ModelDims& d = model_->d;
    if (x.ndim() != 2 || x.dim(0) != d.n_audio_ctx || x.dim(1) != d.n_audio_state)
      throw std::invalid_argument(std::string("candidate ") + what + ": input " + shape_of(x) +
                                  ", expected " + shape_str({d.n_audio_ctx, d.n_audio_state}));
  }

  std::shared_ptr<const Checkpoint> ck_;
  Precision prec_;
  Faults faults_;
  EnvOverrides env_;
  int threads_;
  ThreadPool pool_;
  std::unique_ptr<const Model> model_;
  LogMel mel_;
  RunState rs_;
};

}  // namespace
}  // namespace cand

std::unique_ptr<Encoder> make_candidate_encoder(std::shared_ptr<const Checkpoint> model,
                                                const CandidateOptions& opts) {
  if (!model) throw std::invalid_argument("make_candidate_encoder: null checkpoint");
  return std::make_unique<cand::CandidateEncoder>(std::move(model), opts);
}

std::vector<CandidateIsa> candidate_isas() {
  std::vector<CandidateIsa> out;
  for (const auto& [isa, name] : cand::kIsaNames)
    out.push_back({std::string(name), cand::isa_supported(isa)});
  return out;
}

std::string candidate_best_isa() { return std::string(cand::isa_name(cand::best_isa())); }

}  // namespace wb
