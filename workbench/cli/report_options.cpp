#include "report_options.h"

#include "wb/core/util.h"

namespace wb::cli {

void add_report_options(CLI::App* sub, const ReportOptionFields& f) {
  if (f.profile != nullptr)
    sub->add_option(
        "--profile", *f.profile,
        "tolerance profile JSON (default: the built-in profile of the candidate's precision, "
        "fixtures/profiles/<precision>.json: the candidate dump's, or --precision; a float64 "
        "dump: float32)");
  if (f.report_dir != nullptr)
    sub->add_option("--report", *f.report_dir, "directory for report files");
  if (f.formats != nullptr)
    sub->add_option("--format", *f.formats, "report formats: md,json,html,junit or all")
        ->capture_default_str();
  if (f.quiet != nullptr) sub->add_flag("-q,--quiet", *f.quiet, f.quiet_help);
  if (f.budget != nullptr)
    sub->add_option("--budget", *f.budget,
                    "per-tap error budgets of this model (budget.json of 'wb budget'): each "
                    "budgeted tap's rel L2 as a share of its budget, the verdict harmless / at "
                    "risk / breaks transcripts beside the tolerance verdict (docs/budget.md)");
  if (f.gate != nullptr)
    sub->add_option("--gate", *f.gate,
                    "what the exit status follows: tolerance (the profile), or budget (1 only "
                    "for 'breaks transcripts'; needs --budget)")
        ->capture_default_str();
}

cmp::Gate parse_gate(const std::string& gate, const std::string& budget) {
  const cmp::Gate g = parse_value(cmp::kGateNames, gate, "--gate");
  if (g == cmp::Gate::budget && budget.empty())
    throw UsageError("--gate budget needs --budget FILE (a budget.json of 'wb budget')");
  return g;
}

}  // namespace wb::cli
