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
