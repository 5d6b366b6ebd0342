// Transcripts in a comparison: both sides' decoded text and the candidate's word errors against
// the reference, in every report; invalid UTF-8 from a broken decoder must not break JSON.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "wb/reports/reports.h"

using namespace wb;

namespace {

cmp::CompareResult compare_with_texts(const std::optional<std::string>& a,
                                      const std::optional<std::string>& b) {
  DumpMeta meta;
  meta.implementation = "reference";
  meta.precision = "float32";
  meta.model_sha256 = std::string(64, 'e');
  meta.dims = ModelDims::preset("nano");
  cmp::MemorySource ref("ref.h5", meta), cand("cand.h5", meta);
  std::mt19937 rng(3);
  std::normal_distribution<double> nd(0, 1);
  std::vector<double> x(static_cast<std::size_t>(meta.dims.n_audio_ctx * meta.dims.n_audio_state));
  for (double& v : x) v = static_cast<float>(nd(rng));
  const Shape shape{meta.dims.n_audio_ctx, meta.dims.n_audio_state};
  ref.add("encoder.ln_post", shape, x);
  cand.add("encoder.ln_post", shape, x);
  if (a) ref.set_text(*a);
  if (b) cand.set_text(*b);
  return cmp::compare(ref, cand, nullptr, cmp::CompareOptions{});
}

}  // namespace

TEST_CASE("transcripts: word errors of the candidate against the reference, in every report") {
  // "the cat sat" -> "the bat sat down": 1 substitution + 1 insertion over 3 words.
  const auto r = compare_with_texts("The cat sat.", "the bat sat down");
  REQUIRE(r.transcripts);
  CHECK(r.transcripts->words.substitutions == 1);
  CHECK(r.transcripts->words.insertions == 1);
  CHECK(r.transcripts->words.deletions == 0);
  CHECK(r.transcripts->words.ref_words == 3);
  const std::string md = rep::render_markdown(r);
  CHECK(md.find("candidate word error rate 66.7% against the reference (2 of 3 words)") !=
        std::string::npos);
  CHECK(md.find("- candidate: the bat sat down") != std::string::npos);
  const auto j = nlohmann::json::parse(rep::render_json(r));
  CHECK(j["transcripts"]["identical"] == false);
  CHECK(j["transcripts"]["wer"].get<double>() == doctest::Approx(2.0 / 3.0));
  CHECK(rep::render_html(r).find("<h2>Transcripts</h2>") != std::string::npos);
}

TEST_CASE("transcripts: identical, absent, and invalid UTF-8 from a broken decoder") {
  CHECK(rep::render_markdown(compare_with_texts("same words", "same words"))
            .find("**Transcripts:** identical") != std::string::npos);
  const auto none = compare_with_texts("only the reference decoded", std::nullopt);
  CHECK_FALSE(none.transcripts);
  CHECK(nlohmann::json::parse(rep::render_json(none))["transcripts"].is_null());
  // A byte-level vocabulary lets a broken decoder stop inside a UTF-8 sequence; HTML escapes '<'.
  const auto bad = compare_with_texts("ok", std::string("ab\xe2\x82 <b>"));
  const auto j = nlohmann::json::parse(rep::render_json(bad));
  CHECK(j["transcripts"]["candidate"].get<std::string>().find("ab") == 0);
  CHECK(rep::render_html(bad).find("&lt;b&gt;") != std::string::npos);
}
