// wb bench: candidate encoder vs the LibTorch reference on one 30 s window, random weights of
// standard dims generated in-process, the same thread count for both; achieved GFLOP/s as a share
// of the float32 GEMM peak this benchmark measures on the machine it runs on.
#include <fmt/format.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <numbers>
#include <random>
#include <thread>

#include "command.h"
#include "pipeline.h"
#include "wb/candidate/candidate_bench.h"
#include "wb/compare/metrics.h"
#include "wb/compare/profile.h"
#include "wb/core/audio.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"
#include "wb/core/weights.h"
#include "wb/reference/reference.h"

namespace wb::cli {

namespace {

using clock_type = std::chrono::steady_clock;

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double process_cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

std::string loadavg() {
  std::ifstream f("/proc/loadavg");
  std::string a, b, c;
  f >> a >> b >> c;
  return f ? a + " " + b + " " + c : std::string("?");
}

struct Timing {
  std::vector<double> wall, cpu;  // per run: wall seconds, process CPU seconds (all threads)
};

// Each of `repeats` runs of fn, after one warm-up run.
template <class F>
Timing time_runs(int repeats, F&& fn, bool warm_up = true) {
  if (warm_up) fn();
  Timing t;
  for (int r = 0; r < repeats; ++r) {
    const double c0 = process_cpu_seconds();
    const auto t0 = clock_type::now();
    fn();
    t.wall.push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
    t.cpu.push_back(process_cpu_seconds() - c0);
  }
  return t;
}

// 30 s of speech-like synthetic audio: a gliding harmonic tone, amplitude-modulated, with noise.
std::vector<float> synthetic_pcm(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<float> pcm(kNSamples);
  for (int i = 0; i < kNSamples; ++i) {
    const double t = static_cast<double>(i) / kSampleRate;
    const double f = 140.0 + 40.0 * std::sin(2 * std::numbers::pi * 0.3 * t);
    double s = 0;
    for (int h = 1; h <= 6; ++h) s += std::sin(2 * std::numbers::pi * h * f * t) / h;
    s *= 0.15 * (0.55 + 0.45 * std::sin(2 * std::numbers::pi * 2.1 * t));
    pcm[static_cast<std::size_t>(i)] = static_cast<float>(s + 0.01 * nd(rng));
  }
  return pcm;
}

struct BenchOpts {
  std::vector<std::string> dims{"tiny", "base"};
  int repeats = 5;
  // The candidate's precision, threads (shared by the reference and the GEMM peak) and faults
  // (a planted bug: the fidelity gate must catch it).
  EncoderChoice enc = [] {
    EncoderChoice c;
    c.impl = Impl::candidate;
    c.threads = 2;
    return c;
  }();
  std::string audio, json, profile;
  bool no_reference = false;
  bool no_peak = false;
  uint64_t seed = 1;
};

// One dims preset: random weights, the GEMM peak measured right before, candidate and reference
// runs alternating (cand, ref, cand, ref, ...) so that load from other processes on a shared
// machine hits both alike. Appends the table line, the CPU line and the JSON entry.
struct ModelFigures {
  std::string line, cpu_line, impl_line;
  nlohmann::json json;
  double cand_s = 0, rel_l2 = -1;
};

ModelFigures bench_model(const BenchOpts& o, const std::string& preset,
                         const std::vector<float>& pcm) {
  const int threads = o.enc.resolved_threads();
  ModelFigures f;
  const ModelDims d = ModelDims::preset(preset);
  auto model = std::make_shared<const Checkpoint>(random_checkpoint(d, o.seed));
  const double gflop = encoder_flops(d) * 1e-9;
  auto cand = make_encoder(model, o.enc);
  std::unique_ptr<Encoder> ref;
  if (!o.no_reference) ref = make_encoder(model, o.enc.reference_twin());
  const Tensor mel = cand->log_mel(pcm, nullptr);
  const Tensor ref_mel = ref ? ref->log_mel(pcm, nullptr) : Tensor();
  const double mel_s =
      median(time_runs(o.repeats, [&] { (void)cand->log_mel(pcm, nullptr); }).wall);
  const GemmPeak peak = o.no_peak ? GemmPeak{} : measure_gemm_peak(threads);
  Tensor cand_out, ref_out;
  auto run_cand = [&] { cand_out = run_encoder(*cand, mel, nullptr); };
  auto run_ref = [&] {
    set_reference_threads(threads);  // LibTorch's and its BLAS's, as the candidate's
    ref_out = run_encoder(*ref, ref_mel, nullptr);
  };
  run_cand();  // warm-up
  if (ref) run_ref();
  Timing ct, rt;
  // An idle gap before each timed run: OpenBLAS's and OpenMP's worker threads busy-wait for a
  // while after their last job (OpenBLAS ~2^28 cycles), which would otherwise steal a core from
  // whichever implementation runs next.
  auto gap = [] { std::this_thread::sleep_for(std::chrono::milliseconds(300)); };
  for (int r = 0; r < o.repeats; ++r) {
    gap();
    const Timing c1 = time_runs(1, run_cand, false);
    ct.wall.push_back(c1.wall[0]);
    ct.cpu.push_back(c1.cpu[0]);
    if (ref) {
      gap();
      const Timing r1 = time_runs(1, run_ref, false);
      rt.wall.push_back(r1.wall[0]);
      rt.cpu.push_back(r1.cpu[0]);
    }
  }
  const double cand_s = median(ct.wall), cand_cpu = median(ct.cpu);
  const double ref_s = ref ? median(rt.wall) : 0.0, ref_cpu = ref ? median(rt.cpu) : 0.0;
  const double rl2 = ref ? cmp::diff(ref_out, cand_out).rel_l2 : -1.0;
  const double gflops = gflop / cand_s;
  const double share = o.no_peak ? std::nan("") : gflops / peak.peak();
  f.line = (fmt::format(
      "{:<6} {:>6.1f} {:>10.3f} {:>11.3f} {:>11} {:>8} {:>12.1f} {:>10.1f} {:>7.0f}% {:>11}",
      preset, gflop, mel_s, cand_s, ref ? fmt::format("{:.3f}", ref_s) : std::string("-"),
      ref ? fmt::format("{:.2f}x", ref_s / cand_s) : std::string("-"), gflops, peak.peak(),
      100 * share, rl2 < 0 ? std::string("-") : fmt::format("{:.2e}", rl2)));
  f.cpu_line =
      (fmt::format("{:<6} candidate {:.3f} s (min {:.3f}), reference {} s; GEMM peak: OpenBLAS "
                   "threaded {:.1f}, row split {:.1f}, oneDNN tiles {:.1f} GFLOP/s",
                   preset, cand_cpu, *std::min_element(ct.cpu.begin(), ct.cpu.end()),
                   ref ? fmt::format("{:.3f}", ref_cpu) : std::string("-"), peak.openblas_gflops,
                   peak.row_split_gflops, peak.onednn_gflops));
  const nlohmann::json info = cand->run_info();
  f.impl_line = fmt::format("{:<6} isa {}; gemm: {}; attention: {}", preset, info.value("isa", "?"),
                            info.value("gemm", "?"), info.value("attention", "?"));
  f.json =
      nlohmann::json{{"dims", preset},
                     {"gflop", gflop},
                     {"candidate_mel_s", mel_s},
                     {"candidate_encoder_s", cand_s},
                     {"candidate_encoder_runs_s", ct.wall},
                     {"candidate_encoder_cpu_s", cand_cpu},
                     {"reference_encoder_s", ref ? nlohmann::json(ref_s) : nlohmann::json()},
                     {"reference_encoder_runs_s", ref ? nlohmann::json(rt.wall) : nlohmann::json()},
                     {"reference_encoder_cpu_s", ref ? nlohmann::json(ref_cpu) : nlohmann::json()},
                     {"speedup", ref ? nlohmann::json(ref_s / cand_s) : nlohmann::json()},
                     {"candidate_gflops", gflops},
                     {"gemm_peak_gflops", peak.peak()},
                     {"gemm_openblas_gflops", peak.openblas_gflops},
                     {"gemm_row_split_gflops", peak.row_split_gflops},
                     {"gemm_onednn_gflops", peak.onednn_gflops},
                     {"share_of_gemm_peak", share},
                     {"rel_l2_vs_reference", rl2 < 0 ? nlohmann::json() : nlohmann::json(rl2)},
                     {"run_info", info}};
  f.cand_s = cand_s;
  f.rel_l2 = rl2;
  return f;
}

}  // namespace

void add_bench(CLI::App& app, Registry& reg) {
  auto o = std::make_shared<BenchOpts>();
  CLI::App* sub = app.add_subcommand("bench",
                                     "time the candidate encoder against the LibTorch reference "
                                     "(random weights, one 30 s window)");
  sub->add_option("--dims", o->dims, "dims presets to time (random weights generated in-process)")
      ->delimiter(',')
      ->check(CLI::IsMember(
          {"nano", "tiny", "base", "small", "medium", "large", "large-v2", "large-v3"}));
  sub->add_option("--repeats", o->repeats,
                  "timed runs per encoder (median reported; one warm-up run before)")
      ->check(CLI::Range(1, 1000));
  add_encoder_options(sub, o->enc, kPrecisionOption | kFaultOption | kThreadsOption);
  sub->add_option("--audio", o->audio,
                  "audio file for the window (default: 30 s synthetic signal)");
  sub->add_option("--json", o->json, "also write the figures as JSON to this file");
  sub->add_option("--seed", o->seed, "seed of the random weights and the synthetic audio");
  sub->add_flag("--no-reference", o->no_reference, "time the candidate only");
  sub->add_flag("--no-peak", o->no_peak, "skip the GEMM peak measurement (peak columns: nan)");
  sub->add_option("--profile", o->profile,
                  "tolerance profile the candidate's output must meet (exit 1 otherwise); "
                  "default: the built-in profile of --precision "
                  "(fixtures/profiles/<precision>.json)");
  reg.add(sub, [o]() {
    const int threads = o->enc.resolved_threads();
    const std::string precision(to_string(o->enc.precision));
    std::vector<float> pcm;
    std::string audio_name = "synthetic 30 s";
    if (!o->audio.empty()) {
      pcm = load_audio(o->audio).pcm;
      audio_name = o->audio;
    } else {
      pcm = synthetic_pcm(o->seed);
    }
    fmt::print(
        "wb bench: {} threads, candidate {}, {} timed runs each (median, after 1 warm-up; "
        "candidate and "
        "reference alternate), audio: {}\n",
        threads, precision, o->repeats, audio_name);
    nlohmann::json out = {{"threads", threads},
                          {"precision", precision},
                          {"repeats", o->repeats},
                          {"audio", audio_name},
                          {"models", nlohmann::json::array()}};
    // Per model: the GEMM peak is measured right before its timings, and the candidate and the
    // reference runs alternate (cand, ref, cand, ref, ...) so that load from other processes on a
    // shared machine hits both alike.
    std::vector<std::string> lines, cpu_lines, impl_lines;
    const std::string load0 = loadavg();
    bool ok = true, fidelity = true;
    // The gate on fidelity, every precision: the candidate's output against the reference under
    // its precision's built-in profile (calibrated, docs/calibration.md), or --profile.
    const cmp::ToleranceProfile profile = o->profile.empty()
                                              ? cmp::default_profile_for(o->enc.precision)
                                              : cmp::ToleranceProfile::load(o->profile);
    const double limit = profile.rel_l2_fail_limit(kLnPost);
    for (const std::string& preset : o->dims) {
      const ModelFigures mf = bench_model(*o, preset, pcm);
      lines.push_back(mf.line);
      cpu_lines.push_back(mf.cpu_line);
      impl_lines.push_back(mf.impl_line);
      out["models"].push_back(mf.json);
      ok = ok && std::isfinite(mf.cand_s);
      if (mf.rel_l2 >= 0 && !(mf.rel_l2 <= limit)) {
        fmt::print(stderr,
                   "wb bench: {}: the candidate's encoder.ln_post is {:.3g} (rel L2) from the "
                   "reference, beyond the {} profile's {:.3g}: a fast wrong kernel does not win\n",
                   preset, mf.rel_l2, profile.name(), limit);
        fidelity = false;
      }
    }
    fmt::print("\n{:<6} {:>6} {:>10} {:>11} {:>11} {:>8} {:>12} {:>10} {:>8} {:>11}\n", "dims",
               "GFLOP", "cand mel s", "cand enc s", "ref enc s", "speedup", "cand GFLOP/s",
               "peak GF/s", "% peak", "rel L2 out");
    for (const auto& l : lines) fmt::print("{}\n", l);
    fmt::print(
        "\nprocess CPU seconds per encoder run (median; all threads; shows time lost to other "
        "load):\n");
    for (const auto& r : cpu_lines) fmt::print("  {}\n", r);
    fmt::print("load average (1/5/15 min) before: {}, after: {}\n", load0, loadavg());
    fmt::print("\ncandidate implementations (run_info):\n");
    for (const auto& r : impl_lines) fmt::print("  {}\n", r);
    out["loadavg_before"] = load0;
    out["loadavg_after"] = loadavg();
    fmt::print(
        "\nencoder = stem + blocks + ln_post from the log-mel (mel timed separately); GFLOP counts "
        "the "
        "convs, projections and attention matmuls (2 per multiply-add).\n");
    if (!o->json.empty()) {
      write_file_atomic(o->json, out.dump(2) + "\n");
    }
    if (!ok) return 3;
    return fidelity ? 0 : 1;
  });
}

}  // namespace wb::cli
