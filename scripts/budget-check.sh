#!/usr/bin/env bash
# The predictive check of an error budget (docs/budget.md): does the budget verdict, from the tap
# errors alone, tell which candidates change transcripts? For every case (each example of the
# fault table, the candidate's bfloat16 and float16 modes, the clean float32 candidate), sweep
# the check clips with `wb sweep --budget` and set the budget verdict ("breaks transcripts" =
# predicts a change; "harmless" and "at risk" = predict none) against what happened: any clip
# whose greedy tokens changed. Writes OUT/check.json and OUT/check.md (the confusion table).
# Usage: budget-check.sh --budget B/budget.json --audio-dir D --expect-file E --out OUT
#                        [--model M] [--wb build/wb] [--jobs J] [--case SPEC]...
#   a case SPEC: "fault:<fault spec>", "precision:<bfloat16|float16|float32>"; default: all.
set -euo pipefail
wb=build/wb model= budget= audio= expect= out= jobs=$(nproc)
cases=()
while [ $# -gt 0 ]; do
  case $1 in
    --budget) budget=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --audio-dir) audio=$2; shift 2 ;;
    --expect-file) expect=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --wb) wb=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --case) cases+=("$2"); shift 2 ;;
    *) echo "budget-check: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
for v in budget audio expect out; do
  [ -n "${!v}" ] || { echo "budget-check: --${v/expect/expect-file} is required" >&2; exit 2; }
done
[ -f "$budget" ] || { echo "budget-check: $budget: no such budget file" >&2; exit 2; }
[ -x "$wb" ] || { echo "budget-check: $wb: no wb binary (build first: scripts/setup.sh)" >&2; exit 2; }
py=/usr/bin/python3
[ -n "$model" ] || model=$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["model"]["path"])' "$budget")
if [ ${#cases[@]} -eq 0 ]; then
  mapfile -t cases < <("$wb" faults --json | "$py" -c '
import json, sys
for f in json.load(sys.stdin):
    for e in f["examples"]:
        print("fault:" + e["spec"])
for p in ("bfloat16", "float16", "float32"):
    print("precision:" + p)')
fi
mkdir -p "$out/cases"
run_case() {  # one sweep; its exit status 0/1 is a verdict, not a failure of the check
  local spec=$1 dir=$out/cases/$(printf "%s" "$1" | tr -c 'A-Za-z0-9.=@-' '_')
  local args=(--impl candidate)
  case $spec in
    fault:*) args+=(--fault "${spec#fault:}") ;;
    precision:*) args+=(--precision "${spec#precision:}") ;;
    *) echo "budget-check: case '$spec' is neither fault: nor precision:" >&2; return 2 ;;
  esac
  local s=0
  "$wb" sweep -q --model "$model" --audio-dir "$audio" --expect-file "$expect" --out "$dir" \
    --taps blocks --budget "$budget" --threads 1 "${args[@]}" || s=$?
  [ "$s" -le 1 ] || { echo "budget-check: $spec: wb sweep exit $s" >&2; return "$s"; }
  echo "$spec" > "$dir/case"
  echo "budget-check: $spec done" >&2
}
export -f run_case
export wb model audio expect budget out
printf '%s\n' "${cases[@]}" | xargs -P "$jobs" -I{} bash -c 'run_case "$@"' _ {}
"$py" - "$out" "$budget" "${cases[@]}" <<'PY'
import json, sys, os
out, budget_path, cases = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for spec in cases:
    d = os.path.join(out, "cases", "".join(c if c.isalnum() or c in ".=@-" else "_" for c in spec))
    r = json.load(open(os.path.join(d, "report.json")))
    b, t = r["budget"], r["transcripts"]
    changed = t["clips_with_tokens"] - t["tokens_identical"]
    predicted = b["verdict"] == "breaks transcripts"
    rows.append({"case": spec, "verdict": b["verdict"], "max_median_share": b["max_median_share"],
                 "tap": b["worst_tap"], "clips": t["clips_with_tokens"], "changed": changed,
                 "predicted_change": predicted, "changed_any": changed > 0,
                 "right": predicted == (changed > 0), "tolerance_verdict_failed": r["summary"]["failed"]})
right = sum(r["right"] for r in rows)
conf = {f"{p}/{a}": sum(1 for r in rows if r["predicted_change"] == p and r["changed_any"] == a)
        for p in (True, False) for a in (True, False)}
res = {"budget": budget_path, "cases": rows, "right": right, "total": len(rows),
       "agreement": right / len(rows) if rows else None, "confusion": conf}
json.dump(res, open(os.path.join(out, "check.json"), "w"), indent=2)
def share(x):
    return x if isinstance(x, str) else f"{x:.3g}"
md = ["| case | budget verdict | largest median share (tap) | clips with changed tokens | right |",
      "| --- | --- | --- | --: | --- |"]
for r in rows:
    md.append(f"| `{r['case']}` | {r['verdict']} | {share(r['max_median_share'])} (`{r['tap']}`) | "
              f"{r['changed']}/{r['clips']} | {'yes' if r['right'] else '**no**'} |")
md += ["", "| | tokens changed on some clip | no clip changed |", "| --- | --: | --: |",
       f"| predicted: breaks transcripts | {conf['True/True']} | {conf['True/False']} |",
       f"| predicted: harmless or at risk | {conf['False/True']} | {conf['False/False']} |", "",
       f"Agreement: {right}/{len(rows)} ({100.0 * right / max(len(rows), 1):.0f} %)."]
open(os.path.join(out, "check.md"), "w").write("\n".join(md) + "\n")
print("\n".join(md))
PY
