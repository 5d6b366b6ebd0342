#!/usr/bin/env bash
# The fidelity check a pull request runs (docs/ci.md; .ci/examples/ holds the GitHub Actions and
# GitLab CI files that call it; CTest wb_ci_fidelity runs it too):
#   1. dump the candidate (this checkout's build) on one clip;
#   2. compare it with the reference dump of the workbench's reference cache (wb dump
#      --ref-cache: made once, then reused while the model, clip, settings, LibTorch and workbench
#      versions are the same) under a tolerance profile: report.md/json/html and junit.xml in
#      OUT/report;
#   3. write OUT/comment.md, the pull-request comment: verdict, first divergent tap and the
#      transcript impact on top, then the Markdown report, capped at --max-comment-bytes;
#   4. write OUT/status and exit with wb compare's status: 0 within tolerance, 1 tolerance
#      exceeded, 2 bad input, 3 internal error.
# Usage: ci-fidelity.sh --model M --audio A --ref-cache DIR --out OUT [--profile P]
#                       [--wb build/wb] [--max-comment-bytes N] [-- wb dump options for the candidate]
set -euo pipefail
wb=build/wb profile= model= audio= cache= out= cap=60000
cand_args=()
while [ $# -gt 0 ]; do
  case $1 in
    --model) model=$2; shift 2 ;;
    --audio) audio=$2; shift 2 ;;
    --ref-cache) cache=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --wb) wb=$2; shift 2 ;;
    --max-comment-bytes) cap=$2; shift 2 ;;
    --) shift; cand_args=("$@"); break ;;
    *) echo "ci-fidelity: unknown argument '$1' (see the header of $0)" >&2; exit 2 ;;
  esac
done
for v in model audio cache out; do
  [ -n "${!v}" ] || { echo "ci-fidelity: --${v/cache/ref-cache} is required" >&2; exit 2; }
done
[ -x "$wb" ] || { echo "ci-fidelity: $wb: no wb binary (build first: scripts/setup.sh)" >&2; exit 2; }
mkdir -p "$out"
rm -f "$out/status" "$out/comment.md"
s=0
ref=$out/reference.h5
"$wb" dump --impl reference --ref-cache "$cache" --model "$model" --audio "$audio" -o "$ref" 2>&1 |
  tee "$out/log.txt" || s=${PIPESTATUS[0]}
[ $s != 0 ] || "$wb" dump --impl candidate --model "$model" --audio "$audio" -o "$out/candidate.h5" \
  "${cand_args[@]}" 2>&1 | tee "$out/log.txt" || s=${PIPESTATUS[0]}
[ $s != 0 ] || "$wb" compare "$ref" "$out/candidate.h5" ${profile:+--profile "$profile"} \
  --report "$out/report" --format md,json,html,junit || s=$?
if [ $s -le 1 ] && [ -f "$out/report/report.json" ]; then
  python3 - "$out/report/report.json" "$out/report/report.md" "$out/comment.md" "$cap" "$s" <<'PY'
import json, sys
rep_path, md_path, out_path, cap, status = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
r = json.load(open(rep_path))
fd = r.get("first_divergence")
tr = r.get("transcripts")
words = {0: "within tolerance", 1: "tolerance exceeded", 2: "bad input", 3: "internal error"}
def flat(t):  # one line, no code-span breaker (transcripts of a broken encoder hold anything)
    return " ".join(t.replace("`", "'").split())[:300]
head = [f"### Whisper fidelity: {r['verdict'].upper()} (exit {status}: {words.get(status, '?')}, profile `{r['profile']}`)", ""]
head.append(f"- **first divergent tap:** `{fd['tap']}` ({fd.get('attribution') or 'n/a'})" if fd else "- **first divergent tap:** none")
if tr:
    if tr["identical"]:
        head.append("- **transcript impact:** none, the transcripts are identical")
    else:
        head.append(f"- **transcript impact:** WER {100 * tr['wer']:.1f}% against the reference's transcript")
        head.append(f"  - reference: `{flat(tr['reference'])}`")
        head.append(f"  - candidate: `{flat(tr['candidate'])}`")
else:
    head.append("- **transcript impact:** not measured (a dump without decoded text)")
head += ["", "<details><summary>Full report (HTML and JUnit in the job's artifacts)</summary>", "", ""]
tail = "\n</details>\n"
body = open(md_path, encoding="utf-8", errors="replace").read()
text = "\n".join(head)
room = cap - len(text.encode()) - len(tail.encode()) - 80
if len(body.encode()) > room:
    cut = body.encode()[:max(room, 0)].decode("utf-8", errors="ignore")
    body = cut[: cut.rfind("\n") + 1] + f"\n_(report cut at {cap} bytes; see the artifact)_\n"
open(out_path, "w", encoding="utf-8").write(text + body + tail)
PY
else
  { printf '### Whisper fidelity: no comparison (exit %s: bad input or internal error)\n\n```\n' "$s"
    tail -c 2000 "$out/log.txt" 2>/dev/null; printf '```\n'; } > "$out/comment.md"
fi
echo "$s" > "$out/status"
echo "ci-fidelity: exit $s; comment $out/comment.md ($(wc -c < "$out/comment.md") bytes), report $out/report/"
exit "$s"
