// wb merge-reports DIR... [--out OUT]: the aggregation of wb sweep over the per-clip results of
// its shards (docs/sweep.md). Light: it runs no encoder.
#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>

#include "command.h"
#include "report_options.h"
#include "sweep_files.h"
#include "wb/core/util.h"
#include "wb/reports/budget.h"

namespace wb::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

int run_merge(const std::vector<std::string>& dirs, std::string out, bool quiet,
              const std::string& budget_path, const std::string& gate_name, bool allow_mismatch) {
  // A budget folder (wb budget --shard): its units assembled into budget.json and its reports.
  if (dirs.size() == 1 && rep::is_budget_dir(dirs.front())) {
    if (!budget_path.empty()) throw UsageError("--budget: not for merging a budget folder");
    const json b = rep::assemble_budget_dir(dirs.front());
    if (!quiet) fmt::print("{}", rep::render_budget_summary(b, dirs.front()));
    return 0;
  }
  const cmp::Gate gate = parse_gate(gate_name, budget_path);
  std::optional<cmp::Budget> budget;
  if (!budget_path.empty()) budget = cmp::Budget::load(budget_path);
  std::optional<json> first;
  std::set<std::pair<int, int>> shards;
  for (const auto& d : dirs) {
    std::error_code ec;
    if (!fs::is_directory(d + "/shards"))
      throw std::runtime_error(d + ": not a sweep folder (no shards/ from 'wb sweep --out')");
    for (const auto& e : fs::directory_iterator(d + "/shards", ec)) {
      if (e.path().extension() != ".json") continue;
      const auto m = read_json(e.path().string());
      if (!m || m->value("schema", "") != "whisper-fidelity-sweep-shard/1")
        throw std::runtime_error(e.path().string() + ": not a sweep shard manifest");
      if (!first) {
        first = *m;
      } else if (m->at("settings_hash") != first->at("settings_hash")) {
        throw std::runtime_error(fmt::format(
            "{}: swept with other settings than the first shard (settings_hash {} vs {})",
            e.path().string(), m->at("settings_hash").get<std::string>(),
            first->at("settings_hash").get<std::string>()));
      } else if (m->at("clips") != first->at("clips")) {
        throw std::runtime_error(e.path().string() + ": another clip list than the first shard");
      }
      shards.insert({m->at("shard").get<int>(), m->at("shards").get<int>()});
    }
  }
  if (!first) throw std::runtime_error(dirs.front() + ": no shard manifest (shards/*.json)");
  if (out.empty()) out = dirs.front();
  const json report = aggregate_dirs(*first, dirs, out, static_cast<int>(shards.size()), dirs,
                                     budget ? &*budget : nullptr, gate, allow_mismatch);
  if (!quiet) print_summary(report, out);
  return report.at("exit_status").get<int>();
}

}  // namespace

void add_merge_reports(CLI::App& app, Registry& reg) {
  struct MergeOpts {
    std::vector<std::string> dirs;
    std::string out, budget, gate = "tolerance";
    bool quiet = false, allow_model_mismatch = false;
  };
  auto m = std::make_shared<MergeOpts>();
  CLI::App* merge = app.add_subcommand(
      "merge-reports",
      "aggregate the per-clip results of sweep shards (wb sweep --shard K/N) into the one report "
      "an unsharded sweep writes; or assemble the budget of wb budget --shard shards");
  merge->footer(kSweepExitHelp);
  merge->add_option("dirs", m->dirs, "sweep folders (one, shared by the shards, or one per shard)")
      ->required();
  merge->add_option("--out", m->out, "where to write the report (default: the first folder)");
  add_report_options(merge, {.quiet = &m->quiet, .budget = &m->budget, .gate = &m->gate});
  merge->add_flag("--allow-model-mismatch", m->allow_model_mismatch,
                  "use a --budget measured on another model");
  reg.add(merge, [m]() {
    return run_merge(m->dirs, m->out, m->quiet, m->budget, m->gate, m->allow_model_mismatch);
  });
}

}  // namespace wb::cli
