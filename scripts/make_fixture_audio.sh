#!/usr/bin/env bash
# Regenerates the short real-speech clips in fixtures/audio with espeak-ng (deterministic for a
# given espeak-ng version). Texts are in fixtures/audio/texts.tsv (file<TAB>text).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out="$here/fixtures/audio"
mkdir -p "$out"
: > "$out/texts.tsv"
while IFS=$'\t' read -r name voice speed text; do
  espeak-ng -v "$voice" -s "$speed" -w "$out/$name.wav" "$text"
  printf '%s.wav\t%s\n' "$name" "$text" >> "$out/texts.tsv"
done <<'CLIPS'
hello	en-us	160	Hello world, this is a test of the whisper fidelity workbench.
quick_fox	en	150	The quick brown fox jumps over the lazy dog.
numbers	en-us+f2	170	Seven ships sailed past nine islands before the storm.
weather	en+m3	140	The weather today is cold and windy with light rain.
CLIPS
echo "wrote $(wc -l < "$out/texts.tsv") clips to $out"
