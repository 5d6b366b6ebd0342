#!/usr/bin/env bash
# wb-cuda-dump refuses bad usage before it looks for a GPU (so this runs on any host): exit 2 and
# one line naming the problem, and no output file.
# Usage: usage_test.sh WB_CUDA_DUMP SOURCE_DIR
set -uo pipefail
bin=$1; src=$2
. "$src/workbench/cli/tests/lib.sh"
m=$src/fixtures/models/nano-hf; a=$src/fixtures/audio/hello.wav; b=$src/fixtures/audio/numbers.wav
expect "two --audio, one -o" 2 "2 --audio for 1 -o" -- \
  "$bin" --model "$m" --audio "$a" --audio "$b" -o "$tmp/a.h5"
expect "one output named twice" 2 "given twice" -- \
  "$bin" --model "$m" --audio "$a" -o "$tmp/a.h5" --audio "$b" -o "$tmp/../$(basename "$tmp")/a.h5" --batch 2
expect "--batch 0" 2 "--batch" -- "$bin" --model "$m" --audio "$a" -o "$tmp/a.h5" --batch 0
expect "--batch past 64" 2 "--batch" -- "$bin" --time --dims tiny --batch 65
expect "no --model" 2 "--model" -- "$bin" --audio "$a" -o "$tmp/a.h5"
expect "--attention neither own nor cudnn" 2 "--attention" -- \
  "$bin" --model "$m" --audio "$a" -o "$tmp/a.h5" --attention flash
expect "--fc1-gelu neither own nor cudnn" 2 "--fc1-gelu" -- \
  "$bin" --model "$m" --audio "$a" -o "$tmp/a.h5" --fc1-gelu cublas
expect "--time-gemms 0" 2 "--time-gemms" -- "$bin" --time-gemms 0 --dims tiny --precision bfloat16
expect "--time-gemms in float32" 2 "bfloat16/float16" -- "$bin" --time-gemms 4 --dims tiny
expect "--probe-pdl in float32" 2 "bfloat16/float16" -- "$bin" --probe-pdl --dims tiny
# A device that cannot be used (99: none on any host) is refused before the model is made:
# --random-dims large-v3 would first spend minutes making and writing its weights (--keep-model's
# folder would exist).
expect "--device 99, before --random-dims makes weights" 2 "no CUDA device" -- \
  timeout 120 "$bin" --random-dims large-v3 --seed 1 --keep-model "$tmp/kept" --audio "$a" \
  -o "$tmp/a.h5" --device 99
[ -e "$tmp/kept" ] && bad "random weights made before the device check" || ok "no weights made"
ls "$tmp" | grep -q '\.h5' && bad "a refused run left an output: $(ls "$tmp")" || ok "no output left"
finish
