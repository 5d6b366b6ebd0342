// Fuzzes tolerance profiles: wb::cmp::ToleranceProfile::load (JSON with comments, rules, globs,
// thresholds), then resolves and evaluates the profile for a few taps as `wb compare` would.
#include "fuzz_common.h"
#include "wb/compare/profile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto path = wb::fuzz::scratch() / "profile.json";
  wb::fuzz::write_bytes(path, data, size);
  wb::fuzz::expect_clean([&] {
    const auto p = wb::cmp::ToleranceProfile::load(path.string());
    wb::cmp::DiffMetrics m, floor;
    m.numel = m.compared = 64;
    m.rel_l2 = 2e-4, m.max_abs = 3e-3, m.mean_abs = 1e-4, m.cosine = 0.99999, m.share_beyond = 0.01;
    floor.rel_l2 = 1e-6, floor.max_abs = 1e-5, floor.mean_abs = 1e-7;
    for (const char* tap :
         {"mel", "encoder.conv1", "encoder.blocks.0.mlp.fc1", "encoder.ln_post", "logits"}) {
      const wb::cmp::TapTolerance t = p.for_tap(tap);
      (void)p.evaluate(t, m, nullptr);
      (void)p.evaluate(t, m, &floor);
    }
  });
  return 0;
}
