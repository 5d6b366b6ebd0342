// Fuzzes the JSON side of an HF directory: config.json (model dims) and the vocabulary files.
// The input is split at "\n#--\n": part 0 is config.json; part 1, when present and not empty,
// replaces vocab.json; part 2, when present, is written as tokenizer.json (and vocab.json is
// removed if part 1 is empty, so that the tokenizer.json path is taken). model.safetensors is the
// valid tiny model, so a config describing the tiny dims loads completely.
#include "fuzz_model.h"

namespace {
const std::string& default_vocab() {
  static const std::string v = [] {
    std::ifstream in(wb::fuzz::tiny_hf_dir() / "vocab.json", std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }();
  return v;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const auto& dir = wb::fuzz::tiny_hf_dir();
  const std::string& vocab = default_vocab();
  const auto parts = wb::fuzz::split(data, size, "\n#--\n");
  wb::fuzz::write_bytes(dir / "config.json", parts[0].data(), parts[0].size());
  std::filesystem::remove(dir / "tokenizer.json");
  if (parts.size() > 1 && !parts[1].empty())
    wb::fuzz::write_bytes(dir / "vocab.json", parts[1].data(), parts[1].size());
  else if (parts.size() > 2)
    std::filesystem::remove(dir / "vocab.json");
  else
    wb::fuzz::write_bytes(dir / "vocab.json", vocab.data(), vocab.size());
  if (parts.size() > 2)
    wb::fuzz::write_bytes(dir / "tokenizer.json", parts[2].data(), parts[2].size());
  wb::fuzz::expect_clean([&] { (void)wb::load_checkpoint(dir.string()); });
  return 0;
}
