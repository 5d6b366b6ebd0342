#!/usr/bin/env bash
# The held-out clips transcribed with the CUDA encoder (docs/gpu.md), in two halves:
#
#   GPU host, from the repository root: scripts/cuda-heldout.sh gpu WB_CUDA_DUMP OUT_DIR PRECISION
#   SHARD NSHARDS
#     Dumps encoder.ln_post (gzip 9) of fixtures/trained for every fixtures/heldout/clip*.* (WAV
#     or FLAC) whose index i has i % NSHARDS == SHARD, and packs the dumps into
#     OUT_DIR/heldout-PRECISION-SHARD-N.tar files under 15 MiB each; shards keep one run's output
#     small (the 120 clips in a few runs, one shard each).
#
#   GPU host with PyTorch and transformers, decoding there (no dumps travel back):
#     scripts/cuda-heldout.sh gpu-decode WB_CUDA_DUMP OUT_DIR PRECISION BATCH
#     Dumps encoder.ln_post of every held-out clip with `--batch BATCH` (BATCH clips a pass),
#     greedy-decodes each with transformers' decoder by the reference decoder's rules
#     (scripts/heldout_decode.py) and writes OUT_DIR/tokens-PRECISION-bBATCH.tsv.
#
#   CPU host:  scripts/cuda-heldout.sh host WB TAR_DIR [WORKDIR]
#     Decodes each dump's encoder.ln_post with the reference decoder (`wb transcribe
#     --encoder-out`), transcribes each clip with the LibTorch reference encoder and decoder
#     (`wb transcribe --tokens`, cached in WORKDIR/ref.tsv) and prints, per precision, how many
#     clips give token-identical transcripts; token files (tokens-*.tsv) in TAR_DIR are compared
#     with the same reference transcripts. Exit 0 when every float32 clip agrees.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mode=${1:-}
if [[ "$mode" == gpu && $# -eq 6 ]]; then
  d=$2 out=$3 p=$4 shard=$5 n=$6
  w=$(mktemp -d)
  mkdir -p "$out"
  i=0
  for clip in fixtures/heldout/clip*.*; do
    if (( i % n == shard )); then
      base=$(basename "${clip%.*}")
      "$d" --model fixtures/trained --audio "$clip" --precision "$p" --compress 9 \
        --taps encoder.ln_post -o "$w/$p-$base.h5" > /dev/null || echo "dump $clip failed"
    fi
    i=$((i + 1))
  done
  python3 scripts/tar_parts.py "$w" "$out" "heldout-$p-$shard"  # run from the repository root
  exit 0
fi
if [[ "$mode" == gpu-decode && $# -eq 5 ]]; then
  d=$2 out=$3 p=$4 b=$5
  w=$(mktemp -d)
  mkdir -p "$out"
  args=()
  for clip in fixtures/heldout/clip*.*; do
    base=$(basename "${clip%.*}")
    args+=(--audio "$clip" -o "$w/$p-$base.h5")
  done
  "$d" --model fixtures/trained --precision "$p" --compress 0 --taps encoder.ln_post \
    --batch "$b" "${args[@]}" > /dev/null || { echo "cuda-heldout: the dumps failed" >&2; exit 1; }
  python3 "$here/scripts/heldout_decode.py" --model fixtures/trained "$w"/*.h5 \
    > "$out/tokens-$p-b$b.tsv" || exit 1
  echo "cuda-heldout: $(wc -l < "$out/tokens-$p-b$b.tsv") clips decoded ($p, batch $b)"
  rm -rf "$w"
  exit 0
fi
if [[ "$mode" != host || $# -lt 3 ]]; then
  echo "usage: $0 gpu WB_CUDA_DUMP OUT_DIR PRECISION SHARD NSHARDS | $0 gpu-decode WB_CUDA_DUMP" \
       "OUT_DIR PRECISION BATCH | $0 host WB TAR_DIR [WORKDIR]" >&2
  exit 2
fi
wb=$(realpath "$2")
tars=$3
work=${4:-$(mktemp -d)}
mkdir -p "$work/d"
for t in "$tars"/heldout-*.tar; do [[ -e "$t" ]] || continue; tar xf "$t" -C "$work/d" || exit 2; done
# Reference transcripts: LibTorch encoder + reference decoder, from the audio.
touch "$work/ref.tsv"
for clip in "$here"/fixtures/heldout/clip*.*; do
  base=$(basename "${clip%.*}")
  grep -q "^$base	" "$work/ref.tsv" && continue
  tokens=$("$wb" transcribe --model "$here/fixtures/trained" --audio "$clip" --tokens |
    sed -n 's/^tokens: //p')
  printf '%s\t%s\n' "$base" "$tokens" >> "$work/ref.tsv"
done
status=0
# The precisions as the build names them (wb info), not listed here.
precisions=$("$wb" info --json | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["precisions"]))') ||
  exit 2
# The dumps decoded here become token files like gpu-decode's (CLIP<TAB>tokens), and every token
# file is compared with the reference transcripts by the one check below.
for p in $precisions; do
  dumps=("$work"/d/$p-clip*.h5)
  [[ -e "${dumps[0]}" ]] || continue
  "$wb" transcribe --model "$here/fixtures/trained" --encoder-out "${dumps[@]}" |
    awk -F'\t' -v p="$p" '{n = split($1, a, "/"); c = a[n]; sub("^" p "-", "", c); sub(/\.h5$/, "", c);
                           print c "\t" $2}' > "$work/tokens-$p.tsv"
  [[ ${PIPESTATUS[0]} = 0 ]] || exit 2
done
for t in "$work"/tokens-*.tsv "$tars"/tokens-*.tsv; do
  [[ -e "$t" ]] || continue
  python3 - "$work/ref.tsv" "$t" <<'EOF' || status=1
import os, sys
ref = dict(l.rstrip("\n").split("\t", 1) for l in open(sys.argv[1]) if l.strip())
rows = [l.rstrip("\n").split("\t", 1) for l in open(sys.argv[2]) if l.strip()]
rows = [(r[0], r[1] if len(r) > 1 else "") for r in rows]
name = os.path.basename(sys.argv[2])[len("tokens-"):-len(".tsv")]
diff = [c for c, toks in rows if ref.get(c) != toks]
missing = sorted(set(ref) - {c for c, _ in rows})
print(f"{name}: {len(rows) - len(diff)}/{len(rows)} clips token-identical to the reference "
      f"transcript" + (f"; differ: {' '.join(diff)}" if diff else "")
      + (f"; not decoded: {len(missing)} ({' '.join(missing[:5])}{' ...' if len(missing) > 5 else ''})"
         if missing else "") + f" (of {len(ref)} clips)")
sys.exit(1 if name.startswith("float32") and (diff or missing) else 0)
EOF
done
exit $status
