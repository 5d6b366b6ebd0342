// The CUDA candidate's seam (wb::Encoder): the device and its stream, the seam's host tensors
// uploaded at each stage's entry and its result downloaded at its exit, the taps staged to the
// host (a tap is copied only when the sink wants it), and the timing runs (stream launches with
// per-op marks, or one CUDA graph of the whole encoder). The weights are model.h's, the stages
// layers.h's.
#include <cublasLt.h>
#include <cuda_profiler_api.h>
#include <cuda_runtime.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "device.h"
#include "gemm_gelu_cudnn.h"
#include "kernels.h"
#include "layers.h"
#include "model.h"
#include "wb/core/audio.h"
#include "wb/core/faults.h"
#include "wb/core/taps.h"
#include "wb/core/util.h"
#include "wb/cuda/cuda_encoder.h"

namespace wb::cuda {
namespace {

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

// The device selected, its name, and the non-blocking stream everything runs on (destroyed last).
struct DeviceStream {
  explicit DeviceStream(int device) {
    if (const std::string why = device_reason(device); !why.empty()) throw std::runtime_error(why);
    ck(cudaSetDevice(device), "cudaSetDevice");
    cudaDeviceProp prop{};
    ck(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
    name = prop.name;
    ck(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  }
  ~DeviceStream() {
    if (s != nullptr) cudaStreamDestroy(s);
  }
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;
  std::string name;
  cudaStream_t s = nullptr;
};

// The layers' Observer: taps staged to the sinks of the current stage (one per clip of the run),
// and (timing runs) an event after each op.
class TapStaging final : public Observer {
 public:
  TapStaging(const ModelDims& d, cudaStream_t s, bool sync_taps, int max_batch)
      : d_(d), s_(s), sync_taps_(sync_taps), max_batch_(max_batch) {
    if (sync_taps_) {
      const int64_t c = d.n_audio_state, t = d.n_audio_ctx, t2 = 2 * t, nm = d.n_mels;
      const std::size_t bytes =
          static_cast<std::size_t>(std::max({t * 4 * c, nm * t2, t2 * c})) * 4;
      ck(cudaMallocHost(&pinned_, bytes), "cudaMallocHost");
    }
  }
  ~TapStaging() override {
    if (copy_s_ != nullptr) cudaStreamSynchronize(copy_s_);
    if (snap_done_ != nullptr) cudaEventDestroy(snap_done_);
    if (copy_s_ != nullptr) cudaStreamDestroy(copy_s_);
    if (stage_host_ != nullptr) cudaFreeHost(stage_host_);
    if (pinned_ != nullptr) cudaFreeHost(pinned_);
  }
  TapStaging(const TapStaging&) = delete;
  TapStaging& operator=(const TapStaging&) = delete;

  // The sink of the stage about to run (null: no taps), one clip.
  void begin(TapSink* sink) { sinks_.assign(1, sink); }
  // The sinks of the clips of a batch run, clip b's at b (null, or fewer than the clips: none).
  void begin(std::vector<TapSink*> sinks) { sinks_ = std::move(sinks); }
  bool wanted(const std::string& name) const override {
    return std::any_of(sinks_.begin(), sinks_.end(),
                       [&](TapSink* k) { return wb::wanted(k, name); });
  }
  void tap(const std::string& name, const float* dev, int64_t rows, int64_t cols,
           int64_t ld = 0) override;
  // End of a seam stage: waits for the copy stream and reports the stage's taps in order.
  void flush();
  // Reports a host tensor (the mel, already downloaded) straight to clip b's sink.
  void put_host(const std::string& name, const Tensor& t, std::size_t b = 0) {
    if (b < sinks_.size()) report(sinks_[b], name, t.shape(), DType::f32, t.f32());
  }
  void mark(const char* op) override;
  // Profiling: marks on (each op records an event) or off; collect() turns the events into
  // milliseconds per op kind (the time since the previous mark) and clears them.
  void profile(bool on) { prof_on_ = on; }
  std::map<std::string, double> collect();
  bool skipped(const char* op) const override { return !skip_.empty() && skip_.count(op) > 0; }
  void skip(std::set<std::string> ops) { skip_ = std::move(ops); }

  CopyCounts copies;

 private:
  void staging();

  void tap_clip(TapSink* sink, const std::string& name, const float* dev, int64_t rows,
                int64_t cols, int64_t ld);

  ModelDims d_;
  cudaStream_t s_;
  bool sync_taps_;
  int max_batch_;
  std::vector<TapSink*> sinks_;
  void* pinned_ = nullptr;  // the synchronous tap path's buffer
  // Asynchronous taps: staging arenas, the copy stream, the stage's taps not yet reported.
  struct Pending {
    TapSink* sink;
    std::string name;
    Shape shape;
    const void* host;
  };
  Buf stage_dev_;
  void* stage_host_ = nullptr;
  std::size_t stage_bytes_ = 0, stage_used_ = 0;
  cudaStream_t copy_s_ = nullptr;
  cudaEvent_t snap_done_ = nullptr;
  std::vector<Pending> pending_;
  bool prof_on_ = false;
  std::vector<std::pair<std::string, cudaEvent_t>> marks_;
  std::set<std::string> skip_;
};

// A [rows, cols] float tap (row stride ld) of each clip, clip b's rows from dev + b rows ld, to
// the sinks that want it.
void TapStaging::tap(const std::string& name, const float* dev, int64_t rows, int64_t cols,
                     int64_t ld) {
  if (ld == 0) ld = cols;
  for (std::size_t b = 0; b < sinks_.size(); ++b)
    if (wb::wanted(sinks_[b], name))
      tap_clip(sinks_[b], name, dev + static_cast<int64_t>(b) * rows * ld, rows, cols, ld);
}

// A wanted tap on its way to the host. Asynchronous (the default): a device-to-device snapshot
// on the compute stream (later kernels may overwrite the source), then, once an event says the
// snapshot is done, a device-to-host copy of it into pinned memory on the copy stream,
// overlapping the stage's remaining kernels; the sink gets the taps in order at the end of the
// stage (flush). Options::sync_taps: copy and report at once (the synchronous path the
// asynchronous one is checked against).
void TapStaging::tap_clip(TapSink* sink, const std::string& name, const float* dev, int64_t rows,
                          int64_t cols, int64_t ld) {
  const std::size_t bytes = static_cast<std::size_t>(rows * cols) * 4;
  ++copies.tap_copies;
  copies.tap_bytes += static_cast<int64_t>(bytes);
  if (sync_taps_) {
    ck(cudaMemcpy2DAsync(pinned_, cols * 4, dev, ld * 4, cols * 4, rows, cudaMemcpyDeviceToHost,
                         s_),
       "tap copy");
    ck(cudaStreamSynchronize(s_), "tap sync");
    sink->put(name, TapView{Shape{rows, cols}, DType::f32, pinned_});
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
  pending_.push_back(Pending{sink, name, Shape{rows, cols}, host});
  stage_used_ += (bytes + 255) / 256 * 256;
}

void TapStaging::flush() {
  if (pending_.empty()) return;
  ck(cudaStreamSynchronize(copy_s_), "tap copies");
  for (const Pending& p : pending_) p.sink->put(p.name, TapView{p.shape, DType::f32, p.host});
  pending_.clear();
  stage_used_ = 0;
}

// The staging arenas (device snapshot, pinned host), made at the first wanted tap, sized for
// the largest stage of every clip: a block with every tap (attn_ln, q, k, v, attn.out,
// resid_attn, mlp_ln, fc2, out: 9 x [T, C]; fc1, gelu: 2 x [T, 4C]) or the stem (conv1 [2T, C],
// conv2, pos_embed).
void TapStaging::staging() {
  if (stage_host_ != nullptr) return;
  const std::size_t tc = static_cast<std::size_t>(d_.n_audio_ctx) * d_.n_audio_state * 4;
  stage_bytes_ = static_cast<std::size_t>(max_batch_) * (17 * tc + 17 * 256);
  stage_dev_ = Buf(stage_bytes_);
  ck(cudaMallocHost(&stage_host_, stage_bytes_), "cudaMallocHost");
  ck(cudaStreamCreateWithFlags(&copy_s_, cudaStreamNonBlocking), "copy stream");
  ck(cudaEventCreateWithFlags(&snap_done_, cudaEventDisableTiming), "event");
}

// Profiling (timing mode, stream launches only): an event after each op; the time since the
// previous event is the op's.
void TapStaging::mark(const char* op) {
  if (!prof_on_) return;
  cudaEvent_t e = nullptr;
  ck(cudaEventCreate(&e), "event");
  ck(cudaEventRecord(e, s_), "record");
  marks_.emplace_back(op, e);
}

std::map<std::string, double> TapStaging::collect() {
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

ModelDims validated(ModelDims d) {
  d.validate();
  return d;
}

class CudaEncoder final : public Encoder {
 public:
  CudaEncoder(const ModelDims& d, std::shared_ptr<const Checkpoint> ckpt, const Options& o,
              uint64_t seed)
      : ck_(std::move(ckpt)),
        d_(validated(d)),
        act_(act_of(o.precision)),
        faults_(o.faults),
        dev_(o.device) {
    auto gemm = std::make_unique<Gemm>(act_, dev_.s);
    model_ = std::make_unique<const Model>(
        load_model(d_, ck_.get(), seed, act_, faults_.conv_bias_drop, dev_.s));
    rs_ = std::make_unique<RunState>(d_, act_, dev_.s, std::move(gemm), o.batch,
                                     o.attention == Backend::cudnn, o.fc1_gelu == Backend::cudnn);
    rs_->pdl = o.dependent_launch && dependent_launch_available();
    dependent_gemms_ = rs_->pdl && o.dependent_gemms;
    taps_ = std::make_unique<TapStaging>(d_, dev_.s, o.sync_taps, o.batch);
  }

  std::string implementation() const override { return "cuda"; }
  nlohmann::json run_info() const override;
  int n_layers() const override { return d_.n_audio_layer; }
  const CopyCounts& copy_counts() const { return taps_->copies; }

  Tensor log_mel(const std::vector<float>& pcm16k, TapSink* taps) override {
    rs_->batch = 1;
    const std::vector<float> pcm = pad_or_trim(pcm16k, kNSamples);
    ck(cudaMemcpyAsync(rs_->pcm.get(), pcm.data(), pcm.size() * 4, cudaMemcpyHostToDevice, dev_.s),
       "upload pcm");
    cuda::log_mel(*rs_, *model_, faults_);
    Tensor mel(DType::f32, {d_.n_mels, kNFrames});
    download(rs_->mel.f(), mel);
    ++taps_->copies.result_copies;
    taps_->begin(taps);
    taps_->put_host(std::string(kMel), mel);
    return mel;
  }

  Tensor stem(const Tensor& mel, TapSink* taps) override {
    check(mel, {d_.n_mels, 2 * d_.n_audio_ctx}, "stem: mel");
    rs_->batch = 1;
    upload(mel, rs_->mel.f());
    taps_->begin(taps);
    conv_stem(*rs_, *model_, faults_.at(-1), *taps_);
    return result(rs_->x.f());
  }

  Tensor block(int i, const Tensor& x, TapSink* taps) override {
    if (i < 0 || i >= d_.n_audio_layer)
      throw std::invalid_argument(
          fmt::format("cuda block: index {} not in [0, {})", i, d_.n_audio_layer));
    check(x, {d_.n_audio_ctx, d_.n_audio_state}, "block: input");
    rs_->batch = 1;
    upload(x, rs_->x.f());
    taps_->begin(taps);
    block_dev(i);
    return result(rs_->x.f());
  }

  Tensor ln_post(const Tensor& x, TapSink* taps) override {
    check(x, {d_.n_audio_ctx, d_.n_audio_state}, "ln_post: input");
    rs_->batch = 1;
    upload(x, rs_->x.f());
    taps_->begin(taps);
    final_layer_norm(*rs_, *model_, faults_.at(-1), *taps_);
    return result(rs_->y.f());
  }

  // Several clips in one pass of each stage (encode_batch in cuda_encoder.h).
  std::vector<Tensor> encode_batch(const std::vector<std::vector<float>>& pcm,
                                   const std::vector<TapSink*>& sinks);

  // Timing: stem + blocks + ln_post of rs_->batch clips from the mels already on the device, no
  // taps.
  void forward_dev() {
    taps_->begin(nullptr);
    conv_stem(*rs_, *model_, faults_.at(-1), *taps_);
    for (int i = 0; i < d_.n_audio_layer; ++i) block_dev(i);
    final_layer_norm(*rs_, *model_, faults_.at(-1), *taps_);
  }
  // Timing: every clip the buffers hold, each its own random mel.
  void random_mel() {
    rs_->batch = rs_->max_batch;
    launch_fill_uniform(rs_->mel.get(), Act::f32, rs_->max_batch * rs_->mel_numel(), 7, 1.0f, 0.0f,
                        dev_.s);
  }
  cudaStream_t stream() const { return dev_.s; }
  // Timing: the last run's output (ln_post of every clip), after the stream's work.
  std::vector<float> output() {
    std::vector<float> h(static_cast<std::size_t>(rs_->rows()) * d_.n_audio_state);
    ck(cudaMemcpyAsync(h.data(), rs_->y.f(), h.size() * 4, cudaMemcpyDeviceToHost, dev_.s),
       "download");
    ck(cudaStreamSynchronize(dev_.s), "download sync");
    return h;
  }
  const std::string& device_name() const { return dev_.name; }
  // One CUDA graph of forward_dev, replayed by replay().
  // With Options::dependent_gemms, the GEMMs whose kernels wait are captured as dependents
  // (Gemm::check_dependents: the shapes the runs before planned).
  void capture() {
    graph_.reset();
    if (dependent_gemms_) rs_->gemm->check_dependents();
    rs_->gemm->capture_dependents(dependent_gemms_);
    try {
      graph_ = std::make_unique<Captured>(dev_.s, [this] { forward_dev(); });
    } catch (...) {
      rs_->gemm->capture_dependents(false);
      throw;
    }
    rs_->gemm->capture_dependents(false);
  }
  std::pair<int, int> dependent_gemms_found() const { return rs_->gemm->dependents_found(); }
  void replay() { graph_->launch(dev_.s); }
  // Timing only: leave the ops of these kinds out of later runs and captures (none: all run).
  void skip_ops(std::set<std::string> ops) { taps_->skip(std::move(ops)); }
  // One stream run with an event after every op: milliseconds per op kind.
  std::map<std::string, double> profile_once() {
    taps_->profile(true);
    taps_->mark("start");
    forward_dev();
    taps_->profile(false);
    ck(cudaStreamSynchronize(dev_.s), "profile sync");
    return taps_->collect();
  }

 private:
  // x -> x (through y), block i's faults.
  void block_dev(int i) {
    const Faults fs = faults_.at(i);
    attention_layer(*rs_, *model_, fs, i, *taps_);
    mlp_layer(*rs_, *model_, fs, i, *taps_);
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
                       cudaMemcpyHostToDevice, dev_.s),
       "upload");
    ck(cudaStreamSynchronize(dev_.s), "upload sync");
  }
  void download(const float* dev, Tensor& out) {
    ck(cudaMemcpyAsync(out.f32(), dev, static_cast<std::size_t>(out.numel()) * 4,
                       cudaMemcpyDeviceToHost, dev_.s),
       "download");
    ck(cudaStreamSynchronize(dev_.s), "download sync");
  }
  // The stage's [T, C] result to the host, then its taps to the sink.
  Tensor result(const float* dev) {
    Tensor y(DType::f32, {d_.n_audio_ctx, d_.n_audio_state});
    download(dev, y);
    ++taps_->copies.result_copies;
    taps_->flush();
    return y;
  }

  // Declaration order is destruction order reversed: the stream outlives everything on it.
  std::shared_ptr<const Checkpoint> ck_;
  ModelDims d_;
  Act act_;
  Faults faults_;
  DeviceStream dev_;
  std::unique_ptr<const Model> model_;
  std::unique_ptr<RunState> rs_;
  std::unique_ptr<TapStaging> taps_;
  std::unique_ptr<Captured> graph_;
  bool dependent_gemms_ = false;
};

// Per clip: pcm up, log-mel into its block of rs_->mel, mel down (its tap, and the first seam
// result); then the stem, the blocks and ln_post over all clips, the taps of each stage reported
// to each clip's sink at the stage's end; then each clip's ln_post down.
std::vector<Tensor> CudaEncoder::encode_batch(const std::vector<std::vector<float>>& pcm,
                                              const std::vector<TapSink*>& sinks) {
  const int n = static_cast<int>(pcm.size());
  if (n < 1 || n > rs_->max_batch)
    throw std::invalid_argument(
        fmt::format("cuda encode_batch: {} clips, the encoder holds 1 to {} (Options::batch)", n,
                    rs_->max_batch));
  if (!sinks.empty() && sinks.size() != pcm.size())
    throw std::invalid_argument(
        fmt::format("cuda encode_batch: {} sinks for {} clips", sinks.size(), pcm.size()));
  rs_->batch = n;
  taps_->begin(sinks);
  for (int b = 0; b < n; ++b) {
    const std::vector<float> p = pad_or_trim(pcm[static_cast<std::size_t>(b)], kNSamples);
    ck(cudaMemcpyAsync(rs_->pcm.f() + static_cast<int64_t>(b) * kNSamples, p.data(), p.size() * 4,
                       cudaMemcpyHostToDevice, dev_.s),
       "upload pcm");
    cuda::log_mel(*rs_, *model_, faults_, b);
    Tensor mel(DType::f32, {d_.n_mels, kNFrames});
    download(rs_->mel.f() + b * rs_->mel_numel(), mel);
    ++taps_->copies.result_copies;
    taps_->put_host(std::string(kMel), mel, static_cast<std::size_t>(b));
  }
  conv_stem(*rs_, *model_, faults_.at(-1), *taps_);
  taps_->flush();
  for (int i = 0; i < d_.n_audio_layer; ++i) {
    block_dev(i);
    taps_->flush();
  }
  final_layer_norm(*rs_, *model_, faults_.at(-1), *taps_);
  std::vector<Tensor> out;
  for (int b = 0; b < n; ++b) {
    Tensor y(DType::f32, {d_.n_audio_ctx, d_.n_audio_state});
    download(rs_->y.f() + static_cast<int64_t>(b) * d_.n_audio_ctx * d_.n_audio_state, y);
    ++taps_->copies.result_copies;
    out.push_back(std::move(y));
  }
  taps_->flush();
  return out;
}

// What runs the attention, for run_info.
std::string attention_description(const RunState& rs) {
  if (rs.cudnn) return rs.cudnn->describe();
  if (!rs.flash)
    return "flash-style, one query per thread, online softmax, float32 on CUDA cores (inputs "
           "rounded to the GEMM type in reduced modes)";
  return std::string("FlashAttention-2 style on tensor cores (") +
         (flash_wgmma_enabled() ? "Hopper wgmma m64n64k16 where the grid fills the GPU, mma.sync "
                                  "m16n8k16 with the keys split where it does not"
                                : "mma.sync m16n8k16") +
         "; 16-bit q, k, v and P; float32 softmax statistics and accumulation)";
}

nlohmann::json CudaEncoder::run_info() const {
  const bool flash = rs_->flash;
  return {
      {"precision", std::string(act_name(act_))},
      {"device", "cuda:" + dev_.name},
      {"threads", 1},
      {"faults", faults_.specs},
      {"gemm", rs_->gemm->describe()},
      {"attention", attention_description(*rs_)},
      {"gemm_16bit_outputs",
       act_ == Act::f32
           ? std::string("none")
           : std::string(flash && rs_->qkv16_direct ? "qkv; " : "") +
                 (rs_->cudnn_fc1()     ? "fc1 + GELU (one cuDNN graph: GELU on the float32 "
                                         "accumulator, 16-bit output)"
                  : rs_->fc1_wgmma     ? "fc1 + GELU (one wgmma kernel: GELU on the 16-bit "
                                         "pre-activation)"
                  : rs_->fc1_16_direct ? "fc1 (GELU on the 16-bit pre-activation)"
                                       : "")},
      {"fc1_gelu", rs_->cudnn_fc1() ? rs_->fc1_gelu.begin()->second->describe()
                   : rs_->fc1_wgmma ? std::string("fc1 + bias + GELU in one Hopper wgmma kernel")
                                    : std::string("cuBLASLt fc1, then the GELU kernel")},
      {"dependent_launch", rs_->pdl},
      {"frontend", "cuFFT R2C float32"}};
}

double encoder_gflop(const ModelDims& d) {
  const double c = d.n_audio_state, t = d.n_audio_ctx, nm = d.n_mels;
  double f = 2 * (2 * t) * c * nm * 3 + 2 * t * c * 3 * c;
  const double block = 2 * t * c * 3 * c + 2 * t * c * c + 2 * 2 * t * c * 4 * c + 4 * t * t * c;
  f += d.n_audio_layer * block;
  return f / 1e9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

std::string device_unavailable_reason(int device) { return device_reason(device); }

namespace {
constexpr std::array<NameEntry<Backend>, 2> kBackendNames{{
    {Backend::own, "own"},
    {Backend::cudnn, "cudnn"},
}};
}  // namespace
std::string_view backend_name(Backend b) { return name_of(kBackendNames, b); }
std::optional<Backend> backend_of(std::string_view name) { return find_value(kBackendNames, name); }

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

std::vector<Tensor> encode_batch(Encoder& enc, const std::vector<std::vector<float>>& pcm,
                                 const std::vector<TapSink*>& sinks) {
  auto* c = dynamic_cast<CudaEncoder*>(&enc);
  if (c == nullptr) throw std::invalid_argument("cuda::encode_batch: not a CUDA encoder");
  return c->encode_batch(pcm, sinks);
}

std::unique_ptr<Encoder> make_encoder(std::shared_ptr<const Checkpoint> model, const Options& o) {
  if (!model) throw std::invalid_argument("cuda::make_encoder: null checkpoint");
  const ModelDims d = model->dims;
  return std::make_unique<CudaEncoder>(d, std::move(model), o, 0);
}

Timing time_encoder(const ModelDims& dims, const Options& o, int iters, int warmup, bool graph,
                    uint64_t seed) {
  if (iters < 1 || o.batch < 1) throw UsageError("time_encoder: iters and batch must be >= 1");
  const int batch = o.batch;
  CudaEncoder enc(dims, nullptr, o, seed);
  enc.random_mel();
  cudaStream_t s = enc.stream();
  for (int i = 0; i < warmup; ++i) enc.forward_dev();  // also fixes every GEMM plan
  ck(cudaStreamSynchronize(s), "warm-up");
  EventPair ev;
  // `n` timed runs (graph replays or stream launches), milliseconds each.
  auto timed = [&](int n) {
    if (graph) {
      enc.capture();
      for (int i = 0; i < 3; ++i) enc.replay();
      ck(cudaStreamSynchronize(s), "graph warm-up");
    }
    std::vector<double> ms;
    for (int i = 0; i < n; ++i)
      ms.push_back(ev.time(s, [&] { graph ? enc.replay() : enc.forward_dev(); }));
    return ms;
  };
  Timing r;
  r.graph = graph;
  r.batch = batch;
  r.device = enc.device_name();
  r.gflop = batch * encoder_gflop(dims);
  // The timed runs alone are the profiler's capture range (`ncu --profile-from-start off
  // --graph-profiling node`, `nsys profile --capture-range=cudaProfilerApi`): a per-kernel profile
  // of the graph as timed, without the warm-up, the graphs with an op kind left out or the stream
  // runs below (docs/gpu.md).
  ck(cudaProfilerStart(), "profiler start");
  r.ms = timed(iters);
  ck(cudaProfilerStop(), "profiler stop");
  r.median_ms = median(r.ms);
  std::tie(r.dependent_gemm_shapes, r.checked_gemm_shapes) = enc.dependent_gemms_found();
  const std::vector<float> out = enc.output();
  r.output_sha256 = sha256_bytes(out.data(), out.size() * 4);
  if (graph) {  // the same kernels in the same order on the stream: the same bits
    enc.forward_dev();
    const std::vector<float> stream_out = enc.output();
    if (std::memcmp(out.data(), stream_out.data(), out.size() * 4) != 0)
      throw std::runtime_error(
          "cuda timing: the CUDA graph's output differs from a stream run's (the timing is void)");
  }
  // Graphed profile: the whole encoder again with one op kind left out; what it saves is that
  // kind's share of the graph (launch gaps included, overlap with neighbours excluded).
  if (graph) {
    for (const char* kind : {"gemm", "attention", "layer_norm", "gelu"}) {
      enc.skip_ops({kind});
      r.graph_share_ms[kind] = r.median_ms - median(timed(std::max(5, iters / 2)));
    }
    enc.skip_ops({});
  }
  // Breakdown: median over 5 profiled stream runs of each op kind's share.
  std::map<std::string, std::vector<double>> runs;
  for (int i = 0; i < 5; ++i)
    for (const auto& [k, v] : enc.profile_once()) runs[k].push_back(v);
  for (auto& [k, v] : runs) r.breakdown_ms[k] = median(v);
  return r;
}

AttentionTiming time_attention(const ModelDims& dims, Precision precision, int batch, int iters,
                               int warmup, uint64_t seed, Backend attention) {
  if (iters < 1 || batch < 1) throw UsageError("time_attention: iters and batch must be >= 1");
  const Act act = act_of(precision);
  const int t = dims.n_audio_ctx, c = dims.n_audio_state, heads = dims.n_audio_head;
  const bool own = attention == Backend::own;
  if (act == Act::f32 || (own && c != 64 * heads))
    throw UsageError(
        fmt::format("time_attention: the {} attention runs in bfloat16/float16{} ({} d_head {})",
                    own ? "tensor-core" : "cuDNN", own ? " with d_head 64" : "",
                    to_string(precision), c / heads));
  DeviceStream dev(0);
  const int64_t rows = flash_rows(t);
  Buf qkv(static_cast<std::size_t>(batch * rows * 3 * c) * 2);
  Buf out(static_cast<std::size_t>(batch) * t * c * 2);
  Buf ws(flash_workspace_bytes(t, c));
  // q, k, v uniform in [-1, 1] (scores of a few units, as in a trained model), padding rows zero
  launch_fill_uniform(qkv.get(), act, batch * rows * 3 * c, seed, 1.0f, 0.0f, dev.s);
  for (int b = 0; b < batch; ++b)
    ck(cudaMemsetAsync(static_cast<char*>(qkv.get()) + (b * rows + t) * 3 * c * 2, 0,
                       static_cast<std::size_t>((rows - t) * 3 * c) * 2, dev.s),
       "memset");
  const float alpha = 1.0f / std::sqrt(static_cast<float>(c / heads));
  std::unique_ptr<CudnnAttention> cudnn;
  if (!own) cudnn = std::make_unique<CudnnAttention>(act, t, c, heads, rows, dev.s);
  auto run = [&] {
    if (cudnn)
      cudnn->run(qkv.get(), out.get(), alpha, batch);
    else
      launch_flash_attention(qkv.get(), out.get(), act, t, c, heads, alpha, ws.f(), dev.s, batch);
  };
  for (int i = 0; i < warmup; ++i) run();
  ck(cudaStreamSynchronize(dev.s), "warm-up");
  // Each timed sample: 10 launches back to back (the launch gap amortised, as in a graph).
  constexpr int kReps = 10;
  EventPair ev;
  AttentionTiming r;
  r.device = dev.name;
  r.batch = batch;
  r.gflop = 4.0 * batch * static_cast<double>(t) * t * c / 1e9;
  for (int i = 0; i < iters; ++i) r.ms.push_back(ev.per_call(dev.s, kReps, run));
  r.median_ms = median(r.ms);
  r.backend = cudnn ? cudnn->describe() : "own tensor-core kernel";
  return r;
}

GemmGeluTiming time_gemm_gelu(const ModelDims& dims, Precision precision, int batch, int iters,
                              int warmup, uint64_t seed) {
  if (iters < 1 || batch < 1) throw UsageError("time_gemm_gelu: iters and batch must be >= 1");
  const Act act = act_of(precision);
  if (act == Act::f32)
    throw UsageError("time_gemm_gelu: the fused GEMM + GELU is for bfloat16/float16");
  const int c = dims.n_audio_state, m = batch * dims.n_audio_ctx, n = 4 * c;
  DeviceStream dev(0);
  const auto elems = static_cast<int64_t>(m) * n;
  Buf x(static_cast<std::size_t>(m) * c * 2), w(static_cast<std::size_t>(n) * c * 2),
      b32(static_cast<std::size_t>(n) * 4), b16(static_cast<std::size_t>(n) * 2),
      y1(static_cast<std::size_t>(elems) * 2), y2(y1.bytes()),
      f1(static_cast<std::size_t>(elems) * 4), f2(f1.bytes());
  // layer-norm-like inputs, weights of 1/sqrt(C), biases of a few tenths (pre-activations of a
  // few units, the GELU's curved part)
  launch_fill_uniform(x.get(), act, static_cast<int64_t>(m) * c, seed, 1.7f, 0.0f, dev.s);
  launch_fill_uniform(w.get(), act, static_cast<int64_t>(n) * c, seed + 1,
                      1.0f / std::sqrt(static_cast<float>(c)), 0.0f, dev.s);
  launch_fill_uniform(b32.get(), Act::f32, n, seed + 2, 0.5f, 0.0f, dev.s);
  launch_convert(b32.f(), b16.get(), act, n, dev.s);
  Gemm gemm(act, dev.s);
  // cuDNN's graph where libcudnn can run it; otherwise the others are timed without it
  std::unique_ptr<CudnnGemmGelu> fused;
  std::string no_cudnn;
  try {
    fused = std::make_unique<CudnnGemmGelu>(act, m, n, c, dev.s);
  } catch (const std::runtime_error& e) {
    no_cudnn = e.what();
  }
  auto two = [&] {
    gemm.run(x.get(), w.get(), b16.get(), nullptr, y1.get(), m, n, c, act);
    launch_gelu16(y1.get(), act, elems, false, dev.s);
  };
  auto gemm_only = [&] { gemm.run(x.get(), w.get(), b16.get(), nullptr, y1.get(), m, n, c, act); };
  auto one = [&] {
    if (fused) fused->run(x.get(), w.get(), b32.f(), y2.get());
  };
  const bool hopper = gemm_gelu_wgmma_available() && gemm_gelu_wgmma_supported(m, n, c);
  Buf y3(hopper ? y1.bytes() : 0), y4(y3.bytes());
  auto own = [&] {
    launch_gemm_gelu_wgmma(x.get(), w.get(), b32.f(), y3.get(), act, m, n, c, false, dev.s);
  };
  // (name, cluster, max_clusters) of the other launch choices, each into y4
  const std::vector<std::tuple<std::string, int, int>> variants = {
      {"persistent, clusters of 2 sharing W", 2, 0},
      {"a cluster of 2 a tile", 2, -1},
      {"a block a tile, no clusters", 1, -1}};
  auto variant = [&](std::size_t i) {
    return [&, i] {
      launch_gemm_gelu_wgmma(x.get(), w.get(), b32.f(), y4.get(), act, m, n, c, false, dev.s,
                             std::get<1>(variants[i]), std::get<2>(variants[i]));
    };
  };
  for (int i = 0; i < warmup; ++i) {
    two();
    one();
    if (hopper) {
      own();
      for (std::size_t v = 0; v < variants.size(); ++v) variant(v)();
    }
  }
  ck(cudaStreamSynchronize(dev.s), "warm-up");
  constexpr int kReps = 10;
  EventPair ev;
  std::vector<double> t2, t1, tg, tw;
  std::vector<std::vector<double>> tv(variants.size());
  for (int i = 0; i < iters; ++i) {  // interleaved
    if (hopper) {
      tw.push_back(ev.per_call(dev.s, kReps, own));
      for (std::size_t v = 0; v < variants.size(); ++v)
        tv[v].push_back(ev.per_call(dev.s, kReps, variant(v)));
    }
    t2.push_back(ev.per_call(dev.s, kReps, two));
    if (fused) t1.push_back(ev.per_call(dev.s, kReps, one));
    tg.push_back(ev.per_call(dev.s, kReps, gemm_only));
  }
  // The same two paths with W streamed from DRAM, as in the encoder (each layer's W read once a
  // pass): each call takes the next of enough copies of W to exceed the L2 cache.
  const int copies = 8;
  std::vector<Buf> wcold;
  for (int i = 0; i < copies; ++i) {
    wcold.emplace_back(w.bytes());
    ck(cudaMemcpyAsync(wcold.back().get(), w.get(), w.bytes(), cudaMemcpyDeviceToDevice, dev.s),
       "copy");
  }
  int next = 0;
  auto two_cold = [&] {
    gemm.run(x.get(), wcold[next].get(), b16.get(), nullptr, y1.get(), m, n, c, act);
    launch_gelu16(y1.get(), act, elems, false, dev.s);
    next = (next + 1) % copies;
  };
  auto own_cold = [&] {
    launch_gemm_gelu_wgmma(x.get(), wcold[next].get(), b32.f(), y3.get(), act, m, n, c, false,
                           dev.s);
    next = (next + 1) % copies;
  };
  auto own1_cold = [&] {
    launch_gemm_gelu_wgmma(x.get(), wcold[next].get(), b32.f(), y4.get(), act, m, n, c, false,
                           dev.s, 2);
    next = (next + 1) % copies;
  };
  for (int i = 0; i < warmup; ++i) {
    two_cold();
    if (hopper) {
      own_cold();
      own1_cold();
    }
  }
  std::vector<double> c2, cw, cw1;
  for (int i = 0; i < iters; ++i) {
    c2.push_back(ev.per_call(dev.s, kReps, two_cold));
    if (hopper) {
      cw.push_back(ev.per_call(dev.s, kReps, own_cold));
      cw1.push_back(ev.per_call(dev.s, kReps, own1_cold));
    }
  }
  two();
  one();
  // rel L2 of a 16-bit output against the two-kernel path's
  auto against_two = [&](const Buf& y) {
    launch_to_f32(y1.get(), act, f1.f(), elems, dev.s);
    launch_to_f32(y.get(), act, f2.f(), elems, dev.s);
    std::vector<float> h1(static_cast<std::size_t>(elems)), h2(h1.size());
    ck(cudaStreamSynchronize(dev.s), "sync");
    ck(cudaMemcpy(h1.data(), f1.get(), h1.size() * 4, cudaMemcpyDeviceToHost), "download");
    ck(cudaMemcpy(h2.data(), f2.get(), h2.size() * 4, cudaMemcpyDeviceToHost), "download");
    double num = 0, den = 0;
    for (std::size_t i = 0; i < h1.size(); ++i) {
      num += (static_cast<double>(h2[i]) - h1[i]) * (static_cast<double>(h2[i]) - h1[i]);
      den += static_cast<double>(h1[i]) * h1[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
  };
  GemmGeluTiming r;
  if (fused) {
    r.rel_l2 = against_two(y2);
    r.cudnn_ms = median(t1);
    r.cudnn = fused->describe();
  } else {
    r.cudnn = "cuDNN's graph not run: " + no_cudnn;
  }
  if (hopper) {
    own();
    r.wgmma_ms = median(tw);
    r.wgmma_rel_l2 = against_two(y3);
    std::vector<unsigned char> h3(y3.bytes()), h4(y4.bytes());
    ck(cudaMemcpy(h3.data(), y3.get(), h3.size(), cudaMemcpyDeviceToHost), "download");
    r.wgmma_same_bits = true;
    for (std::size_t v = 0; v < variants.size(); ++v) {
      r.wgmma_variants.emplace_back(std::get<0>(variants[v]), median(tv[v]));
      ck(cudaMemsetAsync(y4.get(), 0, y4.bytes(), dev.s), "memset");
      variant(v)();
      ck(cudaStreamSynchronize(dev.s), "sync");
      ck(cudaMemcpy(h4.data(), y4.get(), h4.size(), cudaMemcpyDeviceToHost), "download");
      r.wgmma_same_bits = r.wgmma_same_bits && h3 == h4;
    }
  }
  r.cold.emplace_back("cuBLASLt GEMM + GELU kernel", median(c2));
  if (hopper) {
    r.cold.emplace_back("wgmma kernel, persistent", median(cw));
    r.cold.emplace_back("wgmma kernel, persistent, clusters of 2", median(cw1));
  }
  r.cublaslt_gelu_ms = median(t2);
  r.cublaslt_ms = median(tg);
  r.gflop = 2.0 * m * n * c / 1e9;
  r.device = dev.name;
  return r;
}

namespace {

// A block's four GEMMs as the encoder runs them (layers.cpp) at M = B T on random operands:
// 16-bit q | k | v and fc1 pre-activations with a 16-bit bias, float32 attn.out and fc2 with a
// float32 bias and the residual as beta = 1. Every shape's operands are prefixes of the largest:
// inputs [M, 4C], weights [4C, 4C], biases of both types, outputs and the residual float32
// [M, 4C].
struct BlockGemms {
  struct Case {
    const char* name;
    GemmShape g;
    const void* bias;
    const float* res;
    double gflop() const { return 2.0 * g.m * g.n * static_cast<double>(g.k) / 1e9; }
    // A result of this case (GemmShapeTiming, DependentGemmProbe) with its name and shape set.
    template <class R>
    R result() const {
      R r;
      r.name = name;
      r.m = g.m;
      r.n = g.n;
      r.k = g.k;
      return r;
    }
  };
  BlockGemms(const ModelDims& dims, Act act, int batch, uint64_t seed, cudaStream_t s)
      : m(batch * dims.n_audio_ctx), c(dims.n_audio_state) {
    const int64_t big = static_cast<int64_t>(m) * 4 * c, wbig = 16LL * c * c;
    x = Buf(static_cast<std::size_t>(big) * 2);
    w = Buf(static_cast<std::size_t>(wbig) * 2);
    b32 = Buf(static_cast<std::size_t>(4 * c) * 4);
    b16 = Buf(static_cast<std::size_t>(4 * c) * 2);
    y = Buf(static_cast<std::size_t>(big) * 4);
    r = Buf(static_cast<std::size_t>(big) * 4);
    launch_fill_uniform(x.get(), act, big, seed, 1.7f, 0.0f, s);
    launch_fill_uniform(w.get(), act, wbig, seed + 1, 1.0f / std::sqrt(static_cast<float>(c)), 0.0f,
                        s);
    launch_fill_uniform(b32.get(), Act::f32, 4 * c, seed + 2, 0.5f, 0.0f, s);
    launch_convert(b32.f(), b16.get(), act, 4 * c, s);
    launch_fill_uniform(r.get(), Act::f32, big, seed + 3, 1.0f, 0.0f, s);
    cases = {{"attn.qkv", {m, 3 * c, c, true, act}, b16.get(), nullptr},
             {"attn.out", {m, c, c, true, Act::f32}, b32.get(), r.f()},
             {"mlp.fc1", {m, 4 * c, c, true, act}, b16.get(), nullptr},
             {"mlp.fc2", {m, c, 4 * c, true, Act::f32}, b32.get(), r.f()}};
  }
  int m, c;
  Buf x, w, b32, b16, y, r;
  std::vector<Case> cases;
};

}  // namespace

std::vector<GemmShapeTiming> time_gemms(const ModelDims& dims, Precision precision, int batch,
                                        int iters, int max_algos, std::string* device,
                                        uint64_t seed) {
  if (iters < 1 || batch < 1 || max_algos < 1)
    throw UsageError("time_gemms: iters, batch and algorithms must be >= 1");
  const Act act = act_of(precision);
  if (act == Act::f32) throw UsageError("time_gemms: bfloat16/float16 (the encoder's fast path)");
  DeviceStream dev(0);
  if (device != nullptr) *device = dev.name;
  BlockGemms bg(dims, act, batch, seed, dev.s);
  Gemm gemm(act, dev.s);
  constexpr int kReps = 10;
  EventPair ev;
  const bool pdl = dependent_launch_available();
  std::vector<GemmShapeTiming> out;
  for (const BlockGemms::Case& cs : bg.cases) {
    auto st = cs.result<GemmShapeTiming>();
    st.gflop = cs.gflop();
    for (const cublasLtMatmulAlgo_t& a : gemm.candidates(cs.g, max_algos)) {
      auto call = [&] {
        gemm.run_with(a, cs.g, bg.x.get(), bg.w.get(), cs.bias, cs.res, bg.y.get());
      };
      try {
        for (int i = 0; i < 3; ++i) call();
        ck(cudaStreamSynchronize(dev.s), "warm-up");
      } catch (const std::runtime_error&) {
        continue;  // an offered algorithm that does not run this shape after all
      }
      std::vector<double> ms;
      for (int i = 0; i < iters; ++i) ms.push_back(ev.per_call(dev.s, kReps, call));
      GemmAlgoTiming at{Gemm::describe(a), median(ms), std::nullopt};
      if (pdl) at.waits = gemm.waits_with(cs.g, a);
      st.algos.push_back(std::move(at));
    }
    out.push_back(std::move(st));
  }
  return out;
}

std::vector<DependentGemmProbe> probe_dependent_gemms(const ModelDims& dims, Precision precision,
                                                      int batch, std::string* device) {
  if (batch < 1) throw UsageError("probe_dependent_gemms: batch must be >= 1");
  const Act act = act_of(precision);
  if (act == Act::f32)
    throw UsageError("probe_dependent_gemms: bfloat16/float16 (the encoder's fast path)");
  DeviceStream dev(0);
  if (device != nullptr) *device = dev.name;
  if (!dependent_launch_available())
    throw std::runtime_error("cuda: no programmatic dependent launch on " + dev.name +
                             " (compute capability 9.0 on, kernels built for sm_90 on)");
  int sms = 0;
  ck(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0), "attribute");
  BlockGemms bg(dims, act, batch, 1, dev.s);
  Gemm gemm(act, dev.s);
  Buf stamps(4 * sizeof(uint64_t));
  constexpr int kRuns = 7;
  std::vector<DependentGemmProbe> out;
  for (const BlockGemms::Case& cs : bg.cases) {
    auto p = cs.result<DependentGemmProbe>();
    p.config = Gemm::describe(gemm.candidates(cs.g, 1).front());
    auto run = [&](const void* x) {  // the pinned algorithm, as the encoder runs it
      gemm.run(x, bg.w.get(), cs.bias, cs.res, bg.y.get(), cs.g.m, cs.g.n, cs.g.k, cs.g.out);
    };
    // 1. Its input written late by a kernel that lets it start at once (Gemm::waits_with).
    gemm.check_dependents();
    p.waits = gemm.waits_as_dependent(cs.g);
    // 2. Its dependents: a kernel of blocks that each wait, launched as a dependent and
    // ordinarily, timed from a stamp right before the GEMM (medians of kRuns graph launches).
    for (const bool dependent : {true, false}) {
      Captured g(dev.s, [&] {
        launch_stamp(static_cast<uint64_t*>(stamps.get()) + 2, dev.s);
        run(bg.x.get());
        launch_stamp_wait(static_cast<uint64_t*>(stamps.get()), 2 * sms, Queue(dev.s, dependent));
      });
      std::vector<double> start, released;
      for (int i = 0; i < kRuns; ++i) {
        ck(cudaMemsetAsync(stamps.get(), 0xff, 2 * sizeof(uint64_t), dev.s), "memset");
        g.launch(dev.s);
        uint64_t t[3] = {};
        ck(cudaMemcpyAsync(t, stamps.get(), sizeof(t), cudaMemcpyDeviceToHost, dev.s), "download");
        ck(cudaStreamSynchronize(dev.s), "sync");
        start.push_back(static_cast<double>(t[0] - t[2]) / 1e3);
        released.push_back(static_cast<double>(t[1] - t[2]) / 1e3);
      }
      (dependent ? p.dependent_start_us : p.ordinary_start_us) = median(start);
      if (dependent) p.dependent_release_us = median(released);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace wb::cuda
