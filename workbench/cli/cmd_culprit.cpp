// Finding the culprit through the seam:
//   wb replay REF.h5 --model M --audio A [--impl ...]: each candidate stage on the reference's
//     input to it (own error), next to what it receives and passes on; with the usual per-tap
//     comparison of the candidate's own chain; reports in the four formats.
//   wb bisect-layers --model M --audio A [--impl ...] [--criterion final-tap|transcript]: hybrid
//     encoders binary-searched for the stage whose swap breaks the criterion.
#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <memory>

#include "command.h"
#include "pipeline.h"
#include "report_options.h"
#include "wb/compare/capture.h"
#include "wb/compare/compare.h"
#include "wb/compare/culprit.h"
#include "wb/core/ref_cache.h"
#include "wb/core/util.h"
#include "wb/core/wer.h"
#include "wb/reports/reports.h"

namespace wb::cli {

namespace {

// The model and audio must be the ones the reference dump was made from.
void check_inputs(const DumpReader& ref, const Checkpoint& model, const std::string& audio) {
  const DumpMeta& m = ref.meta();
  if (!m.model_sha256.empty() && m.model_sha256 != model.sha256)
    throw std::runtime_error(fmt::format("{}: made from model {}, --model is {}", ref.path(),
                                         m.model_sha256.substr(0, 12), model.sha256.substr(0, 12)));
  const std::string sha = sha256_file(audio);
  if (!m.audio_sha256.empty() && m.audio_sha256 != sha)
    throw std::runtime_error(fmt::format("{}: made from audio '{}' (sha256 {}), {} has sha256 {}",
                                         ref.path(), m.audio_name, m.audio_sha256.substr(0, 12),
                                         audio, sha.substr(0, 12)));
}

struct ReplayArgs {
  EncoderChoice enc;
  std::string ref, model, audio, profile, report_dir, formats = "md,json,html,junit";
  std::string budget, gate = "tolerance";
  bool quiet = false;
};

int run_replay(const ReplayArgs& a) {
  cmp::CompareOptions o;
  o.profile = a.profile.empty() ? cmp::default_profile_for(a.enc.precision)
                                : cmp::ToleranceProfile::load(a.profile);
  const auto formats = rep::parse_formats(a.formats);
  const cmp::Gate gate = parse_gate(a.gate, a.budget);
  std::optional<cmp::Budget> budget;
  if (!a.budget.empty()) budget = cmp::Budget::load(a.budget);
  const DumpReader ref(a.ref);
  auto model = load_model(a.model);
  check_inputs(ref, *model, a.audio);
  const Audio audio = load_audio(a.audio);
  auto enc = make_encoder(model, a.enc);
  require_stage_requests(*enc, "wb replay");
  DumpMeta meta = ref.meta();
  meta.implementation = enc->implementation();
  meta.run_info = enc->run_info();
  meta.precision = meta.run_info.value("precision", a.enc.precision_name());
  // The candidate's own chain, the taps the reference dump also has.
  cmp::CaptureSource chain(
      "replay chain (" + enc->implementation() + ")", meta,
      [&ref](std::string_view name) { return ref.find(std::string(name)) != nullptr; });
  const cmp::ReplayResult rp = cmp::replay(*enc, ref, audio.pcm, *o.profile, &chain);
  const cmp::DumpSource rs(a.ref);
  cmp::CompareResult r = cmp::compare(rs, chain, nullptr, o);
  r.replay = rp;
  if (budget) r.budget = cmp::assess_budget(*budget, r, a.enc.allow_model_mismatch);
  r.gate = gate;
  print_port_timing(*enc, a.enc);
  if (!a.quiet) fmt::print("{}{}", rep::render_summary(r), "\n");
  if (!a.quiet) {
    fmt::print("{:<10} {:>11} {:>11} {:>11} {:>11} {:>9}\n", "stage", "own", "limit", "received",
               "out", "gain");
    for (const auto& s : rp.stages) {
      if (!s.refused.empty()) {
        fmt::print("{:<10} not replayed: {}\n", s.stage.name, s.refused);
        continue;
      }
      fmt::print("{:<10} {:>11.3g} {:>11.3g} {:>11.3g} {:>11.3g} {:>9.3g}{}\n", s.stage.name, s.own,
                 s.limit, s.received, s.out, s.amplification, s.own_fails ? "  <- own error" : "");
    }
    fmt::print("{}\n",
               rp.culprit >= 0
                   ? "culprit: " + rp.stages[static_cast<std::size_t>(rp.culprit)].stage.name
                   : std::string("no stage's own error exceeds the profile"));
  }
  if (!a.report_dir.empty())
    for (const auto& p : rep::write_reports(r, a.report_dir, formats))
      if (!a.quiet) fmt::print("wrote {}\n", p);
  // --gate budget: the budget verdict alone decides (1 only for "breaks transcripts").
  if (gate == cmp::Gate::budget) return cmp::exit_status(r);
  return rp.culprit >= 0 ? 1 : cmp::exit_status(r);
}

struct BisectArgs {
  EncoderChoice enc;
  std::string model, audio, profile, criterion = "final-tap", ref_cache;
  bool no_ref_cache = false;
};

// The reference's stage outputs (taps "blocks") and, for the transcript criterion, its decode:
// from the reference cache, or computed once and stored there (wb/core/ref_cache.h).
std::unique_ptr<DumpReader> reference_run(const BisectArgs& a, const Checkpoint& model,
                                          std::shared_ptr<const Checkpoint> shared, Encoder& ref,
                                          const Audio& audio, bool decode) {
  const EncoderChoice twin = a.enc.reference_twin();
  const nlohmann::json key = reference_cache_key(model, sha256_file(a.audio), twin, "float32",
                                                 "blocks", {{"decode", decode}});
  std::optional<RefCache> cache;
  if (!a.no_ref_cache) {
    cache.emplace(a.ref_cache);
    if (auto hit = cache->find(key)) return std::make_unique<DumpReader>(*hit);
  }
  DumpMeta m;
  m.implementation = ref.implementation();
  m.run_info = ref.run_info();
  m.precision = m.run_info.value("precision", twin.precision_name());
  m.device = m.run_info.value("device", "cpu");
  m.model_sha256 = model.sha256;
  m.dims = model.dims;
  m.audio_sha256 = sha256_file(a.audio);
  m.audio_name = std::filesystem::path(a.audio).filename().string();
  m.tool_version = tool_version();
  m.created = utc_now_iso8601();
  m.threads = twin.resolved_threads();
  auto write = [&](const std::string& path) {
    TapSelector sel("blocks");
    DumpWriter w(path, m, sel);
    ReferenceDecoder dec(shared);
    RunResult r = run_pipeline(ref, &dec, audio, &w, decode);
    if (decode) w.set_decode(r.decoded.tokens, r.decoded.text);
    w.finish();
  };
  if (cache) return std::make_unique<DumpReader>(cache->put(key, write));
  const std::string tmp = std::filesystem::temp_directory_path().string() + "/wb-bisect-ref-" +
                          std::to_string(::getpid()) + ".h5";
  write(tmp);
  auto r = std::make_unique<DumpReader>(tmp);
  std::error_code ec;
  std::filesystem::remove(tmp, ec);  // the open reader keeps reading it
  return r;
}

int run_bisect_layers(const BisectArgs& a) {
  const cmp::ToleranceProfile profile = a.profile.empty()
                                            ? cmp::default_profile_for(a.enc.precision)
                                            : cmp::ToleranceProfile::load(a.profile);
  auto model = load_model(a.model);
  const Audio audio = load_audio(a.audio);
  auto cand = make_encoder(model, a.enc);
  require_stage_requests(*cand, "wb bisect-layers");
  auto ref = make_encoder(model, a.enc.reference_twin());
  const bool by_transcript = a.criterion == "transcript";
  const auto ref_run = reference_run(a, *model, model, *ref, audio, by_transcript);
  const Tensor ref_out = ref_run->read(std::string(kLnPost));
  const double limit = profile.rel_l2_fail_limit(kLnPost);
  std::unique_ptr<ReferenceDecoder> dec;
  std::string ref_text;
  if (by_transcript) {
    dec = std::make_unique<ReferenceDecoder>(model);
    ref_text = ref_run->text().value_or("");
  }
  const cmp::KnownOutputs known = [&ref_run](const cmp::Stage& s) -> std::optional<Tensor> {
    if (ref_run->find(s.output_tap) == nullptr) return std::nullopt;
    return ref_run->read(s.output_tap);
  };
  cmp::HybridCriterion fails = [&](const Tensor& out, double* score) {
    if (dec) {
      const WerCounts w = word_errors(ref_text, dec->greedy(out).text);
      *score = static_cast<double>(w.errors());
      return w.errors() > 0;
    }
    *score = cmp::diff(ref_out, out).rel_l2;
    return !(*score <= limit);
  };
  const cmp::LayerBisection b = cmp::bisect_layers(*cand, *ref, audio.pcm, fails, known);
  print_port_timing(*cand, a.enc);
  std::string names;
  for (const auto& s : b.stages) names += (names.empty() ? "" : ", ") + s.name;
  fmt::print(
      "stages: {}\ncriterion: {}\n", names,
      dec ? "transcript differs from the reference's (score: word errors)"
          : fmt::format("encoder.ln_post rel L2 > {:.3g} (profile {})", limit, profile.name()));
  for (const auto& h : b.runs)
    fmt::print("  [{}]  {:<26} score {:<10.3g} {}\n", h.mix,
               h.k < 0 ? "culprit alone" : fmt::format("candidate stages < {}", h.k), h.score,
               h.fails ? "FAILS" : "passes");
  if (b.culprit < 0) {
    fmt::print("the all-candidate encoder passes: nothing to bisect ({} run)\n", b.runs.size());
    return 0;
  }
  fmt::print("culprit: {} ({} hybrid runs; {})\n",
             b.stages[static_cast<std::size_t>(b.culprit)].name, b.runs.size(),
             b.confirmed ? "confirmed: that stage alone from the candidate fails"
                         : "NOT confirmed alone: the failure needs earlier candidate stages too");
  return 1;
}

}  // namespace

void add_culprit(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<ReplayArgs>();
  a->enc.impl = Impl::candidate;
  CLI::App* sub = app.add_subcommand(
      "replay",
      "feed each candidate stage the reference dump's input to it: its own error vs what it "
      "inherits (exit 1 when a stage's own error exceeds the profile)");
  sub->add_option("ref", a->ref, "reference dump with the stage taps (--taps blocks or all)")
      ->required();
  sub->add_option("--model", a->model, "the model the dump was made from")->required();
  sub->add_option("--audio", a->audio, "the audio file the dump names (sha256 checked)")
      ->required();
  add_report_options(sub, {.profile = &a->profile,
                           .report_dir = &a->report_dir,
                           .formats = &a->formats,
                           .quiet = &a->quiet,
                           .budget = &a->budget,
                           .gate = &a->gate});
  add_encoder_options(sub, a->enc);
  reg.add(sub, [a]() { return run_replay(*a); });

  auto b = std::make_shared<BisectArgs>();
  b->enc.impl = Impl::candidate;
  CLI::App* bs = app.add_subcommand(
      "bisect-layers",
      "hybrid encoders (candidate stages before k, reference from k on) binary-searched for the "
      "stage that breaks the output (exit 1: culprit named, 0: the candidate passes)");
  bs->add_option("--model", b->model, "model")->required();
  bs->add_option("--audio", b->audio, "audio file")->required();
  add_report_options(bs, {.profile = &b->profile});
  bs->add_option("--criterion", b->criterion,
                 "final-tap: encoder.ln_post beyond the profile; transcript: text differs")
      ->check(CLI::IsMember({"final-tap", "transcript"}))
      ->capture_default_str();
  bs->add_option("--ref-cache", b->ref_cache,
                 "the reference cache folder: the reference's stage outputs are made once and "
                 "reused (default: " +
                     RefCache::default_dir() + ")");
  bs->add_flag("--no-ref-cache", b->no_ref_cache, "compute the reference afresh, cache nothing");
  add_encoder_options(bs, b->enc);
  reg.add(bs, [b]() { return run_bisect_layers(*b); });
}

}  // namespace wb::cli
