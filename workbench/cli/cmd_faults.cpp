// wb faults: the fault table (wb/core/faults.h) as text or JSON; compare/tests/fault_matrix.sh
// reads its rows from `wb faults --json`.
#include <fmt/format.h>

#include "command.h"
#include "wb/core/faults.h"

namespace wb::cli {

void add_faults(CLI::App& app, Registry& reg) {
  auto json = std::make_shared<bool>(false);
  CLI::App* sub = app.add_subcommand(
      "faults", "list the candidate fault switches: stage, first tap expected to diverge, doc");
  sub->add_flag("--json", *json,
                "the table as JSON (name, value, stage, first_tap, doc, examples)");
  reg.add(sub, [json]() {
    if (*json) {
      fmt::print("{}\n", fault_table_json().dump(2));
      return 0;
    }
    for (const FaultInfo& f : fault_table()) {
      const std::string spec =
          f.value.empty() ? std::string(f.name) : fmt::format("{}={}", f.name, f.value);
      fmt::print("{:<24} {:<9} {:<27} {}\n", spec, tap_stage_name(f.stage), f.first_tap, f.doc);
    }
    return 0;
  });
}

}  // namespace wb::cli
