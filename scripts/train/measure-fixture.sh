#!/usr/bin/env bash
# Re-measures every figure the docs quote for the trained fixture model (docs/worked-example.md,
# docs/sweep.md, README "What was measured"), from scratch, into OUT (default /tmp/fixture-figures):
#   1. wb run, reference, 120 held-out clips               -> ref.json (WER, S/D/I, exact clips)
#   2. wb run, candidate float32 vs those transcripts      -> cand.json (agreement, cosine)
#   3. clip000 dumps: reference and candidate with each of none, no-ln-post, mel-db,
#      attn-scale=double; wb compare of each              -> compare-<fault>.json
#   4. the three faults on the first 5 clips, 100-token cap -> fault-<fault>.json
#   5. wb sweep, candidate float32, all taps, 2 shards + merge -> sweep/ (ln_post worst, 120/120)
#   6. summary.txt: the tables' numbers, printed from the JSON files above
# Usage: scripts/train/measure-fixture.sh [OUT]      (build/wb must exist)
# Measured: 12 min wall on the 2-core AMD EPYC (Zen 5) at load average 8 from other jobs.
set -euo pipefail
here=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-/tmp/fixture-figures}
wb=$here/build/wb
[ -x "$wb" ] || { echo "measure-fixture: $wb not built (run scripts/setup.sh)" >&2; exit 2; }
export PATH=/usr/bin:/bin:$PATH
mkdir -p "$out"
m=$here/fixtures/trained; d=$here/fixtures/heldout; e=$d/expect.tsv
clip=$d/$(head -1 "$e" | cut -f1)
faults=(no-ln-post mel-db attn-scale=double)
log() { echo "[$(date -u +%H:%M:%S)] $*"; }

log "1. reference, 120 clips"
"$wb" run --model "$m" --audio-dir "$d" --expect-file "$e" --threads 1 --report "$out/ref.json" >"$out/ref.txt"
log "2. candidate float32, 120 clips"
"$wb" run --model "$m" --audio-dir "$d" --expect-file "$e" --threads 1 --impl candidate \
  --reference-report "$out/ref.json" --report "$out/cand.json" --min-agreement 0.99 >"$out/cand.txt"
log "3. clip000 dumps and compares"
"$wb" dump --model "$m" --audio "$clip" -o "$out/ref.h5" --taps encoder --no-decode --threads 1
for f in none "${faults[@]}"; do
  args=(); [ "$f" = none ] || args=(--fault "$f")
  "$wb" dump --model "$m" --audio "$clip" -o "$out/cand-$f.h5" --taps encoder --no-decode \
    --impl candidate --threads 1 "${args[@]}"
  "$wb" compare "$out/ref.h5" "$out/cand-$f.h5" --report "$out/compare-$f" --format json,md \
    >/dev/null || true  # exit 1 is the expected verdict for the faults
done
log "4. faults on the first 5 clips, 100-token cap"
for f in "${faults[@]}"; do
  "$wb" run --model "$m" --audio-dir "$d" --expect-file "$e" --threads 1 --impl candidate \
    --fault "$f" --limit 5 --max-tokens 100 --reference-report "$out/ref.json" \
    --report "$out/fault-$f.json" >/dev/null || true  # disagreement exits non-zero by design
done
log "5. sweep, 2 shards"
rm -rf "$out/sweep"
for k in 0 1; do
  "$wb" sweep --model "$m" --audio-dir "$d" --expect-file "$e" --impl candidate --precision float32 \
    --threads 1 --quiet --out "$out/sweep" --shard $k/2 &
done
wait
"$wb" merge-reports "$out/sweep"
log "6. summary"
python3 "$here/scripts/train/fixture_summary.py" "$out" "$d/meta.tsv" | tee "$out/summary.txt"
