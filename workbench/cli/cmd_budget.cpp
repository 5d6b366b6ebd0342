// wb budget: per-layer error budgets measured from transcript impact (docs/budget.md). For each
// stage output (mel, the stem's output, every block's output, ln_post) and each perturbation
// shape, the reference's forward is perturbed there to a relative L2 epsilon and the rest of the
// encoder and the decoder run on it; the budget is the largest epsilon at which at most
// max(1, 2 %) of the clips change their tokens and the mean teacher-forced KL stays under a bound.
//   wb budget --model M --audio-dir D [--expect-file E] --out DIR [--shard K/N] [--taps T]
//             [--shapes noise,bf16] [--seed N] [--ladder e1,e2,...] [--refine R] [--kl-bound B]
// Work unit: one (tap, shape). DIR/units/<tap>~<shape>.json is rewritten after every epsilon, so
// an interrupted run resumes where it stopped; shards split the units (i mod N == K) and
// `wb merge-reports DIR` assembles DIR/budget.json and the reports once all have run.
// Exit status: 0 measured (every unit of the shard), 2 bad usage or input, 3 internal error.
#include <fmt/format.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <map>
#include <memory>
#include <set>

#include "command.h"
#include "pipeline.h"
#include "sweep_files.h"
#include "wb/budget/measure.h"
#include "wb/core/util.h"
#include "wb/reports/budget.h"

namespace wb::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct BudgetOpts {
  std::string model, audio_dir, expect, out, shard;
  std::vector<std::string> taps{"stages"}, shapes{"noise", "bf16"};
  std::vector<double> ladder;  // empty: SearchOptions' default
  uint64_t seed = 1;
  int refine = 2, jobs = 0;
  double kl_bound = 0.05, max_changed = 0.02;
  bool quiet = false;
};

int run_budget(const BudgetOpts& o) {
  const auto [shard_k, shard_n] = o.shard.empty() ? std::pair{0, 1} : parse_shard(o.shard);
  budget::Criterion crit;
  crit.kl_bound = o.kl_bound;
  crit.max_changed_fraction = o.max_changed;
  if (!(o.kl_bound > 0)) throw UsageError("--kl-bound must be above 0");
  if (!(o.max_changed >= 0 && o.max_changed < 1)) throw UsageError("--max-changed: in [0, 1)");
  budget::SearchOptions search;
  search.refine = o.refine;
  if (!o.ladder.empty()) search.ladder = o.ladder;
  search.check();
  std::vector<budget::Perturbation> shapes;
  for (const auto& s : o.shapes)
    shapes.push_back(parse_value(budget::kPerturbationNames, s, "--shapes"));
  if (shapes.empty()) throw UsageError("--shapes: no shape");

  const std::vector<Clip> clips = list_clips(o.audio_dir, o.expect);
  auto model = load_model(o.model);
  EncoderChoice ref;
  ref.threads = o.jobs;
  const int jobs = ref.resolved_threads();
  set_reference_threads(1);  // one thread per LibTorch op, `jobs` clips at once
  budget::BudgetRunner runner(model, jobs);
  std::vector<int> taps;
  if (o.taps == std::vector<std::string>{"stages"}) {
    for (std::size_t i = 0; i < runner.taps().size(); ++i) taps.push_back(static_cast<int>(i));
  } else {
    for (const auto& t : o.taps) {
      const int i = runner.tap_index(t);
      if (i < 0)
        throw UsageError(fmt::format("--taps: '{}' is not a stage output of this model ({})", t,
                                     fmt::format("{}", fmt::join(runner.taps(), ", "))));
      taps.push_back(i);
    }
    std::sort(taps.begin(), taps.end());
    taps.erase(std::unique(taps.begin(), taps.end()), taps.end());
  }

  // What the budgets depend on (hashed), and what the report also names (paths).
  json clip_list = json::array();
  for (const auto& c : clips)
    clip_list.push_back(
        {{"clip", c.file}, {"audio_sha256", sha256_file(o.audio_dir + "/" + c.file)}});
  json shape_names = json::array(), tap_names = json::array();
  for (auto s : shapes) shape_names.push_back(std::string(name_of(budget::kPerturbationNames, s)));
  for (int t : taps) tap_names.push_back(runner.taps()[static_cast<std::size_t>(t)]);
  json hashed = {{"model_sha256", model->sha256},
                 {"clips", clip_list},
                 {"taps", tap_names},
                 {"shapes", shape_names},
                 {"seed", o.seed},
                 {"criterion", crit.to_json(static_cast<int>(clips.size()))},
                 {"search", search.to_json()},
                 {"reference",
                  {{"dtype", "float32"},
                   {"device", "cpu"},
                   {"threads", 1},
                   {"backend", reference_backend_version()}}},
                 {"tool_version", tool_version()}};
  const std::string hashed_text = hashed.dump();
  const std::string settings_hash = sha256_bytes(hashed_text.data(), hashed_text.size());
  json settings = hashed;
  settings["model"] = {
      {"path", o.model}, {"sha256", model->sha256}, {"dims", model->dims.to_json()}};
  settings["audio_dir"] = o.audio_dir;
  settings["expect_file"] = o.expect.empty() ? json(nullptr) : json(o.expect);
  settings["settings_hash"] = settings_hash;

  std::error_code ec;
  fs::create_directories(o.out + "/units", ec);
  fs::create_directories(o.out + "/shards", ec);
  if (!fs::is_directory(o.out + "/units") || !fs::is_directory(o.out + "/shards"))
    throw std::runtime_error(o.out + ": cannot create the budget folder (--out)");

  struct Unit {
    int tap;
    budget::Perturbation shape;
    std::string name, path;
  };
  std::vector<Unit> all, mine;
  for (int t : taps)
    for (auto s : shapes) {
      Unit u{t, s, "", ""};
      u.name = rep::budget_unit_name(runner.taps()[static_cast<std::size_t>(t)],
                                     std::string(name_of(budget::kPerturbationNames, s)));
      u.path = o.out + "/units/" + u.name + ".json";
      if (static_cast<int>(all.size() % static_cast<std::size_t>(shard_n)) == shard_k)
        mine.push_back(u);
      all.push_back(u);
    }
  json unit_names = json::array();
  for (const auto& u : all) unit_names.push_back(u.name);
  const std::string manifest_path = fmt::format("{}/shards/{}-of-{}.json", o.out, shard_k, shard_n);

  const auto t0 = std::chrono::steady_clock::now();
  const std::clock_t c0 = std::clock();
  auto unit_json = [&](const Unit& u, const std::vector<budget::Level>& levels) {
    json lv = json::array();
    for (const auto& l : levels) lv.push_back(l.to_json());
    return json{{"schema", rep::kBudgetUnitSchema},
                {"settings_hash", settings_hash},
                {"tap", runner.taps()[static_cast<std::size_t>(u.tap)]},
                {"shape", std::string(name_of(budget::kPerturbationNames, u.shape))},
                {"levels", lv},
                {"complete", false}};
  };
  std::vector<budget::ClipRun> runs;  // prepared on the first unit that needs them
  json clip_info = json::array();
  auto prepare = [&]() {
    if (!runs.empty()) return;
    if (!o.quiet)
      fmt::print(stderr, "budget: the reference on {} clips ({} at once)\n", clips.size(), jobs);
    runs.resize(clips.size());
    budget::parallel_for(clips.size(), jobs, [&](std::size_t i) {
      const Audio audio = load_audio(o.audio_dir + "/" + clips[i].file);
      runs[i] = runner.prepare(clips[i].file, audio.pcm);
    });
    for (std::size_t i = 0; i < clips.size(); ++i)
      clip_info.push_back({{"clip", clips[i].file},
                           {"tokens", runs[i].tokens.size()},
                           {"text", model->vocab.decode(runs[i].tokens)},
                           {"expected", clips[i].expected}});
  };
  int done_before = 0;
  for (std::size_t ui = 0; ui < mine.size(); ++ui) {
    const Unit& u = mine[ui];
    std::map<double, budget::Level> cached;
    if (auto old = read_json(u.path); old && old->value("settings_hash", "") == settings_hash) {
      if (old->value("complete", false)) {
        ++done_before;
        continue;
      }
      for (const auto& l : old->at("levels")) {
        const budget::Level lv = budget::Level::from_json(l);
        cached[lv.epsilon] = lv;
      }
    }
    std::vector<budget::Level> levels;
    const std::string& tap = runner.taps()[static_cast<std::size_t>(u.tap)];
    const std::string shape(name_of(budget::kPerturbationNames, u.shape));
    const budget::SearchResult r =
        budget::search_budget(search, crit, static_cast<int>(clips.size()), [&](double eps) {
          budget::Level l;
          if (auto it = cached.find(eps); it != cached.end()) {
            l = it->second;
          } else {
            prepare();
            const auto s0 = std::chrono::steady_clock::now();
            l = runner.evaluate(runs, u.tap, u.shape, eps, o.seed, crit);
            if (!o.quiet)
              fmt::print(
                  stderr,
                  "budget: [{}/{}] {} {} eps {:.4g}: kept {}/{}, KL mean {:.3g} ({:.1f} s)\n",
                  ui + 1, mine.size(), tap, shape, eps, l.kept, l.clips, l.kl_mean,
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - s0).count());
          }
          levels.push_back(l);
          write_json(u.path, unit_json(u, levels));
          return l;
        });
    json uj = unit_json(u, r.levels);
    uj["complete"] = true;
    uj["budget"] = r.budget;
    uj["bound"] = std::string(name_of(cmp::kBudgetBoundNames, r.bound));
    uj["max_rise"] = r.max_rise;
    write_json(u.path, uj);
    if (!o.quiet)
      fmt::print(stderr, "budget: {} {}: budget {:.4g} ({}), kept clips rise at most {}\n", tap,
                 shape, r.budget, name_of(cmp::kBudgetBoundNames, r.bound), r.max_rise);
  }
  // The reference's transcripts: from this run, or kept from an earlier one.
  if (clip_info.empty())
    if (auto old = read_json(manifest_path);
        old && old->value("settings_hash", "") == settings_hash)
      clip_info = old->value("clip_runs", json::array());
  if (clip_info.empty()) {
    prepare();
  }
  const json run = {{"wall_seconds",
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()},
                    {"cpu_seconds", static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC},
                    {"jobs", jobs},
                    {"encoder_tails", runner.counts().tails.load()},
                    {"blocks_run", runner.counts().blocks.load()},
                    {"decoder_passes", runner.counts().decodes.load()},
                    {"units_done_before", done_before}};
  const json manifest = {{"schema", rep::kBudgetShardSchema},
                         {"settings", settings},
                         {"settings_hash", settings_hash},
                         {"shard", shard_k},
                         {"shards", shard_n},
                         {"units", unit_names},
                         {"clip_runs", clip_info},
                         {"run", run},
                         {"complete", true}};
  write_json(manifest_path, manifest);
  if (shard_n > 1) {
    fmt::print(
        "budget: shard {}/{} done ({} units); assemble the budget with 'wb merge-reports "
        "{}' once all shards have run\n",
        shard_k, shard_n, mine.size(), o.out);
    return 0;
  }
  const json b = rep::assemble_budget_dir(o.out);
  if (!o.quiet) fmt::print("{}", rep::render_budget_summary(b, o.out));
  return 0;
}

}  // namespace

void add_budget(CLI::App& app, Registry& reg) {
  auto o = std::make_shared<BudgetOpts>();
  CLI::App* sub = app.add_subcommand(
      "budget",
      "measure per-layer error budgets: how much relative L2 error each stage output may carry "
      "before transcripts change (perturb the reference there, run the rest and the decoder)");
  sub->footer(
      "Exit status: 0 measured, 2 bad usage or input, 3 internal error. Output: OUT/budget.json "
      "(read by --budget of compare, sweep, replay), OUT/report.md, OUT/report.html, "
      "OUT/run.json. See docs/budget.md.");
  sub->add_option("--model", o->model, "HF Whisper directory or whisper.cpp ggml file")->required();
  sub->add_option("--audio-dir", o->audio_dir, "folder of clips (.wav .flac .ogg .mp3)")
      ->required();
  sub->add_option("--expect-file", o->expect,
                  "lines '<file>\\t<expected text>': the clips to use (else every audio file)");
  sub->add_option("--out", o->out, "budget folder: units/, shards/, budget.json, report.*")
      ->required();
  sub->add_option("--shard", o->shard,
                  "K/N: measure only the (tap, shape) units whose index i has i mod N == K; then "
                  "'wb merge-reports OUT'");
  sub->add_option("--taps", o->taps,
                  "'stages' (mel, encoder.pos_embed, every encoder.blocks.N.out, encoder.ln_post) "
                  "or a comma list of them")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--shapes", o->shapes,
                  "perturbation shapes: noise (white Gaussian), bf16 (the tap's own bfloat16 "
                  "rounding, scaled), channel (a per-channel scale and bias drift)")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--seed", o->seed, "seed of the noise and channel shapes")->capture_default_str();
  sub->add_option("--ladder", o->ladder,
                  "coarse epsilons, ascending, comma-separated (default 0.004 .. 4.096, factor 4)")
      ->delimiter(',');
  sub->add_option("--refine", o->refine,
                  "bisection steps between the last passing and the first failing epsilon")
      ->capture_default_str();
  sub->add_option("--kl-bound", o->kl_bound,
                  "the largest mean teacher-forced KL (nats per token, mean over clips) a "
                  "passing epsilon may cause")
      ->capture_default_str();
  sub->add_option("--max-changed", o->max_changed,
                  "share of clips that may change their tokens at a passing epsilon (at least 1 "
                  "clip)")
      ->capture_default_str();
  sub->add_option("--jobs", o->jobs,
                  "clips run at once, each on one thread (0: one per core); the results do not "
                  "depend on it")
      ->check(CLI::NonNegativeNumber);
  sub->add_flag("-q,--quiet", o->quiet, "no progress and no summary");
  reg.add(sub, [o]() { return run_budget(*o); });
}

}  // namespace wb::cli
