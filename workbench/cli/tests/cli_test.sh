#!/usr/bin/env bash
# End-to-end checks of the wb CLI on the committed fixtures: exit statuses, one-line errors,
# HF vs ggml bit-identical dumps, run-to-run determinism, atomic outputs.
# Usage: cli_test.sh WB_BINARY SOURCE_DIR
set -uo pipefail
wb=$1; src=$2
. "$(dirname "$0")/lib.sh"
hf=$src/fixtures/models/nano-hf; gg=$src/fixtures/models/nano.bin; clip=$src/fixtures/audio/hello.wav

# Two parts run at once: side_checks (the trained model, transcribe, the benchmarks and the
# option-parsing refusals) in the background, in its own scratch folder, beside the checks on the
# nano model's dumps below (lib.sh's part/join_parts); nearly every check is one short process
# whose time is one thread loading LibTorch, so two at a time use the machine's two cores.
side_checks() {
  # The trained model (HF, tied output projection, GPT-2-spelled byte vocabulary) rewritten as ggml
  # by `wb convert`: the same taps and the same transcript through the ggml loader.
  tr=$src/fixtures/trained; tclip=$src/fixtures/heldout/clip001.flac
  if "$wb" convert --model "$tr" --format ggml -o "$tmp/trained.bin" >/dev/null &&
     "$wb" dump --model "$tr" --audio "$tclip" -o "$tmp/tr-hf.h5" >/dev/null &&
     "$wb" dump --model "$tmp/trained.bin" --audio "$tclip" -o "$tmp/tr-gg.h5" >/dev/null &&
     h5diff -q "$tmp/tr-hf.h5" "$tmp/tr-gg.h5" /taps /taps && h5diff -q "$tmp/tr-hf.h5" "$tmp/tr-gg.h5" /decode /decode; then
    ok "trained model: HF and converted ggml give identical taps and transcript"
  else bad "trained model: HF vs converted ggml"; fi

  # Transcript impact: a teacher-forced candidate dump over the reference's tokens gives a KL at
  # round-off level when clean; forcing needs a dump with tokens (checked in the main part, on a
  # dump it already has). The reference is tr-hf.h5 above (the reference implementation's dump of
  # the trained model, every tap and the decode): one reference run for both checks; the candidate
  # dumps the minimal taps, which the comparison meets in the reference.
  "$wb" dump --model "$tr" --audio "$tclip" --taps minimal --impl candidate --teacher-tokens "$tmp/tr-hf.h5" -o "$tmp/ti-cand.h5" >/dev/null
  "$wb" compare "$tmp/tr-hf.h5" "$tmp/ti-cand.h5" -q --report "$tmp/ti" --format json
  python3 -c "
import json, sys
x = json.load(open(sys.argv[1]))['transcript_impact']
assert x['teacher_forced'] and x['agreement'] == 1.0 and x['kl_max'] < 1e-9, x['kl_max']
" "$tmp/ti/report.json" && ok "teacher-forced KL at round-off for the clean candidate" || bad "transcript impact (clean)"
  rm -f "$tmp"/tr-*.h5 "$tmp/trained.bin" "$tmp"/ti-*.h5

  # The KV-cached decoder and the full-recompute one (--no-kv-cache) agree, and --bench-decode says so.
  # --tokens in the same run prints the pipeline's own tokens, which --encoder-out must give below.
  out=$("$wb" transcribe --model "$hf" --audio "$clip" --threads 2 --bench-decode --tokens 2>&1); rc=$?
  [ "$rc" = 0 ] && grep -q "decode: kv-cache .* tokens identical" <<<"$out" \
    && ok "transcribe --bench-decode: same tokens with and without the KV cache" \
    || bad "transcribe --bench-decode exit $rc: $out"

  # --encoder-out: the reference decoder on a dump's encoder.ln_post gives the tokens of the
  # pipeline's own decode; a dump of another model is refused (scripts/cuda-heldout.sh uses this).
  want=$(sed -n 's/^tokens: //p' <<<"$out")
  "$wb" dump --model "$hf" --audio "$clip" --no-decode --taps encoder.ln_post -o "$tmp/eo.h5" >/dev/null
  got=$("$wb" transcribe --model "$hf" --encoder-out "$tmp/eo.h5" "$tmp/eo.h5" | cut -f2 | sort -u)
  [ -n "$want" ] && [ "$got" = "$want" ] && ok "transcribe --encoder-out: the pipeline's tokens" \
    || bad "transcribe --encoder-out: got '$got', want '$want'"
  "$wb" fixture-model --dims nano --seed 9 -o "$tmp/other" >/dev/null
  expect "--encoder-out of another model" 2 "model_sha256 differs" -- \
    "$wb" transcribe --model "$tmp/other" --encoder-out "$tmp/eo.h5"
  rm -rf "$tmp/eo.h5" "$tmp/other"

  # Benchmarks: smoke runs on small dims; a fast wrong kernel does not pass wb bench.
  "$wb" bench --dims nano --repeats 1 --threads 2 > "$tmp/bench.txt" 2>&1 && grep -q "^nano " "$tmp/bench.txt" &&
    ok "wb bench --dims nano (exit 0, a row)" || bad "wb bench smoke: $(tail -3 "$tmp/bench.txt")"
  "$wb" bench --dims nano --repeats 1 --threads 2 --fault attn-scale=double > "$tmp/bench.txt" 2>&1
  rc=$?
  [ $rc = 1 ] && grep -q "a fast wrong kernel does not win" "$tmp/bench.txt" && ok "wb bench: a faulty candidate exits 1" || bad "wb bench with a fault (exit $rc)"
  # Every precision is gated, by its own built-in profile: bfloat16 clean passes, a real bug fails.
  "$wb" bench --dims nano --repeats 1 --threads 2 --precision bfloat16 > "$tmp/bench.txt" 2>&1 &&
    ok "wb bench --precision bfloat16 (exit 0)" || bad "wb bench bfloat16: $(tail -3 "$tmp/bench.txt")"
  "$wb" bench --dims nano --repeats 1 --threads 2 --precision bfloat16 --fault attn-scale=double > "$tmp/bench.txt" 2>&1
  rc=$?
  [ $rc = 1 ] && grep -q "bfloat16 profile" "$tmp/bench.txt" && ok "wb bench: a faulty bfloat16 candidate exits 1 (bfloat16 profile)" || bad "wb bench bfloat16 with a fault (exit $rc)"
  # scripts/bench-whispercpp.sh: a missing or foreign whisper.cpp checkout is one line and exit 2.
  for d in "$tmp/no-such-dir" "$src/fixtures"; do
    out=$(WB="$wb" bash "$src/scripts/bench-whispercpp.sh" "$d" 2>&1); rc=$?
    [ $rc = 2 ] && [ "$(printf '%s\n' "$out" | wc -l)" = 1 ] && ok "bench-whispercpp.sh $d: exit 2, one line" ||
      bad "bench-whispercpp.sh $d: exit $rc: $out"
  done
  "$wb" compare-bench --dir "$tmp/cb" --dims nano --gigabytes 0.002 --repeat 1 > "$tmp/cb.txt" 2>&1
  rc=$?
  { [ $rc = 0 ] || [ $rc = 1 ]; } && grep -q "bench: " "$tmp/cb.txt" && ok "wb compare-bench --dims nano runs (exit $rc: its perf verdict)" || bad "compare-bench smoke (exit $rc)"
  rm -rf "$tmp/cb"

  # Encoder options are parsed once, by one registration shared by every command that takes them:
  # a bad value is refused while parsing (exit 2, one line listing the valid values), the same on
  # each command, before any model is read.
  prec_err="--precision 'float64': expected one of float32, bfloat16, float16"
  expect "dump: bad --precision"          2 "$prec_err" -- "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --precision float64
  expect "transcribe: bad --precision"    2 "$prec_err" -- "$wb" transcribe --model "$hf" --audio "$clip" --precision float64
  expect "run: bad --precision"           2 "$prec_err" -- "$wb" run --model "$hf" --audio-dir "$src/fixtures/audio" --expect-file "$tmp/none.tsv" --precision float64
  expect "bench: bad --precision"         2 "$prec_err" -- "$wb" bench --dims nano --repeats 1 --precision float64
  expect "replay: bad --precision"        2 "$prec_err" -- "$wb" replay "$tmp/rp-ref.h5" --model "$hf" --audio "$clip" --precision float64
  expect "bisect-layers: bad --precision" 2 "$prec_err" -- "$wb" bisect-layers --model "$hf" --audio "$clip" --precision float64
  expect "sweep: bad --precision"         2 "$prec_err" -- "$wb" sweep --model "$hf" --audio-dir "$src/fixtures/audio" --out "$tmp/sw" --precision float64
  [ ! -e "$tmp/x.h5" ] && [ ! -e "$tmp/sw" ] && ok "a refused option writes nothing" || bad "a refused option left output"
  expect "bad --impl"       2 "--impl 'gpu': expected one of reference, candidate, cuda" -- "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --impl gpu
  expect "bad --dtype"      2 "--dtype 'float16': expected one of float32, float64" -- "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --dtype float16
  expect "unknown --fault"  2 "no-such-fault" -- "$wb" bench --dims nano --repeats 1 --fault no-such-fault
  dump_help=$("$wb" dump --help)  # read by two checks
  "$wb" bench --help | grep -q -- "--precision.*float32, bfloat16, float16" && grep -q -- "--precision.*float32, bfloat16, float16" <<<"$dump_help" &&
    ok "--precision help from one place (dump, bench)" || bad "--precision help text"

  "$wb" --version | grep -q "^wb " && ok "--version" || bad "--version"
  grep -q -- "--taps" <<<"$dump_help" && ok "dump --help" || bad "dump --help"
}
part side side_checks

# Same weights through both loaders: bit-identical taps (h5py-free: compare via wb inspect stats
# and the raw datasets with cmp after stripping metadata is not possible, so compare every tap).
"$wb" dump --model "$hf" --audio "$clip" -o "$tmp/hf.h5" --threads 2 >/dev/null || bad "dump hf"
"$wb" dump --model "$gg" --audio "$clip" -o "$tmp/gg.h5" --threads 2 >/dev/null || bad "dump ggml"
"$wb" dump --model "$hf" --audio "$clip" -o "$tmp/hf2.h5" --threads 2 >/dev/null || bad "dump hf again"
if command -v h5diff >/dev/null; then
  h5diff -q "$tmp/hf.h5" "$tmp/gg.h5" /taps /taps && ok "hf and ggml dumps bit-identical" || bad "hf vs ggml taps differ"
  h5diff -q "$tmp/hf.h5" "$tmp/hf2.h5" /taps /taps && ok "two runs bit-identical" || bad "two runs differ"
  h5diff -q "$tmp/hf.h5" "$tmp/hf2.h5" /decode /decode && ok "two runs decode the same" || bad "decode differs"
else
  bad "h5diff missing (hdf5-tools)"
fi
expect "convert a missing model" 2 "no-such" -- "$wb" convert --model "$tmp/no-such" -o "$tmp/y.bin"
"$wb" inspect "$tmp/hf.h5" > "$tmp/inspect.txt" && grep -q "encoder.ln_post" "$tmp/inspect.txt" && ok "inspect lists taps" || bad "inspect"
"$wb" dump --model "$hf" --audio "$clip" -o "$tmp/sel.h5" --taps 'encoder.blocks.*.out' --store float16 --no-decode >/dev/null
[ "$("$wb" inspect "$tmp/sel.h5" | grep -c '^encoder.blocks')" = 2 ] && ok "--taps glob selects 2 taps" || bad "--taps glob"
"$wb" inspect "$tmp/sel.h5" | grep -q "float16" && ok "--store float16" || bad "--store float16"
expect "--teacher-tokens without tokens" 2 "no /decode/tokens" -- "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --teacher-tokens "$tmp/sel.h5"

# Bad usage and bad input: exit 2, one line naming the problem.
expect "unknown subcommand"   2 "usage error" -- "$wb" frobnicate
expect "missing --model"      2 "model" -- "$wb" dump --audio "$clip" -o "$tmp/x.h5"
# libsamplerate is loaded only when a clip needs resampling (hello.wav is 22050 Hz): without it,
# one line saying what to install, no output.
expect "resampling without libsamplerate" 2 "cannot load" -- \
  env WB_SAMPLERATE_LIB="$tmp/no-libsamplerate.so" "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5"
# wb-engine opens the LibTorch reference (wb-reference.so) and the CUDA candidate (wb-cuda.so) only
# when a command calls them (workbench/modules): a candidate dump without decoding runs with both
# modules' paths pointing nowhere and loads no LibTorch (a reference dump does: the check's
# control); a reference dump without its module, or with a file that is not that module, is one
# line and exit 3 (an incomplete installation), no output.
nomod=$tmp/no-such-module.so
WB_REFERENCE_MODULE=$nomod WB_CUDA_MODULE=$nomod "$wb" dump --impl candidate --no-decode --model "$hf" \
  --audio "$clip" -o "$tmp/lazy.h5" >/dev/null && ok "candidate dump without decoding opens no module" ||
  bad "candidate dump with the modules' paths pointing nowhere"
loaded() { LD_DEBUG=libs "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/lazy.h5" "$@" 2>&1 >/dev/null | grep -c "libtorch_cpu"; }
[ "$(loaded --impl candidate --no-decode)" = 0 ] && [ "$(loaded --impl reference --no-decode)" -gt 0 ] &&
  ok "LibTorch loaded by a reference dump only" || bad "LibTorch loaded by a candidate dump (or by no reference dump)"
rm -f "$tmp/lazy.h5"
expect "reference dump without its module" 3 "no-such-module.so" -- \
  env WB_REFERENCE_MODULE="$nomod" "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5"
printf 'not a module' > "$tmp/fake.so"
expect "reference module that is no shared object" 3 "fake.so" -- \
  env WB_REFERENCE_MODULE="$tmp/fake.so" "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5"
rm -f "$tmp/fake.so"
if [ -e "$(dirname "$wb")/wb-cuda.so" ]; then
  expect "reference module that is another module" 3 "no entry point wb_reference_module_v1" -- \
    env WB_REFERENCE_MODULE="$(dirname "$wb")/wb-cuda.so" "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5"
fi
# --attention / --fc1-gelu choose the CUDA candidate's backends: refused for any other encoder
# (a build without CUDA does not know the options: the same exit status, the option named)
expect "--attention without --impl cuda" 2 "--attention" -- \
  "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --attention cudnn
expect "missing audio file"   2 "nope.wav" -- "$wb" dump --model "$hf" --audio "$tmp/nope.wav" -o "$tmp/x.h5"
printf 'RIFF\x24\x00\x00\x00WAVEfmt junk' > "$tmp/bad.wav"
expect "malformed wav"        2 "bad.wav" -- "$wb" dump --model "$hf" --audio "$tmp/bad.wav" -o "$tmp/x.h5"
head -c 1000 "$gg" > "$tmp/trunc.bin"
expect "truncated ggml"       2 "trunc.bin" -- "$wb" dump --model "$tmp/trunc.bin" --audio "$clip" -o "$tmp/x.h5"
printf 'hello' > "$tmp/foreign.h5"
expect "not an HDF5 file"     2 "not an HDF5 file" -- "$wb" inspect "$tmp/foreign.h5"
expect "bad --taps"           2 "selects nothing" -- "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --taps ","
expect "glob matching no tap" 2 "nearest: encoder.blocks.0" -- "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --taps 'encoder.blocks.*.mlp_out'
expect "decoder taps with --no-decode" 2 "decoding is off" -- "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --taps 'decoder.**' --no-decode
"$wb" dump --model "$hf" --audio "$clip" -o "$tmp/fc2.h5" --taps 'encoder.blocks.*.mlp.fc2' --no-decode >/dev/null &&
  [ "$("$wb" inspect "$tmp/fc2.h5" | grep -c 'mlp.fc2')" = 2 ] && ok "README's --taps example selects a tap per block" || bad "README --taps example"
"$wb" taps --dims tiny --json | python3 -c "import json,sys; t=json.load(sys.stdin); assert t[0]['name']=='mel' and t[0]['shape']==[80,3000] and t[-1]['name']=='logits', t[:1]" &&
  ok "wb taps --json" || bad "wb taps --json"
"$wb" faults --json | python3 -c "import json,sys; t=json.load(sys.stdin); assert len(t) >= 10 and all(f['first_tap'] and f['examples'] and all(e['spec'] and e['first_tap'] for e in f['examples']) for f in t)" &&
  ok "wb faults --json" || bad "wb faults --json"
"$wb" info --json | python3 -c "import json,sys; j=json.load(sys.stdin); sup=[i['name'] for i in j['isas'] if i['supported']]; assert j['precisions'][0] == 'float32' and sup and sup[0] == j['isas'][0]['name'] and j['best_isa'] == sup[-1] and [p['precision'] for p in j['profiles']] == j['precisions'] and len(j['faults']) >= 10 and j['tool_version']" &&
  ok "wb info --json" || bad "wb info --json"
# --min-agreement compares against the reference: refused with --impl reference before any clip
# runs (nothing on stdout).
expect "--min-agreement with --impl reference" 2 "--min-agreement needs --impl candidate" -- \
  "$wb" run --model "$src/fixtures/trained" --audio-dir "$src/fixtures/heldout" \
  --expect-file "$src/fixtures/heldout/expect.tsv" --impl reference --min-agreement 0.9
[ ! -s "$tmp/out" ] && ok "--min-agreement refused before any clip runs" || bad "wb run printed: $(head -c 200 "$tmp/out")"
expect "fault on reference"   2 "candidate only" -- "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/x.h5" --fault no-ln-post
[ ! -e "$tmp/x.h5" ] && ok "failed runs leave no output" || bad "failed run left $tmp/x.h5"
ls "$tmp" | grep -q partial && bad "partial file left behind" || ok "no partial files left"

# A disk that fills mid-dump (a file size limit, SIGXFSZ ignored: writes fail with EFBIG): exit 2,
# one line, no output, no partial file; at limits spread over the dump and just under its size,
# so the failing write falls in a tap, the transcript, and the final flush and close.
size_kib=$(( ($(stat -c %s "$tmp/hf.h5") - 1) / 1024 ))  # the largest limit the dump exceeds
for lim in $((size_kib / 8)) $((size_kib / 3)) $((size_kib * 2 / 3)) $((size_kib - 16)) \
           $((size_kib - 4)) $((size_kib - 2)) $((size_kib - 1)) $size_kib; do
  expect "disk full at $lim KiB of $size_kib" 2 "cannot" -- \
    bash -c 'ulimit -f "$1"; trap "" XFSZ; shift; exec "$@"' _ "$lim" \
    "$wb" dump --model "$hf" --audio "$clip" -o "$tmp/full.h5" --threads 2
  { [ ! -e "$tmp/full.h5" ] && ! ls "$tmp" | grep -q partial; } ||
    bad "disk full at $lim KiB left $(ls "$tmp" | grep 'full.h5')"
done

# A dump killed mid-write leaves nothing that looks complete.
"$wb" dump --model "$hf" --audio "$clip" -o "$tmp/killed.h5" --dtype float64 --store float64 >/dev/null 2>&1 &
pid=$!; sleep 1.5; kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
if [ -e "$tmp/killed.h5" ]; then "$wb" inspect "$tmp/killed.h5" >/dev/null 2>&1 && ok "killed dump finished before the kill" || bad "killed dump left an unreadable file"
else ok "killed dump left no output file"; fi
for f in "$tmp"/killed.h5.partial-*; do
  [ -e "$f" ] || continue
  expect "partial dump refused" 2 "still being written" -- "$wb" inspect "$f"
done
# Killed before its superblock reached the disk (what the kill above meets on a slow build):
# the temporary name still says so.
: > "$tmp/early.h5.partial-4242"
expect "partial dump without a superblock refused" 2 "still being written" -- "$wb" inspect "$tmp/early.h5.partial-4242"

# Culprit workflow on the nano model: replay names the faulty block, bisect-layers the stage.
"$wb" dump --model "$hf" --audio "$clip" -o "$tmp/rp-ref.h5" --taps blocks --no-decode >/dev/null
"$wb" replay "$tmp/rp-ref.h5" --model "$hf" --audio "$clip" --fault attn-scale=double@1 --report "$tmp/rp" --format json,md > "$tmp/rp.txt"
rc=$?
[ $rc = 1 ] && grep -q "culprit: block 1" "$tmp/rp.txt" && grep -q '"culprit": "block 1"' "$tmp/rp/report.json" &&
  ok "replay: own error at block 1 (exit 1)" || bad "replay with attn-scale=double@1 (exit $rc)"
"$wb" replay "$tmp/rp-ref.h5" --model "$hf" --audio "$clip" -q && ok "replay: clean candidate exit 0" || bad "replay clean"
# Without --profile the candidate's --precision chooses the profile, and the verdict names it.
"$wb" replay "$tmp/rp-ref.h5" --model "$hf" --audio "$clip" --precision bfloat16 --report "$tmp/rpb" --format json > "$tmp/rpb.txt"
rc=$?
[ $rc = 0 ] && grep -q "profile bfloat16" "$tmp/rpb.txt" && grep -q '"profile": "bfloat16"' "$tmp/rpb/report.json" &&
  ok "replay --precision bfloat16: judged by the bfloat16 profile (exit 0)" || bad "replay bfloat16 (exit $rc): $(head -2 "$tmp/rpb.txt")"
"$wb" bisect-layers --model "$hf" --audio "$clip" --precision float16 > "$tmp/blf.txt"
rc=$?
[ $rc = 0 ] && grep -q "(profile float16)" "$tmp/blf.txt" && ok "bisect-layers --precision float16: the float16 profile (exit 0)" ||
  bad "bisect-layers float16 (exit $rc): $(head -3 "$tmp/blf.txt")"
expect "replay with another clip" 2 "made from audio" -- "$wb" replay "$tmp/rp-ref.h5" --model "$hf" --audio "$src/fixtures/heldout/clip001.flac"
"$wb" bisect-layers --model "$hf" --audio "$clip" --fault no-pos-embed > "$tmp/bl.txt"
rc=$?
[ $rc = 1 ] && grep -q "culprit: stem" "$tmp/bl.txt" && ok "bisect-layers: no-pos-embed -> stem" || bad "bisect-layers (exit $rc)"
"$wb" dump --model "$hf" --audio "$clip" -o "$tmp/rp-cand.h5" --taps blocks --no-decode --impl candidate --fault attn-scale=double@1 >/dev/null
"$wb" compare "$tmp/rp-ref.h5" "$tmp/rp-cand.h5" -q --replay "$tmp/rp/report.json" --report "$tmp/rpc" --format md,json
grep -q "Replay" "$tmp/rpc/report.md" && ok "compare --replay: replay section in the report" || bad "compare --replay"
rm -f "$tmp"/rp-*.h5

join_parts
finish
