#!/usr/bin/env bash
# Builds a self-contained espeak-ng (Debian's 1.51 binaries + English data + a stub libpcaudio)
# in $1 (default .dev/espeak) so that a GPU host without a package registry or sound
# libraries synthesizes with exactly the espeak-ng that made the held-out clips.
# Run from the repository root. Needs apt-get download (Debian bookworm: 1.51+dfsg-10+deb12u2) and cc.
set -euo pipefail
dest=${1:-.dev/espeak}
rm -rf "$dest" && mkdir -p "$dest/debs" "$dest/root" "$dest/lib"
(cd "$dest/debs" && apt-get download espeak-ng espeak-ng-data libespeak-ng1 libsonic0 >/dev/null)
for f in "$dest"/debs/*.deb; do dpkg -x "$f" "$dest/root"; done
cc -shared -fPIC -O2 -Wl,-soname,libpcaudio.so.0 -o "$dest/lib/libpcaudio.so.0" scripts/train/pcaudio_stub.c
cp -a "$dest"/root/usr/lib/x86_64-linux-gnu/libespeak-ng.so.1* "$dest"/root/usr/lib/x86_64-linux-gnu/libsonic.so.0* "$dest/lib/"
cp "$dest/root/usr/bin/espeak-ng" "$dest/espeak-ng"
data="$dest/root/usr/lib/x86_64-linux-gnu/espeak-ng-data"
# Keep English only: the other languages' dictionaries are most of the size.
find "$data" -maxdepth 1 -name '*_dict' ! -name 'en_dict' -delete
mv "$data" "$dest/espeak-ng-data"
rm -rf "$dest/debs" "$dest/root"
cat > "$dest/run.sh" <<'EOS'
#!/bin/sh
# espeak-ng from this bundle: run.sh [espeak-ng arguments]
here=$(cd "$(dirname "$0")" && pwd)
LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "$here/espeak-ng" --path="$here" "$@"
EOS
chmod +x "$dest/run.sh"
"$dest/run.sh" --version
du -sh "$dest"
