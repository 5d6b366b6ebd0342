#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer, for CI:
# set-up (packages only), configure and build build-asan/ (WB_SANITIZE=ON, RelWithDebInfo), CTest.
# Usage: scripts/test-sanitize.sh [extra CTest arguments, e.g. -R wb_core]
# UBSan never recovers (-fno-sanitize-recover=undefined in CMakeLists.txt; halt_on_error below
# makes a report fail the test). The ASan options are justified one by one:
#   detect_leaks=0        LibTorch 1.13 and OpenBLAS keep process-lifetime allocations (thread
#                         pools, op registries, per-thread buffers) that LeakSanitizer reports at
#                         exit although nothing is lost; our own objects are RAII-owned. Leak
#                         checking of our code alone would need suppressing those libraries
#                         wholesale, which would hide as much as it shows.
#   halt_on_error=1       the first report ends the process with a non-zero status (CTest fails).
# Nothing else is suppressed.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/bin:/bin:$PATH
"$here/scripts/setup.sh" --no-build
build=${WB_ASAN_BUILD_DIR:-$here/build-asan}
cmake -S "$here" -B "$build" -DWB_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo ${WB_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$build"
export XDG_CACHE_HOME="$build/cache"  # the reference cache of the commands under test
# The fault matrix on held-out speech runs in the normal suite only: under the sanitizers its code
# paths are those of wb_compare_fault_matrix_trained (same model, a tone); the clip adds data, and
# minutes of CI time.
ctest --output-on-failure --timeout 3000 -j"$(nproc)" -E '^wb_compare_fault_matrix_speech$' "$@"
