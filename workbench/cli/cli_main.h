// The one main of both executables (wb, the light front, and wb-engine, the commands that run
// an encoder): parse, run the parsed subcommand, map exceptions to exit statuses (README, "Exit
// status"): 0 success, 1 tolerance exceeded, 2 bad usage or bad input, 3 internal error.
#pragma once
#include <CLI/CLI.hpp>

#include "command.h"

namespace wb::cli {

int run_cli(CLI::App& app, Registry& reg, int argc, char** argv);

}  // namespace wb::cli
