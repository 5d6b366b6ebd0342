#include "wb/compare/name_map.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

#include "wb/core/taps.h"
#include "wb/core/util.h"

namespace wb::cmp {

namespace {

constexpr std::string_view kIndex = "{i}";

bool is_meta_key(std::string_view k) {
  return k == "description" || k == "comment" || k == "name" || k == "version" || k == "$schema" ||
         k == "schema" || k == "source";
}

// Matches `stored` against a pattern with one "{i}"; returns the digits or "" on no match.
std::string match_indexed(std::string_view pattern, std::string_view stored) {
  const auto pos = pattern.find(kIndex);
  const std::string_view pre = pattern.substr(0, pos);
  const std::string_view post = pattern.substr(pos + kIndex.size());
  if (stored.size() <= pre.size() + post.size()) return {};
  if (stored.substr(0, pre.size()) != pre) return {};
  if (stored.substr(stored.size() - post.size()) != post) return {};
  const std::string_view mid = stored.substr(pre.size(), stored.size() - pre.size() - post.size());
  if (!std::all_of(mid.begin(), mid.end(),
                   [](char c) { return std::isdigit(static_cast<unsigned char>(c)); })) {
    return {};
  }
  return std::string(mid);
}

std::string replace_index(std::string s, const std::string& digits) {
  const auto pos = s.find(kIndex);
  if (pos != std::string::npos) s.replace(pos, kIndex.size(), digits);
  return s;
}

}  // namespace

NameMap NameMap::parse(const nlohmann::json& j, const std::string& origin) {
  NameMap m;
  m.origin_ = origin;
  if (!j.is_object()) throw std::runtime_error(origin + ": a name map must be a JSON object");
  const nlohmann::json* body = &j;
  for (const char* k : {"map", "names", "taps"}) {
    if (j.contains(k) && j[k].is_object()) {
      body = &j[k];
      break;
    }
  }
  for (const auto& [from, to] : body->items()) {
    if (body == &j && is_meta_key(from)) continue;
    if (!to.is_string()) {
      throw std::runtime_error(fmt::format("{}: entry '{}': expected a tap name string, got {}",
                                           origin, from, to.dump()));
    }
    Entry e{from, to.get<std::string>(), false};
    if (e.from.empty() || e.to.empty()) throw std::runtime_error(origin + ": empty tap name");
    const bool fi = e.from.find(kIndex) != std::string::npos;
    const bool ti = e.to.find(kIndex) != std::string::npos;
    if (fi != ti) {
      throw std::runtime_error(
          fmt::format("{}: entry '{}' -> '{}': {{i}} must appear on both sides or neither", origin,
                      e.from, e.to));
    }
    e.indexed = fi;
    m.entries_.push_back(std::move(e));
  }
  return m;
}

NameMap NameMap::load(const std::string& path) {
  const std::string text = wb::read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text, nullptr, true, true);
  } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
    std::string what = e.what();
    const auto pos = what.find("] ");
    if (pos != std::string::npos) what = what.substr(pos + 2);
    throw std::runtime_error(fmt::format("{}: not valid JSON: {}", path, what));
  }
  return parse(j, path);
}

std::string NameMap::canonical(std::string_view stored) const {
  for (const Entry& e : entries_) {
    if (!e.indexed) {
      if (e.from == stored) return e.to;
    } else {
      const std::string digits = match_indexed(e.from, stored);
      if (!digits.empty()) return replace_index(e.to, digits);
    }
  }
  return std::string(stored);
}

void NameMap::validate(const ModelDims& d) const {
  for (const Entry& e : entries_) {
    const std::string probe = e.indexed ? replace_index(e.to, "0") : e.to;
    if (wb::tap_order(d, probe) < 0) {
      throw std::runtime_error(
          fmt::format("{}: maps '{}' to unknown tap '{}'", origin_, e.from, e.to));
    }
  }
}

}  // namespace wb::cmp
