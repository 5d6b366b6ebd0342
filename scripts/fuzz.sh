#!/usr/bin/env bash
# Runs the libFuzzer harnesses of the readers (workbench/fuzz) for a fixed time each, one at a time.
#   scripts/fuzz.sh [SECONDS_PER_HARNESS] [HARNESS...]
#     SECONDS_PER_HARNESS  default 600; a harness also stops after WB_FUZZ_RUNS executions
#                          (default 1000000), whichever comes first
#     HARNESS              audio safetensors hf_config ggml dump profile name_map (default: all)
# Configures and builds build-fuzz/ with clang (ASan + UBSan + libFuzzer), copies the committed
# corpus fixtures/fuzz/fuzz_<h>/ to a scratch folder (the committed one is never modified), runs
# with -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 and prints per harness executions,
# exec/s, coverage and the result. Logs and crash inputs stay in build-fuzz/fuzz-out/<h>/; add a
# fixed crash input to fixtures/fuzz/fuzz_<h>/ as crash-<what> so CTest replays it
# (wb_fuzz_replay_<h>). Exit status 1 if any harness had a finding.
# Seeds: build/workbench/fuzz/wb_fuzz_seeds . fixtures/fuzz regenerates the seed-* files.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
secs=${1:-600}
[[ $# -gt 0 ]] && shift
all=(audio safetensors hf_config ggml dump profile name_map)
harnesses=("$@")
[[ ${#harnesses[@]} -eq 0 ]] && harnesses=("${all[@]}")
runs=${WB_FUZZ_RUNS:-1000000}
build=${WB_FUZZ_BUILD:-$root/build-fuzz}

if [[ ! -f $build/CMakeCache.txt ]]; then
  CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DWB_FUZZ=ON -DWB_BUILD_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
fi
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
cmake --build "$build" -j"${WB_JOBS:-2}" --target "${targets[@]}" >/dev/null

# allocator_may_return_null=1: an impossible malloc() in a C library (HDF5 sizing a cache entry
# from a corrupt header) returns NULL and the library reports an error, as it does outside ASan;
# C++ new in wb still aborts on an impossible size, and -malloc_limit_mb flags any single
# allocation over 1 GiB that succeeds. LeakSanitizer ignores blocks HDF5 leaks on its error paths.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$root/workbench/fuzz/lsan-suppressions.txt}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
printf '%-12s %8s %12s %8s %8s %8s  %s\n' harness seconds executions exec/s cov ft result
for h in "${harnesses[@]}"; do
  out=$build/fuzz-out/$h
  rm -rf "$out"
  mkdir -p "$out/corpus" "$out/artifacts"
  cp "$root/fixtures/fuzz/fuzz_$h/"* "$out/corpus/"
  start=$(date +%s)
  rc=0
  TMPDIR=${WB_FUZZ_TMP:-/dev/shm} "$build/workbench/fuzz/fuzz_$h" "$out/corpus" \
    -max_total_time="$secs" -runs="$runs" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
    -artifact_prefix="$out/artifacts/" -print_final_stats=1 >"$out/log" 2>&1 || rc=$?
  took=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$out/log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$out/log" | tail -1 | cut -d' ' -f2)
  ft=$(grep -o 'ft: [0-9]*' "$out/log" | tail -1 | cut -d' ' -f2)
  result=clean
  if [[ $rc -ne 0 ]] || compgen -G "$out/artifacts/*" >/dev/null; then
    result="FINDING (exit $rc): $(ls "$out/artifacts" | tr '\n' ' ')see $out/log"
    status=1
  fi
  printf '%-12s %8s %12s %8s %8s %8s  %s\n' "$h" "$took" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $status
