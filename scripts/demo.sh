#!/usr/bin/env bash
# The main job end to end on the bundled fixtures: set-up and build, then for the trained model
# and a held-out clip: the float32 reference dump, the float64 noise floor, the float32 CPU
# candidate, a candidate with a real porting bug (no ln_post), comparisons with reports, and
# transcripts. Prints where everything went.
# Usage: scripts/demo.sh [OUTPUT_DIR]     (default: demo-out/)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/bin:/bin:$PATH
out=$(realpath -m "${1:-$here/demo-out}")
"$here/scripts/setup.sh"
wb="$here/build/wb"
model="$here/fixtures/trained"
clip="$here/fixtures/heldout/$(head -1 "$here/fixtures/heldout/expect.tsv" | cut -f1)"
mkdir -p "$out"
echo "== model $model, clip $clip"
"$wb" dump --impl reference --model "$model" --audio "$clip" -o "$out/ref.h5"
"$wb" dump --impl reference --dtype float64 --store float64 --model "$model" --audio "$clip" -o "$out/ref64.h5" --no-decode
"$wb" dump --impl candidate --model "$model" --audio "$clip" -o "$out/cand.h5"
"$wb" dump --impl candidate --fault no-ln-post --model "$model" --audio "$clip" -o "$out/cand-no-ln-post.h5"
set +e
"$wb" compare "$out/ref.h5" "$out/cand.h5" --floor "$out/ref64.h5" \
  --profile "$here/fixtures/profiles/float32.json" --report "$out/report-candidate" --format md,json,html,junit
rc_ok=$?
"$wb" compare "$out/ref.h5" "$out/cand-no-ln-post.h5" --floor "$out/ref64.h5" \
  --profile "$here/fixtures/profiles/float32.json" --report "$out/report-no-ln-post" --format md,json,html,junit
rc_bug=$?
set -e
echo
echo "expected text: $(head -1 "$here/fixtures/heldout/expect.tsv" | cut -f2)"
echo "candidate float32 vs reference: exit $rc_ok (0 = within tolerance)"
echo "candidate with --fault no-ln-post: exit $rc_bug (1 = tolerance exceeded, as it should be)"
echo "outputs in $out: ref.h5 ref64.h5 cand.h5 cand-no-ln-post.h5, reports in report-candidate/ and report-no-ln-post/ (report.md, report.json, report.html, junit.xml; manifest.json, written last, lists the set)"
[ "$rc_ok" = 0 ] && [ "$rc_bug" = 1 ]
