// wb taps: the tap registry (wb/core/taps.h) for given dims, as text or JSON; the wbdump.py test
// checks the Python writer's copy against `wb taps --json`, name for name, shape for shape.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "command.h"
#include "wb/core/taps.h"
#include "wb/core/weights.h"

namespace wb::cli {

void add_taps(CLI::App& app, Registry& reg) {
  struct Opts {
    std::string dims = "tiny", model, select = "all";
    int tokens = 1;
    bool json = false;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand("taps", "list the tap registry: names, shapes, layouts");
  sub->add_option("--dims", o->dims, "dims preset (nano, tiny, base, small, medium, large-v3)")
      ->capture_default_str();
  sub->add_option("--model", o->model, "take the dims from this model instead of --dims");
  sub->add_option("--tokens", o->tokens, "decoder taps for this many tokens")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str();
  sub->add_option("--taps", o->select, "only the taps this selection picks (globs or levels)");
  sub->add_flag("--json", o->json, "JSON: [{name, shape, layout}] in execution order");
  reg.add(sub, [o]() {
    const ModelDims d =
        o->model.empty() ? ModelDims::preset(o->dims) : load_checkpoint(o->model).dims;
    const TapSelector sel(o->select);
    sel.check_against(d, true);
    std::vector<TapSpec> taps = encoder_taps(d);
    for (auto& t : decoder_taps(d, o->tokens)) taps.push_back(std::move(t));
    nlohmann::json out = nlohmann::json::array();
    for (const TapSpec& t : taps) {
      if (!sel.selected(t.name)) continue;
      if (o->json)
        out.push_back({{"name", t.name}, {"shape", t.shape}, {"layout", t.layout}});
      else
        fmt::print("{:<36} [{}]  {}\n", t.name, fmt::join(t.shape, ", "), t.layout);
    }
    if (o->json) fmt::print("{}\n", out.dump(1));
    return 0;
  });
}

}  // namespace wb::cli
