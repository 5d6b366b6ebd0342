#include "cli_main.h"

#include <cstdio>
#include <exception>
#include <new>
#include <stdexcept>

#include "wb/core/util.h"

namespace wb::cli {

int run_cli(CLI::App& app, Registry& reg, int argc, char** argv) {
  app.name("wb");
  app.set_version_flag("--version", wb::tool_version());
  app.require_subcommand(1);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {  // one line, like every other error
    std::fprintf(stderr, "wb: usage error: %s (see wb --help)\n", e.what());
    return 2;
  }
  try {
    for (auto& [sub, run] : reg.commands)
      if (sub->parsed()) return run();
    return 2;
  } catch (const std::invalid_argument& e) {  // includes wb::UsageError
    std::fprintf(stderr, "wb: error: %s\n", e.what());
    return 2;
  } catch (const std::runtime_error& e) {  // files, formats, environment
    std::fprintf(stderr, "wb: error: %s\n", e.what());
    return 2;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "wb: error: out of memory\n");
    return 3;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wb: internal error: %s\n", e.what());
    return 3;
  }
}

}  // namespace wb::cli
