#!/usr/bin/env bash
# `wb run` on the trained fixture model and fixtures/heldout/expect.tsv:
# - the reference transcribes the first 30 held-out clips (a fixed prefix of the list, not chosen
#   by result) with WER <= 10% (measured: 3.91% on these 30, 9 errors in 230 words, and 3.91% on
#   all 120), and every clip's `seconds` include its decode;
# - the float32 candidate gives the reference's transcripts on the first 10 of them;
# - a candidate without ln_post damages the transcripts of the first 4 (WER above 50%: exit 1).
# Usage: run_test.sh WB_BINARY SOURCE_DIR
set -uo pipefail
wb=$1; src=$2
. "$(dirname "$0")/lib.sh"
run() { "$wb" run --model "$src/fixtures/trained" --audio-dir "$src/fixtures/heldout" \
          --expect-file "$src/fixtures/heldout/expect.tsv" "$@"; }

run --limit 30 --quiet --max-wer 0.10 --report "$tmp/ref.json" > "$tmp/ref.out"; rc=$?
cat "$tmp/ref.out"
[ "$rc" = 0 ] && ok "reference WER <= 10% on the first 30 held-out clips" || bad "reference run exit $rc"
grep -q '^reference: 30 clips' "$tmp/ref.out" && ok "30 clips transcribed" || bad "not 30 clips"
# Per-clip seconds = mel + encoder + decode; a decode of a few tokens takes well over 1 ms.
n_dec=$(grep -cE '"seconds_decode": [0-9.e-]+' "$tmp/ref.json")
n_zero=$(grep -cE '"seconds_decode": (0\.0|0|[0-9.]+e-0[4-9])[,}]?$' "$tmp/ref.json")
[ "$n_dec" = 30 ] && [ "$n_zero" = 0 ] && ok "every clip's seconds include its decode" \
  || bad "seconds_decode: $n_dec clips, $n_zero under 1 ms"
run --limit 10 --quiet --impl candidate --reference-report "$tmp/ref.json" --min-agreement 1.0 --max-wer 0.10; rc=$?
[ "$rc" = 0 ] && ok "candidate float32: the reference's transcripts on the first 10 clips" || bad "candidate run exit $rc"
run --limit 4 --quiet --impl candidate --fault no-ln-post --reference-report "$tmp/ref.json" --max-wer 0.5 --max-tokens 60; rc=$?
[ "$rc" = 1 ] && ok "candidate without ln_post: WER above 50%, exit 1" || bad "no-ln-post run exit $rc (want 1)"
finish
