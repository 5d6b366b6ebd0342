#!/usr/bin/env bash
# The fault matrix for --impl cuda (docs/gpu.md), in two halves:
#
#   GPU host:  scripts/cuda-fault-matrix.sh gpu WB_CUDA_DUMP OUT_DIR
#     Writes the synthetic tone (compare/tests/fault_matrix.sh's clip: loud from the first sample,
#     so stft-no-reflect shows), then one float32 dump of the `--random-dims nano --seed 1` model
#     with no fault (`--taps blocks`) and one per case of the shared fault table
#     (`wb-cuda-dump --list-faults`: every example of `wb faults --json`), each holding the case's
#     expected first tap and the tap before it. Dumps go into OUT_DIR/cudafaults-N.tar (each under
#     15 MiB).
#
#   CPU host:  scripts/cuda-fault-matrix.sh host WB TAR_DIR [WORKDIR]
#     Makes the float32 and float64 LibTorch reference dumps of the same model and tone, runs
#     `wb compare` (float32 profile, and with --floor) on every CUDA dump and prints a Markdown
#     table; exit 0 when the fault-free dump passes and every fault is found at its first tap
#     with the tap before it passing.
set -uo pipefail
mode=${1:-}
if [[ "$mode" == gpu && $# -eq 3 ]]; then
  d=$2
  out=$3
  w=$(mktemp -d)
  mkdir -p "$out" "$w/dumps"
  python3 scripts/tone.py "$w/dumps/tone.wav"  # run from the repository root
  common=(--random-dims nano --seed 1 --audio "$w/dumps/tone.wav" --precision float32 --compress 9)
  "$d" "${common[@]}" --taps blocks -o "$w/dumps/none.h5" || echo "dump none failed"
  "$d" --list-faults --dims nano > "$w/dumps/cases.tsv" || exit 2
  while IFS=$'\t' read -r spec first prev; do
    taps=$first
    [[ -n "$prev" ]] && taps="$prev,$first"
    "$d" "${common[@]}" --fault "$spec" --taps "$taps" -o "$w/dumps/$(echo "$spec" | tr '=@' '_-').h5" \
      || echo "dump $spec failed"
  done < "$w/dumps/cases.tsv"
  # Greedy packing into tar files under 15 MiB.
  python3 scripts/tar_parts.py "$w/dumps" "$out" cudafaults
  exit 0
fi
if [[ "$mode" != host || $# -lt 3 ]]; then
  echo "usage: $0 gpu WB_CUDA_DUMP OUT_DIR | $0 host WB TAR_DIR [WORKDIR]" >&2
  exit 2
fi
wb=$(realpath "$2")
tars=$3
work=${4:-$(mktemp -d)}
mkdir -p "$work/d"
for t in "$tars"/cudafaults-*.tar; do tar xf "$t" -C "$work/d" || exit 2; done
[[ -s "$work/d/cases.tsv" ]] || { echo "cuda-fault-matrix: no cases.tsv in $tars" >&2; exit 2; }
set -e
"$wb" fixture-model --dims nano --seed 1 -o "$work/model" > /dev/null
ref() { "$wb" dump --impl reference --model "$work/model" --audio "$work/d/tone.wav" --no-decode \
  --taps encoder -o "$@" > /dev/null; }
ref "$work/ref.h5"
ref "$work/ref64.h5" --dtype float64
set +e
first_tap() {
  python3 -c "import json,sys; fd=json.load(open(sys.argv[1]))['first_divergence']; print(fd['tap'] if fd else '')" "$1"
}
tap_rel() {  # "rel L2 (Nx floor)" of a tap in a --floor report
  python3 -c "
import json,sys
for t in json.load(open(sys.argv[1]))['taps']:
    if t['name']==sys.argv[2]:
        fx=t['floor_x']; rel=t['metrics']['rel_l2']
        print(f'{rel:.3g}' + (f' ({fx:.3g}x floor)' if isinstance(fx,(int,float)) else ''))
" "$1" "$2"
}
failures=0
echo "CUDA candidate (wb-cuda-dump, float32, --random-dims nano --seed 1, synthetic tone) against"
echo "the float32 LibTorch reference; each fault dump holds its first tap and the tap before it."
echo
echo "| fault | expected first divergent tap | exit (float32 / --floor) | first divergent tap (float32 / --floor) | tap before: rel L2 | first tap: rel L2 | ok |"
echo "|---|---|---|---|---|---|---|"
judge() {  # judge NAME DUMP WANT_TAP PREV_TAP
  local name=$1 cand=$2 want=$3 prev=$4 rc1 rc2 got1 got2 want_rc=1 ok=yes
  [[ -f "$cand" ]] || { echo "| $name | ${want:-none} | dump missing | | | | NO |"; failures=$((failures + 1)); return; }
  "$wb" compare "$work/ref.h5" "$cand" -q --report "$work/r-$name" --format json
  rc1=$?
  "$wb" compare "$work/ref.h5" "$cand" -q --floor "$work/ref64.h5" --report "$work/f-$name" --format json
  rc2=$?
  got1=$(first_tap "$work/r-$name/report.json")
  got2=$(first_tap "$work/f-$name/report.json")
  [[ -z "$want" ]] && want_rc=0
  { [[ "$rc1" == "$want_rc" && "$rc2" == "$want_rc" && "$got1" == "$want" && "$got2" == "$want" ]]; } || ok=NO
  [[ "$ok" == yes ]] || failures=$((failures + 1))
  local pr="-" fr="-"
  [[ -n "$prev" ]] && pr=$(tap_rel "$work/f-$name/report.json" "$prev")
  [[ -n "$want" ]] && fr=$(tap_rel "$work/f-$name/report.json" "$want")
  echo "| $name | ${want:-none (exit 0)} | $rc1 / $rc2 | ${got1:--} / ${got2:--} | ${prev:+$prev }$pr | $fr | $ok |"
}
judge none "$work/d/none.h5" "" ""
while IFS=$'\t' read -r spec first prev; do
  judge "$spec" "$work/d/$(echo "$spec" | tr '=@' '_-').h5" "$first" "$prev"
done < "$work/d/cases.tsv"
echo
echo "cuda fault matrix: $failures failing row(s); reports under $work"
exit $((failures > 0))
