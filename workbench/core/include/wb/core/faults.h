// The fault table: every switch that reproduces a real porting bug, with the stage it breaks and
// the first tap expected to diverge. The one list: option parsing, `--list-faults`, the
// in-process fault tests and compare/tests/fault_matrix.sh all read it. Every encoder backend
// (CPU candidate, CUDA candidate) implements the switches of this table and nothing else.
#pragma once
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "wb/core/numerics.h"  // AttnScale: the attn-scale fault's meaning
#include "wb/core/taps.h"

namespace wb {

struct FaultInfo {
  std::string_view name;
  std::string_view value;      // value syntax ("VALUE", "none|double"), empty: takes no value
  TapStage stage;              // frontend | stem | block | ln_post
  std::string_view first_tap;  // first tap expected to diverge (block faults: in block 0)
  std::string_view doc;        // one line
  std::vector<std::string_view> examples;  // full specs the fault tests and the matrix run
  // Non-empty: the fault may be limited to one encoder block with "@N" ("gelu-tanh@2"), and then
  // first shows at encoder.blocks.N.<block_part> (a test-only switch for replay and bisection,
  // and the subtler porting bug of one block done wrong).
  std::string_view block_part = {};
};

// One runnable case: a full spec and the tap where it must first show.
struct FaultCase {
  std::string spec;
  std::string first_tap;
};
// Every example of the table, "@N" ones resolved to their block's tap.
std::vector<FaultCase> fault_cases();

// In the order of the stages they break.
const std::vector<FaultInfo>& fault_table();
const FaultInfo* find_fault(std::string_view name);  // nullptr when not in the table
std::string fault_usage();          // "no-ln-post, mel-db, ..., ln-eps=VALUE, ..." for messages
nlohmann::json fault_table_json();  // [{name, value, stage, first_tap, doc, examples}]

// Parsed switches, as every backend reads them.
struct Faults {
  bool no_ln_post = false;
  bool mel_db = false;
  bool stft_no_reflect = false;
  bool stft_keep_last = false;
  std::optional<float> ln_eps;
  AttnScale attn_scale = AttnScale::normal;
  bool gelu_tanh = false;
  int conv_pad = 1;
  bool no_pos_embed = false;
  bool conv_bias_drop = false;  // conv1's bias of output channel 0 left out
  bool ln_fp16 = false;
  int block = -1;  // >= 0: the block-limitable switches apply in this encoder block only
  std::vector<std::string> specs;  // as given, for run_info

  bool any() const { return !specs.empty(); }
  // The switches in force in encoder block i (i = -1: outside the blocks: front end, stem,
  // ln_post). Unlimited faults apply everywhere; "@N" ones only in block N.
  Faults at(int block_index) const;
};

// Parses "NAME", "NAME=VALUE", and for block-limitable faults "NAME[=VALUE]@N", against the
// table; throws wb::UsageError naming the valid ones. All "@N" specs must name the same block.
Faults parse_faults(const std::vector<std::string>& specs);

}  // namespace wb
