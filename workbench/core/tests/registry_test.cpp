// The tap registry's facts and the fault table: the sources every other part reads.
#include <doctest/doctest.h>

#include <set>
#include <string>

#include "wb/core/faults.h"
#include "wb/core/precision.h"
#include "wb/core/taps.h"
#include "wb/core/tensor.h"
#include "wb/core/util.h"
#include "wb/testing/name_tables.h"

using namespace wb;

TEST_CASE("registry facts: dataflow, heads, per-token, groups, O(1) lookup") {
  for (const char* preset : {"nano", "tiny", "large-v3"}) {
    CAPTURE(preset);
    const ModelDims d = ModelDims::preset(preset);
    const TapRegistry& reg = TapRegistry::of(d);
    CHECK(&reg == &TapRegistry::of(d));  // built once per dims
    const auto& taps = reg.taps();
    CHECK(taps.size() == encoder_taps(d).size() + decoder_taps(d, 1).size());
    std::set<std::string> seen;
    for (std::size_t i = 0; i < taps.size(); ++i) {
      const TapSpec& t = taps[i];
      CAPTURE(t.name);
      CHECK(reg.order(t.name) == static_cast<int>(i));
      CHECK(reg.find(t.name) == &t);
      // dataflow goes backwards only, to taps of the registry
      for (const auto& u : t.upstream) {
        CHECK(seen.count(u) == 1);
      }
      seen.insert(t.name);
      CHECK(t.name == (t.group.empty() ? t.leaf : t.group + "." + t.leaf));
      if (t.stage == TapStage::block) {
        CHECK(t.name == block_tap(t.side, t.block, t.part));
        CHECK(t.leaf == t.part);
      } else {
        CHECK(t.block == -1);
        CHECK(t.part.empty());
      }
      CHECK(t.per_token == (t.side == TapSide::decoder));
      const bool qkv = t.kind == TapKind::projection && t.part.find("mlp") == std::string::npos;
      CHECK(t.heads == (qkv ? (t.side == TapSide::encoder ? d.n_audio_head : d.n_text_head) : 0));
    }
    // only the two inputs have no upstream
    int roots = 0;
    for (const auto& t : taps) roots += t.upstream.empty() ? 1 : 0;
    CHECK(roots == 2);
    CHECK(reg.find("mel")->kind == TapKind::features);
    CHECK(reg.find("mel")->layout == "mel,frame");
    CHECK(reg.find("logits")->upstream == std::vector<std::string>{"decoder.ln"});
    CHECK(reg.find("encoder.ln_post")->upstream ==
          std::vector<std::string>{block_tap(TapSide::encoder, d.n_audio_layer - 1, "out")});
    CHECK(reg.find("encoder.blocks.0.attn_ln")->upstream ==
          std::vector<std::string>{"encoder.pos_embed"});
    CHECK(reg.find("decoder.blocks.0.cross_attn.out")->upstream ==
          std::vector<std::string>{"decoder.blocks.0.cross_attn.q", "encoder.ln_post"});
    CHECK(reg.find("encoder.blocks.0.mlp.gelu")->shape ==
          Shape{d.n_audio_ctx, 4 * d.n_audio_state});
    CHECK(reg.find("nonsense") == nullptr);
    CHECK(reg.order("nonsense") == -1);
  }
}

TEST_CASE("a --taps item that selects no tap of the run is refused, naming the nearest") {
  const ModelDims d = ModelDims::preset("tiny");
  TapSelector("all").check_against(d, false);
  TapSelector("minimal").check_against(d, false);  // logits absent, mel and ln_post present
  TapSelector("encoder.blocks.*.mlp.fc2").check_against(d, true);
  try {
    TapSelector("encoder.blocks.*.mlp_out").check_against(d, true);
    FAIL("accepted a glob that matches nothing");
  } catch (const UsageError& e) {
    const std::string m = e.what();
    MESSAGE(m);
    CHECK(m.find("encoder.blocks.*.mlp_out") != std::string::npos);
    CHECK(m.find("nearest: encoder.blocks.0.") != std::string::npos);
  }
  CHECK_THROWS_AS(TapSelector("decoder.**").check_against(d, false), UsageError);
  CHECK_THROWS_AS(TapSelector("decoder").check_against(d, false), UsageError);
  CHECK_THROWS_AS(TapSelector("mel,encoder.blocks.9.out").check_against(d, true), UsageError);
  TapSelector("decoder.**").check_against(d, true);
}

TEST_CASE("fault table: unique names, every example parses, values enforced") {
  const ModelDims d = ModelDims::preset("tiny");
  std::set<std::string> names;
  for (const FaultInfo& f : fault_table()) {
    CAPTURE(f.name);
    CHECK(names.insert(std::string(f.name)).second);
    CHECK(find_fault(f.name) == &f);
    CHECK(tap_order(d, f.first_tap) >= 0);
    CHECK(!f.doc.empty());
    REQUIRE(!f.examples.empty());
    for (auto ex : f.examples) {
      const Faults p = parse_faults({std::string(ex)});
      CHECK(p.any());
      CHECK(p.specs.at(0) == ex);
    }
    if (f.value.empty())
      CHECK_THROWS_AS(parse_faults({std::string(f.name) + "=1"}), UsageError);
    else
      CHECK_THROWS_AS(parse_faults({std::string(f.name)}), UsageError);
    CHECK(fault_usage().find(std::string(f.name)) != std::string::npos);
  }
  CHECK(parse_faults({"ln-eps=1e-3"}).ln_eps.value() == doctest::Approx(1e-3f));
  CHECK(parse_faults({"attn-scale=double"}).attn_scale == AttnScale::twice);
  CHECK(parse_faults({"conv-pad=0"}).conv_pad == 0);
  CHECK_THROWS_AS(parse_faults({"no-such"}), UsageError);
  CHECK_THROWS_AS(parse_faults({"conv-pad=17"}), UsageError);
  CHECK(fault_table_json().size() == fault_table().size());
  // "@N": only block-limitable faults, one block, resolved to that block's tap
  CHECK(parse_faults({"gelu-tanh@2"}).block == 2);
  CHECK(parse_faults({"gelu-tanh@2"}).at(1).gelu_tanh == false);
  CHECK(parse_faults({"gelu-tanh@2"}).at(2).gelu_tanh == true);
  CHECK(parse_faults({"gelu-tanh@2"}).at(-1).gelu_tanh == false);
  CHECK(parse_faults({"gelu-tanh"}).at(-1).gelu_tanh == true);
  CHECK(parse_faults({"mel-db", "ln-eps=1e-3@1"}).at(0).mel_db == true);
  CHECK_THROWS_AS(parse_faults({"mel-db@1"}), UsageError);
  CHECK_THROWS_AS(parse_faults({"gelu-tanh@x"}), UsageError);
  CHECK_THROWS_AS(parse_faults({"gelu-tanh@1", "ln-fp16@2"}), UsageError);
  bool saw_block_case = false;
  for (const FaultCase& c : fault_cases()) {
    CHECK(tap_order(d, c.first_tap) >= 0);
    if (c.spec == "gelu-tanh@1") {
      CHECK(c.first_tap == "encoder.blocks.1.mlp.gelu");
      saw_block_case = true;
    }
  }
  CHECK(saw_block_case);
}

TEST_CASE("enum <-> name tables of core: one name per value, round trip") {
  testing::check_name_table(kTapKindNames, "TapKind", TapKind::logits);
  testing::check_name_table(kTapStageNames, "TapStage", TapStage::head);
  testing::check_name_table(kPrecisionNames, "Precision", Precision::float16);
  testing::check_name_table(kDTypeNames, "DType", DType::bf16);
  CHECK(dtype_from_name("bf16") == DType::bf16);  // the short spellings are read too
  CHECK(parse_precision("bfloat16") == Precision::bfloat16);
  CHECK_THROWS_AS(parse_precision("bf16"), UsageError);
}

TEST_CASE("fault table: every fault's stage is an encoder stage") {
  for (const FaultInfo& f : fault_table()) {
    CAPTURE(f.name);
    const TapStage s = f.stage;
    CHECK((s == TapStage::frontend || s == TapStage::stem || s == TapStage::block ||
           s == TapStage::ln_post));
  }
  CHECK(fault_table_json()[0]["stage"] == "frontend");
}

TEST_CASE("plain tap constants name registry taps, outside the blocks") {
  const TapRegistry& reg = TapRegistry::of(ModelDims::preset("tiny"));
  for (std::string_view n :
       {kMel, kConv1, kConv2, kPosEmbed, kLnPost, kDecoderEmbed, kDecoderLn, kLogits}) {
    CAPTURE(n);
    REQUIRE(reg.find(n) != nullptr);
    CHECK(reg.find(n)->block == -1);
  }
}
