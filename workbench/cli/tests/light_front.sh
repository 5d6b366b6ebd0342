#!/usr/bin/env bash
# The comparator-only build (WB_WITH_ENCODERS=OFF): wb runs its own commands, links no encoder
# library, and an encoder command is one line and exit 2 naming the missing wb-engine.
# Usage: light_front.sh WB SOURCE_DIR
set -euo pipefail
wb=$1 src=$2
fail() { echo "light_front: FAIL: $*" >&2; exit 1; }
if ldd "$wb" | grep -E -i 'torch|dnnl|cuda|cublas|cufft'; then fail "wb links an encoder library"; fi
"$wb" taps --dims nano > /dev/null || fail "wb taps"
"$wb" faults > /dev/null || fail "wb faults"
s=0; "$wb" dump --impl reference --model "$src/fixtures/models/nano-hf" \
  --audio "$src/fixtures/audio/hello.wav" -o /dev/null 2> dump.err || s=$?
[ "$s" = 2 ] || fail "wb dump in a build without encoders: exit $s, expected 2"
[ "$(wc -l < dump.err)" = 1 ] && grep -q "runs an encoder and this build has none" dump.err ||
  fail "wb dump: $(cat dump.err)"
"$wb" --help | grep -q "Commands that run an encoder" || fail "wb --help does not list them"
echo "light_front: PASS ($(cat dump.err))"
