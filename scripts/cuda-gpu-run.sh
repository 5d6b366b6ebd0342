#!/usr/bin/env bash
# One batch on a GPU host (docs/gpu.md), run from the repository root (it reads fixtures/):
# unpacks the scripts/pack-cuda.sh archive, runs the wb_cuda tests (wb-cuda-dump --self-test),
# writes the CUDA dumps the fidelity checks compare against CPU reference dumps (trained fixture
# float32/bfloat16/float16, tiny-dims random weights), checks that two float32 runs are
# bit-identical and that tap copies are as they should be, writes the fault matrix's and the
# held-out clips' dumps, and times the encoder against PyTorch.
#   scripts/cuda-gpu-run.sh PACK.tar.xz OUT_DIR [STEPS]
# STEPS (comma-separated): test, dump, check, fault, heldout-PRECISION-SHARD-NSHARDS (e.g.
# heldout-float32-0-3: scripts/cuda-heldout.sh's GPU half), decode-PRECISION-BATCH (e.g.
# decode-float32-8: every held-out clip dumped B clips a pass and decoded there with
# transformers, scripts/cuda-heldout.sh gpu-decode), bench, pdl (wb-cuda-dump --probe-pdl;
# --time-gemms 8, which also says which algorithms wait as dependents; the encoder timed
# ordinarily, with --pdl and with --pdl-gemms: one binary, interleaved twice, bfloat16, the
# outputs' digests compared).
# OUT_DIR receives at most 8 files, each under 16 MiB (dumps grouped in tar files).
set -u
pack="$1"
out="$2"
steps="${3:-test,dump,fault,bench}"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/wb-cuda-gpu.XXXXXX") && trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out" "$tmp/pack"
tar xJf "$pack" -C "$tmp/pack"
b=$(ls -d "$tmp"/pack/*/ | head -1)
export LD_LIBRARY_PATH="$b/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
# cuDNN for `--attention cudnn`: the host's, or PyTorch's wheel's where the loader has none.
if ! ldconfig -p 2>/dev/null | grep -q 'libcudnn\.so\.9'; then
  cudnn=$(python3 - <<'PY' 2>/dev/null
import glob, site
for d in site.getsitepackages():
    for f in glob.glob(d + "/nvidia/**/libcudnn.so.9", recursive=True):
        print(f.rsplit("/", 1)[0]); raise SystemExit
PY
)
  [[ -n "$cudnn" ]] && export LD_LIBRARY_PATH="$LD_LIBRARY_PATH:$cudnn"
fi
d="$b/wb-cuda-dump"
clip=$(ls fixtures/heldout/clip000.* | head -1)  # WAV or FLAC
nvidia-smi -L
has() { [[ ",$steps," == *",$1,"* ]]; }
if has test; then
  # Without -s: the tests' MESSAGE lines print anyway, and the whole run takes about 33 s on an
  # H200; -s adds every passing check (over 16 MiB, still running after 150 s).
  "$d" --self-test > "$tmp/self-test.txt" 2>&1
  rc=$?
  grep -E "MESSAGE|rel L2|max abs|SKIPPED|test cases|ERROR|FAILED" "$tmp/self-test.txt" | head -120
  echo "wb_cuda_tests rc=$rc"
fi
if has dump; then
  w=$tmp/dumps && mkdir -p $w/red
  "$d" --model fixtures/trained --audio $clip --precision float32 --taps blocks --compress 6 \
    -o $w/trained-f32.h5
  "$d" --model fixtures/trained --audio $clip --precision float32 --taps blocks --compress 6 \
    -o $w/trained-f32-again.h5
  python3 - $w/trained-f32.h5 $w/trained-f32-again.h5 <<'PY'
import sys, h5py, numpy as np
a, b = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
names = sorted(a["taps"].keys())
same = [n for n in names if np.array_equal(a["taps"][n][()], b["taps"][n][()])]
print(f"determinism: {len(same)}/{len(names)} taps bit-identical across two float32 runs")
PY
  # The reduced precisions: those of the pack's `wb info --json` after float32 (its first).
  reduced=$(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["precisions"][1:]))' \
    "$b/info.json") || { echo "no $b/info.json in the pack (scripts/pack-cuda.sh writes it)"; exit 2; }
  for p in $reduced; do
    "$d" --model fixtures/trained --audio $clip --precision $p --compress 6 \
      --taps 'mel,encoder.blocks.0.out,encoder.blocks.3.out,encoder.ln_post' -o $w/red/trained-$p.h5
  done
  "$d" --random-dims tiny --seed 1 --audio $clip --precision float32 --compress 6 \
    --taps 'mel,encoder.blocks.*.out,encoder.ln_post' -o $w/tiny-f32.h5
  cp $w/trained-f32.h5 $w/tiny-f32.h5 "$out/"
  tar cf "$out/reduced.tar" -C $w/red .
fi
if has check; then
  # Two float32 runs bit-identical; the copy-stream taps bit-identical to synchronous copies;
  # --taps none: no tap copies (the tool prints its device-to-host copy counts).
  c=$tmp/check && mkdir -p $c
  for run in a b; do
    "$d" --model fixtures/trained --audio $clip --precision float32 --compress 0 --taps all -o $c/$run.h5
  done
  "$d" --model fixtures/trained --audio $clip --precision float32 --compress 0 --taps all --sync-taps -o $c/sync.h5
  "$d" --model fixtures/trained --audio $clip --precision bfloat16 --compress 0 --taps all -o $c/bf.h5
  "$d" --model fixtures/trained --audio $clip --precision bfloat16 --compress 0 --taps all --sync-taps -o $c/bfsync.h5
  "$d" --model fixtures/trained --audio $clip --precision float32 --compress 0 --taps none -o $c/none.h5
  python3 - $c <<'PY'
import sys, h5py, numpy as np
c = sys.argv[1]
def same(x, y, what):
    a, b = h5py.File(f"{c}/{x}.h5"), h5py.File(f"{c}/{y}.h5")
    names = sorted(a["taps"].keys())
    ok = [n for n in names if np.array_equal(a["taps"][n][()], b["taps"][n][()])]
    print(f"{what}: {len(ok)}/{len(names)} taps bit-identical" + ("" if len(ok) == len(names) else
          f" (differ: {sorted(set(names) - set(ok))[:5]})"))
same("a", "b", "determinism, two float32 runs (copy stream)")
same("a", "sync", "float32, copy-stream taps vs synchronous copies")
same("bf", "bfsync", "bfloat16, copy-stream taps vs synchronous copies")
print("--taps none: taps in the dump:", len(h5py.File(f"{c}/none.h5")["taps"].keys()))
PY
fi
if has fault; then
  bash "$(dirname "$0")/cuda-fault-matrix.sh" gpu "$d" "$out"
fi
for s in ${steps//,/ }; do
  if [[ "$s" == heldout-* ]]; then
    IFS=- read -r _ p shard n <<< "$s"
    bash "$(dirname "$0")/cuda-heldout.sh" gpu "$d" "$out" "$p" "$shard" "$n"
  fi
  if [[ "$s" == decode-* ]]; then
    IFS=- read -r _ p batch <<< "$s"
    bash "$(dirname "$0")/cuda-heldout.sh" gpu-decode "$d" "$out" "$p" "$batch"
  fi
done
if has pdl; then
  "$d" --probe-pdl --dims large-v3 --precision bfloat16
  "$d" --time-gemms 8 --dims large-v3 --precision bfloat16  # which of cuBLASLt's algorithms wait
  python3 - "$d" <<'PY'
import json, subprocess, sys
d = sys.argv[1]
variants = {"ordinary": [], "--pdl": ["--pdl"], "--pdl-gemms": ["--pdl-gemms"]}
def run(dims, batch, flags):
    cmd = [d, "--time", "--json", "--dims", dims, "--precision", "bfloat16", "--batch", str(batch),
           "--iters", "100", "--warmup", "20"] + flags
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return None, r.stderr.strip()[:160]
    return json.loads(r.stdout.strip().splitlines()[-1]), ""
for dims, batch in [("large-v3", 1), ("medium", 1), ("small", 1), ("base", 1), ("tiny", 1),
                    ("large-v3", 8)]:
    ms = {v: [] for v in variants}
    sha, gemms = set(), ""
    for _ in range(2):
        for v, flags in variants.items():
            j, err = run(dims, batch, flags)
            if j is None:
                print(f"{dims} B{batch} {v}: failed: {err}", flush=True)
                continue
            ms[v].append(j["median_ms"])
            sha.add(j["output_sha256"])
            if v == "--pdl-gemms":
                gemms = f"{j['dependent_gemm_shapes']} of {j['checked_gemm_shapes']}"
    print(f"{dims:9} B{batch}: " + "; ".join(f"{v} {' / '.join(f'{x:.3f}' for x in ms[v])} ms"
                                         for v in variants) +
          f"; GEMM shapes as dependents {gemms}; outputs "
          f"{'bit-identical' if len(sha) == 1 else 'DIFFER'}", flush=True)
PY
fi
if has bench; then
  PYTHONUNBUFFERED=1 timeout 540 python3 "$b/cuda_bench.py" --bin "$d" --json "$out/bench.json"
fi
ls -la "$out"
