#!/usr/bin/env bash
# One training run on a GPU host (from the repository root, with the espeak-ng bundle of
# espeak_bundle.sh in .dev/espeak; see scripts/train/README.md):
#   bash scripts/train/run_gpu.sh TRAIN_SECONDS [train.py args...]
# Synthesizes training shards with all but two CPU cores while train.py trains on the GPU,
# then puts the log, eval.json and the exported model (tar, split in 15 MB parts) under $OUT.
set -uo pipefail
secs=${1:-480}; shift || true
out=${OUT:-/tmp/out}
w=$(mktemp -d /tmp/wb-train.XXXXXX)
mkdir -p "$out"
export PYTHONUNBUFFERED=1
espeak=.dev/espeak/run.sh
"$espeak" -v en-us -w $w/probe.wav "probe" || { echo "espeak-ng bundle does not run"; exit 1; }
workers=$(( $(nproc) - 2 ))
python3 scripts/train/gen_data.py --espeak "$espeak" shards --out $w/shards --n-shards 2000 \
  --shard-size 200 --workers "$workers" --deadline $(( $(date +%s) + secs + 60 )) > "$out/gen.log" 2>&1 &
gen=$!
python3 scripts/train/train.py --shards $w/shards --out $w/result --ckpt .dev/ckpt.pt \
  --train-seconds "$secs" "$@" 2>&1 | tee "$out/train.log"
rc=${PIPESTATUS[0]}
kill "$gen" 2>/dev/null; pkill -P "$gen" 2>/dev/null
ls $w/shards | wc -l | sed 's/^/shards written: /' >> "$out/gen.log"
if [ -d $w/result/model ]; then
  cp $w/result/eval.json "$out/"
  tar -C $w/result -cf $w/model.tar model
  split -b 15M -d $w/model.tar "$out/model.tar.part"
fi
exit $rc
