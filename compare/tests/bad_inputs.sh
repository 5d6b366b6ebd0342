#!/usr/bin/env bash
# Bad inputs to `wb compare`: each must exit 2 with exactly one line on stderr.
# Usage: compare/tests/bad_inputs.sh WB_BINARY [WORKDIR]
set -uo pipefail
. "$(dirname "$0")/../../scripts/skip.sh"
wb=$(realpath "$1")
work=${2:-$(mktemp -d)}
mkdir -p "$work"
here=$(cd "$(dirname "$0")/../.." && pwd)
audio="$here/fixtures/audio/hello.wav"

# A python3 with h5py (Debian's python3-h5py; a pyenv shim may come first on PATH).
py=""
for c in /usr/bin/python3 python3; do
  if "$c" -c "import h5py" 2> /dev/null; then py=$c; break; fi
done
[ -n "$py" ] || wb_skip software "no python3 with h5py (scripts/packages.txt: python3-h5py)"

set -e
"$wb" fixture-model --dims nano -o "$work/model" > /dev/null
"$wb" fixture-model --dims nano --seed 99 -o "$work/model2" > /dev/null
"$wb" dump --model "$work/model" --audio "$audio" -o "$work/ref.h5" --no-decode --taps encoder --impl reference > /dev/null
"$wb" dump --model "$work/model" --audio "$audio" -o "$work/cand.h5" --no-decode --taps encoder --impl candidate > /dev/null
"$wb" dump --model "$work/model2" --audio "$audio" -o "$work/other.h5" --no-decode --taps encoder --impl reference > /dev/null

"$py" - "$work" <<'EOF'
import shutil, sys, h5py, numpy as np
w = sys.argv[1]
with h5py.File(f"{w}/foreign.h5", "w") as f:          # an HDF5 file of someone else's
    f.create_dataset("data", data=np.zeros((4, 4), np.float32))
shutil.copy(f"{w}/ref.h5", f"{w}/incomplete.h5")       # a dump whose writer died
with h5py.File(f"{w}/incomplete.h5", "a") as f:
    del f.attrs["complete"]
shutil.copy(f"{w}/cand.h5", f"{w}/shape.h5")          # a registry tap whose shape disagrees with the dims
with h5py.File(f"{w}/shape.h5", "a") as f:
    rows, cols = f["taps/encoder.conv1"].shape
    del f["taps/encoder.conv1"]
    f.create_dataset("taps/encoder.conv1", data=np.zeros((rows, cols - 1), np.float32))
shutil.copy(f"{w}/cand.h5", f"{w}/typo.h5")           # a tap name outside the registry
with h5py.File(f"{w}/typo.h5", "a") as f:
    f["taps"].move("encoder.blocks.0.attn_ln", "encoder.blocks.0.atn_ln")
EOF
printf 'not an hdf5 file\n' > "$work/text.h5"
printf '{"fail": {"rel_l2": {"max": 1e-4}' > "$work/truncated.json"
printf '{"fail": {"rel_l3": {"max": 1e-4}}}' > "$work/unknown-metric.json"
printf '{"model.encoder.layers.{i}.fc9": "encoder.blocks.{i}.mlp.fc9"}' > "$work/bad-map.json"
set +e

failures=0
check() {  # check DESCRIPTION FRAGMENT ARGS...: exit 2, one stderr line containing FRAGMENT
  local what=$1 frag=$2; shift 2
  "$wb" compare "$@" > "$work/out" 2> "$work/err"
  local rc=$? lines
  lines=$(wc -l < "$work/err")
  if [ "$rc" = 2 ] && [ "$lines" = 1 ] && grep -qF -- "$frag" "$work/err"; then
    printf 'ok    %-34s exit %s: %s\n' "$what" "$rc" "$(cat "$work/err")"
  else
    printf 'FAIL  %-34s exit %s, %s stderr line(s), wanted exit 2 and "%s":\n' "$what" "$rc" "$lines" "$frag"
    cat "$work/err"
    failures=$((failures + 1))
  fi
}
check "foreign HDF5"                   "not a whisper-fidelity dump"                        "$work/ref.h5" "$work/foreign.h5"
check "dump missing 'complete'"        "dump is incomplete"                                 "$work/incomplete.h5" "$work/cand.h5"
check "different models"               "dumps of different models"                          "$work/ref.h5" "$work/other.h5"
check "map naming unknown taps"        "to unknown tap"                                     "$work/ref.h5" "$work/cand.h5" --map "$work/bad-map.json"
check "malformed profile (JSON)"       "not valid JSON"                                     "$work/ref.h5" "$work/cand.h5" --profile "$work/truncated.json"
check "profile: unknown metric"        "unknown metric 'rel_l3'"                            "$work/ref.h5" "$work/cand.h5" --profile "$work/unknown-metric.json"
check "missing profile file"           "cannot open"                                        "$work/ref.h5" "$work/cand.h5" --profile "$work/nope.json"
check "tap shape vs dims"              "encoder.conv1"                                      "$work/ref.h5" "$work/shape.h5"
check "tap name outside the registry"  "'encoder.blocks.0.atn_ln' is not in the registry"   "$work/ref.h5" "$work/typo.h5"
check "not HDF5 at all"                "not an HDF5 file"                                   "$work/text.h5" "$work/cand.h5"
check "missing dump"                   "no such file"                                       "$work/ref.h5" "$work/nope.h5"
check "floor not float64"              "--floor expects a float64 run"                      "$work/ref.h5" "$work/cand.h5" --floor "$work/cand.h5"
check "unknown report format"          "unknown format 'pdf'"                               "$work/ref.h5" "$work/cand.h5" --report "$work/rep" --format md,pdf
check "missing argument"               "cand is required"                                   "$work/ref.h5"

# And the good case of --map: the candidate stored under Hugging Face module names
# (fixtures/maps/hf.json, reversed) compares tap for tap once mapped.
"$py" - "$work" "$here/fixtures/maps/hf.json" <<'EOF2'
import json, re, shutil, sys, h5py
w, mp = sys.argv[1], json.load(open(sys.argv[2]))["map"]
inverse = {}
for hf, wb in mp.items():
    inverse[wb] = hf
shutil.copy(f"{w}/cand.h5", f"{w}/cand-hf.h5")
with h5py.File(f"{w}/cand-hf.h5", "a") as f:
    for name in list(f["taps"].keys()):
        m = re.match(r"encoder\.blocks\.(\d+)\.(.*)", name)
        key = f"encoder.blocks.{{i}}.{m.group(2)}" if m else name
        if key in inverse:
            new = inverse[key].replace("{i}", m.group(1)) if m else inverse[key]
            f["taps"].move(name, new)
EOF2
"$wb" compare "$work/ref.h5" "$work/cand-hf.h5" --map "$here/fixtures/maps/hf.json" > "$work/out" 2>&1
rc=$?
if [ "$rc" = 0 ] && grep -q "27 taps compared" "$work/out"; then
  echo "ok    --map fixtures/maps/hf.json         exit 0: $(head -1 "$work/out")"
else
  echo "FAIL  --map fixtures/maps/hf.json: exit $rc"; cat "$work/out"; failures=$((failures + 1))
fi
"$wb" compare "$work/ref.h5" "$work/cand-hf.h5" > "$work/out" 2>&1
rc=$?
if [ "$rc" = 2 ] && grep -q "is not in the registry.*foreign names need --map" "$work/out"; then
  echo "ok    HF names without --map             exit 2: $(cat "$work/out")"
else
  echo "FAIL  HF names without --map: exit $rc"; cat "$work/out"; failures=$((failures + 1))
fi
echo "bad inputs: $failures failure(s)"
exit $((failures > 0))
