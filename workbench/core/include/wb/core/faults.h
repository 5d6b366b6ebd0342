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

namespace wb {

struct FaultInfo {
  std::string_view name;
  std::string_view value;      // value syntax ("VALUE", "none|double"), empty: takes no value
  std::string_view stage;      // frontend | stem | block | ln_post
  std::string_view first_tap;  // first tap expected to diverge (block faults: in block 0)
  std::string_view doc;        // one line
  std::vector<std::string_view> examples;  // full specs the fault tests and the matrix run
};

// In the order of the stages they break.
const std::vector<FaultInfo>& fault_table();
const FaultInfo* find_fault(std::string_view name);  // nullptr when not in the table
std::string fault_usage();          // "no-ln-post, mel-db, ..., ln-eps=VALUE, ..." for messages
nlohmann::json fault_table_json();  // [{name, value, stage, first_tap, doc, examples}]

enum class AttnScale { normal, none, twice };

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
  bool ln_fp16 = false;
  std::vector<std::string> specs;  // as given, for run_info

  bool any() const { return !specs.empty(); }
};

// Parses "NAME" / "NAME=VALUE" specs against the table; throws wb::UsageError naming the valid
// ones.
Faults parse_faults(const std::vector<std::string>& specs);

}  // namespace wb
