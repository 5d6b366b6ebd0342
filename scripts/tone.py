#!/usr/bin/env python3
"""The synthetic test clip of the fault matrices, the calibration and the CUDA scripts: two tones
(220 Hz, 1375 Hz) and Gaussian noise, seed 7, 16 kHz mono 16-bit WAV. One definition, so every
tool that says "the tone" means the same samples.

Usage: scripts/tone.py OUT.wav [SECONDS]     (default 4 s; only the Python standard library)
"""
import math
import random
import struct
import sys
import wave


def write_tone(path, seconds=4):
    random.seed(7)
    sr = 16000
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        frames = bytearray()
        for i in range(sr * seconds):
            t = i / sr
            v = 0.4 * math.sin(2 * math.pi * 220 * t) + 0.2 * math.sin(2 * math.pi * 1375 * t + 0.3) \
                + 0.05 * random.gauss(0, 1)
            frames += struct.pack("<h", max(-32767, min(32767, int(v * 32767))))
        w.writeframes(bytes(frames))


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: tone.py OUT.wav [SECONDS]")
    write_tone(sys.argv[1], int(sys.argv[2]) if len(sys.argv) == 3 else 4)
