#include "sweep_files.h"

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>

#include "wb/core/tempfile.h"
#include "wb/core/util.h"
#include "wb/reports/sweep.h"

namespace wb::cli {

namespace fs = std::filesystem;
using nlohmann::json;

const char* const kSweepExitHelp =
    "Exit status: 0 every clip read and within tolerance; 1 at least one clip exceeded tolerance "
    "(this wins over unreadable clips: a measured regression is never hidden behind an input "
    "problem); 2 bad usage, an unreadable model/profile/folder, or (no clip failing) at least one "
    "clip could not be read - the report lists it with its error and the sweep goes on; 3 an "
    "internal error (on any clip, this wins).";

// A clip's name as a file name in DIR/clips/ ('/' of a nested clip becomes "%2F").
std::string result_name(const std::string& clip) {
  std::string s;
  for (char c : clip)
    s += c == '/' ? std::string("%2F") : (c == '%' ? std::string("%25") : std::string(1, c));
  return s;
}

std::optional<json> read_json(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return std::nullopt;
  try {
    return json::parse(read_file(path));
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void write_json(const std::string& path, const json& j) {
  write_file_atomic(path, j.dump(1, ' ', false, json::error_handler_t::replace) + "\n");
}

std::pair<int, int> parse_shard(const std::string& s) {
  int k = -1, n = -1;
  char slash = 0, extra = 0;
  if (std::sscanf(s.c_str(), "%d%c%d%c", &k, &slash, &n, &extra) != 3 || slash != '/' || n < 1 ||
      k < 0 || k >= n)
    throw UsageError(fmt::format(
        "--shard '{}': expected K/N with 0 <= K < N (K is 0-based, like SLURM_ARRAY_TASK_ID)", s));
  return {k, n};
}

json aggregate_dirs(const json& manifest, const std::vector<std::string>& dirs,
                    const std::string& out_dir, int shards, const std::vector<std::string>& from,
                    const cmp::Budget* budget, cmp::Gate gate, bool allow_model_mismatch) {
  if (budget != nullptr) {
    const std::string sha = manifest.at("settings").value("model_sha256", "");
    if (!allow_model_mismatch && sha != budget->model_sha256)
      throw std::runtime_error(fmt::format(
          "{}: the budget belongs to model {}, the sweep's model is {} (budgets are measured per "
          "model; --allow-model-mismatch to use it anyway)",
          budget->path, budget->model_sha256.substr(0, 12), sha.substr(0, 12)));
  }
  const std::string hash = manifest.at("settings_hash").get<std::string>();
  std::vector<json> results;
  std::vector<std::string> missing;
  double clip_secs = 0;
  for (const auto& c : manifest.at("clips")) {
    const std::string clip = c.get<std::string>();
    std::optional<json> found;
    for (const auto& d : dirs) {
      auto j = read_json(d + "/clips/" + result_name(clip) + ".json");
      if (j && j->value("settings_hash", "") == hash && j->value("clip", "") == clip) {
        found = std::move(j);
        break;
      }
    }
    if (!found) {
      missing.push_back(clip);
      continue;
    }
    clip_secs += found->value("seconds", 0.0);
    results.push_back(std::move(*found));
  }
  if (!missing.empty())
    throw std::runtime_error(fmt::format(
        "{}: {} of {} clips have no result with these settings (first: {}); a shard has not "
        "run or not finished",
        dirs.front(), missing.size(), manifest.at("clips").size(), missing.front()));
  const json run = {{"created", utc_now_iso8601()},
                    {"shards", shards},
                    {"merged_from", from},
                    {"clip_seconds", clip_secs}};
  json report = rep::aggregate_sweep(manifest.at("settings"), results, run, budget, gate);
  rep::write_sweep_reports(report, out_dir);
  return report;
}

void print_summary(const json& report, const std::string& dir) {
  const json& s = report.at("summary");
  const json& t = report.at("transcripts");
  std::string fd;
  for (const auto& f : s.at("first_divergent_taps"))
    fd += fmt::format("{}{} ({})", fd.empty() ? "" : ", ", f.at("tap").get<std::string>(),
                      f.at("clips").get<int>());
  fmt::print(
      "sweep: {} clips: {} compared ({} pass, {} warn, {} fail), {} unreadable, {} internal "
      "errors; transcripts identical on {}/{}\n",
      s.at("clips").get<int>(), s.at("compared").get<int>(), s.at("passed").get<int>(),
      s.at("warned").get<int>(), s.at("failed").get<int>(), s.at("unreadable").get<int>(),
      s.at("internal_errors").get<int>(), t.at("identical").get<int>(),
      t.at("clips_with_transcripts").get<int>());
  if (!fd.empty()) fmt::print("first divergent tap: {}\n", fd);
  if (report.contains("budget") && report.at("budget").is_object()) {
    const json& b = report.at("budget");
    fmt::print("transcript budget: {} (largest median share {:.3g} at {})\n",
               b.at("verdict").get<std::string>(), rep::from_json_number(b.at("max_median_share")),
               b.at("worst_tap").is_string() ? b.at("worst_tap").get<std::string>() : "-");
  }
  for (const auto& e : report.at("errors"))
    fmt::print("not compared: {}: {}\n", e.at("clip").get<std::string>(),
               e.at("message").get<std::string>());
  fmt::print("report: {}/report.md, report.json, report.html, junit.xml (exit {})\n", dir,
             report.at("exit_status").get<int>());
}

}  // namespace wb::cli
