#include "pipeline.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "wb/core/util.h"
#include "wb/port/port.h"
#ifdef WB_HAVE_CANDIDATE
#include "wb/candidate/candidate.h"
#endif
#ifdef WB_HAVE_CUDA
#include "wb/cuda/cuda_encoder.h"
#endif

namespace wb::cli {

std::shared_ptr<const Checkpoint> load_model(const std::string& path) {
  return std::make_shared<const Checkpoint>(load_checkpoint(path));
}

DType decoder_dtype(const EncoderChoice& c) {
  return c.impl == Impl::reference && c.dtype == DType::f64 ? DType::f64 : DType::f32;
}

std::unique_ptr<Encoder> make_encoder(std::shared_ptr<const Checkpoint> model,
                                      const EncoderChoice& c) {
  if (c.impl != Impl::cuda && (c.attention != "own" || c.fc1_gelu != "own"))
    throw UsageError("--attention and --fc1-gelu apply to --impl cuda only");
  const int threads = c.resolved_threads();
  set_reference_threads(threads);
  if (c.impl == Impl::port || !c.port.empty()) {
    if (c.port.empty()) throw UsageError("--impl port needs --port CMD (docs/ports.md)");
    if (c.impl != Impl::port) throw UsageError("--port replaces --impl: give one of them");
    if (c.faults.any() || c.precision != Precision::float32 || c.dtype != DType::f32)
      throw UsageError(
          "--fault, --precision and --dtype do not apply to --port (the port declares its "
          "precision)");
    port::PortOptions o;
    o.command = c.port;
    o.timeout_s = c.port_timeout;
    o.model_path = model->path;
    o.model_sha256 = model->sha256;
    o.dims = model->dims;
    o.allow_model_mismatch = c.allow_model_mismatch;
    return port::PortEncoder::start(o);
  }
  if (c.impl == Impl::reference) {
    if (c.faults.any() || c.precision != Precision::float32)
      throw UsageError("--fault and --precision apply to --impl candidate only");
    return make_reference_encoder(std::move(model), c.dtype, std::string(to_string(c.device)));
  }
  if (c.device != Device::cpu)
    throw UsageError("--device applies to --impl reference only (--impl cuda is the GPU encoder)");
  if (c.dtype != DType::f32)
    throw UsageError("--dtype applies to --impl reference only (use --precision)");
  if (c.impl == Impl::cuda) {
#ifdef WB_HAVE_CUDA
    cuda::Options o;
    o.precision = c.precision;
    o.faults = c.faults;
    auto backend = [](const char* option, const std::string& name) {
      if (const auto b = cuda::backend_of(name)) return *b;
      throw UsageError(fmt::format("{}: own or cudnn, not {}", option, name));
    };
    o.attention = backend("--attention", c.attention);
    o.fc1_gelu = backend("--fc1-gelu", c.fc1_gelu);
    return cuda::make_encoder(std::move(model), o);  // "no CUDA device: ..." -> exit 2
#else
    throw std::logic_error("--impl cuda in a build without CUDA (parse_impl refuses it)");
#endif
  }
#ifdef WB_HAVE_CANDIDATE
  CandidateOptions o;
  o.precision = c.precision;
  o.faults = c.faults;
  o.threads = threads;
  return make_candidate_encoder(std::move(model), o);
#else
  throw UsageError("this build has no candidate encoder");
#endif
}

void print_port_timing(const Encoder& enc, const EncoderChoice& c) {
  if (!c.port_timing) return;
  if (const auto* p = dynamic_cast<const port::PortEncoder*>(&enc))
    fmt::print(stderr, "{}", p->timing_table());
}

void require_stage_requests(const Encoder& enc, const std::string& command) {
  if (const auto* p = dynamic_cast<const port::PortEncoder*>(&enc)) p->require_stages(command);
}

RunResult run_pipeline(Encoder& enc, ReferenceDecoder* dec, const Audio& audio, TapSink* taps,
                       bool decode, const DecodeOptions& decode_opts) {
  if (decode && dec == nullptr) throw std::logic_error("run_pipeline: decoding without a decoder");
  using clock = std::chrono::steady_clock;
  auto secs = [](clock::time_point a, clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
  };
  RunResult r;
  const auto t0 = clock::now();
  auto t1 = t0;
  if (enc.runs_whole()) {
    r.encoder_out = enc.encode(audio.pcm, taps);  // mel and encoder in one request
  } else {
    Tensor mel = enc.log_mel(audio.pcm, taps);
    t1 = clock::now();
    r.encoder_out = run_encoder(enc, mel, taps);
  }
  const auto t2 = clock::now();
  if (decode) r.decoded = dec->greedy(r.encoder_out, taps, decode_opts);
  const auto t3 = clock::now();
  r.seconds_mel = secs(t0, t1);
  r.seconds_encoder = secs(t1, t2);
  r.seconds_decode = secs(t2, t3);
  return r;
}

nlohmann::json reference_cache_key(const Checkpoint& model, const std::string& audio_sha256,
                                   const EncoderChoice& ref, const std::string& store,
                                   const std::string& taps, const nlohmann::json& decode) {
  return {{"kind", "reference dump"},
          {"model_sha256", model.sha256},
          {"audio_sha256", audio_sha256},
          {"dtype", dtype_name(ref.dtype)},
          {"store", store},
          {"taps", taps},
          {"threads", ref.resolved_threads()},
          {"device", to_string(ref.device)},
          {"decode", decode},
          {"backend", reference_backend_version()},
          {"tool_version", tool_version()}};
}

std::vector<ExpectLine> read_expect(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error(path + ": cannot open expect file");
  std::vector<ExpectLine> out;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    if (tab == std::string::npos || tab == 0)
      throw std::runtime_error(fmt::format("{}:{}: expected '<file>\\t<text>'", path, lineno));
    out.push_back({line.substr(0, tab), line.substr(tab + 1)});
  }
  if (out.empty()) throw std::runtime_error(path + ": no clips listed");
  return out;
}

namespace {
namespace fs = std::filesystem;
bool is_audio_name(const std::string& n) {
  std::string e = fs::path(n).extension().string();
  std::transform(e.begin(), e.end(), e.begin(), [](unsigned char c) { return std::tolower(c); });
  return e == ".wav" || e == ".flac" || e == ".ogg" || e == ".mp3";
}
}  // namespace

std::vector<Clip> list_clips(const std::string& dir, const std::string& expect) {
  if (!fs::is_directory(dir)) throw std::runtime_error(dir + ": not a directory (--audio-dir)");
  std::vector<Clip> clips;
  if (!expect.empty()) {
    for (const ExpectLine& e : read_expect(expect)) clips.push_back({e.file, e.text});
  } else {
    for (const auto& e : fs::directory_iterator(dir)) {
      const std::string n = e.path().filename().string();
      if (is_audio_name(n)) clips.push_back({n, ""});
    }
  }
  std::sort(clips.begin(), clips.end(),
            [](const Clip& a, const Clip& b) { return a.file < b.file; });
  for (std::size_t i = 1; i < clips.size(); ++i)
    if (clips[i].file == clips[i - 1].file)
      throw std::runtime_error(fmt::format("{}: clip '{}' listed twice", expect, clips[i].file));
  if (clips.empty())
    throw std::runtime_error(expect.empty() ? dir + ": no audio files (.wav .flac .ogg .mp3)"
                                            : expect + ": no clips listed");
  return clips;
}

}  // namespace wb::cli
