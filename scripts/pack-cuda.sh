#!/usr/bin/env bash
# Packs the CUDA candidate for a GPU host that has none of our Debian libraries (docs/gpu.md):
# wb-cuda-dump (its tests inside: --self-test), the GPU timing script and the shared libraries it needs
# (from ldd), minus the C runtime, libstdc++/libgcc and what the host's CUDA toolkit provides.
#   scripts/pack-cuda.sh [BUILD_DIR] OUT_DIR        (BUILD_DIR defaults to build/)
# On the GPU host: LD_LIBRARY_PATH=OUT_DIR/lib:/usr/local/cuda/lib64 OUT_DIR/wb-cuda-dump ...
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
if [[ $# -eq 2 ]]; then build="$1"; out="$2"; elif [[ $# -eq 1 ]]; then build="$here/build"; out="$1";
else echo "usage: $0 [BUILD_DIR] OUT_DIR" >&2; exit 2; fi
bins=("$build/wb-cuda-dump")
for b in "${bins[@]}"; do
  [[ -x "$b" ]] || { echo "pack-cuda: $b missing (build with nvcc: make wb-cuda-dump)" >&2; exit 2; }
done
rm -rf "$out"
mkdir -p "$out/lib"
for b in "${bins[@]}"; do
  cp "$b" "$out/"
  strip --strip-unneeded "$out/$(basename "$b")"
done
cp "$here/scripts/cuda_bench.py" "$here/scripts/tone.py" "$out/"
# What the build offers (precisions, faults, ...), for scripts on a host without wb.
if [[ -x "$build/wb" ]]; then "$build/wb" info --json > "$out/info.json"; fi
# Skip: the C runtime and loader, the compiler runtime (any newer host has them), CUDA's own
# libraries (the host's toolkit/driver provides them, matched to its driver).
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libstdc\+\+\.so|libgcc_s\.so|libcuda\.so|libcudart\.so|libcublas|libcufft)'
for b in "${bins[@]}"; do
  ldd "$b" | awk '$3 ~ /^\// {print $1, $3}'
done | sort -u | while read -r name path; do
  [[ "$name" =~ $skip ]] && continue
  [[ "$path" == /usr/local/cuda* ]] && continue
  cp -L "$path" "$out/lib/$name"
  strip --strip-unneeded "$out/lib/$name" 2>/dev/null || true
done
# The .tar.xz beside the folder is what travels (sizes: docs/gpu.md): on the host,
# `tar xJf OUT.tar.xz` recreates OUT/.
XZ_OPT=-9e tar cJf "$out.tar.xz" -C "$(dirname "$out")" "$(basename "$out")"
echo "pack-cuda: $out is $(du -sb "$out" | cut -f1) bytes, $out.tar.xz $(stat -c %s "$out.tar.xz") bytes"
