#!/usr/bin/env bash
# The ports of scripts/ports/ through wb --port (docs/ports.md), on the trained fixture and a
# held-out clip; one case per CTest (each well under a minute):
#   clean     the clean numpy port within the float32 profile (wb dump --port, wb compare), and
#             its protocol overhead (--timing) for run and for a full replay;
#   BUG       a planted numpy-port bug (power-to-db, attn-scale@1, ln-f16@0, no-ln-post), on the nano
#             model and the same held-out clip (the same code paths, a tenth of the time): wb compare
#             names the expected first tap, wb replay --port puts the own error in the bug's stage,
#             wb bisect-layers --port names that stage in at most ceil(log2 n) + 2 hybrid runs;
#   torch     the PyTorch port: float32 within the float32 profile; bfloat16 (autocast) judged by
#             the bfloat16 profile and reported as it is, with the comparator's diagnosis;
#   sweep     wb sweep --port over 6 held-out clips in 2 shards (nano model), merged, equals the
#             unsharded run.
# Usage: ports_cli_test.sh WB SOURCE_DIR WORK_DIR PYTHON CASE
set -euo pipefail
wb=$1 src=$2 work=$3 py=$4 case=$5
. "$src/scripts/skip.sh"
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "ports_cli_test ($case): FAIL: $*" >&2; exit 1; }
model=$src/fixtures/trained clip=$src/fixtures/heldout/clip000.flac
f32=$src/fixtures/profiles/float32.json
numpy="$py $src/scripts/ports/numpy_port.py"
ref() { "$wb" dump --impl reference --model "$model" --audio "$clip" --threads 1 -o ref.h5 > /dev/null; }
nano=$src/fixtures/models/nano-hf
# first_tap REPORT.json: the first divergent tap ("" when none)
first_tap() {
  "$py" -c 'import json,sys; fd=json.load(open(sys.argv[1])).get("first_divergence"); print(fd["tap"] if fd else "")' "$1"
}

case $case in
clean)
  ref
  "$wb" dump --port "$numpy" --model "$model" --audio "$clip" -o clean.h5 --timing 2> run.timing > /dev/null
  "$wb" compare ref.h5 clean.h5 --profile "$f32" > clean.txt || { cat clean.txt; fail "clean numpy port outside the float32 profile"; }
  s=0; "$wb" replay ref.h5 --port "$numpy" --model "$model" --audio "$clip" --profile "$f32" --timing \
    > replay.txt 2> replay.timing || s=$?
  [ $s = 0 ] || { cat replay.txt replay.timing; fail "clean replay: exit $s"; }
  echo "ports_cli_test: clean: $(head -1 clean.txt)"
  echo "ports_cli_test: run overhead:"; cat run.timing
  echo "ports_cli_test: replay overhead:"; cat replay.timing
  ;;
power-to-db|attn-scale@1|ln-f16@0|no-ln-post)
  declare -A tap=([power-to-db]=mel [attn-scale@1]=encoder.blocks.1.attn.out
                  [ln-f16@0]=encoder.blocks.0.attn_ln [no-ln-post]=encoder.ln_post)
  declare -A stage=([power-to-db]=frontend [attn-scale@1]="block 1" [ln-f16@0]="block 0"
                    [no-ln-post]=ln_post)
  model=$nano
  ref
  port="$numpy --bug $case"
  "$wb" dump --port "$port" --model "$model" --audio "$clip" -o bug.h5 > /dev/null
  s=0; "$wb" compare ref.h5 bug.h5 --profile "$f32" --report rep --format json > cmp.txt || s=$?
  [ $s = 1 ] || { cat cmp.txt; fail "compare exit $s, expected 1"; }
  got=$(first_tap rep/report.json)
  [ "$got" = "${tap[$case]}" ] || fail "first divergent tap $got, expected ${tap[$case]}"
  s=0; "$wb" replay ref.h5 --port "$port" --model "$model" --audio "$clip" --profile "$f32" > replay.txt 2>&1 || s=$?
  [ $s = 1 ] || { cat replay.txt; fail "replay exit $s, expected 1"; }
  grep -q "^culprit: ${stage[$case]}$" replay.txt || { cat replay.txt; fail "replay culprit is not ${stage[$case]}"; }
  s=0; "$wb" bisect-layers --port "$port" --model "$model" --audio "$clip" --profile "$f32" > bisect.txt 2>&1 || s=$?
  [ $s = 1 ] || { cat bisect.txt; fail "bisect-layers exit $s, expected 1"; }
  line=$(grep "^culprit: " bisect.txt) || { cat bisect.txt; fail "bisect-layers named no culprit"; }
  [[ $line == "culprit: ${stage[$case]} ("* ]] || fail "bisect-layers: $line"
  runs=$(sed -n 's/^culprit: .* (\([0-9]*\) hybrid runs.*/\1/p' bisect.txt)
  n=$(( $(sed -n 's/^stages: //p' bisect.txt | tr ',' '\n' | wc -l) ))
  bound=$("$py" -c "import math; print(math.ceil(math.log2($n)) + 2)")
  [ "$runs" -le "$bound" ] || fail "$runs hybrid runs, more than ceil(log2 $n) + 2 = $bound"
  echo "ports_cli_test: $case: first tap $got; replay culprit ${stage[$case]}; $line (bound $bound)"
  ;;
torch)
  "$py" -c 'import torch' 2>/dev/null || wb_skip software "$py cannot import torch (python3-torch)"
  ref
  torch_port="$py $src/scripts/ports/torch_port.py --threads 1"
  "$wb" dump --port "$torch_port" --model "$model" --audio "$clip" -o t32.h5 > /dev/null
  "$wb" compare ref.h5 t32.h5 --profile "$f32" > t32.txt || { cat t32.txt; fail "torch float32 outside the float32 profile"; }
  "$wb" dump --port "$torch_port --precision bfloat16" --model "$model" --audio "$clip" -o tbf.h5 > /dev/null
  s=0; "$wb" compare ref.h5 tbf.h5 --report tbf --format json,md > tbf.txt || s=$?
  [ $s -le 1 ] || { cat tbf.txt; fail "torch bfloat16 compare exit $s"; }
  "$py" - tbf/report.json "$s" <<'PY' || fail "the bfloat16 verdict"
import json, sys
r = json.load(open(sys.argv[1]))
assert "bfloat16" in r["profile"], ("judged by", r["profile"])  # the port declared bfloat16
print(f"ports_cli_test: torch bfloat16: {r['verdict'].upper()} (exit {sys.argv[2]}), profile {r['profile']}")
fd = r.get("first_divergence")
if fd:
    print(f"  first divergent tap {fd['tap']}: {fd.get('hint') or fd.get('diagnosis') or ''}")
PY
  echo "ports_cli_test: torch float32: $(head -1 t32.txt)"
  ;;
sweep)
  model=$nano
  mkdir clips
  for i in 000 001 002 003 004 005; do cp "$src/fixtures/heldout/clip$i.flac" clips/; done
  grep -E '^clip00[0-5]\.flac' "$src/fixtures/heldout/expect.tsv" > expect.tsv
  common=(--port "$numpy" --model "$model" --audio-dir clips --expect-file expect.tsv --threads 1
          --profile "$f32" --ref-cache cache -q)
  "$wb" sweep "${common[@]}" --out full > /dev/null || fail "unsharded sweep: exit $?"
  for k in 0 1; do "$wb" sweep "${common[@]}" --out sharded --shard $k/2 > /dev/null || fail "shard $k: exit $?"; done
  "$wb" merge-reports sharded -q || fail "merge-reports: exit $?"
  "$py" - full/report.json sharded/report.json <<'PY' || fail "the merged report differs from the unsharded one"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for r in (a, b):
    r.pop("run", None)
assert a == b, [k for k in a if a[k] != b.get(k)]
s = a["summary"]
assert s["clips"] == 6 and s["compared"] == 6 and s["failed"] == 0, s
print("ports_cli_test: sweep: 6 clips, 2 shards merged = unsharded;", s)
PY
  ;;
*) fail "unknown case" ;;
esac
