// Fuzzes the audio entry point: wb::load_audio (libsndfile decode, downmix, checks, resample).
#include "fuzz_common.h"
#include "wb/core/audio.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto path = wb::fuzz::scratch() / "input.wav";
  wb::fuzz::write_bytes(path, data, size);
  wb::fuzz::expect_clean([&] {
    const wb::Audio a = wb::load_audio(path.string());
    if (a.pcm.empty() || a.source_rate <= 0 || a.source_channels <= 0) std::abort();
  });
  return 0;
}
