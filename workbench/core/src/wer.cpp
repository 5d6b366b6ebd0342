#include "wb/core/wer.h"

#include <algorithm>
#include <cstdint>

namespace wb {

std::vector<std::string> normalize_words(std::string_view text) {
  std::vector<std::string> words;
  std::string cur;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '\'' || c >= 0x80;
    if (keep) {
      cur.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : ch);
    } else if (!cur.empty()) {
      words.push_back(std::move(cur));
      cur.clear();
    }
  }
  if (!cur.empty()) words.push_back(std::move(cur));
  return words;
}

double WerCounts::wer() const {
  if (ref_words == 0) return static_cast<double>(errors());
  return static_cast<double>(errors()) / static_cast<double>(ref_words);
}

WerCounts& WerCounts::operator+=(const WerCounts& o) {
  substitutions += o.substitutions;
  deletions += o.deletions;
  insertions += o.insertions;
  ref_words += o.ref_words;
  return *this;
}

WerCounts word_errors(const std::vector<std::string>& ref, const std::vector<std::string>& hyp) {
  const std::size_t n = ref.size(), m = hyp.size();
  // Full table (transcripts are short) so the alignment can be traced back into S/D/I.
  std::vector<std::uint32_t> d((n + 1) * (m + 1));
  auto at = [&](std::size_t i, std::size_t j) -> std::uint32_t& { return d[i * (m + 1) + j]; };
  for (std::size_t i = 0; i <= n; ++i) at(i, 0) = static_cast<std::uint32_t>(i);
  for (std::size_t j = 0; j <= m; ++j) at(0, j) = static_cast<std::uint32_t>(j);
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j)
      at(i, j) = std::min({at(i - 1, j - 1) + (ref[i - 1] == hyp[j - 1] ? 0u : 1u),
                           at(i - 1, j) + 1u, at(i, j - 1) + 1u});
  WerCounts c;
  c.ref_words = n;
  std::size_t i = n, j = m;
  while (i > 0 || j > 0) {
    if (i > 0 && j > 0 && at(i, j) == at(i - 1, j - 1) + (ref[i - 1] == hyp[j - 1] ? 0u : 1u)) {
      if (ref[i - 1] != hyp[j - 1]) ++c.substitutions;
      --i, --j;
    } else if (i > 0 && at(i, j) == at(i - 1, j) + 1u) {
      ++c.deletions;
      --i;
    } else {
      ++c.insertions;
      --j;
    }
  }
  return c;
}

WerCounts word_errors(std::string_view ref_text, std::string_view hyp_text) {
  return word_errors(normalize_words(ref_text), normalize_words(hyp_text));
}

}  // namespace wb
