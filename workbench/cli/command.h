// Subcommands register themselves with the root app; main() runs the one that was parsed and
// maps exceptions to exit statuses (README, "Exit status"):
//   0 success, 1 tolerance exceeded (compare), 2 bad usage or bad input, 3 internal error.
#pragma once
#include <CLI/CLI.hpp>
#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wb::cli {

struct Registry {
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands;
  void add(CLI::App* sub, std::function<int()> run) { commands.emplace_back(sub, std::move(run)); }
};

// The commands that run an encoder: wb-engine registers exactly these (checked at its start),
// and the front hands them over.
inline constexpr std::array<std::string_view, 8> kEngineCommands{
    "dump", "transcribe", "bench", "run", "replay", "bisect-layers", "sweep", "budget"};
inline bool is_engine_command(std::string_view name) {
  for (auto c : kEngineCommands)
    if (c == name) return true;
  return false;
}
inline std::string engine_command_list() {
  std::string s;
  for (auto c : kEngineCommands) s += (s.empty() ? "" : ", ") + std::string(c);
  return s;
}

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
void add_sweep(CLI::App& app, Registry& reg);          // sweep
void add_budget(CLI::App& app, Registry& reg);         // budget
void add_merge_reports(CLI::App& app, Registry& reg);  // merge-reports (light)
void add_info(CLI::App& app, Registry& reg);           // info (light)

}  // namespace wb::cli
