// Helpers shared by the renderers (private to wb_reports).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "wb/compare/compare.h"

namespace wb::rep {

std::string num(double x, int digits = 3);   // "%.{digits}g", "inf", "-inf", "nan"
std::string xml_escape(std::string_view s);  // also for HTML text and attributes
std::string md_escape(std::string_view s);
std::string status_word(cmp::Level l);  // PASS / WARN / FAIL
// The verdict in capitals: PASS / WARN / FAIL / STORAGE-LIMITED (cmp::verdict_name).
std::string verdict_word(const cmp::CompareResult& r);
// Tap indices: first divergence, then failures, warnings, passes, each by decreasing rel L2.
std::vector<std::size_t> worst_first(const cmp::CompareResult& r);

}  // namespace wb::rep
