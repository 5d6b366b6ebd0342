// wb: the Whisper fidelity workbench CLI. Thin: parsing and exit statuses only; the work is in
// the libraries. Exit statuses: 0 success, 1 tolerance exceeded, 2 bad usage or bad input,
// 3 internal error.
#include <fmt/format.h>

#include <cstdio>
#include <exception>
#include <new>
#include <stdexcept>

#include "command.h"
#include "wb/core/util.h"

int main(int argc, char** argv) {
  CLI::App app{
      "wb: Whisper fidelity workbench (reference vs candidate encoder, HDF5 dumps, comparison)"};
  app.set_version_flag("--version", wb::tool_version());
  app.require_subcommand(1);
  wb::cli::Registry reg;
  wb::cli::add_dump(app, reg);
  wb::cli::add_transcribe(app, reg);
  wb::cli::add_inspect(app, reg);
  wb::cli::add_fixture_model(app, reg);
  wb::cli::add_convert(app, reg);
  wb::cli::add_compare(app, reg);
  wb::cli::add_bench(app, reg);
  wb::cli::add_run(app, reg);
  wb::cli::add_faults(app, reg);
  wb::cli::add_taps(app, reg);
  wb::cli::add_culprit(app, reg);
  wb::cli::add_bisect(app, reg);
  wb::cli::add_sweep(app, reg);
  wb::cli::add_info(app, reg);
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
