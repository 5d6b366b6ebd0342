# Sourced by the shell tests: how a test that cannot run says so.
#   wb_skip software REASON   a program or package is missing. On a developer machine: CTest's
#                             skip (exit 77). Under CI=true it fails (exit 1): CI installs every
#                             package of scripts/packages.txt, so a missing one is a broken set-up,
#                             and a skip there would read as a pass.
#   wb_skip hardware REASON   the machine lacks an ISA or a GPU: a skip everywhere (exit 77).
# Either way one line "TEST: REASON" goes to $WB_SKIP_LOG when it is set (.ci/run lists them).
wb_skip() {
  local kind=$1 reason=$2 name
  name=$(basename "${0%.sh}")
  [ -n "${WB_SKIP_LOG:-}" ] && echo "$name: [$kind] $reason" >> "$WB_SKIP_LOG"
  if [ "$kind" = software ] && [ "${CI:-}" = true ]; then
    echo "$name: FAIL under CI=true: missing software: $reason" >&2
    exit 1
  fi
  echo "$name: skipped ($kind): $reason"
  exit 77
}
