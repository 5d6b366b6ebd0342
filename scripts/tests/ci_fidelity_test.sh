#!/usr/bin/env bash
# scripts/ci-fidelity.sh as the CI examples call it (docs/ci.md), on the nano model:
#   - first run: the reference cache is empty -> the reference dumped once and stored; clean
#     candidate -> exit 0, comment says so;
#   - second run takes the reference from the cache; a planted fault (no-ln-post) -> exit 1, the comment
#     starts with the verdict, the first divergent tap and the transcript impact, and stays under
#     --max-comment-bytes;
#   - a missing audio file -> exit 2.
# Usage: ci_fidelity_test.sh WB SOURCE_DIR WORK_DIR
set -euo pipefail
wb=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
fail() { echo "ci_fidelity_test: FAIL: $*" >&2; exit 1; }
common=(--wb "$wb" --model "$src/fixtures/models/nano-hf" --audio "$src/fixtures/audio/hello.wav"
        --ref-cache "$work/cache" --profile "$src/fixtures/profiles/float32.json")
s=0; bash "$src/scripts/ci-fidelity.sh" "${common[@]}" --out "$work/clean" -- --threads 1 > "$work/clean.log" 2>&1 || s=$?
[ $s = 0 ] || { cat "$work/clean.log"; fail "clean candidate: exit $s"; }
grep -q "from the reference cache" "$work/clean.log" && fail "an empty cache had the reference"
ls "$work"/cache/*.json > /dev/null || fail "the reference was not stored in the cache"
[ "$(cat "$work/clean/status")" = 0 ] || fail "status file"
head -1 "$work/clean/comment.md" | grep -q "Whisper fidelity: PASS (exit 0" || fail "clean comment: $(head -1 "$work/clean/comment.md")"
grep -q "first divergent tap:\*\* none" "$work/clean/comment.md" || fail "clean comment: first divergent tap"
for f in report.md report.json report.html junit.xml; do [ -s "$work/clean/report/$f" ] || fail "no $f"; done
s=0; bash "$src/scripts/ci-fidelity.sh" "${common[@]}" --out "$work/fault" --max-comment-bytes 3000 \
  -- --threads 1 --fault no-ln-post > "$work/fault.log" 2>&1 || s=$?
[ $s = 1 ] || { cat "$work/fault.log"; fail "faulty candidate: exit $s, expected 1"; }
grep -q "from the reference cache" "$work/fault.log" || fail "the cached reference was not reused"
sed -n 1p "$work/fault/comment.md" | grep -q "Whisper fidelity: FAIL (exit 1" || fail "fault comment line 1"
sed -n 3p "$work/fault/comment.md" | grep -q "first divergent tap:\*\* \`encoder.ln_post\`" || fail "fault comment line 3: $(sed -n 3p "$work/fault/comment.md")"
sed -n 4p "$work/fault/comment.md" | grep -q "transcript impact" || fail "fault comment line 4"
size=$(wc -c < "$work/fault/comment.md")
[ "$size" -le 3000 ] || fail "comment is $size bytes, over --max-comment-bytes 3000"
grep -q "report cut at 3000 bytes" "$work/fault/comment.md" || fail "the cut is not said"
s=0; bash "$src/scripts/ci-fidelity.sh" "${common[@]/hello.wav/missing.wav}" --out "$work/missing" > "$work/missing.log" 2>&1 || s=$?
[ $s = 2 ] || fail "missing audio: exit $s, expected 2"
echo "ci_fidelity_test: PASS (clean 0, fault 1 at encoder.ln_post, comment $size bytes, missing audio 2)"
