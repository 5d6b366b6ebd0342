// The weight table's closed-form size (weight_numel) that loaders check against file sizes.
#include "wb/core/weights.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

using namespace wb;

TEST_CASE("weight_numel equals the sum over weight_table for every preset and odd dims") {
  ModelDims odd = ModelDims::preset("nano");
  odd.n_mels = 3, odd.n_audio_ctx = 7, odd.n_audio_state = 6, odd.n_audio_head = 3,
  odd.n_audio_layer = 3;
  odd.n_text_state = 10, odd.n_text_head = 5, odd.n_text_layer = 2, odd.n_text_ctx = 5;
  std::vector<std::pair<std::string, ModelDims>> cases = {{"odd", odd}};
  for (const char* p : {"nano", "tiny", "base", "large-v3"})
    cases.emplace_back(p, ModelDims::preset(p));
  for (const auto& [id, d] : cases) {
    int64_t sum = 0;
    for (const WeightSpec& s : weight_table(d)) sum += shape_numel(s.shape);
    INFO(fmt::format("case {}: table {} weights, closed form {}", id, sum, weight_numel(d)));
    CHECK(weight_numel(d) == sum);
  }
}
