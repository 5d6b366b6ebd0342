#!/usr/bin/env bash
# The broken-port suite (docs/ports.md): a port that fails to start, crashes mid-run, hangs past
# --port-timeout, answers a tap outside the registry, a wrong shape or dtype, prints garbage on
# stdout, speaks another protocol version, exits without answering, answers another id, answers
# ok without its file, says it failed, or runs another checkpoint: each is exit 2 with one line
# naming the port and the request, and no output file. A NaN in a tap is a finding, not a
# protocol error (wb compare: exit 1, its NaN accounting). A run-only port gets dump but not
# replay or bisect-layers (exit 2, one line). A sweep that meets a crash on one clip restarts
# the port, compares the other clips, lists the failed one with the port's stderr tail (exit 2).
# The port is tests/fake_port.py: the protocol by hand (json + h5py), answering a dump's taps.
# Usage: broken_ports.sh WB SOURCE_DIR WORK_DIR
set -euo pipefail
wb=$1 src=$2 work=$3
. "$src/scripts/skip.sh"
py=${WB_PYTHON:-/usr/bin/python3}
"$py" -c 'import h5py, numpy' 2>/dev/null || wb_skip software "$py lacks numpy/h5py"
rm -rf "$work" && mkdir -p "$work"
cd "$work"
model=$src/fixtures/models/nano-hf audio=$src/fixtures/audio/hello.wav
fail() { echo "broken_ports: FAIL: $*" >&2; exit 1; }
"$wb" dump --impl reference --model "$model" --audio "$audio" -o ref.h5 --no-decode > /dev/null
port="$py $src/workbench/port/tests/fake_port.py --dump ref.h5"

# The well-behaved fake port: its dump equals the reference tap for tap.
"$wb" dump --port "$port" --model "$model" --audio "$audio" -o good.h5 --no-decode > /dev/null
"$wb" compare ref.h5 good.h5 --profile "$src/fixtures/profiles/float32.json" > /dev/null ||
  fail "the well-behaved port's dump differs from the reference"

# expect_refusal NAME WHAT-THE-LINE-SAYS WB-ARGS...: exit 2, one line naming the port, no output.
expect_refusal() {
  local name=$1 says=$2; shift 2
  local s=0
  rm -f out.h5 out.h5.partial
  timeout 120 "$wb" "$@" > "$name.out" 2> "$name.err" || s=$?
  [ "$s" = 2 ] || { cat "$name.err"; fail "$name: exit $s, expected 2"; }
  [ "$(wc -l < "$name.err")" = 1 ] || { cat "$name.err"; fail "$name: stderr is not one line"; }
  grep -q "port '" "$name.err" || fail "$name: the line does not name the port: $(cat "$name.err")"
  grep -qF -- "$says" "$name.err" || fail "$name: the line lacks '$says': $(cat "$name.err")"
  ls out.h5* > /dev/null 2>&1 && fail "$name: an output file was left behind"
  echo "broken_ports: $name: $(cat "$name.err")"
}
dump=(dump --model "$model" --audio "$audio" -o out.h5 --no-decode)
expect_refusal no-start "hello: exited with status 127" "${dump[@]}" --port "no-such-port-command-xyz"
expect_refusal crash "run (id 1): exited with status 139" "${dump[@]}" --port "$port --misbehave crash"
expect_refusal hang "no answer within 2 s" "${dump[@]}" --port "$port --misbehave hang" --port-timeout 2
expect_refusal exit-silent "exited with status 0 without answering" "${dump[@]}" --port "$port --misbehave exit-silent"
expect_refusal garbage "stdout is not a JSON answer: 'loading weights" "${dump[@]}" --port "$port --misbehave garbage"
expect_refusal bad-tap "tap 'encoder.blocks.99.out': not in the registry" "${dump[@]}" --port "$port --misbehave bad-tap"
expect_refusal bad-shape "tap 'mel': got [3000, 80], expected [80, 3000]" "${dump[@]}" --port "$port --misbehave bad-shape"
expect_refusal bad-dtype "tap 'mel' is not floating point" "${dump[@]}" --port "$port --misbehave bad-dtype"
expect_refusal protocol-2 "hello: speaks protocol 2, this workbench speaks 1" "${dump[@]}" --port "$port --misbehave protocol-2"
expect_refusal error "the port says: CUDA out of memory" "${dump[@]}" --port "$port --misbehave error"
expect_refusal wrong-id "answer to id 1 expected" "${dump[@]}" --port "$port --misbehave wrong-id"
expect_refusal no-output "answered ok but wrote no output file" "${dump[@]}" --port "$port --misbehave no-output"
expect_refusal wrong-model "runs model_sha256 '0000000000000000'" "${dump[@]}" --port "$port --misbehave wrong-model"
"$wb" "${dump[@]}" --port "$port --misbehave wrong-model" --allow-model-mismatch > /dev/null ||
  fail "--allow-model-mismatch did not let the port through"
rm -f out.h5
# A run-only port: dump works, replay and bisect-layers say which request is missing.
"$wb" "${dump[@]}" --port "$port --misbehave no-stage" > /dev/null || fail "run-only port: dump"
rm -f out.h5
expect_refusal replay-run-only "does not implement 'stage' (wb replay needs it" \
  replay ref.h5 --model "$model" --audio "$audio" --port "$port --misbehave no-stage"
expect_refusal bisect-run-only "does not implement 'stage' (wb bisect-layers needs it" \
  bisect-layers --model "$model" --audio "$audio" --port "$port --misbehave no-stage"
# A stage request that fails mid-replay: exit 2, one line naming the stage.
expect_refusal replay-crash "stage block 0 (id 4): exited with status 139" \
  replay ref.h5 --model "$model" --audio "$audio" --port "$port --misbehave crash --on-call 4"

# A NaN in a tap is a finding: the dump is written, wb compare fails it and counts the NaN.
"$wb" "${dump[@]}" --port "$port --misbehave nan" > /dev/null || fail "nan: dump refused"
s=0; "$wb" compare ref.h5 out.h5 --profile "$src/fixtures/profiles/float32.json" \
  --report nan-report --format json > nan.out 2>&1 || s=$?
[ "$s" = 1 ] || { cat nan.out; fail "nan: compare exit $s, expected 1"; }
"$py" - nan-report/report.json <<'PY' || fail "nan: the report does not count the NaN"
import json, sys
r = json.load(open(sys.argv[1]))
t = [t for t in r["taps"] if t["name"] == "encoder.ln_post"][0]
blob = json.dumps(t)
assert '"nan' in blob.lower(), blob[:400]
PY
echo "broken_ports: nan: a finding (compare exit 1, NaN counted)"

# A sweep over three copies of the clip, the port crashing on the second: restarted for the
# third, two clips compared, the crash listed with the port's stderr (exit 2).
mkdir -p clips
for c in a b c; do cp "$audio" "clips/$c.wav"; done
s=0
"$wb" sweep --port "$port --misbehave crash --on-call 2 --state $work/calls" --model "$model" \
  --audio-dir clips --threads 1 --max-tokens 4 --profile "$src/fixtures/profiles/float32.json" \
  --out sweep > sweep.out 2> sweep.err || s=$?
[ "$s" = 2 ] || { cat sweep.err; fail "sweep: exit $s, expected 2"; }
"$py" - sweep/report.json <<'PY' || fail "sweep report"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
assert s["clips"] == 3 and s["compared"] == 2 and s["unreadable"] == 1, s
e = r["errors"][0]
assert e["clip"] == "b.wav" and e["kind"] == "port", e
assert "exited with status 139" in e["message"], e
assert "segmentation fault (simulated)" in e["stderr_tail"], e
print("broken_ports: sweep:", s, "|", e["message"][:100])
PY
echo "broken_ports: all cases PASS"
