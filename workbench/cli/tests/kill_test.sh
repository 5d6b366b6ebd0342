#!/usr/bin/env bash
# Outputs are never half-written: `wb dump -o OUT` and `wb compare --report DIR` are
# killed (SIGKILL, and SIGTERM) after seeded random delays spread over their run time, again and
# again, and what is left must be either the previous output or a complete new one:
#   dump:   OUT is byte-identical to the previous dump or a new dump `wb inspect` accepts; any
#           OUT.partial-<pid> left by SIGKILL is refused by `wb inspect` (exit 2), unless the kill
#           fell between the finished write and the rename (then it is a whole dump: the same taps
#           with the same statistics as OUT); SIGTERM leaves
#           none (the handler of wb/core/tempfile.h removes it), nor any report temporary.
#   report: every report file in DIR is whole (check_report_dir.py; the two comparisons
#           alternate, one PASS and one FAIL), and when DIR/manifest.json exists every file it
#           lists has the size and sha256 it records (a complete set). Without manifest.json the
#           directory does not claim to be complete.
# Then each step of the write protocol is hit on purpose (SIGKILL just before / after each rename,
# through a preloaded shim). (cli_test.sh keeps its single killed-dump smoke check.)
# Usage: kill_test.sh WB_BINARY SOURCE_DIR [WORKDIR] [ROUNDS] [SEED]
set -uo pipefail
wb=$(realpath "$1"); src=$(realpath "$2")
work=${3:-$(mktemp -d)}; rounds=${4:-12}; seed=${5:-$(date +%s)}
mkdir -p "$work"; work=$(realpath "$work")
RANDOM=$seed
echo "kill_test: seed $seed, $rounds rounds per target (rerun: $0 $1 $2 $work $rounds $seed)"
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
hf=$src/fixtures/models/nano-hf; clip=$src/fixtures/audio/hello.wav
now_ms() { date +%s%3N; }
# ms: a random share (0..120%) of a run of $1 ms, drawn in this shell (a subshell would reseed)
pick_delay() { ms=$(( RANDOM % ($1 * 12 / 10 + 1) )); }
# the tap table of `wb inspect` (every tap, its shape and statistics), without the file's header
# and without its timing lines (wall times differ from run to run; the taps do not)
tap_table() { "$wb" inspect "$1" 2>/dev/null | sed -n '/^tap /,$p' | grep -av '^timing '; }
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }

# ---- wb dump ---------------------------------------------------------------------------------
d=$work/dump; rm -rf "$d"; mkdir -p "$d"
dump_args=(dump --model "$hf" --audio "$clip" -o "$d/out.h5" --dtype float64 --store float64 --threads 1)
t0=$(now_ms); "$wb" "${dump_args[@]}" >/dev/null 2>&1 || { bad "first dump"; exit 1; }; t_dump=$(( $(now_ms) - t0 ))
echo "one dump takes $t_dump ms"
prev=$(sha256sum <"$d/out.h5")
for i in $(seq "$rounds"); do
  sig=KILL; [ $((i % 4)) = 0 ] && sig=TERM
  pick_delay "$t_dump"
  "$wb" "${dump_args[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep_ms "$ms"
  kill -s "$sig" "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rc=$?
  what="dump round $i: SIG$sig after $ms ms (exit $rc)"
  now=$(sha256sum <"$d/out.h5")
  if [ "$now" = "$prev" ]; then
    state="previous file"
  elif "$wb" inspect "$d/out.h5" >/dev/null 2>&1; then
    state="complete new file"; prev=$now
  else
    bad "$what: out.h5 is neither the previous dump nor a readable new one"; continue
  fi
  leftover=0; finished=0
  for p in "$d"/out.h5.partial-*; do
    [ -e "$p" ] || continue
    leftover=$((leftover+1))
    "$wb" inspect "$p" >/dev/null 2>"$d/err"; prc=$?
    if [ "$prc" = 0 ]; then
      # Killed between the finished write and the rename: the temporary is then a whole dump of
      # the same run (dumps are deterministic): every tap of out.h5 with the same statistics.
      if diff -q <(tap_table "$d/out.h5") <(tap_table "$p") >/dev/null; then finished=$((finished+1))
      else bad "$what: $(basename "$p") accepted by inspect but not a whole dump equal to out.h5"; fi
    elif [ "$prc" != 2 ] || [ "$(wc -l <"$d/err")" != 1 ]; then
      bad "$what: $(basename "$p") not refused (exit $prc)"
    fi
    rm -f "$p"
  done
  # SIGTERM is caught: the handler removes the temporary before the process ends (wb/core/tempfile.h).
  if [ "$sig" = TERM ] && [ "$leftover" != 0 ]; then bad "$what: SIGTERM left $leftover partial(s)"; continue; fi
  ok "$what: $state, $((leftover - finished)) partial(s) refused, $finished finished before its rename"
done

# SIGTERM while the temporary surely exists (polled for): the handler must remove it.
"$wb" "${dump_args[@]}" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 400); do compgen -G "$d/out.h5.partial-*" >/dev/null && break; sleep 0.025; done
seen=$(ls "$d" | grep -c '\.partial-')
kill -s TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rc=$?
left=$(ls "$d" | grep -c '\.partial-')
if [ "$seen" = 1 ] && [ "$rc" = 143 ] && [ "$left" = 0 ]; then ok "dump: SIGTERM while its temporary exists (exit 143) leaves none"
elif [ "$rc" = 0 ]; then ok "dump: finished before the SIGTERM (nothing to check)"
else bad "dump: SIGTERM with the temporary present (seen $seen, exit $rc): $left left"; fi
rm -f "$d"/out.h5.partial-*

# ---- wb compare --report ---------------------------------------------------------------------
r=$work/report; rm -rf "$r"; mkdir -p "$r"
"$wb" fixture-model --dims nano -o "$r/model" >/dev/null
"$wb" dump --model "$r/model" --audio "$clip" -o "$r/ref.h5" --impl reference --threads 1 >/dev/null 2>&1
"$wb" dump --model "$r/model" --audio "$clip" -o "$r/a.h5" --impl candidate --threads 1 >/dev/null 2>&1
"$wb" dump --model "$r/model" --audio "$clip" -o "$r/b.h5" --impl candidate --fault no-ln-post --threads 1 >/dev/null 2>&1
[ -e "$r/b.h5" ] || { bad "compare fixtures"; exit 1; }
cmp_args() { args=(compare "$r/ref.h5" "$r/$1.h5" --report "$2" --format all -q); }
cmp_run() { cmp_args "$@"; "$wb" "${args[@]}"; }
t0=$(now_ms); cmp_run a "$r/out"; t_cmp=$(( $(now_ms) - t0 ))
echo "one compare + reports takes $t_cmp ms"
check_dir() { /usr/bin/python3 "$src/workbench/cli/tests/check_report_dir.py" "$1"; }
for i in $(seq "$rounds"); do
  sig=KILL; [ $((i % 4)) = 0 ] && sig=TERM
  which=a; [ $((i % 2)) = 1 ] && which=b
  pick_delay "$t_cmp"
  cmp_args "$which" "$r/out"
  "$wb" "${args[@]}" &
  pid=$!
  sleep_ms "$ms"
  kill -s "$sig" "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rc=$?
  what="report round $i: SIG$sig after $ms ms (exit $rc)"
  state=$(check_dir "$r/out"); crc=$?
  tmps=$(ls "$r/out" | grep -c '\.tmp-')
  rm -f "$r/out"/*.tmp-*
  if [ "$sig" = TERM ] && [ "$tmps" != 0 ]; then bad "$what: SIGTERM left $tmps temporary file(s)"
  elif [ "$crc" = 0 ]; then ok "$what: $state, $tmps temporary file(s)"; else bad "$what: $state"; fi
done
# Random delays rarely land in the write itself (rendering and renaming take milliseconds after
# seconds of comparing), so every step of the write protocol is also hit on purpose: a preloaded
# shim (cc at test time) SIGKILLs wb just before or just after its Nth rename(2).
shim=$work/kill_at_rename.so
cat >"$work/kill_at_rename.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
/* WB_KILL_AT_RENAME=N kills the process just before its Nth rename(), "N+" just after it. */
int rename(const char* from, const char* to) {
  static int (*real)(const char*, const char*);
  static int count;
  if (!real) real = (int (*)(const char*, const char*))dlsym(RTLD_NEXT, "rename");
  const char* at = getenv("WB_KILL_AT_RENAME");
  const int n = at ? atoi(at) : 0, after = at && strchr(at, '+');
  if (++count == n && !after) raise(SIGKILL);
  const int r = real(from, to);
  if (count == n && after) raise(SIGKILL);
  return r;
}
EOF
if cc -shared -fPIC -O1 -o "$shim" "$work/kill_at_rename.c" -ldl 2>"$work/cc.err"; then
  preload=$shim
  # ASan insists on coming first among preloaded libraries; the shim only wraps rename().
  if ldd "$wb" 2>/dev/null | grep libasan >/dev/null; then  # not -q: SIGPIPE + pipefail
    export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}:verify_asan_link_order=0"
  fi
  # Reports: 4 report files then manifest.json = 5 renames.
  for n in 1 1+ 2 2+ 3 3+ 4 4+ 5 5+; do
    cmp_args b "$r/out"
    (WB_KILL_AT_RENAME=$n LD_PRELOAD=$preload "$wb" "${args[@]}"; exit $?) 2>/dev/null; rc=$?
    state=$(check_dir "$r/out"); crc=$?
    want="no manifest (does not look complete)"; [ "$n" = 5+ ] && want="complete set"
    tmps=$(ls "$r/out" | grep -c '\.tmp-'); rm -f "$r/out"/*.tmp-*
    if [ "$crc" = 0 ] && [ "$state" = "$want" ] && [ "$rc" = 137 ]; then
      ok "report killed at rename $n: $state, $tmps temporary file(s)"
    else bad "report killed at rename $n (exit $rc): $state, want $want"; fi
  done
  # Dumps: one rename; before it the finished temporary holds a whole dump under a .partial name.
  prev=$(sha256sum <"$d/out.h5")
  for n in 1 1+; do
    (WB_KILL_AT_RENAME=$n LD_PRELOAD=$preload "$wb" "${dump_args[@]}"; exit $?) >/dev/null 2>&1; rc=$?
    now=$(sha256sum <"$d/out.h5")
    parts=$(ls "$d" | grep -c '\.partial-')
    whole=no
    for p in "$d"/out.h5.partial-*; do
      [ -e "$p" ] && diff -q <(tap_table "$d/out.h5") <(tap_table "$p") >/dev/null && whole=yes
    done
    if [ "$n" = 1 ] && [ "$now" = "$prev" ] && [ "$parts" = 1 ] && [ "$whole" = yes ]; then
      ok "dump killed before its rename: previous out.h5 kept, the finished temporary left under its .partial name"
    elif [ "$n" = 1+ ] && [ "$now" != "$prev" ] && [ "$parts" = 0 ] && "$wb" inspect "$d/out.h5" >/dev/null 2>&1; then
      ok "dump killed after its rename: complete new out.h5"
    else bad "dump killed at rename $n (exit $rc): out.h5 $([ "$now" = "$prev" ] && echo previous || echo changed), $parts partial(s), whole temporary: $whole"; fi
    rm -f "$d"/out.h5.partial-*
    prev=$now
  done
else
  # A skipped part is not a pass in CI (scripts/skip.sh): CI installs build-essential.
  if [ "${CI:-}" = true ]; then bad "no C compiler for the rename-step kills under CI=true"
  else
    echo "skip the rename-step kills: no C compiler ($(head -1 "$work/cc.err"))"
    [ -n "${WB_SKIP_LOG:-}" ] && echo "kill_test (part): [software] no C compiler" >> "$WB_SKIP_LOG"
  fi
fi
# After the kills, one undisturbed run completes the set again.
cmp_run a "$r/out" && [ "$(check_dir "$r/out")" = "complete set" ] && ok "undisturbed run afterwards: complete set" || bad "undisturbed run afterwards"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
