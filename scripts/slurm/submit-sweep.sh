#!/usr/bin/env bash
# submit-sweep.sh N OUT [wb sweep arguments]: submits scripts/slurm/sweep.sbatch as an array of N
# shards and the merge as a job depending on it (afterok), waits for the merge (sbatch --wait) and
# exits with its status: the sweep's 0/1/2/3. Extra sbatch options: $SBATCH_EXTRA (e.g.
# "--partition=cpu --time=02:00:00"). The report: OUT/report.md, .json, .html, junit.xml.
set -euo pipefail
n=${1:?usage: submit-sweep.sh N OUT [wb sweep arguments]}
out=${2:?usage: submit-sweep.sh N OUT [wb sweep arguments]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
# shellcheck disable=SC2086
jid=$(sbatch --parsable ${SBATCH_EXTRA:-} --array=0-$((n - 1)) --output="$out/slurm-%A_%a.out" \
  "$here/sweep.sbatch" "$out" "$@")
jid=${jid%%;*}
echo "submit-sweep: shards: array job $jid (0-$((n - 1)))"
s=0
# shellcheck disable=SC2086
sbatch --wait ${SBATCH_EXTRA:-} --dependency=afterok:"$jid" --kill-on-invalid-dep=yes \
  --job-name=wb-sweep-merge --output="$out/slurm-merge-%j.out" "$here/sweep.sbatch" "$out" || s=$?
# A merge cancelled because a shard failed (afterok never satisfied) also leaves sbatch --wait
# with 0 and no output: the merge's own first line tells that it ran.
if ! grep -qs "^wb-sweep: merging" "$out"/slurm-merge-*.out; then
  echo "submit-sweep: the merge did not run: a shard failed (its log: $out/slurm-${jid}_K.out):" >&2
  grep -hs "^wb: " "$out"/slurm-"${jid}"_*.out | sort -u >&2 || true
  if grep -qs "^wb: \(usage \)\?error" "$out"/slurm-"${jid}"_*.out; then exit 2; fi
  exit 3
fi
cat "$out"/slurm-merge-*.out
echo "submit-sweep: merge finished, exit $s"
exit $s
