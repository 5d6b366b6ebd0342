// wb bisect GOOD BAD: the first commit of a port's repository whose dump leaves the reference's
// tolerance (bisect.h). wb bisect-step: the step command `git bisect run` calls (internal).
// Exit: 0 first bad commit named, 1 only skipped commits left (candidates listed), 2 bad usage
// or bad input (also a GOOD that is already bad, a BAD that is good, or an end that cannot be
// built or dumped), 3 internal error (also a step that aborted the bisect), 130 interrupted.
#include <fmt/format.h>

#include <filesystem>
#include <memory>

#include "command.h"
#include "report_options.h"
#include "wb/compare/bisect.h"
#include "wb/core/util.h"

namespace wb::cli {

namespace {

struct BisectArgs {
  cmp::BisectOptions o;
  std::string preset, model, audio, taps = "all";
  std::string step_work;
};

// Our own repository as the port: build target wb in the scratch build folder (configured once,
// with ccache as the compiler launcher when ccache is on PATH), dump the candidate's taps.
void apply_preset(BisectArgs& a) {
  if (a.preset.empty()) {
    if (a.o.build_cmd.empty() || a.o.dump_cmd.empty())
      throw UsageError("--build and --dump are required (or --preset workbench)");
    if (!a.model.empty() || !a.audio.empty())
      throw UsageError("--model and --audio go with --preset workbench");
    return;
  }
  if (a.preset != "workbench")
    throw UsageError(fmt::format("--preset '{}' (known: workbench)", a.preset));
  if (a.model.empty() || a.audio.empty())
    throw UsageError("--preset workbench needs --model and --audio");
  namespace fs = std::filesystem;
  for (const std::string* p : {&a.model, &a.audio})
    if (!fs::exists(*p)) throw UsageError(fmt::format("{}: no such file or folder", *p));
  const std::string model = fs::absolute(a.model).string(), audio = fs::absolute(a.audio).string();
  for (const std::string& p : {model, audio, a.taps})  // they go into '...' in a shell line
    if (p.find('\'') != std::string::npos)
      throw UsageError(fmt::format("--preset workbench: '{}' has a single quote", p));
  if (a.o.build_cmd.empty())
    a.o.build_cmd =
        "{ test -f {build}/CMakeCache.txt || cmake -S {src} -B {build} -DCMAKE_BUILD_TYPE=Release "
        "-DWB_BUILD_TESTS=OFF $(command -v ccache >/dev/null 2>&1 && echo "
        "-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_C_COMPILER_LAUNCHER=ccache); } && "
        "cmake --build {build} -j$(nproc) --target wb";
  if (a.o.dump_cmd.empty())
    a.o.dump_cmd = fmt::format(
        "{{build}}/wb dump --impl candidate --model '{}' --audio '{}' --taps '{}' --no-decode "
        "-o {{out}}",
        model, audio, a.taps);
}

}  // namespace

void add_bisect(CLI::App& app, Registry& reg) {
  auto a = std::make_shared<BisectArgs>();
  CLI::App* sub = app.add_subcommand(
      "bisect",
      "find the first commit of a port's repository whose dump exceeds the tolerance against a "
      "reference dump (git bisect run in a scratch worktree; exit 0 found, 1 only skipped "
      "commits left, 2 bad input or GOOD/BAD not good/bad, 3 internal)");
  sub->add_option("good", a->o.good, "a commit whose dump is within tolerance")->required();
  sub->add_option("bad", a->o.bad, "a later commit whose dump exceeds it")->required();
  sub->add_option("--repo", a->o.repo, "the port's git repository (its work tree is not touched)")
      ->required();
  sub->add_option("--reference", a->o.reference, "the reference dump (.h5) to compare against")
      ->required();
  sub->add_option("--build", a->o.build_cmd,
                  "shell command building the commit, run in the worktree; {src} the worktree, "
                  "{build} the scratch build folder kept across steps, {work} the work folder "
                  "('true' when there is nothing to build)");
  sub->add_option("--dump", a->o.dump_cmd,
                  "shell command writing the port's dump to {out} (also {src}, {build}, {work}); "
                  "a failure or no dump makes the commit a skip (125)");
  add_report_options(sub, {.profile = &a->o.profile});
  sub->add_option("--map", a->o.map, "JSON map of the port's tap names onto registry names");
  sub->add_option("--work", a->o.work,
                  "work folder (worktree, build folder, logs, dumps of bad commits); kept, and "
                  "its build folder reused by the next run (default: a fresh folder under "
                  "$TMPDIR, removed on success)");
  sub->add_flag("--keep-work", a->o.keep_work, "keep the default work folder on success too");
  sub->add_option("--preset", a->preset,
                  "'workbench': this repository as the port; fills in --build (cmake, target wb) "
                  "and --dump (wb dump --impl candidate) from --model and --audio");
  sub->add_option("--model", a->model, "with --preset workbench: the model to dump");
  sub->add_option("--audio", a->audio, "with --preset workbench: the clip to dump");
  sub->add_option("--taps", a->taps, "with --preset workbench: taps to dump")
      ->capture_default_str();
  reg.add(sub, [a]() {
    apply_preset(*a);
    return cmp::run_bisect(a->o);
  });

  CLI::App* step = app.add_subcommand(
      "bisect-step", "internal: one step of wb bisect (git bisect run calls it in the worktree)");
  step->group("");  // hidden from wb --help
  step->add_option("--work", a->step_work, "the work folder of the wb bisect run")->required();
  reg.add(step, [a]() { return cmp::run_bisect_step(a->step_work); });
}

}  // namespace wb::cli
