#!/usr/bin/env bash
# One batch on a GPU host (docs/gpu.md), run from the repository root (it reads fixtures/):
# unpacks the scripts/pack-cuda.sh archive, runs the wb_cuda tests, writes the CUDA dumps the
# fidelity checks compare against CPU reference dumps (trained fixture float32/bfloat16/float16,
# tiny-dims random weights, one dump per fault with the fault's first tap and the tap before it),
# checks that two float32 runs are bit-identical, and times the encoder against PyTorch.
#   scripts/cuda-gpu-run.sh PACK.tar.xz OUT_DIR [STEPS]     STEPS: any of test,dump,fault,bench
# OUT_DIR receives at most 8 files, each under 16 MiB (dumps grouped in tar files).
set -u
pack="$1"
out="$2"
steps="${3:-test,dump,fault,bench}"
mkdir -p "$out" /tmp/wbp
tar xJf "$pack" -C /tmp/wbp
b=$(ls -d /tmp/wbp/*/ | head -1)
export LD_LIBRARY_PATH="$b/lib:/usr/local/cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
d="$b/wb-cuda-dump"
clip=fixtures/heldout/clip000.flac
nvidia-smi -L
has() { [[ ",$steps," == *",$1,"* ]]; }
if has test; then
  "$b/wb_cuda_tests" -s 2>&1 | grep -E "MESSAGE|rel L2|max abs|SKIPPED|test cases|ERROR|FAILED" | head -60
  echo "wb_cuda_tests rc=${PIPESTATUS[0]}"
fi
if has dump; then
  w=/tmp/wbd && mkdir -p $w/red
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
  for p in bfloat16 float16; do
    "$d" --model fixtures/trained --audio $clip --precision $p --compress 6 \
      --taps 'mel,encoder.blocks.0.out,encoder.blocks.3.out,encoder.ln_post' -o $w/red/trained-$p.h5
  done
  "$d" --random-dims tiny --seed 1 --audio $clip --precision float32 --compress 6 \
    --taps 'mel,encoder.blocks.*.out,encoder.ln_post' -o $w/tiny-f32.h5
  cp $w/trained-f32.h5 $w/tiny-f32.h5 "$out/"
  tar cf "$out/reduced.tar" -C $w/red .
fi
if has fault; then
  f=/tmp/wbf && mkdir -p $f/1 $f/2
  run() { "$d" --model fixtures/trained --audio $clip --compress 6 --fault "$2" --taps "$3" -o "$f/$1/$(echo "$2" | tr '=' '_').h5"; }
  run 1 mel-db mel
  run 1 stft-no-reflect mel
  run 1 gelu-tanh 'mel,encoder.conv1'
  run 1 no-pos-embed 'encoder.conv2,encoder.pos_embed'
  run 2 ln-eps=1e-2 'encoder.pos_embed,encoder.blocks.0.attn_ln'
  run 2 attn-scale=double 'encoder.blocks.0.attn.v,encoder.blocks.0.attn.out'
  run 2 no-ln-post 'encoder.blocks.3.out,encoder.ln_post'
  "$d" --model fixtures/trained --audio $clip --fault ln-fp16 -o $f/x.h5; echo "ln-fp16 rc=$?"
  tar cf "$out/faults1.tar" -C $f/1 . && tar cf "$out/faults2.tar" -C $f/2 .
fi
if has bench; then
  PYTHONUNBUFFERED=1 timeout 420 python3 "$b/cuda_bench.py" --bin "$d" --json "$out/bench.json"
fi
ls -la "$out"
