// The HDF5 guard's signature scan (find_gcol) against memmem: every match, in order, wherever the
// signature sits relative to the scan's 4-byte stride, overlapping near-misses and buffer ends.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
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

// The guard's scan of a file by ranges (its two halves on two threads for a large file): adjacent
// ranges, split anywhere, give exactly memmem's matches over the whole file, the signature put
// across the 256 KiB block ends and across each split point.
TEST_CASE("gcol_offsets over adjacent ranges equals memmem over the whole file") {
  constexpr std::size_t kBlock = 1 << 18;
  const std::size_t size = 3 * kBlock + 1234;
  std::string s(size, 'x');
  std::mt19937 rng(20261203);
  const char alphabet[] = "GCOLx";
  for (std::size_t i = 0; i < size; i += 1 + rng() % 97) s[i] = alphabet[rng() % 5];
  std::vector<std::size_t> planted = {0, size - 4};
  for (std::size_t b = kBlock; b < size; b += kBlock)
    for (std::size_t k = 0; k <= 4; ++k) planted.push_back(b - 4 + k * 2 - (k > 2 ? 1 : 0));
  const std::size_t splits[] = {
      0, 1, size / 2 - 2, size / 2, kBlock - 1, kBlock, 2 * kBlock + 3, size - 1, size};
  for (std::size_t m : splits)
    for (std::size_t k = 0; k < 4; ++k)
      if (m >= 3 && m - 3 + k + 4 <= size) planted.push_back(m - 3 + k);
  for (std::size_t at : planted) std::memcpy(&s[at], "GCOL", 4);

  char path[] = "/tmp/wb-guard-scan-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
  const std::vector<std::size_t> want = all_by_memmem(s);
  for (std::size_t m : splits) {
    CAPTURE(m);
    std::vector<uint64_t> got = wb::detail::gcol_offsets(fd, size, 0, m);
    const std::vector<uint64_t> rest = wb::detail::gcol_offsets(fd, size, m, size);
    got.insert(got.end(), rest.begin(), rest.end());
    CHECK(got == std::vector<uint64_t>(want.begin(), want.end()));
  }
  // A file that ends before the range does (shrunk since it was sized): a read error.
  CHECK_THROWS_AS(wb::detail::gcol_offsets(fd, size + kBlock, 0, size + kBlock),
                  std::runtime_error);
  close(fd);
  unlink(path);
}
