#!/usr/bin/env bash
# The fault matrix: for every candidate fault switch, `wb compare` must exit 1 and name as first
# divergent tap the one where the bug lives; with no fault it must exit 0. Run through the built
# binary on the nano fixture model, judged twice: by the float32 profile (given explicitly; it is
# also the default for these float32 candidates), and with the
# reference's float64 run as noise floor (--floor). Also: self-compare and swapped arguments.
#
# Usage: compare/tests/fault_matrix.sh WB_BINARY [WORKDIR [MODEL [AUDIO]]]
#   MODEL: a model directory/file for `wb dump --model` (default: a fresh nano fixture model;
#   fixtures/trained is the trained fixture with realistic weight statistics).
#   AUDIO: a clip instead of the tone, e.g. a held-out speech clip; a glob matching exactly one
#   file is accepted ('fixtures/heldout/clip000.*': the clip's format may change). CTest
#   wb_compare_fault_matrix_speech runs the trained model on held-out clip000.
# Prints a Markdown table; exit 0 when every row is as expected.
#
# Input: a synthetic 16 kHz clip (tone + noise, loud from the first sample). Real speech clips
# start in silence, where zero vs reflect STFT padding both hit the log-mel floor and
# stft-no-reflect is invisible by construction; this clip exercises every switch.
set -uo pipefail
wb=$(realpath "$1")
work=${2:-$(mktemp -d)}
model=${3:-}
audio=${4:-}
mkdir -p "$work"
here=$(cd "$(dirname "$0")/../.." && pwd)
f32=$here/fixtures/profiles/float32.json  # the profile of the float32 rows

python3 "$here/scripts/tone.py" "$work/tone.wav"

set -e
clip=$work/tone.wav
if [ -n "$audio" ]; then
  mapfile -t found < <(compgen -G "$audio" || true)
  [ "${#found[@]}" = 1 ] || { echo "fault matrix: '$audio' matches ${#found[@]} files, not one" >&2; exit 1; }
  clip=${found[0]}
fi
if [ -z "$model" ]; then
  "$wb" fixture-model --dims nano -o "$work/model" > /dev/null
  model="$work/model"
fi
echo "model: $model"
if [ -n "$audio" ]; then echo "audio: $clip"; else echo "audio: tone (synthetic)"; fi
echo
dump() {  # dump OUT ARGS...
  local out=$1; shift
  "$wb" dump --model "$model" --audio "$clip" -o "$out" --no-decode --taps encoder "$@" > /dev/null
}
dump "$work/ref.h5" --impl reference
dump "$work/ref64.h5" --impl reference --dtype float64
set +e

failures=0
row() { printf '| %s | %s | %s | %s | %s | %s |\n' "$@"; }
first_tap() {  # first divergent tap from a JSON report ("" when none)
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); fd=j['first_divergence']; print(fd['tap'] if fd else '')" "$1"
}
detail() {  # rel L2 and floor multiple of a tap
  python3 -c "
import json,sys
j=json.load(open(sys.argv[1])); name=sys.argv[2]
for t in j['taps']:
    if t['name']==name:
        fx=t['floor_x']; rel=t['metrics']['rel_l2']
        print(f'{rel:.3g}' + (f' ({fx:.3g}x floor)' if isinstance(fx,(int,float)) else ''))
" "$1" "$2"
}

echo "| fault | expected first divergent tap | exit (float32 / --floor) | first divergent tap (float32 / --floor) | rel L2 there | ok |"
echo "|---|---|---|---|---|---|"
# Rows: no fault, then every example of the fault table (wb/core/faults.h) with the tap it names.
mapfile -t table_rows < <("$wb" faults --json | python3 -c "
import json, sys
for f in json.load(sys.stdin):
    for ex in f['examples']:
        print(ex['spec'] + ':' + ex['first_tap'])
")
[ "${#table_rows[@]}" -gt 0 ] || { echo "fault matrix: wb faults --json gave no rows" >&2; exit 1; }
cases=(":" "${table_rows[@]}")
for c in "${cases[@]}"; do
  fault=${c%%:*}
  want=${c#*:}
  name=${fault:-none}
  cand="$work/cand-$name.h5"
  if [ -z "$fault" ]; then dump "$cand" --impl candidate; else dump "$cand" --impl candidate --fault "$fault"; fi
  if [ $? -ne 0 ]; then
    row "$name" "${want:-none}" "dump failed" "" "" "NO"
    failures=$((failures + 1))
    continue
  fi
  "$wb" compare "$work/ref.h5" "$cand" -q --profile "$f32" --report "$work/r-$name" --format json,md,html,junit
  rc1=$?
  "$wb" compare "$work/ref.h5" "$cand" -q --profile "$f32" --floor "$work/ref64.h5" --report "$work/f-$name" --format json
  rc2=$?
  "$wb" compare "$cand" "$work/ref.h5" -q --profile "$f32" --report "$work/s-$name" --format json
  rc3=$?
  got1=$(first_tap "$work/r-$name/report.json")
  got2=$(first_tap "$work/f-$name/report.json")
  got3=$(first_tap "$work/s-$name/report.json")
  want_rc=1
  [ -z "$fault" ] && want_rc=0
  ok=yes
  { [ "$rc1" = "$want_rc" ] && [ "$rc2" = "$want_rc" ] && [ "$rc3" = "$rc1" ]; } || ok=NO
  { [ "$got1" = "$want" ] && [ "$got2" = "$want" ] && [ "$got3" = "$got1" ]; } || ok=NO
  [ "$ok" = yes ] || failures=$((failures + 1))
  rel=""
  [ -n "$got2" ] && rel=$(detail "$work/f-$name/report.json" "$got2")
  row "$name" "${want:-none (exit 0)}" "$rc1 / $rc2" "${got1:--} / ${got2:--}" "${rel:--}" "$ok"
  [ "$ok" = yes ] && rm -f "$cand"  # a passing row's dump is not needed again (a failing one stays)
done

# The bfloat16 row: every case again with the candidate in bfloat16, judged by the bfloat16
# profile (fixtures/profiles/bfloat16.json, calibrated in docs/calibration.md). A fault
# shows there only where it stands above bfloat16's own error. Measured (scripts/calibrate.py
# --precisions; trained model on the tone and held-out clip000, random nano and tiny on the tone),
# at the fault's first tap, as a share of the profile's limit there:
# - expected NOT to show (exit 0, no divergent tap): gelu-tanh (0.18-0.31 x the limit; its own
#   float32 size 2e-4 against bfloat16's 3.7e-3 at encoder.conv1), gelu-tanh@1 (0.18-0.31),
#   ln-eps=1e-3 (0.22-0.32), ln-eps=1e-4 (0.18-0.29), ln-eps=1e-3@1 (0.09-0.28), ln-fp16
#   (0.30-0.39): float32-sized bugs (2e-4 .. 1.4e-3) under bfloat16's clean error at the same tap
#   (1.4e-3 .. 5e-3);
# - conv-bias-drop depends on the model's conv1 bias: shows on nano (1.81 x the limit), not on
#   the trained model (0.48-0.66 x) or tiny (0.30 x);
# - every other example is localised at its first tap (>= 1.30 x the limit: ln-eps=1e-2).
# (Figures of the 2026-11-27 re-calibration: oneDNN backend, float16-stored trained model.)
bf16_hidden=" gelu-tanh gelu-tanh@1 ln-eps=1e-3 ln-eps=1e-4 ln-eps=1e-3@1 ln-fp16 "
case "$model" in
  "$work/model") bf16_model=nano ;;            # the fresh nano fixture (seed 1, as calibrated)
  */fixtures/trained|*/fixtures/trained/) bf16_model=trained; bf16_hidden+="conv-bias-drop " ;;
  *) bf16_model="" ;;
esac
echo
echo "bfloat16 candidate, judged by fixtures/profiles/bfloat16.json"
if [ -z "$bf16_model" ]; then
  echo "(no bfloat16 expectation stated for this model: rows reported, not judged)"
fi
echo
echo "| fault (bfloat16) | expected | exit | first divergent tap | rel L2 at the fault's tap | ok |"
echo "|---|---|---|---|---|---|"
for c in "${cases[@]}"; do
  fault=${c%%:*}
  tap=${c#*:}
  name=${fault:-none}
  cand="$work/bf16-$name.h5"
  if [ -z "$fault" ]; then dump "$cand" --impl candidate --precision bfloat16
  else dump "$cand" --impl candidate --precision bfloat16 --fault "$fault"; fi
  if [ $? -ne 0 ]; then
    row "$name" "" "dump failed" "" "" "NO"; failures=$((failures + 1)); continue
  fi
  "$wb" compare "$work/ref.h5" "$cand" -q --profile "$here/fixtures/profiles/bfloat16.json" \
    --report "$work/b-$name" --format json
  rc=$?
  got=$(first_tap "$work/b-$name/report.json")
  want_rc=1; want=$tap; expect="$tap"
  if [ -z "$fault" ] || [[ "$bf16_hidden" == *" $fault "* ]]; then
    want_rc=0; want=""; expect="not shown (exit 0)"
  fi
  ok=yes
  { [ "$rc" = "$want_rc" ] && [ "$got" = "$want" ]; } || ok=NO
  if [ -z "$bf16_model" ]; then ok="-"
  elif [ "$ok" = NO ]; then failures=$((failures + 1)); fi
  rel=-
  [ -n "$tap" ] && rel=$(detail "$work/b-$name/report.json" "$tap")
  row "$name" "$expect" "$rc" "${got:--}" "$rel" "$ok"
  [ "$ok" = NO ] || rm -f "$cand"
done

# Reduced precision is not a fault: float16 weights pass the bfloat16 and float16
# profiles and fail the float32 one at the first tap that uses weights (encoder.conv1).
echo
echo "| candidate weights | profile | exit | first divergent tap | ok |"
echo "|---|---|---|---|---|"
dump "$work/cand-float16.h5" --impl candidate --precision float16
for prof in float32 bfloat16 float16; do
  "$wb" compare "$work/ref.h5" "$work/cand-float16.h5" -q --floor "$work/ref64.h5" \
    --profile "$here/fixtures/profiles/$prof.json" --report "$work/p-$prof" --format json
  rc=$?
  got=$(first_tap "$work/p-$prof/report.json")
  want_rc=0; want=""
  [ "$prof" = float32 ] && { want_rc=1; want=encoder.conv1; }
  ok=yes
  { [ "$rc" = "$want_rc" ] && [ "$got" = "$want" ]; } || { ok=NO; failures=$((failures + 1)); }
  printf '| %s | %s | %s | %s | %s |\n' float16 "$prof" "$rc" "${got:--}" "$ok"
done
[ "$failures" -gt 0 ] || rm -f "$work/cand-float16.h5"

# Self-compare: zero error everywhere, exit 0.
"$wb" compare "$work/ref.h5" "$work/ref.h5" -q --report "$work/self" --format json
rc=$?
zero=$(python3 -c "import json; j=json.load(open('$work/self/report.json')); print(all(t['metrics']['rel_l2']==0 and t['metrics']['max_abs']==0 for t in j['taps']))")
echo
echo "self-compare: exit $rc, all errors zero: $zero"
{ [ "$rc" = 0 ] && [ "$zero" = True ]; } || failures=$((failures + 1))
echo "fault matrix: $failures failing row(s); reports under $work (and the dumps of failing rows)"
exit $((failures > 0))
