// wb-cuda-dump: the CUDA candidate on its own, for GPU hosts without LibTorch or our Debian
// libraries (docs/gpu.md). Links wb_core + wb_cuda only.
//   dump:   wb-cuda-dump --model DIR|FILE --audio clip.wav -o cuda.h5 [--taps blocks] [--precision
//   P]
//           [--fault NAME[=VALUE]]... [--store float16] [--compress 4]
//           (several clips: --audio a.wav -o a.h5 --audio b.wav -o b.h5 ...; --batch B encodes B
//           of them together, one dump each)
//   faults: wb-cuda-dump --list-faults --dims nano   (the shared table's cases, one a line:
//           spec, first tap, the tap before it in the registry's order for those dims)
//   timing: wb-cuda-dump --time --dims large-v3 --precision bfloat16 [--iters 50] [--no-graph]
//           [--batch 8]; --time-attention: the attention alone
//   --attention own|cudnn: the workbench's attention kernels or cuDNN's fused attention
//   --pdl: the own kernels as programmatic dependents (Options::dependent_launch); --probe-pdl:
//           what cuBLASLt's GEMMs of a block do as dependents and before them
// Exit status as wb's: 0 ok, 2 bad usage/input or no CUDA device, 3 internal error.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "wb/core/audio.h"
#include "wb/core/dump.h"
#include "wb/core/faults.h"
#include "wb/core/taps.h"
#include "wb/core/util.h"
#include "wb/core/weights.h"
#include "wb/cuda/cuda_encoder.h"

namespace {

// What every dump of this run records; the clip's own fields are filled per clip.
wb::DumpMeta dump_meta(const wb::Encoder& enc, const wb::Checkpoint& model, const std::string& path,
                       const wb::Audio& audio, const wb::cuda::Options& opts) {
  wb::DumpMeta m;
  m.implementation = enc.implementation();
  const nlohmann::json info = enc.run_info();
  m.precision = info.value("precision", std::string(wb::to_string(opts.precision)));
  m.device = info.value("device", "cuda");
  m.model_sha256 = model.sha256;
  m.dims = model.dims;
  m.audio_sha256 = wb::sha256_file(path);
  m.audio_name = std::filesystem::path(path).filename().string();
  m.tool_version = wb::tool_version();
  m.created = wb::utc_now_iso8601();
  m.threads = 1;
  m.run_info = info;
  m.run_info["model_format"] = model.format;
  m.run_info["model_stored_dtype"] = model.stored_dtype;
  m.run_info["audio_seconds"] = audio.total_seconds;
  m.run_info["tool"] = "wb-cuda-dump";
  return m;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One dump per clip (audio_paths[i] -> outs[i]). batch 1: each clip through the seam, stage by
// stage. batch B > 1: B clips at a time through cuda::encode_batch (one pass of each stage over
// all of them), each clip's taps to its own dump, the same taps a clip alone writes; the dump's
// run_info says batch_clips (the clips of its pass), and its one timing, encoder, is the pass's
// wall time (log-mel of every clip included).
int dump(const std::string& model_path, const std::string& random_dims, uint64_t seed,
         const std::string& keep_model, const std::vector<std::string>& audio_paths,
         const std::vector<std::string>& outs, const std::string& taps, const std::string& store,
         int compress, wb::cuda::Options opts) {
  // Before the model: --random-dims large-v3 spends minutes making weights on the host.
  if (const std::string why = wb::cuda::device_unavailable_reason(opts.device); !why.empty())
    throw std::runtime_error(why);
  std::shared_ptr<const wb::Checkpoint> model;
  if (!random_dims.empty()) {
    // The same weights as `wb fixture-model --dims D --seed S` (HF, float32), written and read
    // back so the checkpoint (and its sha256) is the one that command writes.
    // With --keep-model the directory stays (scripts/cuda_bench.py loads the same weights into
    // PyTorch to check our output against its encoder).
    const auto dir = !keep_model.empty() ? std::filesystem::path(keep_model)
                                         : std::filesystem::temp_directory_path() /
                                               fmt::format("wb-cuda-fixture-{}-{}-{}", random_dims,
                                                           seed, ::getpid());
    wb::save_hf(wb::random_checkpoint(wb::ModelDims::preset(random_dims), seed), dir.string(),
                wb::DType::f32);
    model = std::make_shared<const wb::Checkpoint>(wb::load_checkpoint(dir.string()));
    if (keep_model.empty()) std::filesystem::remove_all(dir);
  } else {
    model = std::make_shared<const wb::Checkpoint>(wb::load_checkpoint(model_path));
  }
  const int n = static_cast<int>(audio_paths.size());
  opts.batch = std::min(opts.batch, n);
  auto enc = wb::cuda::make_encoder(model, opts);
  const wb::DumpOptions dump_opts{wb::dtype_from_name(store), compress};
  auto copies = [&] {
    const wb::cuda::CopyCounts cc = wb::cuda::copy_counts(*enc);
    return fmt::format("device-to-host: {} tap copies of {} B ({}), {} seam results", cc.tap_copies,
                       cc.tap_bytes, opts.sync_taps ? "synchronous" : "copy stream",
                       cc.result_copies);
  };
  if (opts.batch == 1) {
    for (int i = 0; i < n; ++i) {
      const std::string& audio_path = audio_paths[static_cast<std::size_t>(i)];
      const std::string& out = outs[static_cast<std::size_t>(i)];
      const wb::Audio audio = wb::load_audio(audio_path);
      const wb::DumpMeta m = dump_meta(*enc, *model, audio_path, audio, opts);
      wb::DumpWriter w(out, m, wb::TapSelector(taps), dump_opts);
      const auto t0 = std::chrono::steady_clock::now();
      const wb::Tensor mel = enc->log_mel(audio.pcm, &w);
      const double mel_s = seconds_since(t0);
      const auto t1 = std::chrono::steady_clock::now();
      wb::run_encoder(*enc, mel, &w);
      const double enc_s = seconds_since(t1);
      w.set_timing("mel", mel_s);
      w.set_timing("encoder", enc_s);
      w.finish();
      fmt::print("wrote {} ({} taps, cuda {}, {}, encoder {:.3f} s incl. tap copies; {})\n", out,
                 w.taps_written(), m.precision, m.device, enc_s, copies());
    }
    return 0;
  }
  for (int i0 = 0; i0 < n; i0 += opts.batch) {
    const int nb = std::min(opts.batch, n - i0);
    std::vector<std::unique_ptr<wb::DumpWriter>> writers;
    std::vector<std::vector<float>> pcm;
    std::vector<wb::TapSink*> sinks;
    for (int b = 0; b < nb; ++b) {
      const auto i = static_cast<std::size_t>(i0 + b);
      wb::Audio audio = wb::load_audio(audio_paths[i]);
      wb::DumpMeta m = dump_meta(*enc, *model, audio_paths[i], audio, opts);
      m.run_info["batch_clips"] = nb;
      writers.push_back(
          std::make_unique<wb::DumpWriter>(outs[i], m, wb::TapSelector(taps), dump_opts));
      sinks.push_back(writers.back().get());
      pcm.push_back(std::move(audio.pcm));
    }
    const auto t0 = std::chrono::steady_clock::now();
    wb::cuda::encode_batch(*enc, pcm, sinks);
    const double enc_s = seconds_since(t0);
    for (int b = 0; b < nb; ++b) {
      writers[static_cast<std::size_t>(b)]->set_timing("encoder", enc_s);
      writers[static_cast<std::size_t>(b)]->finish();
      fmt::print("wrote {} ({} taps, cuda {}, clip {} of a pass of {})\n",
                 outs[static_cast<std::size_t>(i0 + b)],
                 writers[static_cast<std::size_t>(b)]->taps_written(),
                 wb::to_string(opts.precision), b + 1, nb);
    }
    fmt::print("pass of {} clips: encoder {:.3f} s incl. log-mel and tap copies; {}\n", nb, enc_s,
               copies());
  }
  return 0;
}

int timing(const std::string& dims_name, const wb::cuda::Options& o, int iters, int warmup,
           bool graph, bool json) {
  const wb::ModelDims d = wb::ModelDims::preset(dims_name);
  const wb::Precision precision = o.precision;
  const wb::cuda::Timing t = wb::cuda::time_encoder(d, o, iters, warmup, graph);
  const std::string_view attn = wb::cuda::backend_name(o.attention),
                         fc1 = wb::cuda::backend_name(o.fc1_gelu);
  const double tflops = t.gflop / t.median_ms;  // GFLOP / ms = TFLOP/s
  const double clips_per_s = 1e3 * t.batch / t.median_ms;
  if (json) {
    fmt::print("{}\n", nlohmann::json{{"dims", dims_name},
                                      {"precision", wb::to_string(precision)},
                                      {"attention", attn},
                                      {"fc1_gelu", fc1},
                                      {"dependent_launch", o.dependent_launch},
                                      {"dependent_gemms", o.dependent_gemms},
                                      {"dependent_gemm_shapes", t.dependent_gemm_shapes},
                                      {"checked_gemm_shapes", t.checked_gemm_shapes},
                                      {"device", t.device},
                                      {"graph", t.graph},
                                      {"batch", t.batch},
                                      {"clips_per_s", clips_per_s},
                                      {"iters", iters},
                                      {"warmup", warmup},
                                      {"median_ms", t.median_ms},
                                      {"gflop", t.gflop},
                                      {"tflops", tflops},
                                      {"breakdown_ms", t.breakdown_ms},
                                      {"graph_share_ms", t.graph_share_ms},
                                      {"output_sha256", t.output_sha256},
                                      {"ms", t.ms}}
                           .dump());
  } else {
    fmt::print(
        "cuda encoder {} {} batch {} ({} attention, {} fc1 + GELU{}) on {}: median {:.3f} ms of "
        "{} ({}), {:.1f} clips/s, {:.1f} GFLOP, {:.1f} TFLOP/s\n",
        dims_name, wb::to_string(precision), t.batch, attn, fc1,
        o.dependent_gemms    ? ", dependent launch with GEMMs"
        : o.dependent_launch ? ", dependent launch"
                             : "",
        t.device, t.median_ms, iters, graph ? "CUDA graph" : "stream", clips_per_s, t.gflop,
        tflops);
    for (const auto& [k, v] : t.breakdown_ms) fmt::print("  {:12} {:8.3f} ms (stream run)\n", k, v);
    for (const auto& [k, v] : t.graph_share_ms)
      fmt::print("  {:12} {:8.3f} ms (graph minus the graph without it)\n", k, v);
    fmt::print("  output sha256 {}\n", t.output_sha256);
    if (o.dependent_gemms)
      fmt::print("  GEMM shapes captured as dependents: {} of {}\n", t.dependent_gemm_shapes,
                 t.checked_gemm_shapes);
  }
  return 0;
}

int attention_timing(const std::string& dims_name, wb::Precision precision, int batch, int iters,
                     int warmup, bool json, wb::cuda::Backend attention) {
  const wb::ModelDims d = wb::ModelDims::preset(dims_name);
  const wb::cuda::AttentionTiming t =
      wb::cuda::time_attention(d, precision, batch, iters, warmup, 1, attention);
  const std::string_view attn = wb::cuda::backend_name(attention);
  const double tflops = t.gflop / t.median_ms;
  if (json)
    fmt::print("{}\n", nlohmann::json{{"dims", dims_name},
                                      {"precision", wb::to_string(precision)},
                                      {"attention", attn},
                                      {"device", t.device},
                                      {"batch", batch},
                                      {"median_ms", t.median_ms},
                                      {"gflop", t.gflop},
                                      {"tflops", tflops},
                                      {"backend", t.backend},
                                      {"ms", t.ms}}
                           .dump());
  else
    fmt::print(
        "cuda attention ({}) {} {} batch {} on {}: median {:.4f} ms a call of {}, {:.1f} "
        "TFLOP/s; {}\n",
        attn, dims_name, wb::to_string(precision), batch, t.device, t.median_ms, iters, tflops,
        t.backend);
  return 0;
}

int gemm_gelu_timing(const std::string& dims_name, wb::Precision precision, int batch, int iters,
                     int warmup) {
  const wb::ModelDims d = wb::ModelDims::preset(dims_name);
  const wb::cuda::GemmGeluTiming t = wb::cuda::time_gemm_gelu(d, precision, batch, iters, warmup);
  fmt::print(
      "fc1 + GELU {} {} batch {} on {} ({:.1f} GFLOP): cuBLASLt GEMM + GELU kernel {:.4f} ms "
      "(GEMM alone {:.4f} ms, {:.0f} TFLOP/s)\n",
      dims_name, wb::to_string(precision), batch, t.device, t.gflop, t.cublaslt_gelu_ms,
      t.cublaslt_ms, t.gflop / t.cublaslt_ms);
  if (t.cudnn_ms > 0)
    fmt::print("  cuDNN fused {:.4f} ms ({:.0f} TFLOP/s); rel L2 to the two kernels {:.3g}; {}\n",
               t.cudnn_ms, t.gflop / t.cudnn_ms, t.rel_l2, t.cudnn);
  else
    fmt::print("  {}\n", t.cudnn);
  if (t.wgmma_ms > 0) {
    fmt::print(
        "  wgmma kernel (fused; persistent, no clusters) {:.4f} ms ({:.0f} TFLOP/s); "
        "rel L2 to the two kernels {:.3g}\n",
        t.wgmma_ms, t.gflop / t.wgmma_ms, t.wgmma_rel_l2);
    for (const auto& [name, ms] : t.wgmma_variants)
      fmt::print("    launched {}: {:.4f} ms ({:.0f} TFLOP/s)\n", name, ms, t.gflop / ms);
    fmt::print("    output bits of every launch choice {}\n",
               t.wgmma_same_bits ? "the same" : "NOT the same");
  }
  fmt::print("  W from DRAM (a new copy each call, as the encoder's layers):\n");
  for (const auto& [name, ms] : t.cold)
    fmt::print("    {} {:.4f} ms ({:.0f} TFLOP/s)\n", name, ms, t.gflop / ms);
  return 0;
}

int gemms_timing(const std::string& dims_name, wb::Precision precision, int batch, int iters,
                 int max_algos) {
  const wb::ModelDims d = wb::ModelDims::preset(dims_name);
  std::string device;
  const auto shapes = wb::cuda::time_gemms(d, precision, batch, iters, max_algos, &device);
  fmt::print("cuBLASLt GEMMs of a block, {} {} batch {} on {} (ms a call; [0] is the pinned one)\n",
             dims_name, wb::to_string(precision), batch, device);
  for (const auto& s : shapes) {
    if (s.algos.empty()) {
      fmt::print("{} M {} N {} K {}: no algorithm ran\n", s.name, s.m, s.n, s.k);
      continue;
    }
    std::size_t best = 0;
    for (std::size_t i = 0; i < s.algos.size(); ++i)
      if (s.algos[i].median_ms < s.algos[best].median_ms) best = i;
    fmt::print(
        "{} M {} N {} K {}: pinned {:.4f} ms ({:.0f} TFLOP/s), best of {} [{}] {:.4f} ms ({:.0f} "
        "TFLOP/s, pinned/best {:.3f})\n",
        s.name, s.m, s.n, s.k, s.algos[0].median_ms, s.gflop / s.algos[0].median_ms, s.algos.size(),
        best, s.algos[best].median_ms, s.gflop / s.algos[best].median_ms,
        s.algos[0].median_ms / s.algos[best].median_ms);
    for (std::size_t i = 0; i < s.algos.size(); ++i)
      fmt::print("  [{}] {:.4f} ms {}{}\n", i, s.algos[i].median_ms, s.algos[i].config,
                 !s.algos[i].waits   ? ""
                 : *s.algos[i].waits ? "; waits as a dependent"
                                     : "; does not wait as a dependent");
  }
  return 0;
}

int dependent_gemms_probe(const std::string& dims_name, wb::Precision precision, int batch) {
  std::string device;
  const auto probes =
      wb::cuda::probe_dependent_gemms(wb::ModelDims::preset(dims_name), precision, batch, &device);
  fmt::print(
      "cuBLASLt GEMMs of a block and programmatic dependent launch, {} {} batch {} on {} (us from "
      "a stamp right before the GEMM; medians of 7)\n",
      dims_name, wb::to_string(precision), batch, device);
  for (const auto& p : probes) {
    fmt::print("{} M {} N {} K {} ({})\n", p.name, p.m, p.n, p.k, p.config);
    fmt::print("  as a dependent of a kernel that writes its input late: {}\n",
               p.waits ? "waits (computed on the written input)"
                       : "does not wait, or cannot be captured as a dependent");
    fmt::print(
        "  a kernel after it: as a dependent, first block at {:.2f}, wait released at {:.2f}; "
        "ordinary launch, first block at {:.2f}\n",
        p.dependent_start_us, p.dependent_release_us, p.ordinary_start_us);
  }
  return 0;
}

// What scripts/cuda-fault-matrix.sh dumps per case: the fault's first tap and the one before it.
int list_faults(const std::string& dims_name) {
  std::vector<std::string> order;
  for (const wb::TapSpec& t : wb::encoder_taps(wb::ModelDims::preset(dims_name)))
    order.push_back(t.name);
  for (const wb::FaultCase& c : wb::fault_cases()) {
    const auto it = std::find(order.begin(), order.end(), c.first_tap);
    if (it == order.end())
      throw std::logic_error("fault case tap not in the registry: " + c.first_tap);
    fmt::print("{}\t{}\t{}\n", c.spec, c.first_tap, it == order.begin() ? "" : *(it - 1));
  }
  return 0;
}

}  // namespace

// The wb_cuda tests (tests/cuda_test.cpp), built into this tool when the tests are built:
// `wb-cuda-dump --self-test [doctest options]`; exit 77 without a usable GPU.
#ifdef WB_CUDA_SELF_TEST
int wb_cuda_self_test(int argc, char** argv);
#endif

int main(int argc, char** argv) {
  if (argc >= 2 && std::string_view(argv[1]) == "--self-test") {
#ifdef WB_CUDA_SELF_TEST
    argv[1] = argv[0];  // doctest sees the program name, then its own options
    return wb_cuda_self_test(argc - 1, argv + 1);
#else
    fmt::print(stderr,
               "wb-cuda-dump: built without its tests (configure with WB_BUILD_TESTS=ON)\n");
    return 2;
#endif
  }
  CLI::App app{"wb-cuda-dump: the CUDA candidate encoder (dumps and timing), no LibTorch"};
  std::string model, random_dims, keep_model, taps = "all", store = "float32", dims = "tiny";
  std::vector<std::string> audio, out;
  wb::cuda::Options opts;
  uint64_t seed = 1;
  int compress = 4, iters = 50, warmup = 10;
  bool time = false, no_graph = false, json = false;
  app.add_option("--model", model, "HF Whisper directory or whisper.cpp ggml file");
  app.add_option("--random-dims", random_dims,
                 "instead of --model: `wb fixture-model --dims D --seed S` weights");
  app.add_option("--seed", seed, "seed of --random-dims");
  app.add_option("--keep-model", keep_model,
                 "with --random-dims: write the random checkpoint (HF, float32) here and keep it");
  app.add_option("--audio", audio,
                 "audio file (WAV, FLAC, OGG); first 30 s window (repeatable: one -o each)");
  app.add_option("-o,--output", out, "output .h5 (written atomically; one per --audio)");
  app.add_option("--taps", taps, "taps: globs or levels (all, encoder, blocks, minimal)");
  app.add_option("--store", store, "storage dtype of tap datasets")
      ->check(CLI::IsMember({"float32", "float16", "float64"}));
  app.add_option("--compress", compress, "gzip level for tap datasets")->check(CLI::Range(0, 9));
  app.add_option_function<std::string>(
         "--precision",
         [&opts](const std::string& s) {
           try {
             opts.precision = wb::parse_precision(s);  // the one name table (wb/core/precision.h)
           } catch (const std::invalid_argument& e) {
             throw CLI::ValidationError(e.what());
           }
         },
         wb::precision_names() + " (float32: TF32 off)")
      ->default_str("float32");
  std::vector<std::string> faults;  // parsed below, against the shared table
  app.add_option("--fault", faults, "fault switch NAME[=VALUE] (repeatable)");
  app.add_option("--device", opts.device, "CUDA device index");
  auto backend_option = [&app](const char* name, wb::cuda::Backend& field, const char* help) {
    app.add_option_function<std::string>(
           name,
           [name, &field](const std::string& s) {
             const auto b = wb::cuda::backend_of(s);
             if (!b) throw CLI::ValidationError(std::string(name) + ": own or cudnn, not " + s);
             field = *b;
           },
           help)
        ->default_str("own");
  };
  backend_option("--attention", opts.attention,
                 "own (the workbench's kernels) or cudnn (cuDNN's fused attention: "
                 "bfloat16/float16, libcudnn.so.9 on the loader path)");
  backend_option("--fc1-gelu", opts.fc1_gelu,
                 "own (cuBLASLt fc1, then the GELU kernel) or cudnn (one cuDNN graph: matmul + "
                 "bias + GELU on the float32 accumulator; bfloat16/float16)");
  app.add_flag("--pdl", opts.dependent_launch,
               "launch the own kernels as programmatic dependents of the kernel before them "
               "(compute capability 9.0 on; the same outputs)");
  app.add_flag("--pdl-gemms", opts.dependent_gemms,
               "--pdl, and in CUDA graphs (--time) also the GEMMs whose cuBLASLt kernels are "
               "found to wait as dependents");
  app.add_flag("--sync-taps", opts.sync_taps,
               "copy each tap synchronously (the path the copy-stream one is checked against)");
  app.add_flag("--time", time, "timing mode: random weights of --dims, no taps");
  app.add_option("--dims", dims, "timing: tiny, base, small, medium, large-v3, ...");
  app.add_option("--iters", iters, "timing: timed runs (median reported)")
      ->check(CLI::Range(1, 100000));
  app.add_option("--warmup", warmup, "timing: untimed runs first")->check(CLI::Range(0, 100000));
  app.add_flag("--no-graph", no_graph, "timing: launch on the stream instead of one CUDA graph");
  bool time_attn = false;
  int batch = 1;
  app.add_flag("--time-attention", time_attn,
               "timing: the attention alone (--attention) on random q, k, v of --dims");
  bool time_gemm_gelu = false;
  app.add_flag("--time-gemm-gelu", time_gemm_gelu,
               "timing: fc1 + exact GELU of --dims, cuBLASLt + GELU kernel vs cuDNN's fused graph");
  int time_gemms = 0;
  app.add_option("--time-gemms", time_gemms,
                 "timing: a block's four GEMMs of --dims, each with up to N of cuBLASLt's "
                 "algorithms (the first the pinned one), and on compute capability 9.0 on whether "
                 "each waits as a programmatic dependent")
      ->check(CLI::Range(1, 64));
  bool probe_pdl = false;
  app.add_flag("--probe-pdl", probe_pdl,
               "a block's four GEMMs of --dims (the pinned algorithms) and programmatic "
               "dependent launch: does each wait as a dependent, when do its dependents start");
  app.add_option("--batch", batch,
                 "clips per call: timing (--time, --time-attention); dumps: clips encoded "
                 "together, one dump each")
      ->check(CLI::Range(1, 64));
  app.add_flag("--json", json, "timing: one JSON line");
  bool list = false;
  app.add_flag("--list-faults", list,
               "print the shared fault table's cases for --dims: spec, first tap, tap before it");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "wb-cuda-dump: {}\n", e.what());
    return 2;
  }
  try {
    if (opts.dependent_gemms) opts.dependent_launch = true;  // --pdl-gemms implies --pdl
    if (list) return list_faults(dims);
    if (time_gemms > 0) return gemms_timing(dims, opts.precision, batch, iters, time_gemms);
    if (probe_pdl) return dependent_gemms_probe(dims, opts.precision, batch);
    if (time_gemm_gelu) return gemm_gelu_timing(dims, opts.precision, batch, iters, warmup);
    if (time_attn)
      return attention_timing(dims, opts.precision, batch, iters, warmup, json, opts.attention);
    if (time) {
      opts.batch = batch;
      return timing(dims, opts, iters, warmup, !no_graph, json);
    }
    if ((model.empty() == random_dims.empty()) || audio.empty() || out.empty())
      throw wb::UsageError("a dump needs exactly one of --model / --random-dims, and --audio, -o");
    if (audio.size() != out.size())
      throw wb::UsageError(
          fmt::format("{} --audio for {} -o: one output per clip", audio.size(), out.size()));
    for (std::size_t i = 0; i < out.size(); ++i)
      for (std::size_t j = 0; j < i; ++j)
        if (std::filesystem::absolute(out[i]).lexically_normal() ==
            std::filesystem::absolute(out[j]).lexically_normal())
          throw wb::UsageError(fmt::format("-o {} given twice: one output per clip", out[i]));
    opts.batch = batch;
    if (!keep_model.empty() && random_dims.empty())
      throw wb::UsageError("--keep-model goes with --random-dims");
    opts.faults = wb::parse_faults(faults);  // wb::UsageError naming the valid ones: exit 2
    return dump(model, random_dims, seed, keep_model, audio, out, taps, store, compress, opts);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "wb-cuda-dump: {}\n", e.what());
    return 2;
  } catch (const std::runtime_error& e) {
    fmt::print(stderr, "wb-cuda-dump: {}\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "wb-cuda-dump: internal error: {}\n", e.what());
    return 3;
  }
}
