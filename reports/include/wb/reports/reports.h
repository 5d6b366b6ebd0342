// Renderers of a comparison: Markdown (a pull-request comment), JSON (every metric; schema in
// docs/report-json.md), one self-contained HTML file with inline SVG plots (no network), and
// JUnit XML (a test case per tap). write_reports() writes each file atomically (temp + rename)
// and the set as a whole behind an index written last (manifest.json).
#pragma once
#include <string>
#include <vector>

#include "wb/compare/compare.h"

namespace wb::rep {

inline constexpr const char* kReportSchema = "whisper-fidelity-report/1";

std::string render_markdown(const cmp::CompareResult& r, int max_rows = 12);
std::string render_json(const cmp::CompareResult& r);
std::string render_html(const cmp::CompareResult& r);
std::string render_junit(const cmp::CompareResult& r);
// A few lines for the terminal: verdict, first divergence, hints.
std::string render_summary(const cmp::CompareResult& r);

// formats: any of "md", "json", "html", "junit" (also "all"); throws std::invalid_argument on
// an unknown one. Files: DIR/report.md, report.json, report.html, junit.xml, and last
// DIR/manifest.json, the index of the set (each file's bytes and sha256): a directory without it
// is not a complete report set (its writer died). Report files of formats not asked for are
// removed so the set never mixes comparisons. Returns the paths, manifest.json last.
std::vector<std::string> parse_formats(const std::string& list);
std::vector<std::string> write_reports(const cmp::CompareResult& r, const std::string& dir,
                                       const std::vector<std::string>& formats);

}  // namespace wb::rep
