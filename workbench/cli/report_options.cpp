#include "report_options.h"

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
}

}  // namespace wb::cli
