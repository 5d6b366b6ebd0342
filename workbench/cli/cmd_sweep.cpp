// wb sweep: the reference and one implementation on every clip of a folder, compared tap by tap
// in memory, one result per clip (DIR/clips/<clip>.json, atomic) and one report aggregated per
// tap over the corpus (DIR/report.{json,md,html}, junit.xml). An interrupted sweep resumes: a
// clip whose result exists with the same settings hash and audio sha256 is not run again.
//   wb sweep --model M --audio-dir D [--expect-file F] [--impl candidate --precision P --fault F]
//            [--profile P] [--taps T] --out DIR [--keep-dumps [--max-disk GB]] [--shard K/N]
// wb merge-reports (cmd_merge_reports.cpp) aggregates the per-clip results of shards the same way.
//
// Exit status (also in --help and the README): 3 if any clip hit an internal error; else 1 if any
// compared clip exceeded tolerance, even when other clips could not be read; else 2 if any clip
// could not be read (the report lists each with its error); else 0. Bad usage, an unreadable
// model, profile or audio folder: 2 before any clip runs.
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <stdexcept>

#include "command.h"
#include "pipeline.h"
#include "report_options.h"
#include "sweep_files.h"
#include "wb/compare/capture.h"
#include "wb/compare/compare.h"
#include "wb/core/dump.h"
#include "wb/core/ref_cache.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"
#include "wb/port/port.h"
#include "wb/reports/sweep.h"

namespace wb::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using clock_type = std::chrono::steady_clock;

// Progress on stderr: on a terminal one line redrawn in place (clip, stage, bar, time left);
// otherwise one plain line per clip.
class Progress {
 public:
  Progress(std::size_t total, bool quiet) : total_(total), tty_(isatty(2) != 0), quiet_(quiet) {}
  void clip(std::size_t i, const std::string& name) {
    i_ = i;
    name_ = name;
  }
  void stage(const char* s) {
    if (quiet_ || !tty_) return;
    const int width = 24;
    const auto filled = static_cast<int>(width * i_ / std::max<std::size_t>(total_, 1));
    fmt::print(stderr, "\r\033[K[{}{}] {}/{} {}: {}{}", std::string(filled, '#'),
               std::string(width - filled, '.'), i_ + 1, total_, name_, s, left());
    std::fflush(stderr);
  }
  void done(const std::string& what, double secs, bool ran) {
    if (ran) {
      ran_ += 1;
      ran_secs_ += secs;
    }
    if (quiet_) return;
    if (tty_) fmt::print(stderr, "\r\033[K");
    fmt::print(stderr, "sweep: [{}/{}] {} {}{}\n", i_ + 1, total_, name_, what,
               ran ? fmt::format(" ({:.1f} s){}", secs, left_after()) : std::string());
    std::fflush(stderr);
  }

 private:
  std::string fmt_secs(double s) const {
    const auto t = static_cast<long>(s + 0.5);
    return fmt::format("{}:{:02}", t / 60, t % 60);
  }
  std::string left() const {
    if (ran_ == 0) return "";
    return fmt::format(", ~{} left", fmt_secs(ran_secs_ / ran_ * static_cast<double>(total_ - i_)));
  }
  std::string left_after() const {
    if (ran_ == 0 || i_ + 1 >= total_) return "";
    return fmt::format(", ~{} left",
                       fmt_secs(ran_secs_ / ran_ * static_cast<double>(total_ - i_ - 1)));
  }
  std::size_t total_, i_ = 0;
  bool tty_, quiet_;
  std::string name_;
  double ran_ = 0, ran_secs_ = 0;
};

struct SweepOpts {
  EncoderChoice enc;
  std::string model, audio_dir, expect, profile, out, taps = "all", shard;
  std::string budget, gate = "tolerance";
  bool keep_dumps = false, quiet = false;
  std::string ref_cache;  // the reference cache folder ("" : its default)
  bool no_ref_cache = false;
  double max_disk_gb = 20;
  int max_tokens = 0;
};

// What a clip's result depends on, and its hash.
std::pair<json, std::string> sweep_settings(const SweepOpts& o, const Checkpoint& model,
                                            const cmp::CompareOptions& copts) {
  // Its hash is stored with every result and checked on resume
  // its hash is stored with every result and checked on resume
  // and merge. Paths are kept for the report but not hashed (shards may see other mounts).
  json hashed = {{"model_sha256", model.sha256},
                 {"profile", copts.profile->name()},
                 {"profile_source", copts.profile->source()},
                 {"taps", o.taps},
                 {"threads", o.enc.threads},
                 {"max_tokens", o.max_tokens},
                 {"tool_version", tool_version()}};
  hashed.update(o.enc.to_json());  // impl, dtype, precision, faults
  const std::string hashed_text = hashed.dump();
  const std::string settings_hash = sha256_bytes(hashed_text.data(), hashed_text.size());
  json settings = hashed;
  settings.erase("profile_source");
  settings["model"] = o.model;
  settings["audio_dir"] = o.audio_dir;
  settings["expect_file"] = o.expect.empty() ? json(nullptr) : json(o.expect);
  settings["settings_hash"] = settings_hash;

  return {settings, settings_hash};
}

// What every clip of a sweep shares.
struct SweepContext {
  const SweepOpts& o;
  const Checkpoint& model;
  const TapSelector& sel;
  const cmp::CompareOptions& copts;
  Encoder& ref_enc;
  std::unique_ptr<Encoder>& enc;  // restarted after a port's failure (docs/ports.md)
  ReferenceDecoder& ref_dec;
  ReferenceDecoder& cand_dec;
  const std::string& settings_hash;
  const std::string& dump_dir;
  RefCache* cache;  // null: --no-ref-cache
  int64_t budget;
  int64_t& dump_bytes;  // kept dumps so far, bounded by --max-disk
};

// One clip: both sides' taps in memory, compared, decoded; the result JSON (status ok, or error
// with its kind). {"skipped": true} when a result with the same settings exists.
json run_clip(SweepContext& ctx, const Clip& clip, Progress& progress) {
  const SweepOpts& o = ctx.o;
  const std::string path = o.audio_dir + "/" + clip.file;
  const std::string result_path = o.out + "/clips/" + result_name(clip.file) + ".json";
  const std::string& settings_hash = ctx.settings_hash;
  std::error_code ec;
  json res = {{"schema", rep::kSweepClipSchema},
              {"clip", clip.file},
              {"settings_hash", settings_hash},
              {"expected", clip.expected.empty() ? json(nullptr) : json(clip.expected)}};
  try {
    progress.stage("sha256");
    const std::string audio_sha = sha256_file(path);
    res["audio_sha256"] = audio_sha;
    if (auto old = read_json(result_path); old && old->value("status", "") == "ok" &&
                                           old->value("settings_hash", "") == settings_hash &&
                                           old->value("audio_sha256", "") == audio_sha &&
                                           old->value("expected", json()) == res["expected"]) {
      return {{"skipped", true}};
    }
    progress.stage("reading audio");
    const Audio audio = load_audio(path);
    DumpMeta meta;
    meta.model_sha256 = ctx.model.sha256;
    meta.dims = ctx.model.dims;
    meta.audio_sha256 = audio_sha;
    meta.audio_name = fs::path(clip.file).filename().string();
    meta.tool_version = tool_version();
    meta.created = utc_now_iso8601();
    auto side = [&](Encoder& e, ReferenceDecoder& dec, const std::string& what) {
      DumpMeta m = meta;
      const json info = e.run_info();
      m.implementation = e.implementation();
      m.precision = info.value("precision", std::string("float32"));
      m.device = info.value("device", "cpu");
      m.threads = info.value("threads", o.enc.threads);
      m.run_info = info;
      auto cap = std::make_unique<cmp::CaptureSource>(
          clip.file + " (" + what + ")", m,
          [&sel = ctx.sel](std::string_view name) { return sel.selected(name); });
      progress.stage(fmt::format("{} encoder", what).c_str());
      Tensor out = e.encode(audio.pcm, cap.get());
      progress.stage(fmt::format("{} decode", what).c_str());
      DecodeResult d = dec.greedy(out, cap.get(), o.max_tokens);
      cap->set_decode(d.tokens, d.text);
      return cap;
    };
    // The reference side from the cache when it holds this clip's (wb/core/ref_cache.h).
    std::unique_ptr<cmp::TapSource> ref;
    std::string ref_cached;
    const json key = reference_cache_key(ctx.model, audio_sha, o.enc.reference_twin(), "float32",
                                         o.taps, {{"max_tokens", o.max_tokens}});
    if (ctx.cache != nullptr) {
      progress.stage("reference cache");
      if (auto hit = ctx.cache->find(key)) {
        ref_cached = *hit;
        ref = std::make_unique<cmp::DumpSource>(*hit);
      }
    }
    if (!ref) {
      auto cap = side(ctx.ref_enc, ctx.ref_dec, "reference");
      if (ctx.cache != nullptr)
        ref_cached =
            ctx.cache->put(key, [&](const std::string& p) { cap->write_dump(p, ctx.sel); });
      ref = std::move(cap);
    }
    auto cand = side(*ctx.enc, ctx.cand_dec, std::string(to_string(o.enc.impl)));
    progress.stage("compare");
    const cmp::CompareResult r = cmp::compare(*ref, *cand, nullptr, ctx.copts);
    res.update(rep::sweep_clip_result(r, clip.expected));
    res["status"] = "ok";
    if (o.keep_dumps) {
      progress.stage("writing dumps");
      const auto* ref_cap = dynamic_cast<const cmp::CaptureSource*>(ref.get());
      const int64_t ref_bytes = ref_cap != nullptr
                                    ? ref_cap->bytes()
                                    : static_cast<int64_t>(fs::file_size(ref_cached, ec));
      const int64_t need = ref_bytes + cand->bytes() + (int64_t{1} << 20);
      const auto space = fs::space(o.out, ec);
      if (ctx.dump_bytes + need > ctx.budget) {
        res["dumps_note"] =
            fmt::format("not kept: --max-disk {} GB would be exceeded", o.max_disk_gb);
      } else if (!ec && static_cast<int64_t>(space.available) < need * 2) {
        res["dumps_note"] = "not kept: too little free disk space";
      } else {
        const std::string base = ctx.dump_dir + "/" + result_name(clip.file);
        if (ref_cap != nullptr)
          ref_cap->write_dump(base + ".reference.h5", ctx.sel);
        else
          fs::copy_file(ref_cached, base + ".reference.h5", fs::copy_options::overwrite_existing);
        cand->write_dump(base + ".candidate.h5", ctx.sel);
        ctx.dump_bytes += static_cast<int64_t>(fs::file_size(base + ".reference.h5") +
                                               fs::file_size(base + ".candidate.h5"));
        res["dumps"] = {{"reference", "dumps/" + result_name(clip.file) + ".reference.h5"},
                        {"candidate", "dumps/" + result_name(clip.file) + ".candidate.h5"}};
      }
    }
  } catch (const port::PortError& e) {
    res["status"] = "error";
    res["error"] = {{"kind", "port"}, {"message", e.what()}, {"stderr_tail", e.stderr_tail()}};
  } catch (const std::bad_alloc&) {
    res["status"] = "error";
    res["error"] = {{"kind", "internal"}, {"message", "out of memory"}};
  } catch (const std::invalid_argument& e) {
    res["status"] = "error";
    res["error"] = {{"kind", "bad_input"}, {"message", e.what()}};
  } catch (const std::runtime_error& e) {
    res["status"] = "error";
    res["error"] = {{"kind", "bad_input"}, {"message", e.what()}};
  } catch (const std::exception& e) {
    res["status"] = "error";
    res["error"] = {{"kind", "internal"}, {"message", e.what()}};
  }
  return res;
}

// A shard's own exit status: the same rules over its clips only.
int shard_status(const std::string& out, const json& names) {
  int status = 0;
  bool fail = false, bad = false, internal = false;
  for (const auto& c : names) {
    const auto j = read_json(out + "/clips/" + result_name(c.get<std::string>()) + ".json");
    if (!j) continue;
    if (j->value("status", "") == "error")
      ((*j)["error"].value("kind", "") == "internal" ? internal : bad) = true;
    else if (j->value("verdict", "") == "fail")
      fail = true;
  }
  status = internal ? 3 : fail ? 1 : bad ? 2 : 0;
  return status;
}

int run_sweep(const SweepOpts& o) {
  const auto [shard_k, shard_n] = o.shard.empty() ? std::pair{0, 1} : parse_shard(o.shard);
  if (o.max_disk_gb <= 0) throw UsageError("--max-disk must be above 0 GB");
  const cmp::Gate gate = parse_gate(o.gate, o.budget);
  std::optional<cmp::Budget> tap_budget;
  if (!o.budget.empty()) tap_budget = cmp::Budget::load(o.budget);
  const std::vector<Clip> clips = list_clips(o.audio_dir, o.expect);
  cmp::CompareOptions copts;
  copts.profile = o.profile.empty() ? cmp::default_profile_for(o.enc.precision)
                                    : cmp::ToleranceProfile::load(o.profile);
  auto model = load_model(o.model);
  TapSelector sel(o.taps);
  sel.check_against(model->dims, true);
  auto enc = make_encoder(model, o.enc);
  auto ref_enc = make_encoder(model, o.enc.reference_twin());
  ReferenceDecoder ref_dec(model, DType::f32);
  ReferenceDecoder cand_dec(model, decoder_dtype(o.enc));

  const auto [settings, settings_hash] = sweep_settings(o, *model, copts);

  std::error_code ec;
  fs::create_directories(o.out + "/clips", ec);
  fs::create_directories(o.out + "/shards", ec);
  if (!fs::is_directory(o.out + "/clips") || !fs::is_directory(o.out + "/shards"))
    throw std::runtime_error(o.out + ": cannot create the sweep folder (--out)");
  json all = json::array();
  for (const auto& c : clips) all.push_back(c.file);
  std::vector<std::size_t> mine;
  json mine_names = json::array();
  for (std::size_t i = 0; i < clips.size(); ++i)
    if (static_cast<int>(i % static_cast<std::size_t>(shard_n)) == shard_k) {
      mine.push_back(i);
      mine_names.push_back(clips[i].file);
    }
  json manifest = {{"schema", "whisper-fidelity-sweep-shard/1"},
                   {"settings", settings},
                   {"settings_hash", settings_hash},
                   {"shard", shard_k},
                   {"shards", shard_n},
                   {"clips", all},
                   {"shard_clips", mine_names},
                   {"complete", false}};
  const std::string manifest_path = fmt::format("{}/shards/{}-of-{}.json", o.out, shard_k, shard_n);
  write_json(manifest_path, manifest);

  // Kept dumps: bounded by --max-disk over DIR/dumps (what is there already counts).
  const std::string dump_dir = o.out + "/dumps";
  const auto budget = static_cast<int64_t>(o.max_disk_gb * 1e9);
  int64_t dump_bytes = 0;
  if (o.keep_dumps) {
    fs::create_directories(dump_dir, ec);
    for (const auto& e : fs::directory_iterator(dump_dir, ec))
      if (e.is_regular_file(ec)) dump_bytes += static_cast<int64_t>(e.file_size(ec));
  }

  std::optional<RefCache> cache;
  if (!o.no_ref_cache) cache.emplace(o.ref_cache);
  SweepContext ctx{o,
                   *model,
                   sel,
                   copts,
                   *ref_enc,
                   enc,
                   ref_dec,
                   cand_dec,
                   settings_hash,
                   dump_dir,
                   cache ? &*cache : nullptr,
                   budget,
                   dump_bytes};
  Progress progress(mine.size(), o.quiet);
  int ran = 0, skipped = 0;
  std::string port_down;  // set when a port failed and did not start again
  for (std::size_t mi = 0; mi < mine.size(); ++mi) {
    const Clip& clip = clips[mine[mi]];
    progress.clip(mi, clip.file);
    const std::string result_path = o.out + "/clips/" + result_name(clip.file) + ".json";
    const auto t0 = clock_type::now();
    json res = port_down.empty() ? run_clip(ctx, clip, progress)
                                 : json{{"schema", rep::kSweepClipSchema},
                                        {"clip", clip.file},
                                        {"settings_hash", settings_hash},
                                        {"status", "error"},
                                        {"error", {{"kind", "port"}, {"message", port_down}}}};
    if (port_down.empty() && res.value("status", "") == "error" &&
        res["error"].value("kind", "") == "port") {
      // The port failed on this clip: started again once for the next one (docs/ports.md).
      enc.reset();
      try {
        enc = make_encoder(model, o.enc);
      } catch (const std::exception& e) {
        port_down = fmt::format("the port could not be restarted: {}", e.what());
      }
    }
    if (res.value("skipped", false)) {
      ++skipped;
      progress.done("done earlier, skipped", 0, false);
      continue;
    }
    const double secs = std::chrono::duration<double>(clock_type::now() - t0).count();
    res["seconds"] = secs;
    write_json(result_path, res);
    ++ran;
    std::string what;
    if (res["status"] == "ok") {
      const json& fd = res["first_divergent_tap"];
      what = res["verdict"] == "fail"
                 ? "FAIL" + (fd.is_string() ? " at " + fd.get<std::string>() : std::string())
                 : (res["verdict"] == "warn" ? "WARN" : "PASS");
    } else {
      what = "ERROR: " + res["error"]["message"].get<std::string>();
    }
    progress.done(what, secs, true);
  }
  if (enc) print_port_timing(*enc, o.enc);
  if (cache && !o.quiet)
    fmt::print(stderr, "sweep: reference cache {}: {} reused, {} computed\n", cache->dir(),
               cache->hits(), cache->misses());
  manifest["complete"] = true;  // every clip of the shard has its result (sweep.sbatch checks)
  write_json(manifest_path, manifest);
  if (shard_n > 1) {
    fmt::print(
        "sweep: shard {}/{} done: {} clips run, {} done earlier; merge the shards with "
        "'wb merge-reports {}' once all have run\n",
        shard_k, shard_n, ran, skipped, o.out);
    return shard_status(o.out, mine_names);
  }
  const json report =
      aggregate_dirs(manifest, {o.out}, o.out, 1, {o.out}, tap_budget ? &*tap_budget : nullptr,
                     gate, o.enc.allow_model_mismatch);
  if (!o.quiet && skipped > 0)
    fmt::print("sweep: {} clips done earlier were not run again\n", skipped);
  print_summary(report, o.out);
  return report.at("exit_status").get<int>();
}

}  // namespace

void add_sweep(CLI::App& app, Registry& reg) {
  auto o = std::make_shared<SweepOpts>();
  o->enc.impl = Impl::candidate;
  CLI::App* sub = app.add_subcommand(
      "sweep",
      "run the reference and an implementation on every clip of a folder, compare them tap by "
      "tap and aggregate per tap over the corpus into one report (resumable, shardable)");
  sub->footer(kSweepExitHelp);
  sub->add_option("--model", o->model, "HF Whisper directory or whisper.cpp ggml file")->required();
  sub->add_option("--audio-dir", o->audio_dir, "folder of clips (.wav .flac .ogg .mp3)")
      ->required();
  sub->add_option("--expect-file", o->expect,
                  "lines '<file>\\t<expected text>': the clips to sweep (else every audio file of "
                  "the folder) and their WER");
  add_report_options(sub, {.profile = &o->profile});
  sub->add_option("--taps", o->taps, "taps to compare (as wb dump --taps)")->capture_default_str();
  sub->add_option("--out", o->out,
                  "sweep folder: clips/<clip>.json per clip, report.{json,md,html}, junit.xml")
      ->required();
  sub->add_option("--ref-cache", o->ref_cache,
                  "the reference cache folder: each clip's reference dump is made once and "
                  "reused by later sweeps, bisections and CI runs (default: " +
                      RefCache::default_dir() + ")");
  sub->add_flag("--no-ref-cache", o->no_ref_cache, "compute every reference afresh, cache nothing");
  sub->add_flag("--keep-dumps", o->keep_dumps,
                "also write both sides' HDF5 dumps per clip into OUT/dumps (~100 MB a clip "
                "with all taps), within --max-disk");
  sub->add_option("--max-disk", o->max_disk_gb,
                  "GB the kept dumps may use in OUT/dumps; a clip that would exceed it keeps "
                  "none (its result says so)")
      ->capture_default_str();
  sub->add_option("--shard", o->shard,
                  "K/N: run only the clips whose sorted index i has i mod N == K (0 <= K < N); "
                  "then 'wb merge-reports'");
  sub->add_option("--max-tokens", o->max_tokens, "stop each decode after N tokens (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  add_report_options(sub, {.quiet = &o->quiet,
                           .quiet_help = "no progress and no summary",
                           .budget = &o->budget,
                           .gate = &o->gate});
  add_encoder_options(sub, o->enc);
  reg.add(sub, [o]() { return run_sweep(*o); });
}

}  // namespace wb::cli
