"""Shared pieces of the fixture-model recipe: token layout, Whisper's log-mel (torch), WER.

Token layout (what workbench/core's Vocabulary expects): ids 0..255 are the bytes (vocab.json
spells them with GPT-2's byte-to-unicode map), then eot 256, sot 257, <|en|> 258 (one
language), translate 259, transcribe 260, startoflm 261, startofprev 262, nospeech 263,
notimestamps 264, timestamps <|0.00|>..<|30.00|> 265..1765: vocab_size 1766.
"""
import json
import re

import numpy as np

N_BASE = 256
EOT, SOT, LANG_EN, TRANSLATE, TRANSCRIBE = 256, 257, 258, 259, 260
STARTOFLM, STARTOFPREV, NOSPEECH, NOTIMESTAMPS, TIMESTAMP_BEGIN = 261, 262, 263, 264, 265
N_VOCAB = TIMESTAMP_BEGIN + 1501  # 1766
PROMPT = [SOT, LANG_EN, TRANSCRIBE, NOTIMESTAMPS]

SAMPLE_RATE, N_FFT, HOP, N_SAMPLES = 16000, 400, 160, 480000


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable unicode character map."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def special_token_names():
    names = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
             "<|startoflm|>", "<|startofprev|>", "<|nospeech|>", "<|notimestamps|>"]
    names += [f"<|{i * 0.02:.2f}|>" for i in range(1501)]
    return names


def vocab_json():
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: b for b in range(256)}
    for i, name in enumerate(special_token_names()):
        vocab[name] = N_BASE + i
    assert len(vocab) == N_VOCAB
    return vocab


def encode_text(text):
    return list(text.encode("utf-8"))


def decode_tokens(ids):
    return bytes(i for i in ids if i < N_BASE).decode("utf-8", errors="replace")


# ------------------------------------------------------------------------------------ mel
def mel_filters_np(sr=SAMPLE_RATE, n_fft=N_FFT, n_mels=80):
    """librosa.filters.mel(sr, n_fft, n_mels) (Slaney scale and norm), float64 -> float32."""
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f):
        f = np.asarray(f, dtype=np.float64)
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-10) / min_log_hz) / logstep,
                        f / f_sp)

    def mel_to_hz(m):
        m = np.asarray(m, dtype=np.float64)
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    fftfreqs = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fftfreqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels])
    return (weights * enorm[:, None]).astype(np.float32)


class LogMel:
    """whisper.audio.log_mel_spectrogram on a batch of audio already padded to 30 s."""

    def __init__(self, device, n_mels=80):
        import torch
        self.torch = torch
        self.window = torch.hann_window(N_FFT, device=device)  # periodic
        self.filters = torch.from_numpy(mel_filters_np(n_mels=n_mels)).to(device)

    def __call__(self, audio):  # (B, 480000) float32 -> (B, n_mels, 3000)
        torch = self.torch
        stft = torch.stft(audio.float(), N_FFT, HOP, window=self.window, center=True, pad_mode="reflect",
                          return_complex=True)
        magnitudes = stft[..., :-1].abs() ** 2
        mel = self.filters @ magnitudes
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(-2, -1), keepdim=True) - 8.0)
        return (log_spec + 4.0) / 4.0


# ------------------------------------------------------------------------------------ WER
def normalize_words(text):
    """Same rule as workbench/core/src/wer.cpp: lowercase (ASCII), every character that is not a
    letter, digit or apostrophe becomes a space, split on whitespace."""
    t = re.sub(r"[A-Z]", lambda m: m.group(0).lower(), text)
    t = re.sub(r"[^a-z0-9'\u0080-\U0010ffff]", " ", t)
    return t.split()


def edit_distance(ref, hyp):
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def wer_counts(ref_text, hyp_text):
    r, h = normalize_words(ref_text), normalize_words(hyp_text)
    return edit_distance(r, h), len(r)


def write_vocab(path):
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(vocab_json(), fh, ensure_ascii=False)
