#!/usr/bin/env bash
# wb sweep / wb merge-reports on the nano model and the four fixture clips plus a truncated WAV:
#   - an unreadable clip is listed with its error, the others are compared (exit 2);
#   - 3 shards + merge-reports give the unsharded report, byte for byte, except the "run" member
#     (JSON) and the "Run:" line (Markdown, HTML);
#   - a planted fault on the same clips exits 1 (tolerance beats the unreadable clip);
#   - a rerun skips the clips already done (resume, also after a real SIGTERM), and with no bad
#     clip exits 0;
#   - a merge with a shard missing, a bad --shard: exit 2 with one line;
#   - --keep-dumps writes both sides' dumps (wb compare reads them), within --max-disk.
# Usage: sweep_test.sh WB SOURCE_DIR WORK_DIR
set -euo pipefail
wb=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work/audio"
cp "$src"/fixtures/audio/*.wav "$work/audio/"
head -c 300 "$src/fixtures/audio/hello.wav" > "$work/audio/broken.wav"   # header, then nothing
{ cat "$src/fixtures/audio/texts.tsv"; printf 'broken.wav\tnothing to hear\n'; } > "$work/expect.tsv"
base=(--model "$src/fixtures/models/nano-hf" --audio-dir "$work/audio" --threads 1 --max-tokens 6)
common=("${base[@]}" --expect-file "$work/expect.tsv")
fail() { echo "sweep_test: FAIL: $*" >&2; exit 1; }
status() { local s=0; "$@" > "$work/last.out" 2> "$work/last.err" || s=$?; echo $s; }

# 1. unsharded, with the broken clip: exit 2, the broken clip listed with its error
s=$(status "$wb" sweep "${common[@]}" --out "$work/full")
[ "$s" = 2 ] || { cat "$work/last.err"; fail "unsharded sweep exit $s, expected 2"; }
grep -q "sweep: \[1/5\] broken.wav ERROR: " "$work/last.err" || fail "no progress line for broken.wav"
python3 - "$work/full/report.json" <<'EOF' || fail "report content"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
assert s["clips"] == 5 and s["compared"] == 4 and s["unreadable"] == 1 and s["failed"] == 0, s
assert r["errors"][0]["clip"] == "broken.wav" and "broken.wav" in r["errors"][0]["message"], r["errors"]
assert r["exit_status"] == 2
names = [t["name"] for t in r["taps"]]
assert names[0] == "mel" and "encoder.ln_post" in names, names[:5]
t = r["taps"][names.index("encoder.ln_post")]
assert t["clips"] == 4 and t["rel_l2"]["max"] < 1e-4 and t["rel_l2"]["worst_clip"].endswith(".wav"), t
assert r["transcripts"]["clips_with_expected"] == 4 and r["transcripts"]["identical"] == 4, r["transcripts"]
print("sweep_test: unsharded:", s, "ln_post rel_l2 max", t["rel_l2"]["max"])
EOF
for f in report.md report.html junit.xml clips/hello.wav.json clips/broken.wav.json shards/0-of-1.json; do
  [ -s "$work/full/$f" ] || fail "missing $f"
done
grep -q "broken.wav" "$work/full/report.md" || fail "broken.wav not in report.md"

# 2. three shards into one shared folder (as on a cluster), then the merge: the same report
for k in 0 1 2; do
  s=$(status "$wb" sweep "${common[@]}" --out "$work/sharded" --shard "$k/3")
  case $k in 0) want=2;; *) want=0;; esac   # broken.wav (index 0) falls in shard 0
  [ "$s" = "$want" ] || { cat "$work/last.err"; fail "shard $k/3 exit $s, expected $want"; }
done
[ "$(ls "$work/sharded/clips" | wc -l)" = 5 ] || fail "shards wrote $(ls "$work/sharded/clips" | wc -l) clip results"
s=$(status "$wb" merge-reports "$work/sharded")
[ "$s" = 2 ] || { cat "$work/last.err"; fail "merge-reports exit $s, expected 2"; }
bash "$src/scripts/slurm/same-report.sh" "$work/full" "$work/sharded" || fail "sharded report differs"

# 3. a merge with a shard missing refuses, naming the clip; a bad --shard is a usage error
mkdir -p "$work/partial/shards" "$work/partial/clips"
cp "$work/sharded/shards/0-of-3.json" "$work/partial/shards/"
s=$(status "$wb" merge-reports "$work/partial")
[ "$s" = 2 ] && grep -q "have no result" "$work/last.err" || fail "partial merge: exit $s, $(cat "$work/last.err")"
s=$(status "$wb" sweep "${common[@]}" --out "$work/x" --shard 3/3)
[ "$s" = 2 ] && grep -q "0 <= K < N" "$work/last.err" || fail "--shard 3/3: exit $s"

# 4. a planted fault: failing clips and the unreadable one -> 1 wins
s=$(status "$wb" sweep "${common[@]}" --fault no-ln-post --out "$work/fault")
[ "$s" = 1 ] || { cat "$work/last.err"; fail "fault sweep exit $s, expected 1"; }
python3 - "$work/fault/report.json" <<'EOF' || fail "fault report content"
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
assert s["failed"] == 4 and s["unreadable"] == 1 and r["exit_status"] == 1, s
assert s["first_divergent_taps"] == [{"tap": "encoder.ln_post", "clips": 4}], s["first_divergent_taps"]
t = [t for t in r["taps"] if t["name"] == "encoder.ln_post"][0]
assert t["failing_clips"] == 4, t
EOF

# 5. resume: a rerun over the same folder skips what is done; without the broken clip: exit 0
rm "$work/full/clips/numbers.wav.json"
grep -v '^broken' "$work/expect.tsv" > "$work/expect-ok.tsv"
s=$(status "$wb" sweep "${base[@]}" --expect-file "$work/expect-ok.tsv" --out "$work/full")
[ "$s" = 0 ] || { cat "$work/last.err"; fail "resumed sweep exit $s, expected 0"; }
[ "$(grep -c 'done earlier, skipped' "$work/last.err")" = 3 ] || fail "resume did not skip 3 clips"
grep -q "numbers.wav PASS" "$work/last.err" || fail "resume did not rerun numbers.wav"
# a clip done with other settings is not reused
s=$(status "$wb" sweep "${base[@]}" --expect-file "$work/expect-ok.tsv" --precision bfloat16 --out "$work/full")
[ "$(grep -c 'done earlier, skipped' "$work/last.err")" = 0 ] || fail "bfloat16 sweep reused float32 results"
# 6. --keep-dumps: both sides' dumps, readable by wb compare; --max-disk too small: none kept, said
s=$(status "$wb" sweep "${common[@]}" --taps blocks --keep-dumps --out "$work/keep")
[ "$s" = 2 ] || fail "--keep-dumps sweep exit $s"
[ "$(ls "$work"/keep/dumps/*.h5 | wc -l)" = 8 ] || fail "--keep-dumps kept $(ls "$work"/keep/dumps | wc -l) files, expected 8"
"$wb" compare -q "$work/keep/dumps/hello.wav.reference.h5" "$work/keep/dumps/hello.wav.candidate.h5" ||
  fail "kept dumps do not compare within tolerance"
s=$(status "$wb" sweep "${common[@]}" --taps blocks --keep-dumps --max-disk 0.00001 --out "$work/keep-small")
[ -z "$(ls "$work/keep-small/dumps")" ] || fail "--max-disk 10 kB: dumps kept anyway"
grep -q '"dumps_note": "not kept: --max-disk' "$work/keep-small/clips/hello.wav.json" || fail "no dumps_note"
# 7. interrupted for real: SIGTERM (a background job of a script ignores SIGINT) once the first
#    clip's result is there; no temporary left, and
#    the rerun skips exactly the clips whose results the killed run had written
"$wb" sweep "${common[@]}" --out "$work/killed" > /dev/null 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -n "$(ls "$work/killed/clips" 2>/dev/null | grep -v broken)" ] && break
  sleep 0.02
done
kill -TERM $pid 2>/dev/null || true
wait $pid 2>/dev/null || true
ls "$work/killed/clips" | grep -q "tmp-" && fail "a temporary result survived SIGTERM"
done_before=$(ls "$work/killed/clips" | grep -vc broken || true)
[ "$done_before" -ge 1 ] || fail "the killed sweep wrote no result"
s=$(status "$wb" sweep "${common[@]}" --out "$work/killed")
[ "$s" = 2 ] || fail "resumed killed sweep exit $s"
[ "$(grep -c 'done earlier, skipped' "$work/last.err")" = "$done_before" ] ||
  fail "resume skipped $(grep -c 'done earlier, skipped' "$work/last.err") clips, $done_before were done"
bash "$src/scripts/slurm/same-report.sh" "$work/killed" "$work/sharded" > /dev/null || fail "resumed report differs"
echo "sweep_test: interrupted after $done_before clip(s), resumed to the same report"
echo "sweep_test: PASS"
