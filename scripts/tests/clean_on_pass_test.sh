#!/usr/bin/env bash
# clean-on-pass.sh: a passing command's work folder is removed, a failing (1) or skipped (77) one's
# kept, the command's status passed through; WB_KEEP_TEST_WORK=1 keeps a passing one's; no command
# is a usage error (2).
set -uo pipefail
wrap="$(dirname "$0")/clean-on-pass.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "clean_on_pass_test: FAIL: $*" >&2; exit 1; }
case_() {  # case_ STATUS KEEP EXPECT_KEPT
  local w="$tmp/work-$1-$2" s
  WB_KEEP_TEST_WORK=$2 bash "$wrap" "$w" bash -c 'mkdir -p "$1" && echo x > "$1/dump.h5"; exit "$2"' _ "$w" "$1"
  s=$?
  [ "$s" -eq "$1" ] || fail "status $1 came back as $s"
  if [ "$3" = kept ]; then [ -f "$w/dump.h5" ] || fail "status $1, keep=$2: the work folder was removed"
  else [ ! -e "$w" ] || fail "status $1, keep=$2: the work folder was kept"; fi
}
case_ 0 0 removed
case_ 1 0 kept
case_ 77 0 kept
case_ 0 1 kept
bash "$wrap" "$tmp/only" 2>/dev/null; [ $? -eq 2 ] || fail "no command: not exit 2"
echo "clean_on_pass_test: 5 cases passed"
