// The report options of the subcommands that judge and report (compare, replay, bisect-layers,
// sweep, merge-reports, bisect): one registration, one help text each. A subcommand passes the
// fields it takes; a null field is an option it does not offer.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "wb/compare/budget.h"

namespace wb::cli {

struct ReportOptionFields {
  std::string* profile = nullptr;     // --profile FILE
  std::string* report_dir = nullptr;  // --report DIR
  std::string* formats = nullptr;     // --format LIST (its default: the field's value)
  bool* quiet = nullptr;              // -q,--quiet
  const char* quiet_help = "print nothing; the exit status tells";
  std::string* budget = nullptr;  // --budget FILE (a budget.json of wb budget)
  std::string* gate = nullptr;    // --gate tolerance|budget
};

void add_report_options(CLI::App* sub, const ReportOptionFields& f);

// The gate named by --gate; UsageError for "budget" without --budget.
cmp::Gate parse_gate(const std::string& gate, const std::string& budget);

}  // namespace wb::cli
