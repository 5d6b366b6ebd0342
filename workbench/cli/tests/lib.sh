# Shared by the CLI test scripts (sourced): a scratch folder, pass/fail counters, `expect`.
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "ok   $1"; }
bad() { fail=$((fail+1)); echo "FAIL $1"; }
# expect NAME STATUS FRAGMENT -- command...: exit status and a one-line stderr containing FRAGMENT.
expect() {
  local name=$1 want=$2 frag=$3; shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"; local rc=$?
  local lines; lines=$(wc -l <"$tmp/err")
  if [ "$rc" = "$want" ] && grep -qF -- "$frag" "$tmp/err" && [ "$lines" -le 1 ]; then ok "$name"
  else bad "$name (exit $rc, want $want; stderr: $(head -c 300 "$tmp/err"))"; fi
}
# finish: the summary line and the script's exit status.
finish() { echo "$pass passed, $fail failed"; [ "$fail" = 0 ]; }
# part NAME FUNCTION: run FUNCTION in the background, beside the rest of the script (most checks
# are one short process each, dominated by one thread loading LibTorch, so two at a time use the
# machine's two cores). The part has its own scratch folder $tmp/NAME (so expect's out/err and
# the checks for leftover files see only its own files) and its own counters; its lines are
# printed by join_parts.
parts=()
part() {
  local name=$1; shift
  mkdir -p "$tmp/$name"
  ( tmp=$tmp/$name; pass=0; fail=0; "$@"; echo "$pass $fail" > "$tmp/.counts" ) > "$tmp/$name.log" 2>&1 &
  parts+=("$name:$!")
}
# join_parts: wait for every part, print its lines, add its counts; a part that ended without
# its counts (killed, or a shell error) is a failure.
join_parts() {
  local p name p_pass p_fail
  for p in "${parts[@]}"; do
    name=${p%%:*}
    wait "${p##*:}"
    cat "$tmp/$name.log"
    if read -r p_pass p_fail 2> /dev/null < "$tmp/$name/.counts"; then
      pass=$((pass + p_pass)); fail=$((fail + p_fail))
    else bad "part $name ended before its summary"; fi
  done
  parts=()
}
