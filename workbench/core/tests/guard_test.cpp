// The HDF5 guard's signature scan (find_gcol) against memmem: every match, in order, wherever the
// signature sits relative to the scan's 4-byte stride, overlapping near-misses and buffer ends.
#include <doctest/doctest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "../src/hdf5_guard.h"

namespace {

std::vector<std::size_t> all_by_memmem(const std::string& s) {
  std::vector<std::size_t> out;
  const char* b = s.data();
  const char* e = b + s.size();
  for (const char* p = b; p < e; ++p) {
    p = static_cast<const char*>(memmem(p, static_cast<std::size_t>(e - p), "GCOL", 4));
    if (p == nullptr) break;
    out.push_back(static_cast<std::size_t>(p - b));
  }
  return out;
}

std::vector<std::size_t> all_by_scan(const std::string& s) {
  std::vector<std::size_t> out;
  const char* b = s.data();
  const char* e = b + s.size();
  for (const char* p = b; (p = wb::detail::find_gcol(p, e)) != e; ++p)
    out.push_back(static_cast<std::size_t>(p - b));
  return out;
}

}  // namespace

TEST_CASE("find_gcol finds what memmem finds, in order") {
  struct Case {
    const char* id;
    std::string text;
  };
  std::vector<Case> cases = {
      {"empty", ""},
      {"short", "GCO"},
      {"exact", "GCOL"},
      {"at 1", "xGCOL"},
      {"at 2", "xxGCOL"},
      {"at 3", "xxxGCOL"},
      {"at 4", "xxxxGCOL"},
      {"cut at the end", "xxxxxGCO"},
      {"two back to back", "GCOLGCOL"},
      {"near misses", "GGCOLGCOGCOLLGCCOLGCOLL"},
      {"repeated letters", "GGGGCCCCOOOOLLLLGCOL"},
  };
  // Seeded random bytes over a small alphabet (many partial matches), with signatures planted at
  // every offset modulo 4 and at both ends.
  const unsigned seed = 20261202;
  std::mt19937 rng(seed);
  for (int n : {5, 7, 64, 257, 4099}) {
    std::string s(static_cast<std::size_t>(n), 'x');
    const char alphabet[] = "GCOLx";
    for (char& c : s) c = alphabet[rng() % 5];
    for (int at : {0, 1, 2, 3, n / 2, n / 2 + 1, n - 5, n - 4})
      if (at >= 0 && at + 4 <= n) std::memcpy(&s[static_cast<std::size_t>(at)], "GCOL", 4);
    cases.push_back({"random", s});
  }
  for (const Case& c : cases) {
    CAPTURE(c.id);
    CAPTURE(c.text.size());
    CAPTURE(seed);
    const auto want = all_by_memmem(c.text);
    CHECK(all_by_scan(c.text) == want);
    // From every starting offset: the first match at or after it.
    for (std::size_t from = 0; from <= c.text.size(); ++from) {
      const char* b = c.text.data();
      const char* e = b + c.text.size();
      const void* m = memmem(b + from, c.text.size() - from, "GCOL", 4);
      const char* got = wb::detail::find_gcol(b + from, e);
      CHECK(got == (m == nullptr ? e : static_cast<const char*>(m)));
    }
  }
}
