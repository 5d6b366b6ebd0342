#!/usr/bin/env bash
# The main job end to end on the bundled fixtures: set-up and build, then for the trained model
# and a held-out clip: the float32 reference dump, the float64 noise floor, the float32 CPU
# candidate and a candidate with a real porting bug (no ln_post), both teacher-forced on the
# reference's tokens; wb compare finds the bug (first divergent tap, transcript impact), wb replay
# confirms it is ln_post's own error, wb bisect-layers names the stage. Then a port the workbench
# did not write, through the port protocol (docs/ports.md): the numpy port of scripts/ports/ with
# a librosa-style power_to_db mel, caught at `mel`, and wb replay --port putting its own error in
# the front end. Last, the transcript budget (docs/budget.md: the trained fixture's budget, measured
# on 40 held-out clips, fixtures/budgets/) of the clean, the buggy and a bfloat16 candidate. Prints
# where everything went, and exits 0 only when every claim holds (checked from the JSON reports,
# not exit codes).
# Usage: scripts/demo.sh [OUTPUT_DIR]     (default: demo-out/)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/bin:/bin:$PATH
out=$(realpath -m "${1:-$here/demo-out}")
"$here/scripts/setup.sh"
wb="$here/build/wb"
model="$here/fixtures/trained"
name=$(head -1 "$here/fixtures/heldout/expect.tsv" | cut -f1)
expected=$(head -1 "$here/fixtures/heldout/expect.tsv" | cut -f2)
clip="$here/fixtures/heldout/$name"
budget="$here/fixtures/budgets/trained-heldout40.json"
mkdir -p "$out"
echo "== model $model, clip $clip"
"$wb" dump --impl reference --model "$model" --audio "$clip" -o "$out/ref.h5"
"$wb" dump --impl reference --dtype float64 --store float64 --model "$model" --audio "$clip" -o "$out/ref64.h5" --no-decode
"$wb" dump --impl candidate --model "$model" --audio "$clip" -o "$out/cand.h5" --teacher-tokens "$out/ref.h5"
"$wb" dump --impl candidate --fault no-ln-post --model "$model" --audio "$clip" -o "$out/cand-no-ln-post.h5" --teacher-tokens "$out/ref.h5"
"$wb" dump --impl candidate --precision bfloat16 --model "$model" --audio "$clip" -o "$out/cand-bf16.h5" --teacher-tokens "$out/ref.h5"
set +e
echo; echo "== wb compare: clean candidate"
"$wb" compare "$out/ref.h5" "$out/cand.h5" --floor "$out/ref64.h5" --expect-text "$expected" \
  --profile "$here/fixtures/profiles/float32.json" --report "$out/report-candidate" --format md,json,html,junit \
  --budget "$budget"
rc_ok=$?
echo; echo "== wb replay: each stage of the buggy candidate on the reference's inputs"
"$wb" replay "$out/ref.h5" --model "$model" --audio "$clip" --fault no-ln-post --report "$out/replay-no-ln-post" --format json -q
rc_rp=$?
echo; echo "== wb compare: the buggy candidate (no ln_post), with the replay"
"$wb" compare "$out/ref.h5" "$out/cand-no-ln-post.h5" --floor "$out/ref64.h5" --expect-text "$expected" \
  --replay "$out/replay-no-ln-post/report.json" \
  --profile "$here/fixtures/profiles/float32.json" --report "$out/report-no-ln-post" --format md,json,html,junit \
  --budget "$budget"
rc_bug=$?
echo; echo "== wb compare: a bfloat16 candidate, judged by the bfloat16 profile and by the budget"
"$wb" compare "$out/ref.h5" "$out/cand-bf16.h5" --report "$out/report-bf16" --format md,json,html,junit \
  --budget "$budget"
rc_bf16=$?
echo; echo "== wb bisect-layers: hybrid encoders, binary search on the stage"
"$wb" bisect-layers --model "$model" --audio "$clip" --fault no-ln-post | tee "$out/bisect-layers.txt"
rc_bl=${PIPESTATUS[0]}
echo; echo "== your own port: scripts/ports/numpy_port.py with a librosa power_to_db mel, through --port"
sh "$here/scripts/tests/make_venv.sh" /usr/bin/python3 "$here/scripts/wbdump" "$here/build" > /dev/null
port="$here/build/pyenv/bin/python $here/scripts/ports/numpy_port.py --bug power-to-db"
"$wb" dump --port "$port" --model "$model" --audio "$clip" -o "$out/port-mel-db.h5" --no-decode
"$wb" compare "$out/ref.h5" "$out/port-mel-db.h5" --profile "$here/fixtures/profiles/float32.json" \
  --report "$out/report-port-mel-db" --format md,json,html
rc_port=$?
"$wb" replay "$out/ref.h5" --port "$port" --model "$model" --audio "$clip" \
  --profile "$here/fixtures/profiles/float32.json" --report "$out/replay-port-mel-db" --format json
rc_port_rp=$?
set -e
echo
echo "expected text: $expected"
# The claims, read back from the reports.
python3 - "$out" "$rc_ok" "$rc_bug" "$rc_rp" "$rc_bl" "$rc_port" "$rc_port_rp" "$rc_bf16" <<'PY'
import json, sys
out, rc_ok, rc_bug, rc_rp, rc_bl, rc_port, rc_port_rp, rc_bf16 = sys.argv[1], *map(int, sys.argv[2:])
ok = json.load(open(f"{out}/report-candidate/report.json"))
bug = json.load(open(f"{out}/report-no-ln-post/report.json"))
checks = []
def check(what, cond):
    checks.append(cond)
    print(("ok   " if cond else "FAIL ") + what)
check(f"clean candidate within the float32 profile (exit {rc_ok})", rc_ok == 0 and ok["first_divergence"] is None)
ti = ok["transcript_impact"]
check(f"clean candidate: tokens agree {ti['agree']}/{ti['positions']}, teacher-forced KL max {ti['kl_max']:.2g} (round-off)",
      ti["agreement"] == 1.0 and ti["teacher_forced"] and ti["kl_max"] < 1e-9)
fd = bug["first_divergence"]
check(f"buggy candidate caught (exit {rc_bug}), first divergent tap {fd and fd['tap']}",
      rc_bug == 1 and fd is not None and fd["tap"] == "encoder.ln_post")
bi = bug["transcript_impact"]
check(f"its transcript is damaged: tokens agree {bi['agree']}/{bi['positions']}, loops: {bi['candidate_repetition']['flagged']}, "
      f"teacher-forced KL mean {bi['kl_mean']:.3g}",
      bi["agreement"] < 0.5 and bi["kl_mean"] > 1e3 * max(ti["kl_mean"], 1e-12))
rp = bug["replay"]
check(f"wb replay: culprit {rp and rp['culprit']} (own error there, exit {rc_rp})", rc_rp == 1 and rp and rp["culprit"] == "ln_post")
bl = open(f"{out}/bisect-layers.txt").read()
check(f"wb bisect-layers names ln_post (exit {rc_bl})", rc_bl == 1 and "culprit: ln_post" in bl and "confirmed" in bl)
port = json.load(open(f"{out}/report-port-mel-db/report.json"))
pfd = port["first_divergence"]
check(f"the numpy port's power_to_db mel caught at {pfd and pfd['tap']} (exit {rc_port})",
      rc_port == 1 and pfd is not None and pfd["tap"] == "mel")
prp = json.load(open(f"{out}/replay-port-mel-db/report.json")).get("replay")
check(f"wb replay --port: culprit {prp and prp['culprit']}, the front end's own error (exit {rc_port_rp})",
      rc_port_rp == 1 and prp and prp["culprit"] == "frontend")
ob, bb = ok["budget"], bug["budget"]
check(f"transcript budget of the clean candidate: {ob['verdict']} (largest share {ob['max_share']:.2g} at {ob['worst_tap']})",
      ob["verdict"] == "harmless")
check(f"transcript budget of the buggy candidate: {bb['verdict']} at {bb['worst_tap']}, share {bb['max_share']:.3g} of its budget",
      bb["verdict"] == "breaks transcripts" and bb["worst_tap"] == "encoder.ln_post")
bf = json.load(open(f"{out}/report-bf16/report.json"))
fb = bf["budget"]
level = "harmless" if fb["max_share"] < 0.5 else "at risk" if fb["max_share"] <= 1 else "breaks transcripts"
check(f"the bfloat16 candidate: {bf['verdict']} against the {bf['profile']} profile (exit {rc_bf16}); transcript budget: "
      f"{fb['verdict']} (largest share {fb['max_share']:.2g} at {fb['worst_tap']})", fb["verdict"] == level)
print(f"outputs in {out}: ref.h5 ref64.h5 cand.h5 cand-no-ln-post.h5 cand-bf16.h5 port-mel-db.h5; reports in "
      "report-candidate/, report-no-ln-post/, report-bf16/ and report-port-mel-db/ (report.md, report.json, "
      "report.html, junit.xml; manifest.json, written last); replay-no-ln-post/, "
      "replay-port-mel-db/, bisect-layers.txt")
sys.exit(0 if all(checks) else 1)
PY
