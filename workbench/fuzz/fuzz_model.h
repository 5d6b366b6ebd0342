// The smallest Whisper the loaders accept, shared by the checkpoint harnesses and the seed
// generator so that seeds and the harnesses' fixed side files describe the same model.
#pragma once
#include <filesystem>

#include "fuzz_common.h"
#include "wb/core/weights.h"

namespace wb::fuzz {

// Width 4, one head, one layer each side, two frames; n_vocab is the minimum (256 byte tokens +
// Whisper's 1509 specials + 1), which makes decoder.token_embedding the largest tensor (28 KB f32).
inline ModelDims tiny_dims() {
  ModelDims d;
  d.n_mels = 2;
  d.n_audio_ctx = 2;
  d.n_audio_state = d.n_text_state = 4;
  d.n_audio_head = d.n_text_head = 1;
  d.n_audio_layer = d.n_text_layer = 1;
  d.n_vocab = 256 + 1509 + 1;
  d.n_text_ctx = 2;
  return d;
}

// An HF directory of the tiny model (config.json, vocab.json, model.safetensors), written once
// per process with wb's own writer; harnesses overwrite the one file they fuzz.
inline const std::filesystem::path& tiny_hf_dir() {
  static const std::filesystem::path dir = [] {
    const auto d = scratch() / "tiny-hf";
    save_hf(random_checkpoint(tiny_dims(), 1), d.string(), DType::f32);
    return d;
  }();
  return dir;
}

}  // namespace wb::fuzz
