#!/usr/bin/env python3
"""Deterministic synthetic-speech generator for the workbench's trained Whisper fixture.

Needs only Python 3 + numpy and an espeak-ng (the system one, or the bundle made by
scripts/train/espeak_bundle.sh, selected with --espeak). Every clip is a function of
(seed, split, index) alone, so any machine with the same espeak-ng 1.51 produces the
same audio whatever the number of workers.

Sub-commands
  lexicon   build scripts/train/lexicon.tsv from Debian's fortunes-min and wamerican:
            words of the fortunes that wamerican lists, seen at least twice, one word per
            espeak-ng pronunciation (homophones removed: no context disambiguates them in
            random word sequences).
  heldout   write N held-out clips (16 kHz mono 16-bit, stored as FLAC), expect.tsv (<file>\t<text>)
            and meta.tsv (voice, rate, pitch, snr, whether the voice is held out).
  shards    write training shards (npz: int16 PCM, offsets, texts) into a folder, in
            parallel; run beside the training on the GPU host (run_gpu.sh).

Split rule: a sentence belongs to the held-out split iff sha1(text) % 20 == 0; training
samples reject such sentences and held-out samples accept only them, so no held-out sentence
can ever be a training sentence. Held-out voices (base voices and variants below) are never
used for training clips.
"""
import argparse
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LEXICON = os.path.join(HERE, "lexicon.tsv")
SR = 16000
ESPEAK_SR = 22050

TRAIN_BASES = ["en", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-029", "en-us-nyc"]
TRAIN_VARIANTS = ["", "m1", "m2", "m4", "m5", "m6", "m7", "f1", "f3", "f4", "f5"]
HELDOUT_BASES = ["en-gb-x-rp", "en-gb-x-gbcwmd"]  # never used for training
HELDOUT_VARIANTS = ["m3", "f2"]  # never used for training

FORTUNE_FILES = ["/usr/share/games/fortunes/fortunes", "/usr/share/games/fortunes/literature",
                 "/usr/share/games/fortunes/riddles"]
WORDLIST = "/usr/share/dict/american-english"


# ----------------------------------------------------------------------------------- lexicon
def phonemes(espeak, voice, words):
    """espeak-ng phoneme mnemonics of each word (one clause per word)."""
    text = "".join(w + ".\n" for w in words)
    out = subprocess.run([espeak, "-q", "-x", "-v", voice], input=text.encode(),
                         capture_output=True, check=True).stdout.decode()
    lines = [l.strip() for l in out.splitlines() if l.strip()]
    if len(lines) != len(words):
        raise RuntimeError(f"espeak gave {len(lines)} phoneme lines for {len(words)} words")
    return lines


def cmd_lexicon(args):
    text = ""
    for f in FORTUNE_FILES:
        with open(f, encoding="latin-1") as fh:
            text += fh.read().lower() + "\n"
    counts = Counter(re.findall(r"[a-z]+(?:'[a-z]+)?", text))
    with open(WORDLIST, encoding="utf-8") as fh:
        dictionary = {w.strip() for w in fh if re.fullmatch(r"[a-z]+", w.strip())}
    dictionary |= {"a", "i"}
    cands = sorted((w for w, c in counts.items() if c >= args.min_count and w in dictionary
                    and "'" not in w and len(w) <= 12
                    and (len(w) > 1 or w in ("a", "i"))), key=lambda w: (-counts[w], w))
    keys = {}
    for voice in ("en-us", "en"):
        ph = phonemes(args.espeak, voice, cands)
        for w, p in zip(cands, ph):
            keys.setdefault(w, []).append(re.sub(r"[',_%=]", "", p))  # drop stress marks
    seen, kept = {}, []
    for w in cands:  # most frequent first: it keeps the pronunciation
        k1, k2 = keys[w]
        if k1 in seen or k2 in seen:
            continue
        seen[k1] = seen[k2] = w
        kept.append(w)
    with open(args.out, "w") as fh:
        fh.write("# word\tcount: fortunes-min words listed by wamerican, count >= %d, "
                 "one per espeak-ng pronunciation (en-us and en)\n" % args.min_count)
        for w in kept:
            fh.write(f"{w}\t{counts[w]}\n")
    print(f"{len(cands)} candidates, {len(kept)} kept -> {args.out}")


def load_lexicon():
    words, counts = [], []
    with open(LEXICON) as fh:
        for line in fh:
            if line.startswith("#"):
                continue
            w, c = line.rstrip("\n").split("\t")
            words.append(w)
            counts.append(int(c))
    p = np.sqrt(np.asarray(counts, dtype=np.float64))
    return words, p / p.sum()


# -------------------------------------------------------------------------------- sentences
def is_heldout_sentence(text):
    return int(hashlib.sha1(text.encode()).hexdigest(), 16) % 20 == 0


def make_sentence(rng, words, probs, heldout):
    while True:
        n = int(rng.integers(3, 13))
        if rng.random() < 0.5:
            idx = rng.choice(len(words), size=n, p=probs)
        else:
            idx = rng.integers(0, len(words), size=n)
        ws = [words[i] for i in idx]
        ws = ["I" if w == "i" else w for w in ws]
        text = " ".join(ws)
        text = text[0].upper() + text[1:] + "."
        if is_heldout_sentence(text) == heldout:
            return text


# ------------------------------------------------------------------------------------ audio
def _resample_table(up=320, down=441, zeros=16, beta=8.6):
    """Kaiser-windowed sinc polyphase table for 22050 -> 16000 Hz (cutoff 7.6 kHz)."""
    fc = 0.95 * up / down  # cutoff relative to the input Nyquist
    half = int(np.ceil(zeros / fc))
    taps = np.arange(-half + 1, half + 1)  # input offsets relative to floor(t)
    phase = (np.arange(up) * down % up) / up  # fractional part of t for n % up
    tau = phase[:, None] - taps[None, :]  # t - k
    x = np.clip(tau / half, -1, 1)
    w = np.i0(beta * np.sqrt(1 - x * x)) / np.i0(beta)
    h = fc * np.sinc(fc * tau) * w
    return taps, h


_TAPS, _TABLE = _resample_table()


def resample_22050_to_16000(x):
    x = np.asarray(x, dtype=np.float64)
    n_out = int(len(x) * 320 // 441)
    n = np.arange(n_out)
    base = n * 441 // 320
    idx = base[:, None] + _TAPS[None, :]
    pad = len(_TAPS)
    xp = np.concatenate([np.zeros(pad), x, np.zeros(pad)])
    return (xp[idx + pad] * _TABLE[n % 320]).sum(axis=1)


def parse_wav_bytes(b):
    """PCM16 samples of a RIFF/WAV byte string (espeak --stdout leaves sizes unset)."""
    if b[:4] != b"RIFF":
        raise RuntimeError("espeak-ng did not return WAV")
    pos = 12
    while pos + 8 <= len(b):
        cid, size = b[pos:pos + 4], int.from_bytes(b[pos + 4:pos + 8], "little")
        if cid == b"data":
            data = b[pos + 8:]
            data = data[: len(data) // 2 * 2]
            return np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0
        pos += 8 + size
    raise RuntimeError("no data chunk")


def pick_voice(rng, heldout_voice):
    if not heldout_voice:
        base = TRAIN_BASES[int(rng.integers(len(TRAIN_BASES)))]
        var = TRAIN_VARIANTS[int(rng.integers(len(TRAIN_VARIANTS)))]
    elif rng.random() < 0.5:  # held-out variant on a training base
        base = TRAIN_BASES[int(rng.integers(len(TRAIN_BASES)))]
        var = HELDOUT_VARIANTS[int(rng.integers(len(HELDOUT_VARIANTS)))]
    else:  # held-out base, any variant
        base = HELDOUT_BASES[int(rng.integers(len(HELDOUT_BASES)))]
        allv = TRAIN_VARIANTS + HELDOUT_VARIANTS
        var = allv[int(rng.integers(len(allv)))]
    return base + ("+" + var if var else "")


def synth_clip(espeak, seed, split, index, words, probs, heldout_voice=False):
    """One clip: (int16 PCM at 16 kHz, text, meta). Deterministic in (seed, split, index)."""
    rng = np.random.default_rng([seed, {"train": 0, "heldout": 1}[split], index])
    text = make_sentence(rng, words, probs, heldout=(split == "heldout"))
    voice = pick_voice(rng, heldout_voice)
    rate = int(rng.integers(140, 211))
    pitch = int(rng.integers(25, 76))
    out = subprocess.run([espeak, "--stdout", "-v", voice, "-s", str(rate), "-p", str(pitch),
                          text], capture_output=True, check=True).stdout
    x = resample_22050_to_16000(parse_wav_bytes(out))
    lead = np.zeros(int(rng.uniform(0.05, 0.8) * SR))
    tail = np.zeros(int(rng.uniform(0.1, 0.5) * SR))
    x = np.concatenate([lead, x, tail])
    peak_db = rng.uniform(-20.0, -1.0)
    x = x * (10 ** (peak_db / 20) / max(np.abs(x).max(), 1e-6))
    rms = np.sqrt(np.mean(x[x != 0] ** 2)) if np.any(x != 0) else 1e-3
    snr = rng.uniform(15.0, 45.0)
    x = x + rng.standard_normal(len(x)) * rms * 10 ** (-snr / 20)
    pcm = np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)
    meta = dict(voice=voice, rate=rate, pitch=pitch, peak_db=round(peak_db, 2), snr_db=round(snr, 2),
                heldout_voice=heldout_voice)
    return pcm, text, meta


def write_wav(path, pcm):
    import wave
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.astype("<i2").tobytes())


def write_flac(path, pcm):
    """Held-out clips are stored as FLAC (lossless: decodes to the same 16-bit samples) to keep the
    repository small; the `flac` CLI (Debian package flac) encodes them."""
    import subprocess
    import tempfile
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        write_wav(tmp.name, pcm)
        subprocess.run(["flac", "-s", "--best", "-f", "-o", path, tmp.name], check=True)


def read_wav(path):
    import io
    import wave
    if path.endswith(".flac"):  # decoded by the `flac` CLI to WAV bytes (no Python FLAC module)
        import subprocess
        data = subprocess.run(["flac", "-s", "-d", "-c", path], check=True, capture_output=True).stdout
        path = io.BytesIO(data)
    with wave.open(path, "rb") as w:
        assert w.getframerate() == SR and w.getnchannels() == 1 and w.getsampwidth() == 2, path
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")


# ---------------------------------------------------------------------------------- heldout
def cmd_heldout(args):
    words, probs = load_lexicon()
    os.makedirs(args.out, exist_ok=True)
    rows, metas = [], []
    for i in range(args.n):
        hv = i % 2 == 1  # every other clip speaks with a voice training never used
        pcm, text, meta = synth_clip(args.espeak, args.seed, "heldout", i, words, probs, hv)
        name = f"clip{i:03d}.flac"
        write_flac(os.path.join(args.out, name), pcm)
        rows.append(f"{name}\t{text}\n")
        metas.append(f"{name}\t{meta['voice']}\t{meta['rate']}\t{meta['pitch']}\t{meta['peak_db']}\t"
                     f"{meta['snr_db']}\t{int(hv)}\n")
    with open(os.path.join(args.out, "expect.tsv"), "w") as fh:
        fh.writelines(rows)
    with open(os.path.join(args.out, "meta.tsv"), "w") as fh:
        fh.write("#file\tvoice\trate_wpm\tpitch\tpeak_db\tsnr_db\theldout_voice\n")
        fh.writelines(metas)
    print(f"{args.n} held-out clips -> {args.out}")


# ----------------------------------------------------------------------------------- shards
def _make_shard(job):
    espeak, seed, shard, size, out = job
    words, probs = load_lexicon()
    pcms, texts = [], []
    for j in range(size):
        pcm, text, _ = synth_clip(espeak, seed, "train", shard * size + j, words, probs, False)
        pcms.append(pcm)
        texts.append(text)
    lens = np.array([len(p) for p in pcms], dtype=np.int64)
    tmp = os.path.join(out, f".shard{shard:05d}.tmp.npz")
    np.savez(tmp, pcm=np.concatenate(pcms), lens=lens, texts=np.array(json.dumps(texts)))
    os.replace(tmp, os.path.join(out, f"shard{shard:05d}.npz"))
    return shard


def cmd_shards(args):
    os.makedirs(args.out, exist_ok=True)
    t0 = time.time()
    jobs = [(args.espeak, args.seed, s, args.shard_size, args.out) for s in range(args.n_shards)]
    with ProcessPoolExecutor(args.workers) as ex:
        for k, s in enumerate(ex.map(_make_shard, jobs)):
            el = time.time() - t0
            print(f"[gen] shard {s} done, {(k + 1) * args.shard_size} clips, {el:.0f}s, "
                  f"{(k + 1) * args.shard_size / el:.0f} clips/s", flush=True)
            if args.deadline and time.time() > args.deadline:
                print("[gen] deadline reached", flush=True)
                ex.shutdown(wait=False, cancel_futures=True)
                break


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--espeak", default="espeak-ng", help="espeak-ng executable (or a bundle's run.sh)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("lexicon")
    p.add_argument("--out", default=LEXICON)
    p.add_argument("--min-count", type=int, default=2)
    p = sub.add_parser("heldout")
    p.add_argument("--out", default="fixtures/heldout")
    p.add_argument("--n", type=int, default=120)
    p.add_argument("--seed", type=int, default=6)
    p = sub.add_parser("shards")
    p.add_argument("--out", required=True)
    p.add_argument("--n-shards", type=int, default=100)
    p.add_argument("--shard-size", type=int, default=1000)
    p.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--deadline", type=float, default=0, help="unix time after which no shard is started")
    args = ap.parse_args()
    {"lexicon": cmd_lexicon, "heldout": cmd_heldout, "shards": cmd_shards}[args.cmd](args)


if __name__ == "__main__":
    main()
