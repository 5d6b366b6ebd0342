// wb fixture-model: a deterministic random-weight Whisper in HF or ggml format.
#include <fmt/format.h>

#include "command.h"
#include "wb/weights.h"

namespace wb::cli {

void add_fixture_model(CLI::App& app, Registry& reg) {
  struct Opts {
    std::string dims = "nano", format = "hf", out, store = "float32";
    uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("fixture-model", "write a deterministic random-weight model (byte vocabulary)");
  sub->add_option("--dims", o->dims, "nano, tiny, base, small, medium, large, large-v2, large-v3");
  sub->add_option("--seed", o->seed, "RNG seed");
  sub->add_option("--format", o->format, "hf (directory) or ggml (file)")->check(CLI::IsMember({"hf", "ggml"}));
  sub->add_option("--store", o->store, "stored dtype of weights")->check(CLI::IsMember({"float32", "float16", "bfloat16"}));
  sub->add_option("-o,--output", o->out, "output directory (hf) or file (ggml)")->required();
  reg.add(sub, [o]() {
    const Checkpoint ck = random_checkpoint(ModelDims::preset(o->dims), o->seed);
    const DType st = dtype_from_name(o->store);
    if (o->format == "hf") save_hf(ck, o->out, st);
    else save_ggml(ck, o->out, st);
    fmt::print("wrote {} ({} dims, seed {}, {} {})\n", o->out, o->dims, o->seed, o->format, o->store);
    return 0;
  });
}

}  // namespace wb::cli
