// Subcommands register themselves with the root app; main() runs the one that was parsed and
// maps exceptions to exit statuses (README, "Exit status"):
//   0 success, 1 tolerance exceeded (compare), 2 bad usage or bad input, 3 internal error.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <utility>
#include <vector>

namespace wb::cli {

struct Registry {
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands;
  void add(CLI::App* sub, std::function<int()> run) { commands.emplace_back(sub, std::move(run)); }
};

void add_dump(CLI::App& app, Registry& reg);
void add_transcribe(CLI::App& app, Registry& reg);
void add_inspect(CLI::App& app, Registry& reg);
void add_fixture_model(CLI::App& app, Registry& reg);
void add_convert(CLI::App& app, Registry& reg);
void add_compare(CLI::App& app, Registry& reg);
void add_bench(CLI::App& app, Registry& reg);
void add_run(CLI::App& app, Registry& reg);
void add_faults(CLI::App& app, Registry& reg);
void add_taps(CLI::App& app, Registry& reg);
void add_culprit(CLI::App& app, Registry& reg);  // replay, bisect-layers
void add_bisect(CLI::App& app, Registry& reg);
void add_sweep(CLI::App& app, Registry& reg);
void add_info(CLI::App& app, Registry& reg);

}  // namespace wb::cli
