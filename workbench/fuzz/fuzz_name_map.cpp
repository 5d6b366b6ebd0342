// Fuzzes tap name maps: wb::cmp::NameMap::load, then validation against the tiny and nano dims
// and renaming of a few stored names, as `wb compare --map` does.
#include "fuzz_common.h"
#include "wb/compare/name_map.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto path = wb::fuzz::scratch() / "map.json";
  wb::fuzz::write_bytes(path, data, size);
  wb::fuzz::expect_clean([&] {
    const auto m = wb::cmp::NameMap::load(path.string());
    for (const char* stored :
         {"model.encoder.layers.0.self_attn_layer_norm", "model.encoder.layers.12.fc1", "mel", "",
          "model.encoder.layers..fc1", "model.encoder.layer_norm"})
      (void)m.canonical(stored);
    wb::fuzz::expect_clean([&] { m.validate(wb::ModelDims::preset("nano")); });
    wb::fuzz::expect_clean([&] { m.validate(wb::ModelDims::preset("tiny")); });
  });
  return 0;
}
