#include "wb/core/tokenizer.h"

#include <fmt/format.h>

#include <array>
#include <stdexcept>

namespace wb {

Vocabulary::Vocabulary(std::vector<std::string> base_tokens, int n_vocab)
    : tokens_(std::move(base_tokens)), n_vocab_(n_vocab) {
  if (n_languages() < 1)
    throw std::invalid_argument(fmt::format(
        "vocabulary: n_vocab {} leaves no room for Whisper's special tokens after {} base tokens "
        "(need at least n_base + 1510)",
        n_vocab, tokens_.size()));
}

int Vocabulary::language(int index) const {
  if (index < 0 || index >= n_languages())
    throw std::invalid_argument(
        fmt::format("language index {} out of range 0..{}", index, n_languages() - 1));
  return sot() + 1 + index;
}

std::string Vocabulary::token_text(int id) const {
  if (id < 0 || id >= n_vocab_) return fmt::format("<|invalid:{}|>", id);
  if (id < n_base()) return tokens_[static_cast<std::size_t>(id)];
  if (id == eot()) return "<|endoftext|>";
  if (id == sot()) return "<|startoftranscript|>";
  if (id < translate()) return fmt::format("<|lang:{}|>", id - sot() - 1);
  if (id == translate()) return "<|translate|>";
  if (id == transcribe()) return "<|transcribe|>";
  if (id == startoflm()) return "<|startoflm|>";
  if (id == startofprev()) return "<|startofprev|>";
  if (id == nospeech()) return "<|nospeech|>";
  if (id == notimestamps()) return "<|notimestamps|>";
  return fmt::format("<|{:.2f}|>", (id - timestamp_begin()) * 0.02);
}

std::string Vocabulary::decode(const std::vector<int>& ids) const {
  std::string out;
  for (int id : ids)
    if (id >= 0 && id < n_base()) out += tokens_[static_cast<std::size_t>(id)];
  return out;
}

std::vector<int> Vocabulary::initial_prompt(int language_index) const {
  return {sot(), language(language_index), transcribe(), notimestamps()};
}

namespace {
// GPT-2 bytes_to_unicode(): printable bytes map to themselves, the rest to U+0100 + n.
std::array<uint32_t, 256> byte_to_codepoint() {
  std::array<uint32_t, 256> m{};
  std::array<bool, 256> printable{};
  for (int b = '!'; b <= '~'; ++b) printable[b] = true;
  for (int b = 0xA1; b <= 0xAC; ++b) printable[b] = true;
  for (int b = 0xAE; b <= 0xFF; ++b) printable[b] = true;
  uint32_t n = 0;
  for (int b = 0; b < 256; ++b) m[b] = printable[b] ? static_cast<uint32_t>(b) : 256 + n++;
  return m;
}

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
}
}  // namespace

std::string bytes_to_gpt2_unicode(const std::string& bytes) {
  static const auto m = byte_to_codepoint();
  std::string out;
  for (unsigned char c : bytes) append_utf8(out, m[c]);
  return out;
}

std::string gpt2_unicode_to_bytes(const std::string& s) {
  static const auto inverse = [] {
    std::array<int, 512> inv{};
    inv.fill(-1);
    const auto m = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) inv[m[b]] = b;
    return inv;
  }();
  std::string out;
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    int len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) {
      cp = ((c & 0x1Fu) << 6) | (s[i + 1] & 0x3F);
      len = 2;
    } else
      throw std::invalid_argument(
          fmt::format("vocabulary token '{}' is not GPT-2 byte-level text", s));
    if (cp >= inverse.size() || inverse[cp] < 0)
      throw std::invalid_argument(
          fmt::format("vocabulary token '{}' has a character outside GPT-2's byte map", s));
    out += static_cast<char>(inverse[cp]);
    i += static_cast<std::size_t>(len);
  }
  return out;
}

}  // namespace wb
