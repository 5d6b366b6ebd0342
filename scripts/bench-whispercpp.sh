#!/usr/bin/env bash
# The candidate encoder against whisper.cpp's on this machine, in one run.
#
#   scripts/bench-whispercpp.sh [WHISPER_CPP_DIR]
#
# WHISPER_CPP_DIR: a checkout of https://github.com/ggml-org/whisper.cpp (not vendored here;
# default $WHISPER_CPP_DIR). Its `whisper-bench` is built out of tree (CMake, Release, native ISA)
# into $OUT/whisper.cpp-build. Random-weight ggml models of tiny and base dims with the real
# vocabulary size (51865), f32 and f16, are written by `wb fixture-model --format ggml` (the one
# ggml writer of this repository, workbench/core/src/checkpoint_ggml.cpp). Then, per round and per
# dims, each of our precisions and each whisper.cpp model is timed once, alternating ours and
# theirs, each in its own process after warm-up encodes. Theirs is timed by
# scripts/whispercpp_encode_bench.cpp, compiled here against the same build's libwhisper: the
# calls of whisper-bench (flash attention on, empty mel, warm-up, one timed whisper_encode)
# without its 600+ decoder calls (about a minute per process on 2 cores, outside its encode time);
# whisper-bench itself runs once per model as a cross-check of that figure (CROSSCHECK=0: skip).
#   ours float32  (wb bench --no-reference)    vs  whisper-bench -m f32 model (flash attention on:
#                                                  its K/V are float16 inside the attention)
#   ours bfloat16 / float16                    vs  whisper-bench -m f16 model
# and the medians over the rounds are printed with their ratio. Each of our figures comes with its
# encoder.ln_post rel L2 against the LibTorch reference (`wb bench`, one run before the rounds),
# gated by its precision's built-in profile (`wb bench`: float32, bfloat16, float16 profiles):
# a fast wrong kernel cannot win.
#
# ISA=avx2 limits both sides to AVX2 (what many users have): whisper.cpp built without AVX-512
# (GGML_NATIVE=OFF, AVX/AVX2/FMA/F16C/BMI2 on, AVX512 off), ours on the candidate's avx2 path
# (WB_ISA=avx2) with oneDNN capped at AVX2 (DNNL_MAX_CPU_ISA=AVX2). Unset: each side's native best.
# Environment: THREADS (2), ROUNDS (5), DIMS ("tiny base"), WB (build/wb), OUT (a temporary
# directory, kept), JOBS (build parallelism, 2), CROSSCHECK (1), WHISPER_BUILD (whisper.cpp's
# build folder, default $OUT/whisper.cpp-build; an existing one is reused). Exit: 0 done, 1 a fidelity gate failed,
# 2 bad usage (missing or foreign WHISPER_CPP_DIR), 3 a build or run failed.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
die() {
  echo "bench-whispercpp: $2" >&2
  exit "$1"
}

wdir=${1:-${WHISPER_CPP_DIR:-}}
[[ -n "$wdir" ]] || die 2 "usage: scripts/bench-whispercpp.sh WHISPER_CPP_DIR (a whisper.cpp checkout)"
[[ -d "$wdir" ]] || die 2 "$wdir: no such directory (expected a checkout of ggml-org/whisper.cpp)"
[[ -f "$wdir/include/whisper.h" && -f "$wdir/examples/bench/bench.cpp" ]] ||
  die 2 "$wdir: not a whisper.cpp checkout (no include/whisper.h or examples/bench/bench.cpp)"
wdir=$(cd "$wdir" && pwd)

THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-5}
DIMS=${DIMS:-"tiny base"}
JOBS=${JOBS:-2}
WB=${WB:-$here/build/wb}
OUT=${OUT:-$(mktemp -d /tmp/bench-whispercpp.XXXXXX)}
mkdir -p "$OUT"
[[ -x "$WB" ]] || die 2 "$WB: not built (run scripts/setup.sh, or set WB)"

ISA=${ISA:-}
if [[ -z "$ISA" ]]; then
  ggml_isa=(-DGGML_NATIVE=ON)
elif [[ "$ISA" == avx2 ]]; then
  ggml_isa=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
            -DGGML_AVX512=OFF -DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF
            -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
  export WB_ISA=avx2 DNNL_MAX_CPU_ISA=AVX2
else
  die 2 "ISA=$ISA: expected avx2 (or unset: each side's native best)"
fi

# --- build whisper-bench ------------------------------------------------------------------------
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
bdir=${WHISPER_BUILD:-$OUT/whisper.cpp-build}
if ! { cmake -S "$wdir" -B "$bdir" -DCMAKE_BUILD_TYPE=Release "${ggml_isa[@]}" \
  -DWHISPER_BUILD_TESTS=OFF -DWHISPER_BUILD_EXAMPLES=ON "${launcher[@]}" &&
  cmake --build "$bdir" -j "$JOBS" --target whisper-bench; } >"$OUT/whisper.cpp-build.log" 2>&1; then
  die 3 "building whisper-bench failed (log: $OUT/whisper.cpp-build.log)"
fi
wbench=$bdir/bin/whisper-bench
[[ -x "$wbench" ]] || die 3 "whisper-bench not found at $wbench after the build"
libdir=$(dirname "$(find "$bdir" -name 'libwhisper.so' | head -1)")
enc=$OUT/whispercpp_encode_bench
"${CXX:-c++}" -O2 -std=c++17 -I"$wdir/include" -I"$wdir/ggml/include" \
  "$here/scripts/whispercpp_encode_bench.cpp" -L"$libdir" -lwhisper -Wl,-rpath,"$libdir" \
  -o "$enc" >"$OUT/encode_bench-build.log" 2>&1 ||
  die 3 "compiling scripts/whispercpp_encode_bench.cpp against $wdir failed (log: $OUT/encode_bench-build.log)"

# --- the machine --------------------------------------------------------------------------------
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
cpu="$cpu (family $(grep -m1 '^cpu family' /proc/cpuinfo | cut -d: -f2 | tr -d ' '), model $(grep -m1 '^model[[:space:]]*:' /proc/cpuinfo | cut -d: -f2 | tr -d ' '))"
isa=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|fma|f16c|amx)' | tr '\n' ' ')
info=$("$WB" info --json) || die 3 "wb info --json failed"
info_get() { python3 -c "import json,sys; j=json.loads(sys.argv[1]); print($1)" "$info"; }
paths=$(info_get "' '.join(i['name'] for i in j['isas'] if i['supported']) + ' (default ' + j['best_isa'] + ')'")
echo "bench-whispercpp: $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs: $cpu"
echo "  ISA flags: $isa"
echo "  candidate ISA paths this CPU runs (wb info): $paths"
[[ -z "$ISA" ]] || echo "  both sides limited to $ISA: whisper.cpp ${ggml_isa[*]}; ours WB_ISA=$WB_ISA DNNL_MAX_CPU_ISA=$DNNL_MAX_CPU_ISA"
echo "  whisper.cpp $(git -C "$wdir" describe --always --dirty 2>/dev/null || echo '?') ($wdir)," \
  "workbench $(git -C "$here" describe --always --dirty 2>/dev/null || echo '?')"
echo "  $THREADS threads, $ROUNDS rounds (median), dims: $DIMS; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

# --- models and fidelity ------------------------------------------------------------------------
for d in $DIMS; do
  for st in float32 float16; do
    "$WB" fixture-model --dims "$d" --seed 1 --format ggml --store "$st" -o "$OUT/$d-$st.bin" >/dev/null ||
      die 3 "wb fixture-model --dims $d --store $st failed"
  done
done

json_get() { # FILE EXPR: one value of the first model of a wb bench JSON
  python3 -c "import json,sys; m=json.load(open(sys.argv[1]))['models'][0]; print($2)" "$1"
}
read -r -a precisions <<<"$(info_get "' '.join(j['precisions'])")"  # float32 first
theirs_model() { [[ $1 == float32 ]] && echo f32 || echo f16; }  # whisper.cpp's file per precision
declare -A rel gemm
for d in $DIMS; do
  for p in "${precisions[@]}"; do
    j=$OUT/fidelity-$d-$p.json
    rc=0
    "$WB" bench --dims "$d" --precision "$p" --threads "$THREADS" --repeats 1 --no-peak \
      --json "$j" >"$OUT/fidelity-$d-$p.log" 2>&1 || rc=$?
    [[ $rc == 1 ]] && die 1 "$d $p: the candidate fails its fidelity gate ($(tail -1 "$OUT/fidelity-$d-$p.log"))"
    [[ $rc == 0 ]] || die 3 "wb bench --dims $d --precision $p failed (log: $OUT/fidelity-$d-$p.log)"
    rel[$d/$p]=$(json_get "$j" "'%.2e' % m['rel_l2_vs_reference']")
    gemm[$p]=$(json_get "$j" "m['run_info']['gemm']")
  done
done

# --- interleaved rounds -------------------------------------------------------------------------
ours() { # DIMS PRECISION -> "wall-seconds cpu-seconds" of the one timed encoder run
  local j=$OUT/ours.json
  "$WB" bench --dims "$1" --precision "$2" --threads "$THREADS" --repeats 1 --no-reference --no-peak \
    --json "$j" >"$OUT/ours.log" 2>&1 || die 3 "wb bench --dims $1 --precision $2 failed (log: $OUT/ours.log)"
  json_get "$j" "'%.3f %.3f' % (m['candidate_encoder_s'], m['candidate_encoder_cpu_s'])"
}
theirs() { # MODEL -> "wall-seconds cpu-seconds" of the one timed whisper_encode
  "$enc" "$1" "$THREADS" >"$OUT/theirs.log" 2>&1 ||
    die 3 "whispercpp_encode_bench $1 failed (log: $OUT/theirs.log)"
  python3 -c "import sys; d=dict(l.split() for l in open(sys.argv[1]) if l.startswith('encode'));
print('%.3f %.3f' % (float(d['encode_s']), float(d['encode_cpu_s'])))" "$OUT/theirs.log"
}
whisper_bench() { # MODEL -> seconds: whisper-bench's own encode time (whisper_print_timings)
  "$wbench" -m "$1" -t "$THREADS" >"$OUT/whisper-bench.log" 2>&1 ||
    die 3 "whisper-bench -m $1 failed (log: $OUT/whisper-bench.log)"
  local ms
  ms=$(sed -n 's/.*encode time = *\([0-9.]*\) ms.*/\1/p' "$OUT/whisper-bench.log" | head -1)
  [[ -n "$ms" ]] || die 3 "no 'encode time' in whisper-bench's output (log: $OUT/whisper-bench.log)"
  python3 -c "print('%.3f' % ($ms / 1000))"
}
declare -A runs cpus
add() { # KEY "WALL CPU"
  runs[$1]+="${2% *} "
  cpus[$1]+="${2#* } "
}
for ((r = 1; r <= ROUNDS; r++)); do
  for d in $DIMS; do
    declare -A timed=()  # interleaved: ours in each precision, theirs after ours' first use of it
    for p in "${precisions[@]}"; do
      add "$d/ours/$p" "$(ours "$d" "$p")"
      tm=$(theirs_model "$p")
      [[ -n ${timed[$tm]:-} ]] && continue
      timed[$tm]=1
      add "$d/theirs/$tm" "$(theirs "$OUT/$d-${tm/f/float}.bin")"
    done
  done
  echo "  round $r/$ROUNDS done, load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done

median() { python3 -c "import statistics,sys; print('%.3f' % statistics.median(map(float, sys.argv[1:])))" "$@"; }
echo
echo "encoder wall seconds (median of $ROUNDS; ratio = theirs / ours) and process CPU seconds (median, all threads)"
printf '%-5s %-9s %8s %9s %-6s %8s %7s   %7s %7s   %s\n' dims ours "wall s" "rel L2" theirs "wall s" \
  ratio "cpu us" "cpu th" "runs, wall s: ours | theirs"
for d in $DIMS; do
  for p in "${precisions[@]}"; do
    tm=$(theirs_model "$p")
    # shellcheck disable=SC2086
    mo=$(median ${runs[$d/ours/$p]})
    # shellcheck disable=SC2086
    mt=$(median ${runs[$d/theirs/$tm]})
    # shellcheck disable=SC2086
    printf '%-5s %-9s %8s %9s %-6s %8s %6sx   %7s %7s   %s| %s\n' "$d" "$p" "$mo" "${rel[$d/$p]}" "$tm" \
      "$mt" "$(python3 -c "print('%.2f' % ($mt / $mo))")" "$(median ${cpus[$d/ours/$p]})" \
      "$(median ${cpus[$d/theirs/$tm]})" "${runs[$d/ours/$p]}" "${runs[$d/theirs/$tm]}"
  done
done
if [[ ${CROSSCHECK:-1} != 0 ]]; then
  echo
  echo "cross-check, whisper-bench itself (one run each; its encode time after its warm-up):"
  for d in $DIMS; do
    for st in float32 float16; do
      t=$(theirs "$OUT/$d-$st.bin")
      echo "  $d $st: whisper-bench $(whisper_bench "$OUT/$d-$st.bin") s," \
        "whispercpp_encode_bench ${t% *} s"
    done
  done
fi
echo
for p in "${precisions[@]}"; do echo "ours $p: ${gemm[$p]}"; done
echo "theirs: whisper.cpp encoder, $THREADS threads, flash attention on (K/V in float16 inside it); ggml models by wb fixture-model"
echo "rel L2: encoder.ln_post vs the LibTorch float32 reference, gated by each precision's built-in profile (wb bench)"
echo "cpu us / cpu th: process CPU seconds of ours / theirs; on a loaded machine wall time includes"
echo "waiting for a core, and whisper.cpp's threads busy-wait at each graph node's barrier"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg); files in $OUT"
