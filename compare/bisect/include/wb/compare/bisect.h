// Commit bisection of a port (ours or anyone's): `wb bisect` drives `git bisect run` in a scratch
// `git worktree` of the port's repository, with `wb bisect-step` as the step command. Each step
// builds the commit, runs the port's dump command, compares the dump with a cached reference dump
// under a tolerance profile and answers git bisect: 0 good (within tolerance), 1 bad (tolerance
// exceeded), 125 skip (the build fails, the dump command fails or writes no dump, or the reader
// refuses the dump), 128 abort (an internal error of the step itself).
//
// The work folder (--work, else a fresh folder under $TMPDIR) holds:
//   src/          the scratch worktree (removed at the end, also on error)
//   build/        the one build folder every step reuses (incremental builds)
//   bisect.json   the step configuration written by `wb bisect`, read by each `wb bisect-step`
//   steps.jsonl   one line per step tried (commit, verdict, timings, first divergent tap, hints)
//   logs/         each step's build and dump output; dumps/ the dumps of bad commits
//   bisect-run.log  what `git bisect run` printed
#pragma once
#include <string>

namespace wb::cmp {

struct BisectOptions {
  std::string good, bad;   // commits (any git revision)
  std::string repo;        // the port's repository (its work tree is never touched)
  std::string build_cmd;   // shell command; {src}, {build}, {work} replaced
  std::string dump_cmd;    // shell command; {out} (required), {src}, {build}, {work} replaced
  std::string reference;   // reference dump (.h5)
  std::string profile;     // tolerance profile JSON ("" = default_profile_for the step's dump)
  std::string map;         // name map JSON for foreign tap names ("" = none)
  std::string work;        // work folder ("" = a fresh one under $TMPDIR, removed on success)
  bool keep_work = false;  // keep a fresh work folder (and its logs and dumps) on success too
};

// Checks GOOD is good and BAD is bad, bisects, prints the first bad commit, its first divergent
// tap and diagnosis, every step with its verdict, and the wall time. Returns 0 when one first bad
// commit is named, 1 when only skipped commits are left (the candidates are listed). Throws
// wb::UsageError (exit 2) for bad input, including a GOOD that is bad or a BAD that is good.
int run_bisect(const BisectOptions& o);

// One step at the worktree's HEAD, configured by WORK/bisect.json: 0 good, 1 bad, 125 skip,
// 128 abort (printed on stderr). Never throws.
int run_bisect_step(const std::string& work);

}  // namespace wb::cmp
