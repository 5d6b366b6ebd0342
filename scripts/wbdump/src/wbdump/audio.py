"""Audio samples for ports and port-check: 16 kHz mono float32, as `wb` decodes them.

WAV is read with the standard library (PCM 8/16/24/32-bit; channels averaged, samples scaled as
libsndfile does: int16 / 32768, ...); FLAC with the `soundfile` module when it is importable. No
resampling here: a file at another rate is refused (resample it first, or let `wb` decode it).
"""
from __future__ import annotations

import math
import os
import wave

import numpy as np

SAMPLE_RATE = 16000


def _wav(path: str) -> np.ndarray:
    try:
        with wave.open(path, "rb") as w:
            ch, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError) as e:
        raise ValueError(f"{path}: not a PCM WAV file ({e})") from None
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: {rate} Hz; expected {SAMPLE_RATE} Hz (resample it first)")
    if width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float64) / 32768.0
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v).astype(np.float64) / float(1 << 23)
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float64) / float(1 << 31)
    else:
        raise ValueError(f"{path}: {8 * width}-bit samples are not supported")
    x = x[: (len(x) // ch) * ch].reshape(-1, ch).mean(axis=1)
    return x.astype(np.float32)


def _flac(path: str) -> np.ndarray:
    try:
        import soundfile  # noqa: PLC0415 - optional dependency
    except ImportError:
        raise ValueError(f"{path}: FLAC needs the Python module 'soundfile' (python3-soundfile); "
                         "or convert it to WAV first: flac -d FILE.flac") from None
    x, rate = soundfile.read(path, dtype="float64", always_2d=True)
    if rate != SAMPLE_RATE:
        raise ValueError(f"{path}: {rate} Hz; expected {SAMPLE_RATE} Hz (resample it first)")
    return x.mean(axis=1).astype(np.float32)


def read_audio(path: str) -> np.ndarray:
    """16 kHz mono float32 samples of a WAV (or, with soundfile, FLAC) file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic == b"fLaC":
        return _flac(path)
    if magic != b"RIFF":
        raise ValueError(f"{path}: neither WAV (RIFF) nor FLAC")
    x = _wav(path)
    if x.size == 0:
        raise ValueError(f"{path}: no audio samples")
    return x


def synthetic_tone(seconds: float = 4.0) -> np.ndarray:
    """A deterministic test signal (no randomness): tones at 220, 1375 and 3000 Hz, float32 at
    16 kHz."""
    t = np.arange(int(seconds * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE
    x = 0.4 * np.sin(2 * math.pi * 220 * t) + 0.2 * np.sin(2 * math.pi * 1375 * t + 0.3) \
        + 0.05 * np.sin(2 * math.pi * 3000 * t + 1.1)
    return x.astype(np.float32)
