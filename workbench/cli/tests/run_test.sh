#!/usr/bin/env bash
# `wb run` on the trained fixture model and the 4 smoke clips of fixtures/heldout: the reference
# transcribes them (WER <= 10%), the float32 candidate gives the reference's transcripts on every
# clip, and a candidate without ln_post damages the transcripts (WER above 50%: exit 1).
# Usage: run_test.sh WB_BINARY SOURCE_DIR
set -uo pipefail
wb=$1; src=$2
. "$(dirname "$0")/lib.sh"
run() { "$wb" run --model "$src/fixtures/trained" --audio-dir "$src/fixtures/heldout" \
          --expect-file "$src/fixtures/heldout/expect-smoke.tsv" "$@"; }

run --max-wer 0.10 --report "$tmp/ref.json"; rc=$?
[ "$rc" = 0 ] && ok "reference WER <= 10% on the smoke clips" || bad "reference run exit $rc"
run --impl candidate --reference-report "$tmp/ref.json" --min-agreement 1.0 --max-wer 0.10; rc=$?
[ "$rc" = 0 ] && ok "candidate float32: the reference's transcripts on every clip" || bad "candidate run exit $rc"
run --impl candidate --fault no-ln-post --reference-report "$tmp/ref.json" --max-wer 0.5 --max-tokens 60; rc=$?
[ "$rc" = 1 ] && ok "candidate without ln_post: WER above 50%, exit 1" || bad "no-ln-post run exit $rc (want 1)"
finish
