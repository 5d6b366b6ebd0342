// wb: the Whisper fidelity workbench CLI, the light front. It runs the commands that need no
// encoder itself (compare, inspect, taps, faults, merge-reports, bisect, the report writers, ...)
// and links no LibTorch, oneDNN or CUDA: those load only when a command runs an encoder, which
// the front hands to wb-engine beside it (execv: the same arguments, stdin, stdout and exit
// status). docs/architecture.md, "Two executables".
#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "cli_main.h"
#include "command.h"

namespace {

// wb-engine beside this executable ($WB_ENGINE overrides, for tests of the front alone).
std::string engine_path() {
  if (const char* e = std::getenv("WB_ENGINE"); e != nullptr && *e != '\0') return e;
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "wb-engine";
  return (self.parent_path() / "wb-engine").string();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && wb::cli::is_engine_command(argv[1])) {
    const std::string engine = engine_path();
    std::vector<char*> args(argv, argv + argc);
    args.push_back(nullptr);
    ::execv(engine.c_str(), args.data());
    if (errno == ENOENT) {
      std::fprintf(stderr,
                   "wb: error: '%s' runs an encoder and this build has none (no %s; configure "
                   "with -DWB_WITH_ENCODERS=ON)\n",
                   argv[1], engine.c_str());
      return 2;
    }
    std::fprintf(stderr, "wb: error: cannot start %s: %s\n", engine.c_str(), std::strerror(errno));
    return 2;
  }
  CLI::App app{
      "wb: Whisper fidelity workbench (reference vs candidate encoder, HDF5 dumps, comparison)"};
  app.footer(fmt::format("Commands that run an encoder (wb-engine; wb COMMAND --help): {}",
                         wb::cli::engine_command_list()));
  wb::cli::Registry reg;
  wb::cli::add_inspect(app, reg);
  wb::cli::add_fixture_model(app, reg);
  wb::cli::add_convert(app, reg);
  wb::cli::add_compare(app, reg);
  wb::cli::add_faults(app, reg);
  wb::cli::add_taps(app, reg);
  wb::cli::add_bisect(app, reg);
  wb::cli::add_merge_reports(app, reg);
  wb::cli::add_info(app, reg);
  return wb::cli::run_cli(app, reg, argc, argv);
}
