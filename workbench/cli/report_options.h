// The report options of the subcommands that judge and report (compare, replay, bisect-layers,
// sweep, merge-reports, bisect): one registration, one help text each. A subcommand passes the
// fields it takes; a null field is an option it does not offer.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace wb::cli {

struct ReportOptionFields {
  std::string* profile = nullptr;     // --profile FILE
  std::string* report_dir = nullptr;  // --report DIR
  std::string* formats = nullptr;     // --format LIST (its default: the field's value)
  bool* quiet = nullptr;              // -q,--quiet
  const char* quiet_help = "print nothing; the exit status tells";
};

void add_report_options(CLI::App* sub, const ReportOptionFields& f);

}  // namespace wb::cli
