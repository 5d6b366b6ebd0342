#!/usr/bin/env bash
# The bad-input suite: every row of fixtures/bad/manifest.tsv through the built `wb`,
# each bounded in time and memory. A row passes when
#   - the exit status is the documented one, and wb did not die of a signal (no core either);
#   - stderr is at most one line; for exit 2 it is that one line and holds the fragment, for exit
#     0/1 the fragment is in stdout or stderr ("-": no fragment);
#   - wall time <= WB_BAD_TIMEOUT s (default 120) and max RSS <= WB_BAD_RSS_MB (default 600 MB,
#     3x that under ASan), measured by /usr/bin/time;
#   - a failed run leaves neither {out} nor a temporary of it; a successful dump is readable.
# Memory: a normal build also runs under `ulimit -v` (WB_BAD_VMEM_MB, default 8192), so a lying
# header that made wb allocate what the file cannot hold fails fast instead of swapping. ASan
# reserves terabytes of address space for its shadow, so there the cap is ASan's own
# max_allocation_size_mb (one allocation over it is a bad_alloc, which wb reports as exit 3).
# Usage: bad_suite.sh WB_BINARY SOURCE_DIR [WORKDIR] [ID_REGEX]
set -uo pipefail
. "$(dirname "$0")/../../../scripts/skip.sh"
wb=$(realpath "$1"); src=$(realpath "$2")
work=${3:-$(mktemp -d)}; only=${4:-}
mkdir -p "$work"; work=$(realpath "$work")
manifest=$src/fixtures/bad/manifest.tsv
timeout_s=${WB_BAD_TIMEOUT:-120}

py=""
for c in /usr/bin/python3 python3; do
  if "$c" -c "import numpy, h5py" 2>/dev/null; then py=$c; break; fi
done
[ -n "$py" ] || wb_skip software "no python3 with numpy and h5py (python3-numpy, python3-h5py)"
[ -x /usr/bin/time ] || { echo "bad_suite: /usr/bin/time missing (Debian package 'time')"; exit 1; }

asan=0
# (no `grep -q` here: it exits at the first match, ldd/nm die of SIGPIPE and pipefail hides the match)
if ldd "$wb" 2>/dev/null | grep libasan >/dev/null || nm -D "$wb" 2>/dev/null | grep __asan_init >/dev/null; then asan=1; fi
rss_mb=${WB_BAD_RSS_MB:-$((asan ? 1800 : 600))}
if [ "$asan" = 1 ]; then
  export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}:max_allocation_size_mb=4096:allocator_may_return_null=1"
fi

# Files derived at test time (large, or needing a dump wb wrote), and a dump held open for writing
# by another process (what a reader sees while `wb dump` or a Python writer is still running).
gen=$work/gen
rm -rf "$gen"
"$py" "$src/fixtures/bad/make_bad.py" generated "$gen" --wb "$wb" --src "$src" ||
  { echo "bad_suite: generating the derived files failed"; exit 1; }
"$py" "$src/fixtures/bad/make_bad.py" hold "$gen/writing.h5.partial-4242" &
holder=$!
cleanup() { kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null; rm -f "$gen/long-2h.wav"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -e "$gen/writing.h5.partial-4242.ready" ] && break; sleep 0.1; done

pass=0; fail=0
table=$work/observed.tsv
printf 'id\texit\tmax_rss_mb\twall_s\tmessage\n' >"$table"
while IFS=$'\t' read -r id input want frag cmd; do
  case "$id" in ''|'#'*) continue ;; esac
  if [ -n "$only" ] && ! [[ $id =~ $only ]]; then continue; fi
  case "$input" in
    bad/*) in=$src/fixtures/$input ;;
    gen/*) in=$gen/${input#gen/} ;;
    *) echo "FAIL $id: input '$input' is neither bad/ nor gen/"; fail=$((fail+1)); continue ;;
  esac
  run=$work/run/$id; rm -rf "$run"; mkdir -p "$run"
  out=$run/out.h5
  line=${cmd//\{in\}/$in}; line=${line//\{out\}/$out}; line=${line//\{ref\}/$gen/base.h5}
  line=${line//\{model\}/$src/fixtures/models/nano-hf}; line=${line//\{audio\}/$src/fixtures/audio/hello.wav}
  read -r -a args <<<"$line"
  (
    cd "$run" || exit 1
    ulimit -c unlimited 2>/dev/null  # so that a crash would leave a core to find
    [ "$asan" = 1 ] || ulimit -v $(( ${WB_BAD_VMEM_MB:-8192} * 1024 ))
    exec /usr/bin/time -f '%M %e %x' -o "$run/time" timeout -k 5 "$timeout_s" "$wb" "${args[@]}"
  ) >"$run/stdout" 2>"$run/stderr"
  rc=$?
  why=()
  read -r kb secs _ < <(grep -E '^[0-9]+ [0-9.]+ ' "$run/time" | tail -1)
  kb=${kb:-0}; secs=${secs:-0}
  grep -q "terminated by signal" "$run/time" 2>/dev/null && why+=("killed by a signal")
  [ "$rc" = 124 ] || [ "$rc" = 137 ] && why+=("timed out after ${timeout_s}s")
  [ "$rc" -ge 128 ] && why+=("exit $rc: died of a signal")
  [ "$rc" = "$want" ] || why+=("exit $rc, want $want")
  lines=$(wc -l <"$run/stderr")
  if [ "$want" = 2 ]; then
    [ "$lines" = 1 ] || why+=("$lines stderr lines, want 1")
    grep -qF -- "$frag" "$run/stderr" || why+=("stderr lacks '$frag'")
  else
    [ "$lines" -le 1 ] || why+=("$lines stderr lines, want at most 1")
    [ "$frag" = - ] || cat "$run/stdout" "$run/stderr" | grep -qF -- "$frag" || why+=("output lacks '$frag'")
  fi
  ls "$run" | grep -q '^core' && why+=("left a core file")
  [ "$kb" -le $((rss_mb * 1024)) ] || why+=("max RSS $((kb / 1024)) MB > $rss_mb MB")
  if [ "$rc" != 0 ] && [[ $cmd == *"{out}"* ]]; then
    [ -e "$out" ] && why+=("failed run left $out")
  fi
  if ls "$run" | grep -qE '\.partial-|\.tmp-'; then why+=("left a temporary: $(ls "$run" | grep -E '\.partial-|\.tmp-' | head -1)"); fi
  if [ "$rc" = 0 ] && [[ $cmd == dump* ]]; then
    "$wb" inspect "$out" >/dev/null 2>&1 || why+=("exit 0 but $out is not a readable dump")
  fi
  if [[ $cmd == *"--report {out}.d"* ]]; then
    for f in report.json report.md report.html junit.xml; do
      [ -s "$out.d/$f" ] || why+=("report $f missing")
    done
  fi
  msg=$(head -c 400 "$run/stderr" | tr '\n\t' '  ')
  [ -n "$msg" ] || msg="(stdout) $(grep -F -m1 -- "$frag" "$run/stdout" | head -c 200 | tr '\t' ' ')"
  printf '%s\t%s\t%s\t%s\t%s\n' "$id" "$rc" "$((kb / 1024))" "$secs" "$msg" >>"$table"
  if [ ${#why[@]} = 0 ]; then
    pass=$((pass+1)); printf 'ok   %-30s exit %s  %4d MB %6.2f s  %s\n' "$id" "$rc" $((kb / 1024)) "$secs" "$msg"
  else
    fail=$((fail+1)); printf 'FAIL %-30s %s\n     stderr: %s\n' "$id" "$(IFS=';'; echo "${why[*]}")" "$(head -c 400 "$run/stderr")"
  fi
done <"$manifest"
echo "bad-input suite: $pass passed, $fail failed (observed table: $table)"
[ "$fail" = 0 ] && [ "$pass" -gt 0 ]
