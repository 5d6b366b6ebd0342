#!/usr/bin/env bash
# One training run on the GPU machine (called through the device `run` tool from the repo root,
# with .dev6/espeak carried; see scripts/train/README.md):
#   bash scripts/train/run_gpu.sh TRAIN_SECONDS [train.py args...]
# Synthesizes training shards with all but two CPU cores while train.py trains on the GPU,
# then puts the log, eval.json and the exported model (tar, split in 15 MB parts) under $OUT.
set -uo pipefail
secs=${1:-480}; shift || true
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/wb6
export PYTHONUNBUFFERED=1
espeak=.dev6/espeak/run.sh
"$espeak" -v en-us -w /tmp/wb6/probe.wav "probe" || { echo "espeak-ng bundle does not run"; exit 1; }
workers=$(( $(nproc) - 2 ))
python3 scripts/train/gen_data.py --espeak "$espeak" shards --out /tmp/wb6/shards --n-shards 2000 \
  --shard-size 200 --workers "$workers" --deadline $(( $(date +%s) + secs + 60 )) > "$out/gen.log" 2>&1 &
gen=$!
python3 scripts/train/train.py --shards /tmp/wb6/shards --out /tmp/wb6/result --ckpt .dev6/ckpt.pt \
  --train-seconds "$secs" "$@" 2>&1 | tee "$out/train.log"
rc=${PIPESTATUS[0]}
kill "$gen" 2>/dev/null; pkill -P "$gen" 2>/dev/null
ls /tmp/wb6/shards | wc -l | sed 's/^/shards written: /' >> "$out/gen.log"
if [ -d /tmp/wb6/result/model ]; then
  cp /tmp/wb6/result/eval.json "$out/"
  tar -C /tmp/wb6/result -cf /tmp/wb6/model.tar model
  split -b 15M -d /tmp/wb6/model.tar "$out/model.tar.part"
fi
exit $rc
