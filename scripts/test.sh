#!/usr/bin/env bash
# The whole test suite on a fresh Debian 12 machine: set-up (packages, build) then CTest.
# Usage: scripts/test.sh            (extra CTest arguments may follow, e.g. -R wb_core)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# Debian's python3 (with python3-numpy/h5py) before any pyenv/venv interpreter.
export PATH=/usr/bin:/bin:$PATH
"$here/scripts/setup.sh"
cd "$here/build"
# The reference cache of the commands under test lives in the build tree, not the user's.
export XDG_CACHE_HOME="$here/build/cache"
ctest --output-on-failure --timeout 1500 -j"$(nproc)" "$@"
