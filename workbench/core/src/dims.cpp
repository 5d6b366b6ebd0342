#include "wb/core/dims.h"

#include <fmt/format.h>

#include <stdexcept>

namespace wb {

namespace {
struct Field {
  const char* name;
  int ModelDims::*member;
};
constexpr Field kFields[] = {
    {"n_mels", &ModelDims::n_mels},
    {"n_audio_ctx", &ModelDims::n_audio_ctx},
    {"n_audio_state", &ModelDims::n_audio_state},
    {"n_audio_head", &ModelDims::n_audio_head},
    {"n_audio_layer", &ModelDims::n_audio_layer},
    {"n_vocab", &ModelDims::n_vocab},
    {"n_text_ctx", &ModelDims::n_text_ctx},
    {"n_text_state", &ModelDims::n_text_state},
    {"n_text_head", &ModelDims::n_text_head},
    {"n_text_layer", &ModelDims::n_text_layer},
};
}  // namespace

void ModelDims::validate() const {
  // Bounds are generous (large-v3 is 1280 wide, 32 layers) but stop lying headers early.
  for (const Field& f : kFields) {
    const int v = this->*f.member;
    const int hi = (f.member == &ModelDims::n_vocab) ? 1 << 20 : 1 << 16;
    if (v <= 0 || v > hi)
      throw std::invalid_argument(
          fmt::format("model dims: {} = {} (expected 1..{})", f.name, v, hi));
  }
  if (n_audio_state % n_audio_head != 0)
    throw std::invalid_argument(
        fmt::format("model dims: n_audio_state {} not divisible by n_audio_head {}", n_audio_state,
                    n_audio_head));
  if (n_text_state % n_text_head != 0)
    throw std::invalid_argument(fmt::format(
        "model dims: n_text_state {} not divisible by n_text_head {}", n_text_state, n_text_head));
  if (n_vocab < 1509 + 257)
    throw std::invalid_argument(
        fmt::format("model dims: n_vocab {} too small for Whisper's 1509 special tokens", n_vocab));
}

nlohmann::json ModelDims::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const Field& f : kFields) j[f.name] = this->*f.member;
  return j;
}

ModelDims ModelDims::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("model dims: not a JSON object");
  ModelDims d;
  for (const Field& f : kFields) {
    if (!j.contains(f.name) || !j[f.name].is_number_integer())
      throw std::invalid_argument(fmt::format("model dims: missing integer field '{}'", f.name));
    const auto v = j[f.name].get<int64_t>();
    if (v <= 0 || v > (1 << 20))
      throw std::invalid_argument(fmt::format("model dims: {} = {} out of range", f.name, v));
    d.*f.member = static_cast<int>(v);
  }
  d.validate();
  return d;
}

ModelDims ModelDims::preset(std::string_view name) {
  auto make = [](int mels, int state, int head, int layer, int vocab) {
    ModelDims d;
    d.n_mels = mels;
    d.n_audio_state = d.n_text_state = state;
    d.n_audio_head = d.n_text_head = head;
    d.n_audio_layer = d.n_text_layer = layer;
    d.n_vocab = vocab;
    return d;
  };
  if (name == "nano") {  // fixture size: byte vocabulary + one language, a few MB
    ModelDims d = make(80, 64, 2, 2, 256 + 1509 + 1);
    d.n_text_ctx = 64;
    return d;
  }
  if (name == "tiny") return make(80, 384, 6, 4, 51865);
  if (name == "base") return make(80, 512, 8, 6, 51865);
  if (name == "small") return make(80, 768, 12, 12, 51865);
  if (name == "medium") return make(80, 1024, 16, 24, 51865);
  if (name == "large" || name == "large-v2") return make(80, 1280, 20, 32, 51865);
  if (name == "large-v3") return make(128, 1280, 20, 32, 51866);
  throw std::invalid_argument(
      fmt::format("unknown dims preset '{}' (expected nano, tiny, base, small, medium, large, "
                  "large-v2, large-v3)",
                  name));
}

}  // namespace wb
