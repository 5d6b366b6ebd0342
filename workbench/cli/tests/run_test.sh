#!/usr/bin/env bash
# `wb run` on the trained fixture model and fixtures/heldout/expect.tsv:
# - the reference transcribes the first 30 held-out clips (a fixed prefix of the list, not chosen
#   by result) with WER <= 10% (measured: 3.91% on these 30, 9 errors in 230 words, and 3.91% on
#   all 120), and every clip's `seconds` include its decode;
# - the float32 candidate gives the reference's transcripts on the first 10 of them;
# - a candidate without ln_post damages the transcripts of the first 4 (WER above 50%: exit 1).
# Usage: run_test.sh WB_BINARY SOURCE_DIR [REF_CLIPS]
# REF_CLIPS (default 30): the sanitizer build passes 10, and then the candidate runs on the first
# 4 and the fault on the first 2: the same code paths at a third of the time (10 of the first 30
# clips: 2.35% WER, 2 errors in 85 words, against the same 10% bound).
set -uo pipefail
wb=$1; src=$2; n_ref=${3:-30}
n_cand=10; n_fault=4
[ "$n_ref" -lt 30 ] && { n_cand=4; n_fault=2; }
. "$(dirname "$0")/lib.sh"
run() { "$wb" run --model "$src/fixtures/trained" --audio-dir "$src/fixtures/heldout" \
          --expect-file "$src/fixtures/heldout/expect.tsv" "$@"; }

run --limit "$n_ref" --quiet --max-wer 0.10 --report "$tmp/ref.json" > "$tmp/ref.out"; rc=$?
cat "$tmp/ref.out"
[ "$rc" = 0 ] && ok "reference WER <= 10% on the first $n_ref held-out clips" || bad "reference run exit $rc"
grep -q "^reference: $n_ref clips" "$tmp/ref.out" && ok "$n_ref clips transcribed" || bad "not $n_ref clips"
# Per-clip seconds = mel + encoder + decode; a decode of a few tokens takes well over 1 ms.
n_dec=$(grep -cE '"seconds_decode": [0-9.e-]+' "$tmp/ref.json")
n_zero=$(grep -cE '"seconds_decode": (0\.0|0|[0-9.]+e-0[4-9])[,}]?$' "$tmp/ref.json")
[ "$n_dec" = "$n_ref" ] && [ "$n_zero" = 0 ] && ok "every clip's seconds include its decode" \
  || bad "seconds_decode: $n_dec clips, $n_zero under 1 ms"
run --limit "$n_cand" --quiet --impl candidate --reference-report "$tmp/ref.json" --min-agreement 1.0 --max-wer 0.10; rc=$?
[ "$rc" = 0 ] && ok "candidate float32: the reference's transcripts on the first $n_cand clips" || bad "candidate run exit $rc"
run --limit "$n_fault" --quiet --impl candidate --fault no-ln-post --reference-report "$tmp/ref.json" --max-wer 0.5 --max-tokens 60; rc=$?
[ "$rc" = 1 ] && ok "candidate without ln_post: WER above 50%, exit 1" || bad "no-ln-post run exit $rc (want 1)"
finish
