#!/usr/bin/env bash
# CTest wb_bisect_toy: `wb bisect` on a synthetic history of an external port (the numpy port
# of scripts/ports/, writing its dumps with the wbdump package; make_toy_history.sh plants a layer-norm epsilon
# bug among harmless commits and one commit whose dump command fails). Checks:
#   - the first bad commit named is the planted one, its first divergent tap encoder.blocks.0.attn_ln;
#   - the user's repository is left as it was (HEAD, clean status, no worktree, no bisect state),
#     and the default work folder is removed;
#   - only skipped commits left (a traceback, a file the reader refuses): exit 1, candidates listed;
#   - a step's internal error: git bisect run aborted, exit 3; SIGTERM mid-run: exit 130; the
#     worktree removed either way;
#   - a GOOD that is already bad, a BAD that is good, an end that cannot be built or dumped, a
#     --dump without {out}, GOOD not an ancestor of BAD, a preset without its inputs or unknown,
#     GOOD not a commit, --repo not a git work tree, a reference that is no dump, a steps log
#     with a line that is no step record: exit 2 and a one-line message.
#   bisect_toy_test.sh WB ROOT PYTHON      (PYTHON: one with the wbdump package installed)
set -uo pipefail
wb=${1:?WB}; root=${2:?ROOT}; py=${3:?PYTHON}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
model=$root/fixtures/models/nano-hf

"$root/scripts/bisect/make_toy_history.sh" "$tmp/repo" > "$tmp/commits.txt" || fail "make_toy_history.sh"
hash_of() { grep -F " $1" "$tmp/commits.txt" | head -1 | cut -d' ' -f1; }
first=$(hash_of "toy port: numpy")
planted=$(hash_of "layer norm: epsilon as in the C++ port")
reverted=$(hash_of "revert the lazy loading")
last=$(hash_of "docs: changelog")
[ -n "$first" ] && [ -n "$planted" ] && [ -n "$last" ] || fail "history: $(cat "$tmp/commits.txt")"
head_before=$(git -C "$tmp/repo" rev-parse HEAD)

"$wb" dump --impl reference --model "$model" --audio "$root/fixtures/audio/hello.wav" \
  --no-decode -o "$tmp/ref.h5" > /dev/null || fail "reference dump"
dump="$py numpy_port.py --model $model --mel-from $tmp/ref.h5 --out {out}"
mkdir -p "$tmp/t"
export TMPDIR=$tmp/t PYTHONDONTWRITEBYTECODE=1

# The bisection.
t0=$(date +%s.%N)
"$wb" bisect "$first" "$last" --repo "$tmp/repo" --build true --dump "$dump" \
  --reference "$tmp/ref.h5" > "$tmp/out.txt" 2> "$tmp/err.txt"
rc=$?
t1=$(date +%s.%N)
cat "$tmp/err.txt" "$tmp/out.txt"
[ $rc -eq 0 ] || fail "wb bisect exit $rc (expected 0)"
grep -q "^first bad commit: $planted layer norm: epsilon as in the C++ port\$" "$tmp/out.txt" ||
  fail "the planted commit $planted is not named"
grep -q "^  first divergent tap: encoder.blocks.0.attn_ln " "$tmp/out.txt" ||
  fail "first divergent tap is not encoder.blocks.0.attn_ln"
grep -q "^wall time: " "$tmp/out.txt" || fail "no wall time"
grep -Eq "^  (GOOD|BAD |step) [0-9a-f]{10} (good|bad |skip)" "$tmp/out.txt" || fail "no step lines"
echo "bisect wall time (measured by the test): $(awk "BEGIN { print $t1 - $t0 }") s"

# The user's repository is untouched; the default work folder is gone.
[ "$(git -C "$tmp/repo" rev-parse HEAD)" = "$head_before" ] || fail "HEAD moved"
[ -z "$(git -C "$tmp/repo" status --porcelain)" ] || fail "work tree changed"
[ "$(git -C "$tmp/repo" worktree list | wc -l)" -eq 1 ] || fail "worktree left: $(git -C "$tmp/repo" worktree list)"
git -C "$tmp/repo" bisect log > /dev/null 2>&1 && fail "a bisect is left in progress"
[ -z "$(ls -A "$tmp/t")" ] || fail "work folder left in TMPDIR: $(ls "$tmp/t")"

# Only skipped commits between the last good and the first bad (the revert commit made to write
# a file that is no dump, which the reader refuses): exit 1, the candidates listed, the planted
# commit among them.
soft=$(hash_of "softmax: say why")
skipdump='case "$(git log -1 --format=%s)" in revert*) echo junk > {out}; exit 0;; esac; '$dump
"$wb" bisect "$soft" "$planted" --repo "$tmp/repo" --build true --dump "$skipdump" \
  --reference "$tmp/ref.h5" > "$tmp/s.out" 2> "$tmp/s.err"
rc=$?
cat "$tmp/s.out"
[ $rc -eq 1 ] || { cat "$tmp/s.err"; fail "only-skips bisect exit $rc (expected 1)"; }
grep -q "^no single first bad commit" "$tmp/s.out" || fail "no 'no single first bad commit'"
grep -q "^  $planted layer norm: epsilon" "$tmp/s.out" || fail "planted commit not among the candidates"
[ "$(grep -c '^  step [0-9a-f]* skip' "$tmp/s.out")" -eq 2 ] || fail "expected two skipped steps"
grep -q "^  step ${reverted:0:10} skip .*dump refused: " "$tmp/s.out" || fail "the junk dump is not refused"
grep -q "^  step [0-9a-f]* skip .*dump command failed (exit 1): NameError" "$tmp/s.out" ||
  fail "the broken commit's failure is not quoted"

# A step's internal error (its configuration deleted by the BAD end's dump command) aborts git
# bisect run: exit 3, one internal-error line, the worktree removed.
"$wb" bisect "$first" "$last" --repo "$tmp/repo" --build true --reference "$tmp/ref.h5" \
  --dump 'case "$(git log -1 --format=%s)" in "docs: changelog") rm {work}/bisect.json;; esac; '"$dump" \
  > /dev/null 2> "$tmp/a.err"
rc=$?
[ $rc -eq 3 ] || { cat "$tmp/a.err"; fail "aborted bisect exit $rc (expected 3)"; }
grep -q "^wb: internal error: git bisect run ended (exit 128) without naming" "$tmp/a.err" ||
  { cat "$tmp/a.err"; fail "no internal-error line"; }
[ "$(git -C "$tmp/repo" worktree list | wc -l)" -eq 1 ] || fail "worktree left after the abort"

# Interrupted (SIGTERM to wb alone, mid-run): exit 130, the worktree removed.
# Each step's dump waits 2 s first, so the signal at 3 s lands mid-run however fast the port is.
timeout --preserve-status -s TERM 3 "$wb" bisect "$first" "$last" --repo "$tmp/repo" --build true \
  --dump "sleep 2; $dump" --reference "$tmp/ref.h5" --work "$tmp/wi" > /dev/null 2> "$tmp/i.err"
rc=$?
[ $rc -eq 130 ] || { cat "$tmp/i.err"; fail "interrupted bisect exit $rc (expected 130)"; }
[ "$(git -C "$tmp/repo" worktree list | wc -l)" -eq 1 ] || fail "worktree left after the interrupt"
[ ! -e "$tmp/wi/src" ] || fail "$tmp/wi/src left after the interrupt"

# Refusals: exit 2, one line naming the problem, and nothing left behind.
refuse() {  # refuse PATTERN ARGS...
  local pat=$1; shift
  "$wb" bisect "$@" > "$tmp/r.out" 2> "$tmp/r.err"
  local rc=$?
  [ $rc -eq 2 ] || { cat "$tmp/r.err"; fail "wb bisect $* exit $rc (expected 2)"; }
  grep "^wb: error: " "$tmp/r.err" | grep -q -e "$pat" || { cat "$tmp/r.err"; fail "no '$pat' message"; }
  [ "$(grep -c '^wb: error: ' "$tmp/r.err")" -eq 1 ] || fail "not one error line"
  [ "$(git -C "$tmp/repo" worktree list | wc -l)" -eq 1 ] || fail "worktree left after refusal"
  grep "^wb: error: " "$tmp/r.err"
}
refuse "GOOD commit ${planted:0:10} .* is already bad" "$planted" "$last" --repo "$tmp/repo" \
  --build true --dump "$dump" --reference "$tmp/ref.h5" --work "$tmp/w1"
refuse "BAD commit ${reverted:0:10} .* is not bad, within tolerance" "$first" "$reverted" --repo "$tmp/repo" \
  --build true --dump "$dump" --reference "$tmp/ref.h5" --work "$tmp/w2"
refuse "BAD commit ${last:0:10} .* cannot be tested: dump command failed (exit 3)" "$first" "$last" \
  --repo "$tmp/repo" --build true --reference "$tmp/ref.h5" \
  --dump 'case "$(git log -1 --format=%s)" in docs:\ changelog) exit 3;; esac; '"$dump"
refuse "GOOD commit ${first:0:10} .* cannot be tested: dump command exited 0 but wrote no dump" \
  "$first" "$last" --repo "$tmp/repo" --build true --dump 'true {out}' --reference "$tmp/ref.h5"
refuse "GOOD commit ${first:0:10} .* cannot be tested: build failed (exit 7)" "$first" "$last" \
  --repo "$tmp/repo" --build 'echo no compiler; exit 7' --dump "$dump" --reference "$tmp/ref.h5"
refuse "needs --model and --audio" "$first" "$last" --repo "$tmp/repo" --preset workbench \
  --reference "$tmp/ref.h5"
refuse "preset 'nope' (known: workbench)" "$first" "$last" --repo "$tmp/repo" --preset nope \
  --reference "$tmp/ref.h5"
refuse "GOOD 'nosuchrev' is not a commit of" nosuchrev "$last" --repo "$tmp/repo" --build true \
  --dump "$dump" --reference "$tmp/ref.h5"
mkdir -p "$tmp/plain"  # not a repository even when $TMPDIR lies inside one:
export GIT_CEILING_DIRECTORIES=$tmp
refuse "--repo $tmp/plain: not a git work tree" "$first" "$last" --repo "$tmp/plain" --build true \
  --dump "$dump" --reference "$tmp/ref.h5"
refuse "$tmp/commits.txt" "$first" "$last" --repo "$tmp/repo" --build true --dump "$dump" \
  --reference "$tmp/commits.txt"
refuse "has no {out}" "$first" "$last" --repo "$tmp/repo" --build true --dump "true" \
  --reference "$tmp/ref.h5"
# A steps log with a line that is no step record (half a record written into it by a dump
# command): a one-line error naming the file and the line, exit 2, not a crash.
refuse "steps.jsonl:[0-9]*: not a step record" "$first" "$last" --repo "$tmp/repo" --build true \
  --reference "$tmp/ref.h5" \
  --dump 'case "$(git log -1 --format=%s)" in "docs: changelog") printf "{\"commit\": \"ab" >> {work}/steps.jsonl;; esac; '"$dump"
refuse "GOOD .* is not an ancestor of BAD" "$last" "$first" --repo "$tmp/repo" --build true \
  --dump "$dump" --reference "$tmp/ref.h5"
echo "PASS"
