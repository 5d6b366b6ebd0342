// wb bisect / wb bisect-step: see wb/compare/bisect.h. Processes are started with fork + exec (no
// shell except for the user's --build and --dump commands, which are shell command lines by
// design).
#include "wb/compare/bisect.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "wb/compare/compare.h"
#include "wb/core/dump.h"
#include "wb/core/tempfile.h"
#include "wb/core/util.h"

namespace wb::cmp {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- processes -------------------------------------------------------------------------------

// SIGINT/SIGTERM: passed on to the running child's process group (each child leads its own, so
// a signal sent to wb alone still stops git bisect run, the step and its build); wb then waits
// for it, removes the worktree and exits 130.
volatile std::sig_atomic_t g_interrupted = 0;
// Thrown where a SIGINT/SIGTERM was seen (only `wb bisect` installs the handler): exit 130.
struct Interrupted {};
volatile pid_t g_child = 0;
extern "C" void on_interrupt(int sig) {
  g_interrupted = sig;
  if (g_child > 0) kill(-g_child, sig);
}

struct ProcResult {
  int status = 0;   // exit status, or 128 + signal
  std::string out;  // captured stdout (when capturing)
};

// Runs argv in `cwd`, stdin /dev/null. stdout goes to `log` (appended) or, when log is empty, is
// captured. stderr goes to `log` too unless `log_stderr` is false; a captured run's stderr is
// dropped unless `quiet_stderr` is false. Either way stderr left alone stays the caller's.
ProcResult run_process(const std::vector<std::string>& argv, const std::string& cwd,
                       const std::string& log, bool quiet_stderr = true, bool log_stderr = true) {
  int pipefd[2] = {-1, -1};
  const bool capture = log.empty();
  if (capture && pipe(pipefd) != 0)
    throw std::runtime_error(fmt::format("pipe: {}", std::strerror(errno)));
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error(fmt::format("fork: {}", std::strerror(errno)));
  if (pid == 0) {
    setpgid(0, 0);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(127);
    const int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) dup2(devnull, 0);
    if (capture) {
      dup2(pipefd[1], 1);
      close(pipefd[0]);
      close(pipefd[1]);
      if (quiet_stderr && devnull >= 0) dup2(devnull, 2);
    } else {
      const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) _exit(127);
      dup2(fd, 1);
      if (log_stderr) dup2(fd, 2);
    }
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  setpgid(pid, pid);  // also here: no race with a signal arriving before the child's own call
  g_child = pid;
  ProcResult r;
  if (capture) {
    close(pipefd[1]);
    char buf[4096];
    for (;;) {
      const ssize_t n = read(pipefd[0], buf, sizeof buf);
      if (n > 0) {
        r.out.append(buf, static_cast<std::size_t>(n));
      } else if (n < 0 && errno == EINTR) {
        continue;
      } else {
        break;
      }
    }
    close(pipefd[0]);
  }
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) throw std::runtime_error(fmt::format("waitpid: {}", std::strerror(errno)));
  }
  g_child = 0;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  // A child that failed because the interrupt reached it too is the interrupt, not its failure
  // (a SIGTERM during `git bisect start` once read as "git bisect start failed", exit 2).
  if (r.status != 0 && g_interrupted) throw Interrupted{};
  return r;
}

int run_shell(const std::string& cmd, const std::string& cwd, const std::string& log) {
  return run_process({"/bin/sh", "-c", cmd}, cwd, log).status;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

// git in `dir`; throws with git's own words when `must` and git fails.
std::string git(const std::string& dir, std::vector<std::string> args, bool must = true,
                int* status = nullptr) {
  std::vector<std::string> argv = {"git", "-C", dir};
  argv.insert(argv.end(), args.begin(), args.end());
  const ProcResult r = run_process(argv, "", "");
  if (status) *status = r.status;
  if (must && r.status != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    throw std::runtime_error(fmt::format("git -C {}{} failed (exit {})", dir, cmd, r.status));
  }
  return trim(r.out);
}

// ---- placeholders ----------------------------------------------------------------------------

std::string replace_all(std::string s, const std::string& key, const std::string& val) {
  for (std::size_t p = s.find(key); p != std::string::npos; p = s.find(key, p + val.size()))
    s.replace(p, key.size(), val);
  return s;
}

std::string expand(const std::string& cmd, const json& cfg, const std::string& out) {
  std::string s = replace_all(cmd, "{src}", cfg.at("src").get<std::string>());
  s = replace_all(s, "{build}", cfg.at("build").get<std::string>());
  s = replace_all(s, "{work}", cfg.at("work").get<std::string>());
  if (!out.empty()) s = replace_all(s, "{out}", out);
  return s;
}

// Paths substituted into shell command lines unquoted: keep them to a safe alphabet.
void check_path_alphabet(const std::string& p, const char* what) {
  for (char c : p) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '/' || c == '.' || c == '_' || c == '-' || c == '+';
    if (!ok)
      throw UsageError(
          fmt::format("{} '{}' has the character '{}'; use a path of letters, digits and / . _ - + "
                      "(it is substituted into shell commands)",
                      what, p, c));
  }
}

// ---- one step --------------------------------------------------------------------------------

struct StepRecord {
  std::string commit, subject, verdict, detail;  // verdict: good | bad | skip
  std::string role;                              // "GOOD", "BAD" (the checks) or "step"
  double build_s = 0, dump_s = 0, compare_s = 0;
  std::string first_tap, first_violation, attribution, dump;
  std::vector<std::string> hints;
  int code() const { return verdict == "good" ? 0 : verdict == "bad" ? 1 : 125; }
};

json to_json(const StepRecord& r) {
  return {{"commit", r.commit},
          {"subject", r.subject},
          {"verdict", r.verdict},
          {"detail", r.detail},
          {"role", r.role},
          {"build_s", r.build_s},
          {"dump_s", r.dump_s},
          {"compare_s", r.compare_s},
          {"first_tap", r.first_tap},
          {"first_violation", r.first_violation},
          {"attribution", r.attribution},
          {"hints", r.hints},
          {"dump", r.dump}};
}

StepRecord from_json(const json& j) {
  StepRecord r;
  r.commit = j.at("commit");
  r.subject = j.at("subject");
  r.verdict = j.at("verdict");
  r.detail = j.at("detail");
  r.role = j.at("role");
  r.build_s = j.at("build_s");
  r.dump_s = j.at("dump_s");
  r.compare_s = j.at("compare_s");
  r.first_tap = j.at("first_tap");
  r.first_violation = j.at("first_violation");
  r.attribution = j.at("attribution");
  r.hints = j.at("hints").get<std::vector<std::string>>();
  r.dump = j.at("dump");
  return r;
}

json load_config(const std::string& work) {
  const std::string path = (fs::path(work) / "bisect.json").string();
  return json::parse(read_file(path));
}

std::string tail_of_file(const std::string& path) {
  std::ifstream in(path);
  std::string line, last = "(no output)";
  while (std::getline(in, line))
    if (!trim(line).empty()) last = trim(line);
  if (last.size() > 160) last = last.substr(0, 157) + "...";
  return last;
}

// Builds, dumps and compares the worktree's HEAD; appends its record to WORK/steps.jsonl and
// prints one progress line on stderr. Throws only for internal errors.
StepRecord step_at_head(const json& cfg, const std::string& role) {
  const std::string src = cfg.at("src"), work = cfg.at("work");
  StepRecord r;
  r.role = role;
  r.commit = git(src, {"rev-parse", "HEAD"});
  r.subject = git(src, {"log", "-1", "--format=%s", "HEAD"});
  const std::string short_hash = r.commit.substr(0, 10);
  const fs::path logs = fs::path(work) / "logs", dumps = fs::path(work) / "dumps";
  fs::create_directories(logs);
  fs::create_directories(dumps);
  const std::string build_log = (logs / (short_hash + ".build.log")).string();
  const std::string dump_log = (logs / (short_hash + ".dump.log")).string();
  fs::remove(build_log);
  fs::remove(dump_log);

  auto t0 = Clock::now();
  const int brc = run_shell(expand(cfg.at("build_cmd"), cfg, ""), src, build_log);
  r.build_s = seconds_since(t0);
  if (brc != 0) {
    r.verdict = "skip";
    r.detail =
        fmt::format("build failed (exit {}): {} [{}]", brc, tail_of_file(build_log), build_log);
  }
  const std::string out = (dumps / (r.commit + ".h5")).string();
  if (r.verdict.empty()) {
    fs::remove(out);
    t0 = Clock::now();
    const int drc = run_shell(expand(cfg.at("dump_cmd"), cfg, out), src, dump_log);
    r.dump_s = seconds_since(t0);
    if (drc != 0) {
      r.verdict = "skip";
      r.detail = fmt::format("dump command failed (exit {}): {} [{}]", drc, tail_of_file(dump_log),
                             dump_log);
    } else if (!fs::exists(out)) {
      r.verdict = "skip";
      r.detail = fmt::format("dump command exited 0 but wrote no dump at {} [{}]", out, dump_log);
    }
  }
  if (r.verdict.empty()) {
    CompareOptions o;
    if (!cfg.at("profile").get<std::string>().empty())
      o.profile = ToleranceProfile::load(cfg.at("profile"));
    if (!cfg.at("map").get<std::string>().empty()) o.map = NameMap::load(cfg.at("map"));
    t0 = Clock::now();
    try {
      const CompareResult c = compare_files(cfg.at("reference"), out, "", o);
      r.compare_s = seconds_since(t0);
      if (exit_status(c) == 0) {
        r.verdict = "good";
        double worst = 0;
        std::string worst_tap;
        for (const auto& t : c.taps)
          if (t.m.rel_l2 >= worst) worst = t.m.rel_l2, worst_tap = t.name;
        r.detail =
            fmt::format("within tolerance, profile {} ({} taps; largest rel_l2 {:.3g} at {})",
                        c.profile_name, c.taps.size(), worst, worst_tap);
        fs::remove(out);
      } else {
        r.verdict = "bad";
        r.dump = out;
        if (c.first_divergence >= 0) {
          const auto& t = c.taps[static_cast<std::size_t>(c.first_divergence)];
          r.first_tap = t.name;
          r.first_violation = t.violations.empty() ? "" : t.violations.front().text();
          r.attribution = t.attribution;
          r.detail = fmt::format("first divergent tap {} ({}; profile {})", t.name,
                                 r.first_violation, c.profile_name);
        } else {
          r.detail = "tolerance exceeded, profile " + c.profile_name;
        }
        r.hints = c.hints;
      }
    } catch (const std::exception& e) {  // the port's dump refused: untestable, not bad
      r.compare_s = seconds_since(t0);
      r.verdict = "skip";
      r.detail = fmt::format("dump refused: {}", e.what());
    }
  }
  append_line_durable((fs::path(work) / "steps.jsonl").string(), to_json(r).dump());
  fmt::print(stderr, "wb bisect: {:4} {} {:4} build {:.1f} s, dump {:.1f} s: {}\n", role,
             short_hash, r.verdict, r.build_s, r.dump_s, r.detail);
  return r;
}

// A line that is not a step record (a foreign edit, a disk that lost the end of a write) is an
// error naming the file and the line, not a crash.
std::vector<StepRecord> load_steps(const std::string& work) {
  std::vector<StepRecord> v;
  const std::string path = (fs::path(work) / "steps.jsonl").string();
  std::ifstream in(path);
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (trim(line).empty()) continue;
    try {
      v.push_back(from_json(json::parse(line)));
    } catch (const json::exception& e) {
      throw std::runtime_error(
          fmt::format("{}:{}: not a step record ({})", path, lineno, e.what()));
    }
  }
  return v;
}

// ---- the driver ------------------------------------------------------------------------------

std::string self_exe() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  if (ec) throw std::runtime_error("cannot find the wb executable (/proc/self/exe)");
  return p.string();
}

std::string resolve_commit(const std::string& repo, const std::string& rev, const char* what) {
  int st = 0;
  const std::string h =
      git(repo, {"rev-parse", "--verify", "--quiet", rev + "^{commit}"}, false, &st);
  if (st != 0 || h.empty())
    throw UsageError(fmt::format("{} '{}' is not a commit of {}", what, rev, repo));
  return h;
}

// Removes the scratch worktree (and a fresh work folder) however run_bisect ends.
struct Cleanup {
  std::string repo, src, work;
  bool remove_work = false;
  bool ok = false;  // set on success; a failed run keeps its work folder for the logs
  ~Cleanup() {
    // The interrupt is being handled (we are unwinding or done): the clean-up's own git
    // commands must run to the end, not turn into Interrupted (see run_process).
    const std::sig_atomic_t interrupted = g_interrupted;
    g_interrupted = 0;
    try {
      if (!src.empty() && fs::exists(src)) {
        int st = 0;
        git(src, {"bisect", "reset", "--quiet"}, false, &st);
        git(repo, {"worktree", "remove", "--force", src}, false, &st);
        if (st != 0) fmt::print(stderr, "wb bisect: warning: could not remove worktree {}\n", src);
      }
      git(repo, {"worktree", "prune"}, false);
      if (remove_work && ok) {
        std::error_code ec;
        fs::remove_all(work, ec);
      } else if (remove_work) {
        fmt::print(stderr, "wb bisect: logs kept in {}\n", work);
      }
    } catch (...) {
    }
    g_interrupted = interrupted;
  }
};

std::string commit_label(const StepRecord& r) {
  return fmt::format("{} ({})", r.commit.substr(0, 10), r.subject);
}

}  // namespace

int run_bisect_step(const std::string& work) {
  try {
    const json cfg = load_config(work);
    return step_at_head(cfg, "step").code();
  } catch (const std::exception& e) {
    fmt::print(stderr, "wb bisect-step: internal error: {} (aborting the bisect)\n", e.what());
    return 128;
  }
}

namespace {

struct Inputs {
  std::string repo, good, bad, reference, profile, map;
};

// Checks everything the user gave before anything is built: the commands, the repository (a
// git work tree with GOOD an ancestor of BAD), the reference dump, the profile and the map.
Inputs check_inputs(const BisectOptions& o) {
  if (o.dump_cmd.find("{out}") == std::string::npos)
    throw UsageError(
        fmt::format("--dump '{}' has no {{out}} (where the dump must be written)", o.dump_cmd));
  if (o.build_cmd.empty()) throw UsageError("--build is empty (use 'true' for nothing to build)");
  // The repository: a git work tree; GOOD and BAD commits of it, GOOD an ancestor of BAD.
  std::error_code ec;
  if (!fs::is_directory(o.repo)) throw UsageError(fmt::format("--repo {}: no such folder", o.repo));
  Inputs in;
  const std::string repo = fs::canonical(o.repo).string();
  int st = 0;
  const std::string top = git(repo, {"rev-parse", "--show-toplevel"}, false, &st);
  if (st != 0 || top.empty())
    throw UsageError(fmt::format("--repo {}: not a git work tree", o.repo));
  const std::string good = resolve_commit(repo, o.good, "GOOD");
  const std::string bad = resolve_commit(repo, o.bad, "BAD");
  if (good == bad) throw UsageError(fmt::format("GOOD and BAD are the same commit {}", good));
  git(repo, {"merge-base", "--is-ancestor", good, bad}, false, &st);
  if (st != 0)
    throw UsageError(
        fmt::format("GOOD {} is not an ancestor of BAD {} in {}", o.good, o.bad, repo));
  // The reference, profile and map are read now, so a bad one fails before any build.
  const std::string reference = fs::absolute(o.reference).string();
  { DumpReader check(reference); }
  const std::string profile = o.profile.empty() ? "" : fs::absolute(o.profile).string();
  const std::string map = o.map.empty() ? "" : fs::absolute(o.map).string();
  if (!profile.empty()) (void)ToleranceProfile::load(profile);
  if (!map.empty()) (void)NameMap::load(map);
  in.repo = repo;
  in.good = good;
  in.bad = bad;
  in.reference = reference;
  in.profile = profile;
  in.map = map;
  return in;
}

// The work folder: --work, or a fresh temporary one removed at the end unless --keep-work.
std::string make_work(const BisectOptions& o, Cleanup& cleanup) {
  std::error_code ec;
  std::string work;
  if (o.work.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = fmt::format("{}/wb-bisect-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(tmpl.data()))
      throw std::runtime_error(fmt::format("mkdtemp {}: {}", tmpl, std::strerror(errno)));
    work = tmpl;
    cleanup.work = work;
    cleanup.remove_work = !o.keep_work;
  } else {
    fs::create_directories(o.work, ec);
    if (ec) throw UsageError(fmt::format("--work {}: {}", o.work, ec.message()));
    work = fs::canonical(o.work).string();
  }
  check_path_alphabet(work, "the work folder");
  return work;
}

// The two ends must be what the user says they are: GOOD good, BAD bad (both testable).
void check_ends(const json& cfg, const std::string& src, const std::string& bad) {
  auto check_interrupt = [] {
    if (g_interrupted) throw Interrupted{};
  };
  const StepRecord g = step_at_head(cfg, "GOOD");
  check_interrupt();
  if (g.verdict == "bad")
    throw UsageError(
        fmt::format("GOOD commit {} is already bad ({}): nothing to bisect; choose an older GOOD",
                    commit_label(g), g.detail));
  if (g.verdict == "skip")
    throw UsageError(fmt::format("GOOD commit {} cannot be tested: {}", commit_label(g), g.detail));
  git(src, {"checkout", "--quiet", "--detach", bad});
  const StepRecord b = step_at_head(cfg, "BAD");
  check_interrupt();
  if (b.verdict == "good")
    throw UsageError(fmt::format(
        "BAD commit {} is not bad, {}: nothing to bisect; choose a newer BAD or a stricter "
        "--profile",
        commit_label(b), b.detail));
  if (b.verdict == "skip")
    throw UsageError(fmt::format("BAD commit {} cannot be tested: {}", commit_label(b), b.detail));
}

void print_report(const std::optional<StepRecord>& culprit, const std::vector<StepRecord>& steps,
                  const std::string& repo, const std::string& run_log, bool work_removed,
                  double wall) {
  if (culprit) {
    fmt::print("first bad commit: {} {}\n", culprit->commit, culprit->subject);
    fmt::print("  first divergent tap: {}{}\n",
               culprit->first_tap.empty() ? "-" : culprit->first_tap,
               culprit->first_violation.empty() ? "" : " (" + culprit->first_violation + ")");
    if (!culprit->attribution.empty()) fmt::print("  its error: {}\n", culprit->attribution);
    if (!culprit->hints.empty()) {
      fmt::print("  diagnosis:\n");
      for (std::size_t i = 0; i < culprit->hints.size() && i < 8; ++i)
        fmt::print("    - {}\n", culprit->hints[i]);
    }
    if (!culprit->dump.empty() && !work_removed) fmt::print("  its dump: {}\n", culprit->dump);
  } else {
    fmt::print("no single first bad commit: only skipped commits are left; it is one of:\n");
    std::ifstream in(run_log);
    std::string line;
    bool on = false;
    while (std::getline(in, line)) {
      if (line.find("could be any of") != std::string::npos) on = true;
      line = trim(line);
      if (on && line.size() == 40 &&
          line.find_first_not_of("0123456789abcdef") == std::string::npos)
        fmt::print("  {} {}\n", line, git(repo, {"log", "-1", "--format=%s", line}, false));
    }
  }
  fmt::print("steps ({} commits tested, in order):\n", steps.size());
  double build_total = 0, dump_total = 0, compare_total = 0;
  for (const auto& s : steps) {
    build_total += s.build_s;
    dump_total += s.dump_s;
    compare_total += s.compare_s;
    fmt::print("  {:4} {} {:4}  build {:6.1f} s  dump {:6.1f} s  compare {:5.2f} s  {}: {}\n",
               s.role, s.commit.substr(0, 10), s.verdict, s.build_s, s.dump_s, s.compare_s,
               s.subject, s.detail);
  }
  fmt::print("wall time: {:.1f} s (build {:.1f} s, dump {:.1f} s, compare {:.2f} s)\n", wall,
             build_total, dump_total, compare_total);
}

int run_bisect_impl(const BisectOptions& o) {
  const auto t_start = Clock::now();
  std::signal(SIGINT, on_interrupt);
  std::signal(SIGTERM, on_interrupt);
  for (const char* v : {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"}) unsetenv(v);
  const Inputs in = check_inputs(o);
  const std::string &repo = in.repo, &good = in.good, &bad = in.bad, &reference = in.reference,
                    &profile = in.profile, &map = in.map;

  Cleanup cleanup;
  cleanup.repo = repo;
  const std::string work = make_work(o, cleanup);
  const std::string src = work + "/src", build = work + "/build";
  if (fs::exists(src))
    throw UsageError(fmt::format(
        "{} already exists (left by an interrupted run? remove it with 'git -C {} worktree "
        "remove --force {}')",
        src, repo, src));
  fs::create_directories(build);
  fs::remove(work + "/steps.jsonl");
  const json cfg = {{"src", src},
                    {"build", build},
                    {"work", work},
                    {"repo", repo},
                    {"build_cmd", o.build_cmd},
                    {"dump_cmd", o.dump_cmd},
                    {"reference", reference},
                    {"profile", profile},
                    {"map", map}};
  write_file_atomic(work + "/bisect.json", cfg.dump(2) + "\n");

  auto check_interrupt = [] {
    if (g_interrupted) throw Interrupted{};
  };

  check_interrupt();
  git(repo, {"worktree", "add", "--quiet", "--detach", src, good});
  cleanup.src = src;
  fmt::print(stderr, "wb bisect: worktree {} (build folder {})\n", src, build);

  check_ends(cfg, src, bad);
  // git bisect run, stdout to a log (the steps print their own lines on stderr).
  const std::string run_log = work + "/bisect-run.log";
  fs::remove(run_log);
  if (run_process({"git", "-C", src, "bisect", "start", bad, good}, "", run_log).status != 0)
    throw std::runtime_error(fmt::format("git bisect start failed (see {})", run_log));
  std::string found_line;
  auto scan_log = [&]() {
    std::ifstream in(run_log);
    std::string line;
    while (std::getline(in, line))
      if (line.find(" is the first bad commit") != std::string::npos) found_line = trim(line);
  };
  scan_log();
  int run_status = 0;
  if (found_line.empty()) {  // not decided by the ends alone (adjacent GOOD and BAD)
    run_status =
        run_process({"git", "-C", src, "bisect", "run", self_exe(), "bisect-step", "--work", work},
                    "", run_log, true, /*log_stderr=*/false)
            .status;
    check_interrupt();
    scan_log();
  }
  const std::string bisect_log = git(src, {"bisect", "log"}, false);
  const std::vector<StepRecord> steps = load_steps(work);
  const double wall = seconds_since(t_start);

  std::optional<StepRecord> culprit;
  if (!found_line.empty()) {
    const std::string hash = found_line.substr(0, found_line.find(' '));
    for (const auto& s : steps)
      if (s.commit == hash) culprit = s;  // the last record of it (the BAD check or a step)
  }
  if (!culprit && read_file(run_log).find("only 'skip'ped commits left") == std::string::npos)
    throw std::logic_error(  // a step's internal error aborted git bisect run: exit 3
        fmt::format("git bisect run ended (exit {}) without naming a first bad commit; see {}",
                    run_status, run_log));

  print_report(culprit, steps, repo, run_log, cleanup.remove_work, wall);
  write_file_atomic(work + "/bisect.log", bisect_log + "\n");
  cleanup.ok = true;
  return culprit ? 0 : 1;
}

}  // namespace

int run_bisect(const BisectOptions& o) {
  try {
    return run_bisect_impl(o);
  } catch (const Interrupted&) {  // the worktree is already gone (Cleanup)
    fmt::print(stderr, "wb bisect: interrupted\n");
    return 130;
  }
}

}  // namespace wb::cmp
