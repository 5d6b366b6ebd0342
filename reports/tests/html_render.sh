#!/usr/bin/env bash
# Renders an HTML report in headless Chromium: takes a screenshot (PNG) and dumps the DOM; fails
# if the page logs a console error, a blocked or failed load (the report must need no network),
# or does not reach its last section.
# Usage: reports/tests/html_render.sh REPORT.html OUT.png
#        reports/tests/html_render.sh --wb WB_BINARY WORKDIR   (makes a report first: nano model,
#        candidate with attn-scale=double, then renders WORKDIR/report/report.html)
set -euo pipefail
. "$(dirname "$0")/../../scripts/skip.sh"
if [ "${1:-}" = "--wb" ]; then
  wb=$(realpath "$2"); work=$3
  here=$(cd "$(dirname "$0")/../.." && pwd)
  mkdir -p "$work"
  "$wb" fixture-model --dims nano -o "$work/model" > /dev/null
  for side in reference candidate; do
    extra=(); [ "$side" = candidate ] && extra=(--fault attn-scale=double)
    "$wb" dump --model "$work/model" --audio "$here/fixtures/audio/hello.wav" -o "$work/$side.h5" \
      --no-decode --taps encoder --impl "$side" "${extra[@]}" > /dev/null
  done
  set +e
  "$wb" compare "$work/reference.h5" "$work/candidate.h5" -q --report "$work/report" --format html
  rc=$?
  set -e
  [ "$rc" = 1 ] || { echo "html_render: expected exit 1 from wb compare, got $rc"; exit 1; }
  html="$work/report/report.html"; png="$work/report.png"
else
  html=$1; png=$2
fi

chrome=""
for c in chromium chromium-browser google-chrome; do
  if command -v "$c" > /dev/null; then chrome=$(command -v "$c"); break; fi
done
[ -n "$chrome" ] || wb_skip software "no chromium (scripts/packages.txt lists it)"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync
       --user-data-dir="$tmp/profile" --enable-logging=stderr --v=0)
url="file://$(realpath "$html")"
rm -f "$png"
timeout 120 "$chrome" "${flags[@]}" --window-size=1200,3000 --hide-scrollbars --screenshot="$png" "$url" \
  > "$tmp/shot.out" 2> "$tmp/shot.log" || { echo "html_render: chromium failed"; tail -5 "$tmp/shot.log"; exit 1; }
timeout 120 "$chrome" "${flags[@]}" --dump-dom "$url" > "$tmp/dom.html" 2> "$tmp/dom.log" || {
  echo "html_render: chromium --dump-dom failed"; tail -5 "$tmp/dom.log"; exit 1; }

fail=0
if grep -E "CONSOLE\(|Uncaught|net::ERR_|Refused to|Failed to load" "$tmp/shot.log" "$tmp/dom.log"; then
  echo "html_render: the page logged errors (above)"; fail=1
fi
[ -s "$png" ] && head -c 8 "$png" | od -An -c | grep -q "P   N   G" || { echo "html_render: no PNG written"; fail=1; }
grep -q "All taps" "$tmp/dom.html" || { echo "html_render: DOM lacks the last section"; fail=1; }
svgs=$(grep -o "<svg" "$tmp/dom.html" | wc -l)
[ "$svgs" -ge 4 ] || { echo "html_render: $svgs SVG plots in the DOM, expected >= 4"; fail=1; }
echo "html_render: $html -> $png ($(stat -c %s "$png") bytes, $svgs SVG plots, errors: $fail)"
exit $fail
