#!/usr/bin/env bash
# The comparator alone: configure and build build-light/ without the encoders (WB_WITH_ENCODERS=OFF:
# no LibTorch, candidates, CUDA or wb-engine), then run its CTest suite (only the tests of what it
# builds are registered there). .ci/run runs it after the normal suite.
# Usage: scripts/test-light.sh [extra CTest arguments]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/bin:/bin:$PATH
"$here/scripts/setup.sh" --no-build
build=${WB_LIGHT_BUILD_DIR:-$here/build-light}
cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DWB_WITH_ENCODERS=OFF -DWB_WITH_CUDA=OFF \
  ${WB_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
[ ! -e "$build/wb-engine" ] || { echo "test-light: $build/wb-engine exists in a build without encoders" >&2; exit 1; }
if ldd "$build/wb" | grep -E -i 'torch|dnnl|cuda|cublas|cufft'; then
  echo "test-light: wb links an encoder library (above)" >&2
  exit 1
fi
cd "$build"
export XDG_CACHE_HOME="$build/cache"
ctest --output-on-failure --timeout 600 -j"$(nproc)" "$@"
