// Whisper model dimensions, read from the checkpoint (never from a size name, except presets for
// generating fixtures).
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace wb {

struct ModelDims {
  int n_mels = 80;
  int n_audio_ctx = 1500;  // encoder frames after the stride-2 conv (30 s window)
  int n_audio_state = 384;
  int n_audio_head = 6;
  int n_audio_layer = 4;
  int n_vocab = 51865;
  int n_text_ctx = 448;
  int n_text_state = 384;
  int n_text_head = 6;
  int n_text_layer = 4;

  int n_audio_mlp() const { return 4 * n_audio_state; }
  int n_text_mlp() const { return 4 * n_text_state; }
  int n_mel_frames() const { return 2 * n_audio_ctx; }  // 3000 for 30 s

  void validate() const;  // throws std::invalid_argument naming the offending field
  nlohmann::json to_json() const;
  static ModelDims from_json(const nlohmann::json& j);
  // OpenAI sizes (tiny ... large-v3) plus "nano", a few-MB fixture size.
  static ModelDims preset(std::string_view name);
  bool operator==(const ModelDims&) const = default;
};

}  // namespace wb
