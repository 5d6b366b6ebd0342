#!/usr/bin/env bash
# Input casts: a port whose mel is the reference's mel rounded to bfloat16 (the cast of the input
# to the compute type every bfloat16 PyTorch user makes) passes with a note naming the rounding,
# not a front-end failure; so does a float16 cast, and a bfloat16 rounding off by one unit in the
# last place (truncation). A real front-end bug under the same cast (the candidate's mel-db fault,
# its mel rounded to bfloat16) still fails at mel with the front-end diagnosis. The port dumps are
# written through the Python writer: the candidate's reduced-precision taps, the mel replaced.
# Nano fixture model, a bundled clip; a few seconds.
#
# Usage: compare/tests/input_cast.sh WB_BINARY [WORKDIR] [PYTHON]
set -euo pipefail
wb=$(realpath "$1")
work=${2:-$(mktemp -d)}
mkdir -p "$work"
here=$(cd "$(dirname "$0")/../.." && pwd)
. "$here/scripts/skip.sh"
# The folder `import wbdump` finds the Python writer in (the one place that names it).
wbdump_path=$here/scripts/wbdump/src
# A python3 with numpy and h5py: PYTHON (CMake's WB_PYTHON), else the first python3 that has them.
py=
for p in ${3:-} python3 /usr/bin/python3; do
  if "$p" -c 'import numpy, h5py' 2> /dev/null; then py=$p; break; fi
done
[ -n "$py" ] || wb_skip software "python3 with numpy and h5py"
profiles=$here/fixtures/profiles
audio=$here/fixtures/audio/hello.wav
"$wb" fixture-model --dims nano -o "$work/model" > /dev/null
dump() {  # dump OUT ARGS...
  local out=$1; shift
  "$wb" dump --model "$work/model" --audio "$audio" -o "$out" --no-decode --taps encoder "$@" > /dev/null
}
dump "$work/ref.h5" --impl reference
dump "$work/ref64.h5" --impl reference --dtype float64
dump "$work/bf16.h5" --impl candidate --precision bfloat16
dump "$work/f16.h5" --impl candidate --precision float16
dump "$work/bf16-meldb.h5" --impl candidate --precision bfloat16 --fault mel-db
# port OUT SOURCE MEL_FROM ROUNDING: SOURCE's taps through DumpWriter, its mel replaced by
# MEL_FROM's mel rounded (bf16: to nearest even; bf16-trunc: toward zero; f16: numpy's float16).
port() {
  PYTHONPATH=$wbdump_path "$py" - "$@" <<'PY'
import sys
import h5py, numpy as np, wbdump
out, source, mel_from, rounding = sys.argv[1:5]

def bits(x):
    return np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)

def bf16(x):  # round to nearest, ties to even, on the float32 bits
    u = bits(x)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)

def bf16_trunc(x):
    return (bits(x) >> 16 << 16).astype(np.uint32).view(np.float32)

cast = {"bf16": bf16, "bf16-trunc": bf16_trunc,
        "f16": lambda x: np.asarray(x, np.float32).astype(np.float16).astype(np.float32)}[rounding]
src = wbdump.open_dump(source)
mel = cast(wbdump.open_dump(mel_from).read("mel", np.float32))
dtype = "float16" if rounding == "f16" else "bfloat16"
with wbdump.DumpWriter(out, implementation="port " + rounding, precision=dtype,
                       dims=src.dims, model_sha256=src.attrs["model_sha256"]) as w:
    for name in src.names():
        if name == "mel":
            w.add(name, mel, compute_dtype=dtype)
        else:
            w.add(name, src.read(name, np.float32), compute_dtype=dtype)
PY
}
port "$work/port-bf16.h5" "$work/bf16.h5" "$work/ref.h5" bf16
port "$work/port-bf16-trunc.h5" "$work/bf16.h5" "$work/ref.h5" bf16-trunc
port "$work/port-f16.h5" "$work/f16.h5" "$work/ref.h5" f16
port "$work/port-bf16-meldb.h5" "$work/bf16-meldb.h5" "$work/bf16-meldb.h5" bf16
failures=0
# check NAME WANT_RC WANT_VERDICT WANT_FIRST_TAP WANT_ROUNDED WANT_PROFILE WANT_HINT CAND [ARGS...]
check() {
  local name=$1 want_rc=$2 want_verdict=$3 want_tap=$4 want_rounded=$5 want_profile=$6
  local want_hint=$7 cand=$8
  shift 8
  set +e
  "$wb" compare "$work/ref.h5" "$cand" -q --report "$work/r-$name" --format json,md "$@"
  local rc=$?
  set -e
  local got
  got=$("$py" - "$work/r-$name" "$want_hint" <<'PY'
import json, sys
j = json.load(open(sys.argv[1] + "/report.json"))
mel = next(t for t in j["taps"] if t["name"] == "mel")
fd = j["first_divergence"]
hints = "\n".join(j["hints"])
md = open(sys.argv[1] + "/report.md").read()
print(j["verdict"], fd["tap"] if fd else "-", mel.get("rounded_to") or "-", j["profile"],
      "%.3g" % mel["metrics"]["rel_l2"], sys.argv[2] in hints and sys.argv[2] in md)
PY
)
  read -r verdict tap rounded profile rel hint_ok <<< "$got"
  local ok=yes
  { [ "$rc" = "$want_rc" ] && [ "$verdict" = "$want_verdict" ] && [ "$tap" = "$want_tap" ] &&
    [ "$rounded" = "$want_rounded" ] && [ "$profile" = "$want_profile" ] && [ "$hint_ok" = True ]; } || { ok=NO; failures=$((failures + 1)); }
  echo "| $name | exit $rc (want $want_rc) | $verdict (want $want_verdict) | first fail $tap (want $want_tap) | mel rel L2 $rel, rounded to $rounded (want $want_rounded) | $profile (want $want_profile) | $ok |"
}
cast_note="the reference's values rounded to bfloat16"
echo "| case | exit | verdict | first divergent tap | mel | profile | ok |"
echo "|---|---|---|---|---|---|---|"
check bf16-cast 0 pass - bfloat16 bfloat16 \
  "$cast_note: an input cast, not a front-end bug (every element exactly" \
  "$work/port-bf16.h5" --profile "$profiles/bfloat16.json"
# Without --profile: the port's declared precision (bfloat16) chooses the bfloat16 profile.
check bf16-cast-default 0 pass - bfloat16 bfloat16 "$cast_note" "$work/port-bf16.h5"
check bf16-cast-floor 0 pass - bfloat16 bfloat16 "$cast_note" "$work/port-bf16.h5" \
  --profile "$profiles/bfloat16.json" --floor "$work/ref64.h5"
check bf16-trunc 0 pass - bfloat16 bfloat16 "$cast_note: an input cast, not a front-end bug (every element within one bfloat16 unit" \
  "$work/port-bf16-trunc.h5" --profile "$profiles/bfloat16.json"
check f16-cast 0 pass - float16 float16 "the reference's values rounded to float16" \
  "$work/port-f16.h5"
check bf16-mel-db 1 fail mel - bfloat16 "mel differs: fix the front end first" \
  "$work/port-bf16-meldb.h5"
echo "input casts: $failures failing case(s); reports under $work"
exit $((failures > 0))
