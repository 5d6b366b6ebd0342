#!/bin/sh
# CTest fixture wbdump_venv: a virtual environment at BUILD/pyenv (Debian's numpy, h5py, scipy,
# torch seen through --system-site-packages) with the wbdump package installed offline from a
# copy of its source (pip's in-tree build writes build/ and *.egg-info next to the sources; the
# copy keeps them out of the checkout).
#   make_venv.sh PYTHON SRC_DIR BUILD_DIR
set -eu
py=${1:?PYTHON}; src=${2:?SRC_DIR}; build=${3:?BUILD_DIR}
rm -rf "$build/pyenv" "$build/wbdump-src"
cp -R "$src" "$build/wbdump-src"
"$py" -m venv --system-site-packages "$build/pyenv" ||
  { echo "make_venv.sh: '$py -m venv' failed (apt-get install python3-venv)" >&2; exit 1; }
"$build/pyenv/bin/python" -m pip install --quiet --no-index --no-build-isolation \
  --disable-pip-version-check "$build/wbdump-src" ||
  { echo "make_venv.sh: pip install of wbdump failed (apt-get install python3-setuptools python3-wheel python3-pip-whl)" >&2; exit 1; }
rm -rf "$build/wbdump-src"
"$build/pyenv/bin/wbdump" --version
