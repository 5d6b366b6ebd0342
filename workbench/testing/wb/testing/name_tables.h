// The check every enum <-> name table (wb/core/enum_names.h) passes: each value has exactly one
// name, each name one value, and name -> value -> name round-trips.
#pragma once
#include <doctest/doctest.h>

#include <array>
#include <set>
#include <string>

#include "wb/core/enum_names.h"

namespace wb::testing {

// `last`: the enum's last enumerator; the values 0 .. last each appear exactly once.
template <class E, std::size_t N>
void check_name_table(const std::array<NameEntry<E>, N>& table, const char* what, E last) {
  INFO(what << ": " << names_of(table));
  CHECK(N == static_cast<std::size_t>(last) + 1);
  std::set<int> values;
  std::set<std::string_view> names;
  for (const auto& [v, n] : table) {
    CHECK_MESSAGE(values.insert(static_cast<int>(v)).second, "value named twice: " << n);
    CHECK_MESSAGE(names.insert(n).second, "name given twice: " << n);
    CHECK(!n.empty());
    CHECK(name_of(table, v) == n);
    CHECK(find_value(table, n) == v);
  }
  for (int i = 0; i <= static_cast<int>(last); ++i)
    CHECK_MESSAGE(values.count(i) == 1, what << ": value " << i << " has no name");
}

}  // namespace wb::testing
