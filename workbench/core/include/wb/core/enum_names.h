// The one enum <-> name helper. An enum with names declares one table,
//   constexpr std::array<NameEntry<E>, N> kTable{{{E::a, "a"}, {E::b, "b"}}};
// and asks these for the name of a value, the list of names (for help and error texts) and the
// value of a name. No other enum <-> name code is written anywhere.
#pragma once
#include <fmt/format.h>

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "wb/core/util.h"

namespace wb {

template <class E>
using NameEntry = std::pair<E, std::string_view>;

// The name of e ("?" for a value the table lacks, which a test of each table rules out).
template <class E, std::size_t N>
constexpr std::string_view name_of(const std::array<NameEntry<E>, N>& table, E e) {
  for (const auto& [v, n] : table)
    if (v == e) return n;
  return "?";
}

// "a, b, c": every name, in table order.
template <class E, std::size_t N>
std::string names_of(const std::array<NameEntry<E>, N>& table) {
  std::string s;
  for (const auto& entry : table) s += (s.empty() ? "" : ", ") + std::string(entry.second);
  return s;
}

template <class E, std::size_t N>
constexpr std::optional<E> find_value(const std::array<NameEntry<E>, N>& table,
                                      std::string_view name) {
  for (const auto& [v, n] : table)
    if (n == name) return v;
  return std::nullopt;
}

// The value named `name`; otherwise UsageError "<what> '<name>': expected one of a, b, c".
template <class E, std::size_t N>
E parse_value(const std::array<NameEntry<E>, N>& table, std::string_view name,
              std::string_view what) {
  if (auto v = find_value(table, name)) return *v;
  throw UsageError(fmt::format("{} '{}': expected one of {}", what, name, names_of(table)));
}

}  // namespace wb
