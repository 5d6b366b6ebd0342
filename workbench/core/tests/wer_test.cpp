// Word error rate: normalization and edit counts against hand-computed cases.
#include "wb/core/wer.h"

#include <doctest/doctest.h>

using wb::normalize_words;
using wb::word_errors;
using Words = std::vector<std::string>;

TEST_CASE("wer: normalization lowercases and strips punctuation") {
  CHECK(normalize_words("Hello, World!") == Words{"hello", "world"});
  CHECK(normalize_words("  It's   fine.\tReally?\n") == Words{"it's", "fine", "really"});
  CHECK(normalize_words("well-known e.g. 42nd") == Words{"well", "known", "e", "g", "42nd"});
  CHECK(normalize_words("") == Words{});
  CHECK(normalize_words("...!?") == Words{});
  CHECK(normalize_words("caf\xc3\xa9 OK") == Words{"caf\xc3\xa9", "ok"});  // UTF-8 bytes kept
}

TEST_CASE("wer: identical transcripts up to case and punctuation have no errors") {
  const auto c =
      word_errors("Miles captain incandescent tired.", "miles CAPTAIN, incandescent tired");
  CHECK(c.errors() == 0);
  CHECK(c.ref_words == 4);
  CHECK(c.wer() == doctest::Approx(0.0));
}

TEST_CASE("wer: one substitution") {
  // ref: a b c d ; hyp: a x c d -> S=1, N=4, WER 0.25
  const auto c = word_errors("a b c d", "a x c d");
  CHECK(c.substitutions == 1);
  CHECK(c.deletions == 0);
  CHECK(c.insertions == 0);
  CHECK(c.wer() == doctest::Approx(0.25));
}

TEST_CASE("wer: deletion and insertion") {
  // ref: the cat sat on the mat (6); hyp: the cat sat on mat -> one deletion
  auto c = word_errors("The cat sat on the mat.", "the cat sat on mat");
  CHECK(c.deletions == 1);
  CHECK(c.errors() == 1);
  CHECK(c.wer() == doctest::Approx(1.0 / 6));
  // hyp with two extra words: 2 insertions over 3 reference words
  c = word_errors("one two three", "one two really three now");
  CHECK(c.insertions == 2);
  CHECK(c.errors() == 2);
  CHECK(c.wer() == doctest::Approx(2.0 / 3));
}

TEST_CASE("wer: hand-computed mixed case (Levenshtein 4)") {
  // ref: Reason in and sleek torrents fight (6 words)
  // hyp: Reasoning and sleek torrent fight fight
  // alignment: reason->reasoning (S), in (D), and, sleek, torrents->torrent (S), fight, +fight (I)
  const auto c =
      word_errors("Reason in and sleek torrents fight.", "Reasoning and sleek torrent fight fight");
  CHECK(c.errors() == 4);
  CHECK(c.ref_words == 6);
  CHECK(c.wer() == doctest::Approx(4.0 / 6));
}

TEST_CASE("wer: a repeating decoder is charged for every extra word") {
  // 3 reference words, hypothesis repeats one token 10 times: "the the" match, 1 S, 7 I = 8 errors
  const auto c = word_errors("the the cat", "the the the the the the the the the the");
  CHECK(c.errors() == 8);  // "the the" match, "cat"->"the" (S), 7 insertions
  CHECK(c.substitutions == 1);
  CHECK(c.insertions == 7);
  CHECK(c.wer() == doctest::Approx(8.0 / 3));
}

TEST_CASE("wer: empty sides") {
  CHECK(word_errors("", "").errors() == 0);
  CHECK(word_errors("", "").wer() == doctest::Approx(0.0));
  auto c = word_errors("a b", "");
  CHECK(c.deletions == 2);
  CHECK(c.wer() == doctest::Approx(1.0));
  c = word_errors("", "x y");
  CHECK(c.insertions == 2);
  CHECK(c.wer() == doctest::Approx(2.0));
}

TEST_CASE("wer: counts accumulate over clips (corpus WER is errors over words)") {
  wb::WerCounts total;
  total += word_errors("a b c d", "a x c d");  // 1 / 4
  total += word_errors("e f", "e f");          // 0 / 2
  total += word_errors("g h i j", "g");        // 3 / 4
  CHECK(total.errors() == 4);
  CHECK(total.ref_words == 10);
  CHECK(total.wer() == doctest::Approx(0.4));
}
