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
# No CUDA here: the sanitizers never reach nvcc's code, and the normal build compiles it. -g1: line
# tables and function names (what a sanitizer report's stack needs), not the full debug info.
cmake -S "$here" -B "$build" -DWB_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWB_WITH_CUDA=OFF \
  "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" \
  ${WB_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j"$(nproc)"
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
cd "$build"
export XDG_CACHE_HOME="$build/cache"  # the reference cache of the commands under test
# Run in the normal suite only, because under the sanitizers they would repeat C++ code paths
# another test covers, at minutes of CI time:
#   wb_compare_fault_matrix_trained, wb_compare_fault_matrix_speech: the paths of
#     wb_compare_fault_matrix (the same 18 faults, the same code, on the nano model; the trained
#     model's float16-stored checkpoint is loaded by wb_run_trained); model and clip add data
#     (together about 9 minutes of CI time under the sanitizers);
#   wb_port_{power_to_db,attn_scale_1,ln_f16_0}: wb_port_no_ln_post's paths (dump, compare, replay
#     and bisect-layers through --port); the bugs differ only inside the Python port;
#   wb_port_torch, port_numpy_{bugs,trained}, port_torch_{float32,bfloat16}: the ports' own
#     (Python, PyTorch) numerics; their wb calls are wb_port_clean's and wb_port_no_ln_post's;
#   wb_budget_check: wb sweep --budget over 4 clips and 3 cases; its C++ paths are the sweep
#     tests' and wb_budget_cli's (compare --budget, the budget aggregation).
skip='^(wb_compare_fault_matrix_(trained|speech)|wb_port_(power_to_db|attn_scale_1|ln_f16_0|torch)|port_(numpy_bugs|numpy_trained|torch_float32|torch_bfloat16)|wb_budget_check)$'
ctest --output-on-failure --timeout 3000 -j"$(nproc)" -E "$skip" "$@"
