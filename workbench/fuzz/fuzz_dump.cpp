// Fuzzes the HDF5 dump reader: wb::DumpReader's validation of root attributes and tap datasets,
// then every accessor the comparator and `wb inspect` use (whole-tap and row-chunk reads, decode
// results, timings).
#include <algorithm>

#include "fuzz_common.h"
#include "wb/core/dump.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto path = wb::fuzz::scratch() / "dump.h5";
  wb::fuzz::write_bytes(path, data, size);
  wb::fuzz::expect_clean([&] {
    const wb::DumpReader r(path.string());
    for (const wb::TapInfo& t : r.taps()) {
      wb::fuzz::expect_clean([&] { (void)r.read(t.name, wb::DType::f32); });
      wb::fuzz::expect_clean([&] {
        std::vector<double> rows;
        const int64_t n = t.shape.empty() ? 0 : std::min<int64_t>(t.shape[0], 2);
        r.read_rows(t.name, 0, n, rows);
      });
    }
    wb::fuzz::expect_clean([&] { (void)r.tokens(); });
    wb::fuzz::expect_clean([&] { (void)r.text(); });
    wb::fuzz::expect_clean([&] { (void)r.timings(); });
  });
  return 0;
}
