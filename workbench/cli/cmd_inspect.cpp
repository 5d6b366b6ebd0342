// wb inspect: a dump's metadata and, per tap, shape, storage and mean/std/min/max.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "command.h"
#include "wb/compare/metrics.h"
#include "wb/core/dump.h"
#include "wb/core/taps.h"

namespace wb::cli {

void add_inspect(CLI::App& app, Registry& reg) {
  auto path = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand("inspect", "show a dump's metadata and per-tap statistics");
  sub->add_option("dump", *path, "dump .h5")->required();
  reg.add(sub, [path]() {
    DumpReader r(*path);
    const DumpMeta& m = r.meta();
    fmt::print(
        "dump {}\n  implementation {}  precision {}  device {}  threads {}\n  model {}  dims {}\n  "
        "audio {} ({})\n  {}  {}\n",
        *path, m.implementation, m.precision, m.device, m.threads, m.model_sha256.substr(0, 16),
        m.dims.to_json().dump(), m.audio_name, m.audio_sha256.substr(0, 16), m.tool_version,
        m.created);
    if (!m.run_info.empty()) fmt::print("  run_info {}\n", m.run_info.dump());
    fmt::print("{:<36} {:>14} {:>8} {:>12} {:>12} {:>12} {:>12} {:>6}\n", "tap", "shape", "stored",
               "mean", "std", "min", "max", "nan/inf");
    std::vector<double> buf;
    for (const TapInfo& t : r.taps()) {
      // Streamed over row chunks through the comparator's accumulator (compensated, shifted
      // sums in float64), the tap fed as both sides.
      const int64_t rows = t.shape.empty() ? 1 : t.shape[0];
      const Shape shape = t.shape.empty() ? Shape{1} : t.shape;
      int64_t row_len = 1;
      for (std::size_t k = 1; k < t.shape.size(); ++k) row_len *= t.shape[k];
      const int64_t step = std::max<int64_t>(
          1, (int64_t{1} << 18) / std::max<int64_t>(1, row_len));  // ~2 MB of doubles
      cmp::AccumulatorOptions ao;
      ao.top_k = 0;
      cmp::MetricAccumulator acc(shape, ao);
      for (int64_t r0 = 0; r0 < rows; r0 += step) {
        const int64_t n = std::min<int64_t>(step, rows - r0);
        r.read_rows(t.name, r0, n, buf);
        acc.add_rows(buf.data(), buf.data(), n);
      }
      const cmp::SideStats st = acc.finish().ref;
      const int64_t bad = st.nan + st.pos_inf + st.neg_inf;
      const double nan = std::numeric_limits<double>::quiet_NaN();
      fmt::print("{:<36} {:>14} {:>8} {:>12.5g} {:>12.5g} {:>12.5g} {:>12.5g} {:>6}\n", t.name,
                 shape_str(t.shape), dtype_name(t.stored), st.finite ? st.mean : nan,
                 st.finite ? st.std : nan, st.finite ? st.min : nan, st.finite ? st.max : nan, bad);
    }
    // Foreign names are legal in a dump (a port's own module names) but wb compare needs a --map.
    for (const TapInfo& t : r.taps())
      if (tap_order(m.dims, t.name) < 0)
        fmt::print(
            "note: tap '{}' is not in the registry for these dims (wb compare needs --map to "
            "rename it)\n",
            t.name);
    if (auto tokens = r.tokens()) fmt::print("tokens: {}\n", tokens->size());
    if (auto text = r.text()) fmt::print("text: {}\n", *text);
    for (const auto& [k, v] : r.timings()) fmt::print("timing {}: {:.4f} s\n", k, v);
    return 0;
  });
}

}  // namespace wb::cli
