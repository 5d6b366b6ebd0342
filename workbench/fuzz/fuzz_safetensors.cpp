// Fuzzes the safetensors reader (header length, header JSON, tensor table, data offsets, dtype
// conversion) through wb::load_checkpoint on an HF directory whose config.json and vocab.json are
// valid for the tiny model; the input is model.safetensors.
#include "fuzz_model.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto& dir = wb::fuzz::tiny_hf_dir();
  wb::fuzz::write_bytes(dir / "model.safetensors", data, size);
  wb::fuzz::expect_clean([&] {
    const wb::Checkpoint ck = wb::load_checkpoint(dir.string());
    if (ck.weights.size() != wb::weight_table(ck.dims).size()) std::abort();
  });
  return 0;
}
