// wb-engine: the commands of wb that run an encoder (the LibTorch reference, the CPU and CUDA
// candidates, external ports). wb hands them here; run alone it behaves the same.
#include <fmt/format.h>

#include <cstdio>
#include <set>
#include <string>

#include "cli_main.h"
#include "command.h"

int main(int argc, char** argv) {
  CLI::App app{"wb: Whisper fidelity workbench, the commands that run an encoder"};
  wb::cli::Registry reg;
  wb::cli::add_dump(app, reg);
  wb::cli::add_transcribe(app, reg);
  wb::cli::add_bench(app, reg);
  wb::cli::add_run(app, reg);
  wb::cli::add_culprit(app, reg);
  wb::cli::add_sweep(app, reg);
  wb::cli::add_budget(app, reg);
  // The front forwards exactly the commands of kEngineCommands: the two lists must agree.
  std::set<std::string> registered;
  for (const auto& [sub, run] : reg.commands) registered.insert(sub->get_name());
  for (const auto& name : wb::cli::kEngineCommands)
    if (registered.erase(std::string(name)) == 0) {
      std::fprintf(stderr, "wb: internal error: engine command '%s' not registered\n",
                   std::string(name).c_str());
      return 3;
    }
  if (!registered.empty()) {
    std::fprintf(stderr, "wb: internal error: '%s' is not in kEngineCommands\n",
                 registered.begin()->c_str());
    return 3;
  }
  return wb::cli::run_cli(app, reg, argc, argv);
}
