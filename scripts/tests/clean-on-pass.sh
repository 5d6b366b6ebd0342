#!/usr/bin/env bash
# clean-on-pass.sh WORKDIR COMMAND...: runs COMMAND (a test that writes its files into WORKDIR) and
# exits with its status; when it passes (0), removes WORKDIR. A failing or skipped test keeps its
# files to look at, and WB_KEEP_TEST_WORK=1 keeps every test's. The suite's dumps are 100 MB and
# more each: kept, one build's test files take about 2.3 GB of disk (docs/ci.md, "Disk").
set -uo pipefail
if [ $# -lt 2 ]; then
  echo "usage: clean-on-pass.sh WORKDIR COMMAND..." >&2
  exit 2
fi
work=$1
shift
"$@"
status=$?
if [ "$status" -eq 0 ] && [ "${WB_KEEP_TEST_WORK:-0}" != 1 ]; then
  rm -rf -- "$work"
fi
exit "$status"
