#!/usr/bin/env bash
# Renders an HTML report in headless Chromium at 1280 px wide: takes a screenshot (PNG) and dumps
# the DOM; fails if the page logs a console error, a blocked or failed load (the report must need
# no network), does not reach its last section, or is wider than the window (a horizontal
# scrollbar on the whole page: only the wide table's box may scroll). The width is measured by a
# probe copy of the report (its Content-Security-Policy dropped, a script appended that writes
# the page's and the box's overflow into the DOM); the report itself runs no script.
# Usage: reports/tests/html_render.sh REPORT.html OUT.png
#        reports/tests/html_render.sh --wb WB_BINARY WORKDIR   (makes a report first: nano model,
#        candidate with attn-scale=double, a float64 floor of a few taps only (the names missing
#        from it folded in a <details>), then renders WORKDIR/report/report.html)
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
  "$wb" dump --model "$work/model" --audio "$here/fixtures/audio/hello.wav" -o "$work/floor.h5" \
    --no-decode --taps minimal --impl reference --dtype float64 > /dev/null
  set +e
  "$wb" compare "$work/reference.h5" "$work/candidate.h5" -q --floor "$work/floor.h5" \
    --report "$work/report" --format html
  rc=$?
  set -e
  [ "$rc" = 1 ] || { echo "html_render: expected exit 1 from wb compare, got $rc"; exit 1; }
  html="$work/report/report.html"; png="$work/report.png"
  grep -q '<details class="small"><summary>Not in the floor dump: [0-9]* taps</summary>' "$html" ||
    { echo "html_render: the taps missing from the floor are not a count with a <details>"; exit 1; }
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
timeout 120 "$chrome" "${flags[@]}" --window-size=1280,3000 --hide-scrollbars --screenshot="$png" "$url" \
  > "$tmp/shot.out" 2> "$tmp/shot.log" || { echo "html_render: chromium failed"; tail -5 "$tmp/shot.log"; exit 1; }
timeout 120 "$chrome" "${flags[@]}" --dump-dom "$url" > "$tmp/dom.html" 2> "$tmp/dom.log" || {
  echo "html_render: chromium --dump-dom failed"; tail -5 "$tmp/dom.log"; exit 1; }

# The probe: the same page with a script that measures, in a 1280 px window.
sed '/Content-Security-Policy/d' "$html" > "$tmp/probe.html"
cat >> "$tmp/probe.html" <<'JS'
<script>
const d = document.documentElement, box = document.querySelector(".wide");
d.setAttribute("data-page-overflow", String(d.scrollWidth - d.clientWidth));
d.setAttribute("data-box-overflow", box ? String(box.scrollWidth - box.clientWidth) : "none");
</script>
JS
timeout 120 "$chrome" "${flags[@]}" --window-size=1280,1000 --dump-dom "file://$tmp/probe.html" \
  > "$tmp/probe-dom.html" 2> "$tmp/probe.log" || { echo "html_render: probe failed"; exit 1; }
page_over=$(sed -n 's/.*data-page-overflow="\([^"]*\)".*/\1/p' "$tmp/probe-dom.html" | head -1)
box_over=$(sed -n 's/.*data-box-overflow="\([^"]*\)".*/\1/p' "$tmp/probe-dom.html" | head -1)

fail=0
[ "$page_over" = 0 ] || { echo "html_render: the page is $page_over px wider than a 1280 px window"; fail=1; }
if grep -E "CONSOLE\(|Uncaught|net::ERR_|Refused to|Failed to load" "$tmp/shot.log" "$tmp/dom.log"; then
  echo "html_render: the page logged errors (above)"; fail=1
fi
[ -s "$png" ] && head -c 8 "$png" | od -An -c | grep -q "P   N   G" || { echo "html_render: no PNG written"; fail=1; }
grep -q "All taps" "$tmp/dom.html" || { echo "html_render: DOM lacks the last section"; fail=1; }
svgs=$(grep -o "<svg" "$tmp/dom.html" | wc -l)
[ "$svgs" -ge 4 ] || { echo "html_render: $svgs SVG plots in the DOM, expected >= 4"; fail=1; }
echo "html_render: $html -> $png ($(stat -c %s "$png") bytes, $svgs SVG plots; at 1280 px the page overflows by $page_over px, the taps box scrolls $box_over px; errors: $fail)"
exit $fail
