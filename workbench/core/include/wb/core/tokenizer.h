// Whisper's token layout: n_base byte-level BPE tokens, then the special tokens
//   eot, sot, <|lang|> x n_languages, translate, transcribe, startoflm, startofprev,
//   nospeech, notimestamps, 1501 timestamps (0.00 .. 30.00 s).
// n_languages = n_vocab - n_base - 1509 (99 for multilingual, 100 for large-v3).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace wb {

class Vocabulary {
 public:
  Vocabulary() = default;
  // tokens[i] holds the raw bytes of base token i (i < n_base); n_vocab includes specials.
  Vocabulary(std::vector<std::string> base_tokens, int n_vocab);

  int n_vocab() const { return n_vocab_; }
  int n_base() const { return static_cast<int>(tokens_.size()); }
  int n_languages() const { return n_vocab_ - n_base() - 1509; }
  const std::vector<std::string>& base_tokens() const { return tokens_; }

  int eot() const { return n_base(); }
  int sot() const { return n_base() + 1; }
  int language(int index) const;  // index 0 = "en"
  int translate() const { return sot() + 1 + n_languages(); }
  int transcribe() const { return translate() + 1; }
  int startoflm() const { return translate() + 2; }
  int startofprev() const { return translate() + 3; }
  int nospeech() const { return translate() + 4; }
  int notimestamps() const { return translate() + 5; }
  int timestamp_begin() const { return translate() + 6; }

  bool is_special(int id) const { return id >= n_base(); }
  std::string token_text(int id) const;  // bytes of a base token, "<|...|>" for specials
  // Text of base tokens, specials dropped (what whisper prints).
  std::string decode(const std::vector<int>& ids) const;
  // The prompt the reference decoder starts from: sot [lang] transcribe notimestamps.
  std::vector<int> initial_prompt(int language_index = 0) const;

 private:
  std::vector<std::string> tokens_;
  int n_vocab_ = 0;
};

// GPT-2's byte <-> printable-unicode mapping used by HF vocab.json files.
std::string gpt2_unicode_to_bytes(const std::string& utf8_token);  // throws on unknown chars
std::string bytes_to_gpt2_unicode(const std::string& bytes);

}  // namespace wb
