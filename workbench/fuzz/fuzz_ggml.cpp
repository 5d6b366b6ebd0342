// Fuzzes the whisper.cpp ggml reader (magic, hparams, mel filters, vocabulary, tensor records)
// through wb::load_checkpoint on a single file.
#include "fuzz_common.h"
#include "wb/core/weights.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto path = wb::fuzz::scratch() / "model.bin";
  wb::fuzz::write_bytes(path, data, size);
  wb::fuzz::expect_clean([&] {
    const wb::Checkpoint ck = wb::load_checkpoint(path.string());
    if (ck.weights.size() != wb::weight_table(ck.dims).size()) std::abort();
  });
  return 0;
}
