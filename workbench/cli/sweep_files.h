// The files of a sweep folder (wb sweep --out DIR): per-clip results, shard manifests and the
// aggregated report set, shared by wb sweep (wb-engine) and wb merge-reports (the light front).
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "wb/compare/budget.h"

namespace wb::cli {

// The exit statuses of a sweep and of a merge (their --help footers and the README).
extern const char* const kSweepExitHelp;

std::string result_name(const std::string& clip);  // the result file's name for a clip path
std::optional<nlohmann::json> read_json(const std::string& path);   // nullopt: absent or unreadable
void write_json(const std::string& path, const nlohmann::json& j);  // atomic
// "K/N" -> {K, N}; UsageError otherwise.
std::pair<int, int> parse_shard(const std::string& s);
// Loads every clip's result from the folders (the first folder holding a result with the
// settings hash wins), aggregates them, writes the report set into out_dir and returns the
// report. Missing results are an error naming them.
// budget: --budget (may be null; its model is checked against the settings' here), gate: --gate.
nlohmann::json aggregate_dirs(const nlohmann::json& manifest, const std::vector<std::string>& dirs,
                              const std::string& out_dir, int shards,
                              const std::vector<std::string>& from,
                              const cmp::Budget* budget = nullptr,
                              cmp::Gate gate = cmp::Gate::tolerance,
                              bool allow_model_mismatch = false);
void print_summary(const nlohmann::json& report, const std::string& dir);

}  // namespace wb::cli
