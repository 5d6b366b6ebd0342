#!/usr/bin/env bash
# same-report.sh DIR_A DIR_B: exit 0 when two sweep report sets are identical except their volatile
# part (the JSON "run" member: creation time, shard count, wall time; the "Run:" line of the
# Markdown and HTML). junit.xml and every other byte must match. Prints the difference otherwise.
set -euo pipefail
a=$1 b=$2
rc=0
python3 - "$a/report.json" "$b/report.json" <<'PY' || rc=1
import json, sys
x, y = (json.load(open(p)) for p in sys.argv[1:3])
for r in (x, y):
    r.pop("run")
if x != y:
    for k in x:
        if x.get(k) != y.get(k):
            print(f"same-report: report.json differs in '{k}'")
    sys.exit(1)
PY
diff <(grep -v '^_Run: ' "$a/report.md") <(grep -v '^_Run: ' "$b/report.md") || rc=1
diff <(grep -v '^<p><small>Run: ' "$a/report.html") <(grep -v '^<p><small>Run: ' "$b/report.html") || rc=1
cmp "$a/junit.xml" "$b/junit.xml" || rc=1
[ $rc = 0 ] && echo "same-report: $a and $b agree (all but the run line)"
exit $rc
