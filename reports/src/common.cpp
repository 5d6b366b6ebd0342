#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "report_util.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"
#include "wb/reports/reports.h"

namespace wb::rep {

std::string num(double x, int digits) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  return fmt::format("{:.{}g}", x, digits);
}

std::string xml_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // XML 1.0 forbids most control characters, even escaped.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t' && c != '\r') {
          out += '?';
        } else {
          out += c;
        }
    }
  }
  return out;
}

std::string md_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '|' || c == '*' || c == '_' || c == '`' || c == '<' || c == '>') out += '\\';
    out += c;
  }
  return out;
}

std::string status_word(cmp::Level l) {
  std::string w(cmp::level_name(l));  // the level's one name, in capitals
  for (char& ch : w) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  return w;
}

std::string verdict_word(const cmp::CompareResult& r) {
  std::string w = cmp::verdict_name(r);
  for (char& c : w) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return w;
}

std::vector<std::size_t> worst_first(const cmp::CompareResult& r) {
  std::vector<std::size_t> idx(r.taps.size());
  for (std::size_t i = 0; i < idx.size(); ++i) idx[i] = i;
  auto key = [&](std::size_t i) {
    const auto& t = r.taps[i];
    const double bad = static_cast<double>(t.m.nan_mismatch + t.m.inf_mismatch);
    const double e = std::isfinite(t.m.rel_l2) ? t.m.rel_l2 : 1e300;
    return std::make_tuple(static_cast<int>(t.status), bad > 0 ? 1 : 0, e);
  };
  std::stable_sort(idx.begin(), idx.end(), [&](std::size_t a, std::size_t b) {
    // First divergence leads among failures, then the rest by severity.
    if (static_cast<int>(a) == r.first_divergence) return true;
    if (static_cast<int>(b) == r.first_divergence) return false;
    return key(a) > key(b);
  });
  return idx;
}

std::vector<std::string> parse_formats(const std::string& list) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    std::size_t end = list.find(',', pos);
    if (end == std::string::npos) end = list.size();
    std::string f = list.substr(pos, end - pos);
    pos = end + 1;
    f.erase(0, f.find_first_not_of(' '));
    f.erase(f.find_last_not_of(' ') + 1);
    if (f.empty()) continue;
    if (f == "markdown") f = "md";
    if (f == "xml") f = "junit";
    if (f == "all") {
      for (const char* a : {"md", "json", "html", "junit"})
        if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
      continue;
    }
    if (f != "md" && f != "json" && f != "html" && f != "junit") {
      throw std::invalid_argument(
          fmt::format("--format: unknown format '{}' (expected md, json, html, junit or all)", f));
    }
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  }
  if (out.empty()) throw std::invalid_argument("--format: no format given");
  return out;
}

// A report directory is a set: a report.md of one comparison beside a report.json of another would
// mislead. So each file is atomic (temporary + rename) and the set has an index, manifest.json,
// written last: it names every file of the set with its size and sha256. Order: render all,
// write all to temporaries, remove manifest.json, remove report files of formats not in this set,
// rename the temporaries into place, write manifest.json (atomically). A run killed at any point
// leaves every report file whole (the previous one or the new one), and manifest.json present
// only when the files it lists are exactly the set it describes: no manifest, not complete.
std::vector<std::string> write_reports(const cmp::CompareResult& r, const std::string& dir,
                                       const std::vector<std::string>& formats) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!fs::is_directory(dir)) {
    throw std::runtime_error(fmt::format("{}: cannot create report directory", dir));
  }
  static const std::pair<const char*, const char*> kFiles[] = {{"md", "report.md"},
                                                               {"json", "report.json"},
                                                               {"html", "report.html"},
                                                               {"junit", "junit.xml"}};
  struct Item {
    std::string name, path, sha256;
    std::unique_ptr<TempFile> tmp;
    std::size_t bytes = 0;
  };
  std::vector<Item> items;
  for (const std::string& f : formats) {
    Item it;
    std::string content;
    if (f == "md") {
      content = render_markdown(r);
    } else if (f == "json") {
      content = render_json(r);
    } else if (f == "html") {
      content = render_html(r);
    } else if (f == "junit") {
      content = render_junit(r);
    } else {
      throw std::invalid_argument(fmt::format("unknown report format '{}'", f));
    }
    for (const auto& [fmt_name, file] : kFiles)
      if (f == fmt_name) it.name = file;
    it.path = (fs::path(dir) / it.name).string();
    it.bytes = content.size();
    it.sha256 = sha256_bytes(content.data(), content.size());
    items.push_back(std::move(it));
    try {
      items.back().tmp = write_temp(items.back().path, content);
    } catch (...) {
      for (const Item& done : items)
        if (done.tmp) fs::remove(done.tmp->path(), ec);
      throw;
    }
  }
  const std::string manifest = (fs::path(dir) / "manifest.json").string();
  fs::remove(manifest, ec);
  for (const auto& [fmt_name, file] : kFiles) {
    bool in_set = false;
    for (const Item& it : items) in_set = in_set || it.name == file;
    if (!in_set) fs::remove(fs::path(dir) / file, ec);
  }
  nlohmann::json files = nlohmann::json::object();
  std::vector<std::string> paths;
  for (const Item& it : items) {
    rename_into_place(it.tmp->path(), it.path);
    files[it.name] = {{"bytes", it.bytes}, {"sha256", it.sha256}};
    paths.push_back(it.path);
  }
  const nlohmann::json m = {{"schema", kReportSchema},    {"complete", true},
                            {"verdict", verdict_word(r)}, {"ref", r.ref_path},
                            {"cand", r.cand_path},        {"files", files}};
  write_file_atomic(manifest, m.dump(2) + "\n");
  paths.push_back(manifest);
  return paths;
}

std::string render_summary(const cmp::CompareResult& r) {
  std::string s;
  s += fmt::format("{}: {} vs {} — {} taps compared, profile {}\n", verdict_word(r), r.ref_path,
                   r.cand_path, r.taps.size(), r.profile_name);
  if (r.first_divergence >= 0) {
    const auto& t = r.taps[static_cast<std::size_t>(r.first_divergence)];
    s += fmt::format("first divergent tap: {} ({})\n", t.name,
                     t.violations.empty() ? "" : t.violations.front().text());
  }
  if (r.changepoint >= 0) {
    s += fmt::format("changepoint: {} (error x{} above all earlier taps)\n",
                     r.taps[static_cast<std::size_t>(r.changepoint)].name, num(r.changepoint_jump));
  }
  if (r.budget) s += "transcript budget: " + cmp::budget_summary(*r.budget) + "\n";
  for (std::size_t i = 0; i < r.hints.size() && i < 8; ++i) s += "  - " + r.hints[i] + "\n";
  return s;
}

}  // namespace wb::rep
