#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: installs the packages in scripts/packages.txt
# that are missing (apt-get), then configures and builds into build/ (Release).
# Usage: scripts/setup.sh [--no-build]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mapfile -t pkgs < <(grep -v '^\s*#' "$here/scripts/packages.txt" | awk 'NF{print $1}')
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${#missing[@]} package(s): ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all ${#pkgs[@]} packages present"
fi
[ "${1:-}" = "--no-build" ] && exit 0
cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=Release ${WB_CMAKE_ARGS:-} >/dev/null
cmake --build "$here/build" -j"$(nproc)"
