#include "wb/compare/bench.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "wb/compare/compare.h"
#include "wb/core/dump.h"
#include "wb/core/util.h"

namespace wb::cmp {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Deterministic, fast pseudo-random values (xorshift64*), roughly N(0, 1) via a sum of uniforms.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  float uniform() { return static_cast<float>((next() >> 40) * (1.0 / 16777216.0)); }
  float normal() { return (uniform() + uniform() + uniform() + uniform() - 2.0f) * 1.7320508f; }
};

// Peak resident set (VmHWM) in MiB; reset_peak() restarts it (Linux >= 4.0, clear_refs "5").
double status_mb(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  const std::string k = std::string(key) + ":";
  while (std::getline(f, line)) {
    if (line.rfind(k, 0) == 0) return std::stod(line.substr(k.size())) / 1024.0;
  }
  return 0.0;
}
double peak_rss_mb() { return status_mb("VmHWM"); }
void reset_peak() {
  std::ofstream f("/proc/self/clear_refs");
  f << "5";
}

void evict(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return;
  ::fdatasync(fd);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  ::close(fd);
}

double raw_read(const std::vector<std::string>& files) {
  std::vector<char> buf(4 << 20);
  const auto t0 = Clock::now();
  for (const std::string& p : files) {
    const int fd = ::open(p.c_str(), O_RDONLY);
    if (fd < 0) throw std::runtime_error(fmt::format("{}: cannot open", p));
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    while (::read(fd, buf.data(), buf.size()) > 0) {
    }
    ::close(fd);
  }
  return since(t0);
}

// Every tap of every file through DumpReader::read_rows, with the comparator's chunking.
double reader_read(const std::vector<std::string>& files, int64_t chunk_elements, double& sink) {
  const auto t0 = Clock::now();
  std::vector<double> buf;
  for (const std::string& p : files) {
    DumpReader r(p);
    for (const TapInfo& t : r.taps()) {
      int64_t row_len = 1;
      for (std::size_t i = 1; i < t.shape.size(); ++i) row_len *= t.shape[i];
      const int64_t rows = t.shape.empty() ? 1 : t.shape[0];
      const int64_t step = std::max<int64_t>(1, chunk_elements / row_len);
      for (int64_t r0 = 0; r0 < rows; r0 += step) {
        r.read_rows(t.name, r0, std::min(step, rows - r0), buf);
        sink += buf[0];
      }
    }
  }
  return since(t0);
}

}  // namespace

std::string BenchResult::summary() const {
  const double gb = static_cast<double>(tap_bytes_per_file) * 2 / 1e9;
  std::string s;
  s += fmt::format(
      "dumps: 2 x {:.3f} GB of float32 tap data ({} taps each), {:.3f} GB on disk, "
      "generated in {:.1f} s\n",
      static_cast<double>(tap_bytes_per_file) / 1e9, taps.size(),
      static_cast<double>(file_bytes) / 1e9, generate_s);
  s += fmt::format("raw sequential read (read(2)):        {:7.3f} s  {:6.2f} GB/s\n", raw_read_s,
                   gb / raw_read_s);
  s += fmt::format("sequential read (DumpReader rows):    {:7.3f} s  {:6.2f} GB/s\n", reader_read_s,
                   gb / reader_read_s);
  s += fmt::format("compare (exit {}):                     {:7.3f} s  {:6.2f} GB/s\n", exit_status,
                   compare_s, gb / compare_s);
  s += fmt::format("compare / sequential read throughput: {:.2f}  (required >= 0.5)\n",
                   reader_read_s / compare_s);
  s += fmt::format("compare / raw read throughput:        {:.2f}\n", raw_read_s / compare_s);
  s += fmt::format(
      "peak RSS during the comparison: {:.1f} MiB (required < 300), of which {:.1f} MiB "
      "resident before it started (binary, LibTorch); whole run incl. generation {:.1f} MiB\n",
      peak_rss_mb, rss_before_mb, process_peak_rss_mb);
  return s;
}

BenchResult run_compare_bench(const BenchOptions& opts) {
  if (opts.dir.empty()) throw std::invalid_argument("compare-bench: --dir is required");
  if (!(opts.gigabytes > 0)) throw std::invalid_argument("compare-bench: --gigabytes must be > 0");
  std::filesystem::create_directories(opts.dir);
  const ModelDims dims = ModelDims::preset(opts.dims);
  const std::string ref_path = (std::filesystem::path(opts.dir) / "bench-ref.h5").string();
  const std::string cand_path = (std::filesystem::path(opts.dir) / "bench-cand.h5").string();
  BenchResult res;

  // Tap selection: the stem and ln_post, then per-block taps by priority until the target size.
  const std::vector<std::string> priority = {"out",      "resid_attn", "attn_ln", "mlp_ln",
                                             "attn.out", "attn.q",     "attn.k",  "attn.v",
                                             "mlp.fc2",  "mlp.fc1",    "mlp.gelu"};
  const auto all = encoder_taps(dims);
  // Everything outside the blocks, then a block part (in every block) at a time.
  std::vector<bool> take(all.size());
  int64_t bytes = 0;
  auto add = [&](auto&& pick) {
    for (std::size_t i = 0; i < all.size(); ++i)
      if (!take[i] && pick(all[i])) {
        take[i] = true;
        bytes += shape_numel(all[i].shape) * 4;
      }
  };
  add([](const TapSpec& t) { return t.stage != TapStage::block; });
  const auto target = static_cast<int64_t>(opts.gigabytes * 1e9);
  for (const auto& part : priority) {
    if (bytes >= target) break;
    add([&](const TapSpec& t) { return t.part == part; });
  }
  for (std::size_t i = 0; i < all.size(); ++i)
    if (take[i]) {
      res.taps.push_back(all[i].name);
      res.tap_bytes_per_file += shape_numel(all[i].shape) * 4;
    }
  std::string spec;  // the chosen names, each a literal glob
  for (const auto& n : res.taps) spec += (spec.empty() ? "" : ",") + n;
  const TapSelector selector(spec);
  if (res.tap_bytes_per_file < target) {
    throw std::invalid_argument(
        fmt::format("compare-bench: dims '{}' hold only {:.2f} GB of encoder taps", opts.dims,
                    static_cast<double>(res.tap_bytes_per_file) / 1e9));
  }

  // Generate: the candidate is the reference plus a small relative perturbation (float32-like).
  const bool reuse =
      opts.reuse && std::filesystem::exists(ref_path) && std::filesystem::exists(cand_path);
  auto t0 = Clock::now();
  if (!reuse) {
    for (int side = 0; side < 2; ++side) {
      DumpMeta meta;
      meta.implementation = side == 0 ? "bench-reference" : "bench-candidate";
      meta.precision = "float32";
      meta.model_sha256 = std::string(64, '0');
      meta.dims = dims;
      meta.audio_name = "synthetic";
      meta.tool_version = wb::tool_version();
      meta.created = wb::utc_now_iso8601();
      DumpWriter w(side == 0 ? ref_path : cand_path, meta, selector);
      std::vector<float> buf;
      uint64_t seed = 1;
      for (const auto& t : all) {
        ++seed;
        if (!selector.selected(t.name)) continue;
        buf.resize(static_cast<std::size_t>(shape_numel(t.shape)));
        Rng rng(seed);
        const float scale = t.name == kMel ? 0.5f : 1.0f + 0.01f * static_cast<float>(seed % 50);
        for (float& v : buf) v = rng.normal() * scale;
        if (side == 1) {
          Rng noise(seed + 7777);
          for (float& v : buf) v += v * 1e-6f * noise.normal();
        }
        w.put(t.name, TapView{t.shape, DType::f32, buf.data()});
      }
      w.finish();
    }
  }
  res.generate_s = since(t0);
  res.file_bytes = static_cast<int64_t>(std::filesystem::file_size(ref_path) +
                                        std::filesystem::file_size(cand_path));
  res.process_peak_rss_mb = peak_rss_mb();

  const std::vector<std::string> files = {ref_path, cand_path};
  CompareOptions co;
  co.profile = ToleranceProfile();
  if (const char* ce = std::getenv("WB_COMPARE_CHUNK")) co.chunk_elements = std::atoll(ce);
  res.raw_read_s = res.reader_read_s = res.compare_s = 1e300;
  double sink = 0.0;
  // Warm the cache once (unless measuring cold), so the order of the measurements does not matter.
  if (!opts.cold) raw_read(files);
  for (int rep = 0; rep < std::max(1, opts.repeat); ++rep) {
    if (opts.cold)
      for (const auto& f : files) evict(f);
    res.raw_read_s = std::min(res.raw_read_s, raw_read(files));
    if (opts.cold)
      for (const auto& f : files) evict(f);
    res.reader_read_s = std::min(res.reader_read_s, reader_read(files, co.chunk_elements, sink));
    if (opts.cold)
      for (const auto& f : files) evict(f);
    reset_peak();
    res.rss_before_mb = status_mb("VmRSS");
    t0 = Clock::now();
    const CompareResult r = compare_files(ref_path, cand_path, "", co);
    res.compare_s = std::min(res.compare_s, since(t0));
    res.exit_status = exit_status(r);
    res.peak_rss_mb = std::max(res.peak_rss_mb, peak_rss_mb());
  }
  if (sink == 12345.678) fmt::print("");  // keep the reads observable
  res.process_peak_rss_mb = std::max(res.process_peak_rss_mb, res.peak_rss_mb);
  if (!opts.keep && !opts.reuse) {
    std::filesystem::remove(ref_path);
    std::filesystem::remove(cand_path);
  }
  return res;
}

}  // namespace wb::cmp
