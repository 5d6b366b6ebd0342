// Word error rate for transcript checks: word-level Levenshtein distance after normalization.
// Normalization (the same rule as scripts/train/whisper_common.py): ASCII letters lowercased,
// every byte that is not an ASCII letter, digit or apostrophe becomes a space (so punctuation
// is stripped and "well-known" is two words), then the text is split on whitespace.
// Bytes >= 0x80 (non-ASCII UTF-8) are kept as word characters.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace wb {

std::vector<std::string> normalize_words(std::string_view text);

struct WerCounts {
  std::size_t substitutions = 0, deletions = 0, insertions = 0;
  std::size_t ref_words = 0;  // words in the normalized reference
  std::size_t errors() const { return substitutions + deletions + insertions; }
  // errors / ref_words; 0 for an empty reference matched by an empty hypothesis, and
  // errors (as a count, i.e. 1.0 per inserted word) when the reference is empty.
  double wer() const;
  WerCounts& operator+=(const WerCounts& o);
};

// Minimum-edit alignment of hyp against ref (ties broken substitution, deletion, insertion).
WerCounts word_errors(const std::vector<std::string>& ref, const std::vector<std::string>& hyp);
// normalize_words on both, then word_errors.
WerCounts word_errors(std::string_view ref_text, std::string_view hyp_text);

}  // namespace wb
