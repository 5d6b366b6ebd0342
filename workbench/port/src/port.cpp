#include "wb/port/port.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>

#include "process.h"
#include "wb/core/dump.h"
#include "wb/core/taps.h"
#include "wb/core/tensor_file.h"
#include "wb/core/util.h"

namespace wb::port {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using clock = std::chrono::steady_clock;
double since(clock::time_point t) {
  return std::chrono::duration<double>(clock::now() - t).count();
}

constexpr double kByeSeconds = 5;
constexpr int kStderrTailLines = 20;

// The last lines of the port's stderr file (at most 4 KiB of it).
std::string tail_of(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  in.seekg(0, std::ios::end);
  const auto size = static_cast<std::streamoff>(in.tellg());
  const std::streamoff from = size > 4096 ? size - 4096 : 0;
  in.seekg(from);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  int lines = 0;
  for (std::size_t i = s.size(); i-- > 0;)
    if (s[i] == '\n' && ++lines == kStderrTailLines) return s.substr(i + 1);
  return s;
}

std::string last_line(const std::string& text) {
  const auto nl = text.rfind('\n');
  std::string l = nl == std::string::npos ? text : text.substr(nl + 1);
  if (l.size() > 240) l = l.substr(0, 240) + "...";
  return l;
}

std::string printable(const std::string& s) {
  std::string o;
  for (char c : s.substr(0, 80)) o += (static_cast<unsigned char>(c) < 0x20 ? '?' : c);
  return s.size() > 80 ? o + "..." : o;
}

// Where the scratch folder goes: $WB_PORT_SCRATCH; else /dev/shm when it is a writable memory
// file system with room for a large model's taps (a run of large-v3 answers about 2.4 GB of
// float32 taps; a container's default /dev/shm of 64 MB has not), so that the tensor files never
// touch a disk (measured on the trained fixture: the port's writes took half the time there); else
// the temporary folder.
std::string scratch_parent() {
  if (const char* e = std::getenv("WB_PORT_SCRATCH"); e != nullptr && *e != '\0') return e;
  struct statvfs v {};
  constexpr unsigned long long kRoom = 4ull << 30;
  if (::access("/dev/shm", W_OK) == 0 && ::statvfs("/dev/shm", &v) == 0 &&
      static_cast<unsigned long long>(v.f_bavail) * v.f_frsize >= kRoom)
    return "/dev/shm";
  return fs::temp_directory_path().string();
}

// A file mapped read-only (the port's answer, read in place).
class MappedFile {
 public:
  explicit MappedFile(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw std::runtime_error(path + ": cannot open");
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0) {
      size_ = static_cast<std::size_t>(st.st_size);
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) data_ = static_cast<const unsigned char*>(p);
    }
    ::close(fd);
    if (data_ == nullptr) size_ = 0;  // callers then read through HDF5
  }
  ~MappedFile() {
    if (data_ != nullptr) ::munmap(const_cast<unsigned char*>(data_), size_);
  }
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const unsigned char* data() const { return data_; }
  std::size_t size() const { return size_; }

 private:
  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

// The registry's stages of the encoder, each with its taps in execution order.
struct StageTaps {
  TapStage stage;
  int block;
  std::vector<const TapSpec*> taps;  // the last one is the stage's output
};

std::vector<StageTaps> stage_taps(const ModelDims& d) {
  std::vector<StageTaps> out;
  for (const TapSpec& t : TapRegistry::of(d).taps()) {
    if (t.side != TapSide::encoder) continue;
    if (out.empty() || out.back().stage != t.stage || out.back().block != t.block)
      out.push_back({t.stage, t.block, {}});
    out.back().taps.push_back(&t);
  }
  return out;
}

std::string stage_label(TapStage s, int block) {
  return s == TapStage::block ? fmt::format("stage block {}", block)
                              : fmt::format("stage {}", tap_stage_name(s));
}

}  // namespace

struct PortEncoder::Impl {
  PortOptions opts;
  PortInfo info;
  std::string scratch;
  std::string stderr_path;
  std::optional<Process> proc;
  bool broken = false;
  int next_id = 0;
  std::vector<StageTaps> stages;
  std::map<std::string, RequestTiming> timing;

  std::string who() const {
    return info.name.empty() ? fmt::format("port '{}'", opts.command)
                             : fmt::format("port '{}'", info.name);
  }

  [[noreturn]] void fail(const std::string& request, const std::string& what) {
    broken = true;
    if (proc) proc->kill();
    const std::string tail = tail_of(stderr_path);
    const std::string l = last_line(tail);
    throw PortError(fmt::format("{}: {}: {}{}", who(), request, what,
                                l.empty() ? "" : fmt::format(" (stderr: {})", l)),
                    tail);
  }

  [[noreturn]] void exited(const std::string& request, const std::string& partial) {
    const std::optional<int> st = proc->wait(2.0);
    std::string what = st ? fmt::format("exited with status {} without answering", *st)
                          : std::string("closed its stdout without answering");
    if (!partial.empty()) what += fmt::format(" (it printed '{}')", printable(partial));
    fail(request, what);
  }

  // One request, one answer (ok checked): the answer object.
  json exchange(json req, const std::string& request) {
    if (broken) fail(request, "the port failed earlier in this run");
    const int id = next_id++;
    req["id"] = id;
    if (!proc->write_line(req.dump())) exited(request, "");
    std::string line;
    switch (proc->read_line(line, opts.timeout_s)) {
      case Process::Read::timeout:
        fail(request,
             fmt::format("no answer within {:g} s (killed; --port-timeout)", opts.timeout_s));
      case Process::Read::eof:
        exited(request, line);
      case Process::Read::too_long:
        fail(request,
             fmt::format("stdout is not a JSON answer: '{}' (no end of line)", printable(line)));
      case Process::Read::line:
        break;
    }
    json a;
    try {
      a = json::parse(line);
    } catch (const json::exception&) {
      fail(request, fmt::format("stdout is not a JSON answer: '{}' (a port logs to stderr)",
                                printable(line)));
    }
    if (!a.is_object() || !a.contains("ok") || !a["ok"].is_boolean())
      fail(request, fmt::format("answer without a boolean 'ok': '{}'", printable(line)));
    if (!a.contains("id") || !a["id"].is_number_integer() || a["id"].get<int>() != id)
      fail(request, fmt::format("answer to id {} expected, got '{}'", id, printable(line)));
    if (!a["ok"].get<bool>()) {
      const std::string err =
          a.contains("error") && a["error"].is_string() ? a["error"].get<std::string>() : "?";
      fail(request, "the port says: " + last_line(err));
    }
    return a;
  }

  void hello() {
    const json a = exchange({{"op", "hello"},
                             {"protocol", kProtocolVersion},
                             {"scratch", scratch},
                             {"model", opts.model_path}},
                            "hello");
    const int protocol =
        a.value("protocol", json()).is_number_integer() ? a["protocol"].get<int>() : -1;
    if (protocol != kProtocolVersion)
      fail("hello",
           fmt::format("speaks protocol {}, this workbench speaks {}",
                       a.contains("protocol") ? a["protocol"].dump() : "(none)", kProtocolVersion));
    auto str = [&](const char* k) {
      if (!a.contains(k) || !a[k].is_string())
        fail("hello", fmt::format("the answer has no string '{}'", k));
      return a[k].get<std::string>();
    };
    info.name = str("name");
    if (info.name.empty()) fail("hello", "empty 'name'");
    try {
      info.dims = ModelDims::from_json(a.at("model_dims"));
    } catch (const std::exception& e) {
      fail("hello", fmt::format("bad model_dims ({})", e.what()));
    }
    if (!(info.dims == opts.dims))
      fail("hello", fmt::format("model_dims {} differ from the model's {}",
                                info.dims.to_json().dump(), opts.dims.to_json().dump()));
    info.model_sha256 = str("model_sha256");
    if (info.model_sha256 != opts.model_sha256 && !opts.allow_model_mismatch)
      fail("hello", fmt::format("runs model_sha256 '{}', not the model's {} (another checkpoint; "
                                "--allow-model-mismatch to compare anyway)",
                                info.model_sha256.substr(0, 16), opts.model_sha256.substr(0, 16)));
    try {
      info.precision = parse_precision(str("precision"));
    } catch (const std::invalid_argument& e) {
      fail("hello", e.what());
    }
    if (a.contains("device") && a["device"].is_string()) info.device = a["device"];
    auto names = [&](const char* k) {
      std::set<std::string> s;
      if (!a.contains(k)) return s;
      if (!a[k].is_array()) fail("hello", fmt::format("'{}' is not a list", k));
      for (const auto& v : a[k]) {
        if (!v.is_string()) fail("hello", fmt::format("'{}' holds a non-string", k));
        s.insert(v.get<std::string>());
      }
      return s;
    };
    info.requests = names("requests");
    info.stages = names("stages");
    for (const auto& r : info.requests)
      if (r != "run" && r != "stage") fail("hello", fmt::format("unknown request '{}'", r));
    if (!info.requests.count("run")) fail("hello", "'requests' lacks 'run' (required)");
    for (const auto& s : info.stages) {
      bool known = false;
      for (TapStage t : {TapStage::frontend, TapStage::stem, TapStage::block, TapStage::ln_post})
        known = known || s == tap_stage_name(t);
      if (!known) fail("hello", fmt::format("unknown stage '{}'", s));
    }
    if (info.requests.count("stage") && info.stages.empty())
      fail("hello", "implements 'stage' but lists no 'stages'");
  }

  std::string scratch_file(int id, const char* what) const {
    return fmt::format("{}/{}.{}.h5", scratch, id, what);
  }

  // Sends a request whose inputs go in a tensor file; reads and checks the answer file (a tap
  // `refuse` has a reason against fails the request). Every tap is reported to the sink that
  // wants it; returns them all.
  // A request's answer: the taps asked to be kept (`keep`), and the names of all it held.
  struct Answer {
    std::map<std::string, Tensor> kept;
    std::set<std::string> names;
  };

  // Sends a request whose inputs go in a tensor file; checks the answer file (a tap `refuse` has
  // a reason against fails the request) and reports every tap the sink wants, read in place from
  // the mapped file where its layout allows (contiguous float32), else through HDF5.
  Answer request(const std::string& kind, json req, const std::string& label,
                 const std::vector<float>* samples, const std::vector<NamedTensor>& inputs,
                 const std::function<std::string(const TapSpec&)>& refuse,
                 const std::set<std::string>& keep, TapSink* taps) {
    RequestTiming& t = timing[kind];
    const int id = next_id;
    const std::string in = scratch_file(id, "in"), out = scratch_file(id, "out");
    auto t0 = clock::now();
    write_tensor_file(in, samples, inputs);
    t.write += since(t0);
    req["input"] = in;
    req["output"] = out;
    t0 = clock::now();
    const json a = exchange(req, fmt::format("{} (id {})", label, id));
    t.round_trip += since(t0);
    t0 = clock::now();
    const double compute = a.contains("compute_seconds") && a["compute_seconds"].is_number()
                               ? a["compute_seconds"].get<double>()
                               : 0.0;
    const std::string request_label = fmt::format("{} (id {})", label, id);
    // Taken out of the port's reach before it is read: the answer is ours from here on.
    const std::string mine = out + ".wb";
    std::error_code ec;
    fs::rename(out, mine, ec);
    if (ec) fail(request_label, "answered ok but wrote no output file");
    Answer ans;
    double sink_seconds = 0;
    try {
      const DumpReader r(mine, opts.dims);
      const MappedFile map(mine);
      const TapRegistry& reg = TapRegistry::of(opts.dims);
      for (const TapInfo& ti : r.taps()) {
        const TapSpec* spec = reg.find(ti.name);
        if (spec == nullptr)
          fail(request_label, fmt::format("tap '{}': not in the registry of this model", ti.name));
        if (spec->side != TapSide::encoder)
          fail(request_label,
               fmt::format("tap '{}': a decoder tap (a port serves the encoder)", ti.name));
        if (const std::string why = refuse(*spec); !why.empty())
          fail(request_label, fmt::format("tap '{}': {}", ti.name, why));
        ans.names.insert(ti.name);
      }
      for (const TapInfo& ti : r.taps()) {
        const bool kept = keep.count(ti.name) > 0;
        if (!kept && !wanted_by(taps, ti.name)) continue;
        const std::optional<uint64_t> off =
            map.size() == r.file_size() ? r.contiguous_f32_offset(ti.name) : std::nullopt;
        Tensor read;
        const float* values = nullptr;
        if (off) {
          values = reinterpret_cast<const float*>(map.data() + *off);
        } else {
          read = r.read(ti.name, DType::f32);
          values = read.f32();
        }
        const auto s0 = clock::now();
        report(taps, ti.name, ti.shape, DType::f32, values);
        sink_seconds += since(s0);  // the sink's cost (a dump writer's), whatever the encoder
        if (kept) {
          if (off) {
            read = Tensor(DType::f32, ti.shape);
            std::memcpy(read.f32(), values, sizeof(float) * static_cast<std::size_t>(read.numel()));
          }
          ans.kept.emplace(ti.name, std::move(read));
        }
      }
    } catch (const PortError&) {
      throw;
    } catch (const std::runtime_error& e) {
      std::string msg = e.what();
      if (msg.rfind(mine, 0) == 0) msg = "answer file" + msg.substr(mine.size());
      fail(request_label, msg);
    }
    fs::remove(in, ec);
    fs::remove(mine, ec);
    t.read += since(t0) - sink_seconds;
    t.compute += compute;
    ++t.count;
    return ans;
  }

  std::vector<std::string> wanted(const StageTaps* only, TapSink* taps,
                                  const std::vector<std::string>& always) const {
    std::vector<std::string> names = always;
    for (const StageTaps& s : stages) {
      if (only != nullptr && (s.stage != only->stage || s.block != only->block)) continue;
      for (const TapSpec* t : s.taps)
        if (wanted_by(taps, t->name) &&
            std::find(names.begin(), names.end(), t->name) == names.end())
          names.push_back(t->name);
    }
    return names;
  }
  static bool wanted_by(TapSink* taps, const std::string& name) {
    return taps != nullptr && taps->wants(name);
  }

  // One stage through a `stage` request: its output tensor.
  Tensor stage(TapStage st, int block, const std::vector<float>* samples, const Tensor* x,
               TapSink* taps) {
    const std::string label = stage_label(st, block);
    if (!info.requests.count("stage") || !info.stages.count(std::string(tap_stage_name(st))))
      throw UsageError(fmt::format("{} does not implement '{}' (replay and bisect-layers need it)",
                                   who(), label));
    std::size_t k = 0;
    while (k < stages.size() && !(stages[k].stage == st && stages[k].block == block)) ++k;
    if (k == stages.size()) throw std::logic_error("stage outside the registry");
    const StageTaps& s = stages[k];
    const std::string output = s.taps.back()->name;
    std::vector<NamedTensor> inputs;
    if (x != nullptr) inputs.push_back({stages[k - 1].taps.back()->name, x});
    json req = {
        {"op", "stage"}, {"stage", tap_stage_name(st)}, {"taps", wanted(&s, taps, {output})}};
    if (st == TapStage::block) req["block"] = block;
    auto refuse = [&](const TapSpec& t) -> std::string {
      return t.stage == st && t.block == block ? "" : fmt::format("not a tap of {}", label);
    };
    Answer got = request("stage", req, label, samples, inputs, refuse, {output}, taps);
    auto it = got.kept.find(output);
    if (it == got.kept.end())
      fail(label, fmt::format("answered no '{}' (the stage's output)", output));
    return std::move(it->second);
  }
};

std::unique_ptr<PortEncoder> PortEncoder::start(const PortOptions& o) {
  auto impl = std::make_unique<Impl>();
  impl->opts = o;
  const std::string parent = scratch_parent();
  std::string tmpl = parent + "/wb-port-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr)
    throw std::runtime_error("cannot make a scratch folder for the port in " + parent +
                             " ($WB_PORT_SCRATCH)");
  impl->scratch = tmpl;
  impl->stderr_path = tmpl + "/stderr.txt";
  impl->stages = stage_taps(o.dims);
  std::unique_ptr<PortEncoder> enc(new PortEncoder(std::move(impl)));
  enc->impl_->proc.emplace(o.command, enc->impl_->stderr_path);
  enc->impl_->hello();
  return enc;
}

PortEncoder::PortEncoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PortEncoder::~PortEncoder() {
  Impl& m = *impl_;
  if (m.proc && !m.broken) {
    try {
      if (m.proc->write_line(json{{"op", "bye"}, {"id", m.next_id++}}.dump())) {
        std::string line;
        (void)m.proc->read_line(line, kByeSeconds);
      }
      if (!m.proc->wait(kByeSeconds)) m.proc->kill();
    } catch (const std::exception&) {
      m.proc->kill();
    }
  }
  m.proc.reset();
  std::error_code ec;
  if (!m.scratch.empty()) fs::remove_all(m.scratch, ec);
}

const PortInfo& PortEncoder::info() const { return impl_->info; }
bool PortEncoder::implements(const std::string& r) const { return impl_->info.requests.count(r); }

void PortEncoder::require_stages(const std::string& command) const {
  const PortInfo& i = impl_->info;
  std::string missing;
  for (TapStage t : {TapStage::frontend, TapStage::stem, TapStage::block, TapStage::ln_post})
    if (!i.stages.count(std::string(tap_stage_name(t))))
      missing += (missing.empty() ? "" : ", ") + std::string(tap_stage_name(t));
  if (!i.requests.count("stage"))
    throw UsageError(fmt::format("{} does not implement 'stage' ({} needs it; docs/ports.md)",
                                 impl_->who(), command));
  if (!missing.empty())
    throw UsageError(fmt::format("{} does not serve stage(s) {} ({} needs every stage)",
                                 impl_->who(), missing, command));
}

const std::map<std::string, RequestTiming>& PortEncoder::timing() const { return impl_->timing; }

std::string PortEncoder::timing_table() const {
  std::string s = fmt::format(
      "port timing ({}): request, count, port compute, workbench overhead (write inputs / "
      "process I/O / read answers), overhead share of compute\n",
      impl_->info.name);
  for (const auto& [kind, t] : impl_->timing)
    s += fmt::format("  {:<6} {:>4}  {:8.4f} s  {:8.4f} s ({:.4f} / {:.4f} / {:.4f})  {:5.1f} %\n",
                     kind, t.count, t.compute, t.overhead(), t.write, t.round_trip - t.compute,
                     t.read, t.compute > 0 ? 100.0 * t.overhead() / t.compute : 0.0);
  return s;
}

std::string PortEncoder::implementation() const { return impl_->info.name; }

nlohmann::json PortEncoder::run_info() const {
  const PortInfo& i = impl_->info;
  json j = {{"port", i.name},
            {"port_command", impl_->opts.command},
            {"port_protocol", kProtocolVersion},
            {"port_model_sha256", i.model_sha256},
            {"precision", to_string(i.precision)},
            {"device", i.device.empty() ? std::string("port") : i.device}};
  return j;
}

int PortEncoder::n_layers() const { return impl_->info.dims.n_audio_layer; }

Tensor PortEncoder::encode(const std::vector<float>& pcm16k, TapSink* taps) {
  Impl& m = *impl_;
  const std::string out = m.stages.back().taps.back()->name;  // encoder.ln_post
  json req = {{"op", "run"}, {"taps", m.wanted(nullptr, taps, {std::string(kMel), out})}};
  Impl::Answer got = m.request(
      "run", req, "run", &pcm16k, {}, [](const TapSpec&) { return std::string(); }, {out}, taps);
  for (const std::string& need : {std::string(kMel), out})
    if (!got.names.count(need))
      m.fail(fmt::format("run (id {})", m.next_id - 1),
             fmt::format("answered no '{}' (a run answers mel and {} at least)", need, out));
  return std::move(got.kept.at(out));
}

Tensor PortEncoder::log_mel(const std::vector<float>& pcm16k, TapSink* taps) {
  return impl_->stage(TapStage::frontend, -1, &pcm16k, nullptr, taps);
}
Tensor PortEncoder::stem(const Tensor& mel, TapSink* taps) {
  return impl_->stage(TapStage::stem, -1, nullptr, &mel, taps);
}
Tensor PortEncoder::block(int i, const Tensor& x, TapSink* taps) {
  return impl_->stage(TapStage::block, i, nullptr, &x, taps);
}
Tensor PortEncoder::ln_post(const Tensor& x, TapSink* taps) {
  return impl_->stage(TapStage::ln_post, -1, nullptr, &x, taps);
}

}  // namespace wb::port
