// wb compare REF.h5 CAND.h5: per-tap metrics, first divergence, hints, reports; exit 0 within
// tolerance, 1 tolerance exceeded, 2 bad usage or bad input.
// wb compare-bench: the comparator's speed and memory on two synthetic large-v3-sized dumps.
#include <fmt/format.h>

#include <memory>
#include <optional>

#include "command.h"
#include "report_options.h"
#include "wb/compare/bench.h"
#include "wb/compare/compare.h"
#include "wb/core/util.h"
#include "wb/reports/reports.h"

namespace wb::cli {

namespace {

struct CompareArgs {
  std::string ref, cand, floor, profile, map, report_dir, replay, expect_text;
  std::string formats = "md,json,html,junit";
  std::string budget, gate = "tolerance";
  int top_k = 8;
  bool allow_model_mismatch = false;
  bool quiet = false;
  bool markdown_stdout = false;
};

int run_compare(const CompareArgs& a) {
  cmp::CompareOptions o;
  if (!a.profile.empty()) o.profile = cmp::ToleranceProfile::load(a.profile);
  if (!a.map.empty()) o.map = cmp::NameMap::load(a.map);
  if (a.top_k < 0 || a.top_k > 1000) {
    throw std::invalid_argument(fmt::format("--top-k {} out of range [0, 1000]", a.top_k));
  }
  o.top_k = a.top_k;
  o.allow_model_mismatch = a.allow_model_mismatch;
  if (!a.expect_text.empty()) o.expected_text = a.expect_text;
  // Parse the formats before the (possibly long) comparison so a typo fails fast.
  const auto formats = rep::parse_formats(a.formats);
  const cmp::Gate gate = parse_gate(a.gate, a.budget);
  std::optional<cmp::Budget> budget;
  if (!a.budget.empty()) budget = cmp::Budget::load(a.budget);
  cmp::CompareResult r = cmp::compare_files(a.ref, a.cand, a.floor, o);
  if (budget) r.budget = cmp::assess_budget(*budget, r, a.allow_model_mismatch);
  r.gate = gate;
  if (!a.replay.empty()) {  // a wb replay report.json (or its "replay" object)
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(a.replay));
    } catch (const nlohmann::json::exception& e) {
      throw std::runtime_error(a.replay + ": not JSON (" + e.what() + ")");
    }
    r.replay = cmp::replay_from_json(j.contains("replay") ? j.at("replay") : j);
  }
  if (a.markdown_stdout) {
    fmt::print("{}", rep::render_markdown(r));
  } else if (!a.quiet) {
    fmt::print("{}", rep::render_summary(r));
  }
  if (!a.report_dir.empty()) {
    const auto paths = rep::write_reports(r, a.report_dir, formats);
    if (!a.quiet) {
      for (const auto& p : paths) fmt::print("wrote {}\n", p);
    }
  }
  return cmp::exit_status(r);
}

}  // namespace

void add_compare(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<CompareArgs>();
  CLI::App* sub = app.add_subcommand(
      "compare",
      "compare two dumps tap by tap: metrics, first divergent tap, diagnosis, reports "
      "(exit 0 within tolerance, 1 tolerance exceeded, 2 bad input)");
  sub->add_option("ref", a->ref, "reference dump (.h5); errors are relative to it")->required();
  sub->add_option("cand", a->cand, "candidate dump (.h5)")->required();
  sub->add_option("--floor", a->floor,
                  "float64 dump of the reference: error is also given as a multiple of the "
                  "reference's own float32 error");
  add_report_options(sub, {.profile = &a->profile,
                           .report_dir = &a->report_dir,
                           .formats = &a->formats,
                           .quiet = &a->quiet,
                           .budget = &a->budget,
                           .gate = &a->gate});
  sub->add_option("--map", a->map, "JSON map of foreign tap names onto registry names");
  sub->add_option("--expect-text", a->expect_text,
                  "the clip's true transcript: both sides' word error rates join the transcript "
                  "impact");
  sub->add_option("--replay", a->replay,
                  "a wb replay report.json: its per-stage own/inherited errors join the reports");
  sub->add_option("--top-k", a->top_k, "worst elements kept per tap")->capture_default_str();
  sub->add_flag("--allow-model-mismatch", a->allow_model_mismatch,
                "compare dumps whose model_sha256 differ (dims must still agree), and use a "
                "--budget of another model");
  sub->add_flag("--markdown", a->markdown_stdout, "print the Markdown report to stdout");
  reg.add(sub, [a]() { return run_compare(*a); });

  auto b = std::make_shared<cmp::BenchOptions>();
  CLI::App* bench = app.add_subcommand(
      "compare-bench",
      "benchmark: two synthetic dumps of large-v3 encoder dims (>= 1 GB each); sequential read "
      "vs compare throughput and the comparison's peak memory");
  bench->add_option("--dir", b->dir, "directory for the two dumps")->required();
  bench->add_option("--dims", b->dims, "dims preset")->capture_default_str();
  bench->add_option("--gigabytes", b->gigabytes, "minimum tap data per dump, GB")
      ->capture_default_str();
  bench->add_option("--repeat", b->repeat, "best of N runs of each measurement")
      ->capture_default_str();
  bench->add_flag("--keep", b->keep, "keep the dumps afterwards");
  bench->add_flag("--reuse", b->reuse, "reuse dumps left by an earlier --keep run");
  bench->add_flag("--cold", b->cold, "evict the files from the page cache before each measurement");
  reg.add(bench, [b]() {
    const cmp::BenchResult r = cmp::run_compare_bench(*b);
    fmt::print("{}", r.summary());
    const bool ok = r.reader_read_s / r.compare_s >= 0.5 && r.peak_rss_mb < 300;
    fmt::print("{}\n", ok ? "bench: PASS" : "bench: FAIL (throughput ratio or memory)");
    return ok ? 0 : 1;
  });
}

}  // namespace wb::cli
