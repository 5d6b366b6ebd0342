#!/usr/bin/env bash
# The reference cache (wb/core/ref_cache.h) through wb dump --ref-cache, on the nano model:
#   - a miss computes and stores the entry; a hit gives the same dump (byte for byte);
#   - a truncated, a bit-flipped and a foreign entry are each recomputed with a one-line
#     warning, never trusted, and the recomputed dump equals the first;
#   - two writers storing the same entry at once leave one good entry (the next run hits it
#     without a warning);
#   - wb sweep run twice: the second takes every reference from the cache, with the same report.
# Usage: ref_cache_test.sh WB SOURCE_DIR WORK_DIR
set -euo pipefail
wb=$1 src=$2 work=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail() { echo "ref_cache_test: FAIL: $*" >&2; exit 1; }
py=${WB_PYTHON:-/usr/bin/python3}
model=$src/fixtures/models/nano-hf audio=$src/fixtures/audio/hello.wav
dump() { "$wb" dump --impl reference --model "$model" --audio "$audio" --no-decode --threads 1 \
           --ref-cache cache -o "$1" > "$1.out" 2> "$1.err"; }
entry() { ls cache/*.h5; }
dump first.h5
grep -q "from the reference cache" first.h5.out && fail "an empty cache had an entry"
[ "$(ls cache/*.json | wc -l)" = 1 ] || fail "no index stored"
dump hit.h5
grep -q "from the reference cache" hit.h5.out || fail "the second dump did not hit"
[ -s hit.h5.err ] && fail "a hit warned: $(cat hit.h5.err)"
cmp -s hit.h5 "$(entry)" || fail "the hit differs from the entry"
# recomputed DAMAGE WHAT: the next dump warns once, names WHAT, recomputes; the entry is good after
recomputed() {
  dump "$1.h5"
  grep -q "from the reference cache" "$1.h5.out" && fail "$1: a damaged entry was trusted"
  [ "$(wc -l < "$1.h5.err")" = 1 ] || { cat "$1.h5.err"; fail "$1: not one warning line"; }
  grep -q "warning: reference cache entry .*$2.*recomputing it" "$1.h5.err" ||
    fail "$1: warning lacks '$2': $(cat "$1.h5.err")"
  "$wb" compare first.h5 "$1.h5" > /dev/null || fail "$1: the recomputed dump differs"
  dump "$1-after.h5"
  grep -q "from the reference cache" "$1-after.h5.out" || fail "$1: not stored again"
  echo "ref_cache_test: $1: $(cat "$1.h5.err")"
}
f=$(entry); truncate -s $(( $(stat -c %s "$f") / 2 )) "$f"
recomputed truncated "truncated"
f=$(entry); "$py" - "$f" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) * 3 // 4] ^= 0x10  # one bit, inside tap data
open(p, "wb").write(bytes(b))
PY
recomputed bitflip "checksum differs"
# foreign: another clip's dump put under this key, its index made consistent with it
"$wb" dump --impl reference --model "$model" --audio "$src/fixtures/audio/numbers.wav" \
  --no-decode --threads 1 -o other.h5 > /dev/null
f=$(entry); idx=$(ls cache/*.json)
"$py" - "$idx" "$f" other.h5 <<'PY'
import json, shutil, sys, os
idx, data, other = sys.argv[1:]
# the cache's own checksum, recomputed here by the same rule (a consistent index)
import struct
def checksum(path):
    M = 0x9E3779B97F4A7C15; mask = (1 << 64) - 1
    lane = [1, 2, 3, 4]; total = 0
    with open(path, "rb") as f:
        while True:
            buf = f.read(1 << 20)
            if not buf: break
            total += len(buf)
            if len(buf) % 8: buf += b"\0" * (8 - len(buf) % 8)
            for i, (w,) in enumerate(struct.iter_unpack("<Q", buf)):
                l = ((lane[i & 3] ^ w) * M) & mask
                lane[i & 3] = l ^ (l >> 29)
    h = (total * M) & mask
    for l in lane: h = (((h ^ l) * M) & mask) ^ (h >> 31)
    return "".join(f"{v:016x}" for v in [h] + lane)
shutil.copyfile(other, data)
j = json.load(open(idx))
j["checksum"] = checksum(data); j["bytes"] = os.path.getsize(data)
json.dump(j, open(idx, "w"))
PY
recomputed foreign "foreign entry"
# two writers at once on an empty cache
rm -rf cache
dump a.h5 & dump b.h5 & wait
[ "$(ls cache/*.json | wc -l)" = 1 ] || fail "concurrent writers left $(ls cache/*.json | wc -l) indexes"
dump c.h5
grep -q "from the reference cache" c.h5.out || fail "after concurrent writers: no good entry"
[ -s c.h5.err ] && fail "after concurrent writers: $(cat c.h5.err)"
echo "ref_cache_test: concurrent writers: one good entry"
# a sweep run twice over the same clips: the second reuses every reference, same report
mkdir clips && cp "$src"/fixtures/audio/hello.wav "$src"/fixtures/audio/numbers.wav clips/
for r in 1 2; do
  "$wb" sweep --model "$model" --audio-dir clips --impl candidate --threads 1 --max-tokens 4 \
    --profile "$src/fixtures/profiles/float32.json" --ref-cache sweep-cache --out sweep$r \
    > sweep$r.out 2> sweep$r.err
done
grep -q "reference cache sweep-cache: 0 reused, 2 computed" sweep1.err || fail "sweep 1: $(tail -1 sweep1.err)"
grep -q "reference cache sweep-cache: 2 reused, 0 computed" sweep2.err || fail "sweep 2: $(tail -1 sweep2.err)"
"$py" - sweep1/report.json sweep2/report.json <<'PY' || fail "the cached sweep's report differs"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
for r in (a, b):
    r.pop("run", None)
assert a == b, [k for k in a if a[k] != b.get(k)]
PY
echo "ref_cache_test: PASS"
