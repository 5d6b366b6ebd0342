// wb fixture-model: a deterministic random-weight Whisper in HF or ggml format.
// wb convert: any checkpoint wb reads, rewritten in either format (same weights, same vocabulary).
#include <fmt/format.h>

#include "command.h"
#include "wb/core/weights.h"

namespace wb::cli {

namespace {

void save_model(const Checkpoint& ck, const std::string& format, const std::string& out,
                const std::string& store) {
  const DType st = dtype_from_name(store);
  if (format == "hf")
    save_hf(ck, out, st);
  else
    save_ggml(ck, out, st);
}

void add_output_options(CLI::App* sub, std::string& format, std::string& store, std::string& out) {
  sub->add_option("--format", format, "hf (directory) or ggml (file)")
      ->check(CLI::IsMember({"hf", "ggml"}));
  sub->add_option("--store", store, "stored dtype of weights (ggml: float32 or float16)")
      ->check(CLI::IsMember({"float32", "float16", "bfloat16"}));
  sub->add_option("-o,--output", out, "output directory (hf) or file (ggml)")->required();
}

}  // namespace

void add_fixture_model(CLI::App& app, Registry& reg) {
  struct Opts {
    std::string dims = "nano", format = "hf", out, store = "float32";
    uint64_t seed = 1;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("fixture-model",
                                     "write a deterministic random-weight model (byte vocabulary)");
  sub->add_option("--dims", o->dims, "nano, tiny, base, small, medium, large, large-v2, large-v3");
  sub->add_option("--seed", o->seed, "RNG seed");
  add_output_options(sub, o->format, o->store, o->out);
  reg.add(sub, [o]() {
    const Checkpoint ck = random_checkpoint(ModelDims::preset(o->dims), o->seed);
    save_model(ck, o->format, o->out, o->store);
    fmt::print("wrote {} ({} dims, seed {}, {} {})\n", o->out, o->dims, o->seed, o->format,
               o->store);
    return 0;
  });
}

void add_convert(CLI::App& app, Registry& reg) {
  struct Opts {
    std::string model, format = "ggml", out, store = "float32";
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "convert", "rewrite a checkpoint (HF directory or ggml file) in HF or ggml format");
  sub->add_option("--model", o->model, "HF Whisper directory or whisper.cpp ggml file")->required();
  add_output_options(sub, o->format, o->store, o->out);
  reg.add(sub, [o]() {
    const Checkpoint ck = load_checkpoint(o->model);
    save_model(ck, o->format, o->out, o->store);
    fmt::print("wrote {} ({} {}, from {})\n", o->out, o->format, o->store, o->model);
    return 0;
  });
}

}  // namespace wb::cli
