#!/usr/bin/env bash
# The sharded sweep on a real scheduler: a one-node Slurm cluster on localhost (local-cluster.sh),
# scripts/slurm/submit-sweep.sh with 3 shards (array job + merge job with afterok, sbatch --wait),
# and the merged report must equal an unsharded `wb sweep` of the same clips (same-report.sh).
#   test-local-cluster.sh slurm WB SOURCE_DIR WORK_DIR
# The same shards under GNU parallel instead of Slurm (no daemons):
#   test-local-cluster.sh parallel WB SOURCE_DIR WORK_DIR
# Clips: the four fixture clips and a truncated WAV (so a shard whose clip is unreadable must
# still count as complete and the merge must run); model: nano. Skips: missing programs via
# wb_skip software (a failure under CI=true); a cluster that cannot start in this container via
# wb_skip hardware with the daemons' own error lines.
set -euo pipefail
mode=$1 wb=$(realpath "$2") src=$(realpath "$3") work=$4
# shellcheck source=../skip.sh
source "$src/scripts/skip.sh"
case $mode in
  slurm) for p in munged slurmctld slurmd sbatch sinfo; do
           command -v "$p" > /dev/null || wb_skip software "$p not installed (Debian: slurm-wlm munge)"
         done ;;
  parallel) command -v parallel > /dev/null || wb_skip software "GNU parallel not installed (Debian: parallel)" ;;
  *) echo "usage: $0 slurm|parallel WB SOURCE_DIR WORK_DIR" >&2; exit 2 ;;
esac
rm -rf "$work" && mkdir -p "$work/audio"
work=$(realpath "$work")
cp "$src"/fixtures/audio/*.wav "$work/audio/"
head -c 300 "$src/fixtures/audio/hello.wav" > "$work/audio/broken.wav"
args=(--model "$src/fixtures/models/nano-hf" --audio-dir "$work/audio" --expect-file "$work/expect.tsv"
      --threads 1 --max-tokens 6 --quiet)
{ cat "$src/fixtures/audio/texts.tsv"; printf 'broken.wav\tnothing\n'; } > "$work/expect.tsv"
s=0; "$wb" sweep "${args[@]}" --out "$work/full" || s=$?
[ $s = 2 ] || { echo "FAIL: unsharded sweep exit $s, expected 2 (one unreadable clip)"; exit 1; }
start=$(date +%s%N)
if [ "$mode" = parallel ]; then
  s=0; parallel --halt never -j 3 "$wb" sweep "${args[@]}" --out "$work/sharded" --shard {}/3 ::: 0 1 2 || s=$?
  # parallel exits with the number of failed jobs: shard 0 holds broken.wav (exit 2), 1 and 2 pass
  [ $s = 1 ] || { echo "FAIL: parallel: $s shards exited non-zero, expected 1 (the unreadable clip's)"; exit 1; }
  s=0; "$wb" merge-reports "$work/sharded" || s=$?
else
  source "$src/scripts/slurm/local-cluster.sh"
  trap wb_cluster_stop EXIT
  if ! wb_cluster_start "$work/cluster"; then
    wb_skip hardware "a one-node Slurm cluster cannot start here: $WB_CLUSTER_ERROR"
  fi
  s=0; WB=$wb bash "$src/scripts/slurm/submit-sweep.sh" 3 "$work/sharded" "${args[@]}" || s=$?
  ls "$work"/sharded/slurm-*_*.out > /dev/null || { echo "FAIL: no array task output"; exit 1; }
  for k in 0 1 2; do
    grep -q "shard $k/3 complete" "$work"/sharded/slurm-*_"$k".out || {
      echo "FAIL: shard task $k did not complete:"; cat "$work"/sharded/slurm-*_"$k".out; exit 1; }
  done
  echo "slurm: 3 shards + merge in $(( ($(date +%s%N) - start) / 1000000 )) ms, merge exit $s"
  # shards that fail (bad usage) leave the merge unsatisfied: submit-sweep says so, exit 2
  b=0; WB=$wb bash "$src/scripts/slurm/submit-sweep.sh" 2 "$work/bad" "${args[@]}" --precision float8 \
    > "$work/bad.log" 2>&1 || b=$?
  grep -q "the merge did not run" "$work/bad.log" && [ $b = 2 ] || {
    cat "$work/bad.log"; echo "FAIL: failing shards: submit-sweep exit $b, expected 2"; exit 1; }
fi
[ "$mode" = slurm ] || echo "$mode: 3 shards + merge in $(( ($(date +%s%N) - start) / 1000000 )) ms, merge exit $s"
[ $s = 2 ] || { echo "FAIL: merged sweep exit $s, expected 2"; exit 1; }
bash "$src/scripts/slurm/same-report.sh" "$work/full" "$work/sharded"
echo "test-local-cluster ($mode): PASS"
