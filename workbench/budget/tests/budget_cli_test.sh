#!/usr/bin/env bash
# wb budget end to end, small (trained fixture, 2 clips to measure on, 4 others to check on):
#   a budget of mel and encoder.ln_post (bf16 and noise shapes, a 3-epsilon ladder); two shards
#   merged give the same budget.json; a rerun resumes (no unit measured again) and an interrupted
#   unit is finished; wb compare --budget on the clean and the no-ln-post candidate (harmless vs
#   breaks transcripts, --gate budget's exit status), refusals (another model's dumps, a truncated
#   or foreign budget file, --gate budget without --budget), each exit 2 with one line.
# CASE check instead: the predictive check (scripts/budget-check.sh) of the shipped budget
#   (fixtures/budgets/trained-heldout40.json) on 4 clips it was not measured on, three cases
#   (the missing ln_post, the librosa mel, the clean candidate), every prediction right.
# Usage: budget_cli_test.sh WB SOURCE_DIR WORK_DIR [cli|check]
set -euo pipefail
wb=$1 src=$2 work=$3 case=${4:-cli}
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "budget_cli_test: FAIL: $*" >&2; exit 1; }
trap 'kill $(jobs -p) 2> /dev/null || true' EXIT  # the runs started in the background below
py=/usr/bin/python3
jq_() { "$py" -c "import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }
model=$src/fixtures/trained audio=$src/fixtures/heldout
# Two clips to measure on: what the cli case checks does not depend on the corpus size (sharded
# against unsharded and a resumed run are the tool against itself; the report's contents; the
# compare --budget verdicts, which need the budgets' order of magnitude only: the no-ln-post error
# is tens of times the encoder.ln_post budget, the clean one a millionth of it). These two give
# the same four budgets as the first four clips, at half the encoder tails, where the time goes.
grep -v '^#' "$audio/expect.tsv" | sort | sed -n 1,2p > measure.tsv
grep -v '^#' "$audio/check-80.tsv" | sed -n 1,4p > check.tsv
if [ "$case" = check ]; then
  bash "$src/scripts/budget-check.sh" --wb "$wb" --budget "$src/fixtures/budgets/trained-heldout40.json" \
    --model "$model" --audio-dir "$audio" --expect-file check.tsv --out check --jobs 2 \
    --case fault:no-ln-post --case fault:mel-db --case precision:float32 > check.txt
  cat check.txt
  [ "$(jq_ check/check.json 'd["right"]')" = 3 ] || fail "the budget mispredicted a case"
  echo "budget_cli_test: check ok"
  exit 0
fi
common=(--model "$model" --audio-dir "$audio" --expect-file measure.tsv --taps mel,encoder.ln_post
        --shapes bf16,noise --ladder 0.05,0.5,5 --refine 1 -q)

# 1. and 3. (measure unsharded, then rerun and resume it) in the background, beside 2. and the
# dumps of 4. and 5.: a budget run's clips do not keep both cores busy all along (between the
# levels of a unit it waits for its slowest clip; a resumed unit runs on few clips), and a dump
# uses one thread. Its failures are reported here, its exit status at the wait below.
(
  # 1. measure, unsharded
  "$wb" budget "${common[@]}" --out b
  for f in budget.json report.md report.html run.json; do [ -s "b/$f" ] || fail "no b/$f"; done
  [ "$(jq_ b/budget.json 'len(d["taps"])')" = 2 ] || fail "budget.json: not 2 taps"
  [ "$(jq_ b/budget.json 'd["monotonicity"]["ok"]')" = True ] || fail "monotonicity not ok"
  grep -q '<svg' b/report.html || fail "no curve in report.html"
  echo "budget_cli_test: $(jq_ b/budget.json '[(t["tap"], t["budget"], t["shape"]) for t in d["taps"]]')"
  cp b/budget.json budget.unsharded  # for 2.

  # 3. resume: nothing measured again; an interrupted unit (its last levels lost) is finished
  "$wb" budget "${common[@]}" --out b
  [ "$(jq_ b/run.json 'd["shards"][0]["units_done_before"]')" = 4 ] || fail "rerun measured units again"
  [ "$(jq_ b/run.json 'd["decoder_passes"]')" = 0 ] || fail "rerun ran the decoder"
  u=b/units/encoder.ln_post~noise.json
  "$py" -c 'import json,sys; d=json.load(open(sys.argv[1])); d["levels"]=d["levels"][:1]; d["complete"]=False; json.dump(d,open(sys.argv[1],"w"))' "$u"
  cp b/budget.json budget.before
  "$wb" budget "${common[@]}" --out b
  cmp budget.before b/budget.json || fail "a resumed unit changed budget.json"
) & unsharded_pid=$!

# 2. two shards, merged by wb merge-reports: the same budget.json
"$wb" budget "${common[@]}" --out s --shard 0/2
s=0; "$wb" merge-reports s -q 2> merge.err || s=$?
[ $s = 2 ] && [ "$(wc -l < merge.err)" = 1 ] || fail "merging before every shard ran: exit $s, $(cat merge.err)"
"$wb" budget "${common[@]}" --out s --shard 1/2
"$wb" merge-reports s -q

# The dumps of 4. and 5. (one thread each, two at a time)
clip=$audio/$(sed -n 1p check.tsv | cut -f1) nano=$src/fixtures/models/nano.bin
dump() {  # dump OUT MODEL [wb dump options]: --taps blocks of the check clip on one thread
  local out=$1 m=$2 s=0; shift 2
  "$wb" dump --model "$m" --audio "$clip" --threads 1 --taps blocks "$@" -o "$out" > /dev/null || s=$?
  [ $s = 0 ] || fail "dump $out: exit $s"
}
dump ref.h5 "$model" --impl reference & ref_pid=$!
dump clean.h5 "$model" --impl candidate
wait $ref_pid
dump noln.h5 "$model" --impl candidate --fault no-ln-post & noln_pid=$!
dump nref.h5 "$nano" --impl reference
wait $noln_pid
dump ncand.h5 "$nano" --impl candidate

s=0; wait $unsharded_pid || s=$?
[ $s = 0 ] || fail "1. or 3. (the unsharded budget, its rerun and resume): exit $s"
cmp budget.unsharded s/budget.json || fail "two shards merged differ from the unsharded budget.json"

# 4. wb compare --budget: the clean candidate and the missing ln_post on a check clip
"$wb" compare ref.h5 clean.h5 --budget b/budget.json --gate budget > clean.txt || fail "clean: --gate budget exit $?"
grep -q "transcript budget: harmless" clean.txt || fail "clean candidate not harmless: $(cat clean.txt)"
s=0; "$wb" compare ref.h5 noln.h5 --budget b/budget.json --gate budget --report rep > noln.txt || s=$?
[ $s = 1 ] || fail "no-ln-post: --gate budget exit $s, not 1"
grep -q "transcript budget: breaks transcripts (largest share .* at encoder.ln_post" noln.txt ||
  fail "no-ln-post not placed on encoder.ln_post: $(cat noln.txt)"
[ "$(jq_ rep/report.json 'd["budget"]["verdict"]')" = "breaks transcripts" ] || fail "report.json budget"
grep -q "Transcript budget" rep/report.md && grep -q "Transcript budget" rep/report.html ||
  fail "the budget is missing from report.md or report.html"
grep -q 'name="budget_verdict" value="breaks transcripts"' rep/junit.xml || fail "junit budget"

# 5. refusals: one line, exit 2
refuse() {  # refuse NAME CMD...: exit 2 and one line on stderr
  local name=$1 s=0; shift
  "$@" > /dev/null 2> err.txt || s=$?
  [ $s = 2 ] && [ "$(wc -l < err.txt)" = 1 ] || fail "$name: exit $s, stderr: $(cat err.txt)"
  echo "budget_cli_test: refused ($name): $(cat err.txt)"
}
refuse "another model" "$wb" compare nref.h5 ncand.h5 --budget b/budget.json
s=0; "$wb" compare nref.h5 ncand.h5 --budget b/budget.json --allow-model-mismatch > /dev/null || s=$?
[ $s -le 1 ] || fail "--allow-model-mismatch: exit $s"
head -c 200 b/budget.json > truncated.json
refuse "truncated budget" "$wb" compare ref.h5 clean.h5 --budget truncated.json
echo '{"schema": "something-else/1"}' > foreign.json
refuse "foreign budget" "$wb" compare ref.h5 clean.h5 --budget foreign.json
refuse "--gate budget without --budget" "$wb" compare ref.h5 clean.h5 --gate budget

echo "budget_cli_test: ok"
