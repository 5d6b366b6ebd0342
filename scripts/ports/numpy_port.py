#!/usr/bin/env python3
"""A port of Whisper's front end and encoder in numpy, served to `wb --port` or writing a dump.

Written from the published architecture (openai/whisper audio.py and model.py), not from the
workbench's C++: log-mel (numpy rfft, periodic Hann 400, hop 160, centred reflect-padded STFT,
last frame dropped, Slaney mel filters computed here as librosa does, log10(max(x, 1e-10)),
floor at max - 8, (x + 4) / 4, 30 s pad/trim); conv1 (k3 p1) and conv2 (k3 s2 p1) with exact erf
GELU, + positions, pre-norm residual attention blocks (q and k each scaled by d_head^-0.25, key
without bias), ln_post. Activations in float32 like the reference; FFT, layer-norm statistics
and GELU in float64 where it is cheap. Weights: an HF directory (model.safetensors, read by
wbdump's numpy reader) or a whisper.cpp ggml file.

    numpy_port.py [--model M] [--bug B]                    serve the port protocol (docs/ports.md)
    numpy_port.py --model M --audio A.wav --out port.h5    write a dump (wb bisect --dump)
    numpy_port.py --model M --mel-from REF.h5 --out port.h5   ... encoder only, the mel of REF

Serving without --model loads the model `wb` names in hello. --bug plants a porting bug:
  power-to-db     librosa power_to_db log-mel: 10 log10(max(S, 1e-10)), top_db 80, no (x+4)/4
  attn-scale@N    block N scales q and k each by d_head^-0.5 (scores by 1/d_head)
  ln-f16@N        block N computes its layer-norm statistics in float16
  no-ln-post      ln_post left out
Exit status: 0 served / dump written, 2 bad usage or input (one line on stderr).
"""
import argparse
import math
import os
import re
import sys
import time

import numpy as np

import wbdump

try:  # vectorised erf; math.erf element by element otherwise (slower, same values)
    from scipy.special import erf as _erf
except ImportError:
    _erf = np.frompyfunc(math.erf, 1, 1)

LN_EPS = 1e-5  # LayerNorm epsilon of Whisper (torch.nn.LayerNorm's default)
SAMPLE_RATE, N_FFT, HOP, CHUNK = 16000, 400, 160, 30 * 16000  # audio.py's constants
BUGS = ("power-to-db", "attn-scale@N", "ln-f16@N", "no-ln-post")


# ----------------------------------------------------------------------------------------------
# Front end (audio.py log_mel_spectrogram on pad_or_trim(audio))

def hz_to_mel(f):
    """Slaney's mel scale (librosa htk=False): linear below 1 kHz, logarithmic above."""
    f = np.asarray(f, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, 1e-300) / min_log_hz)
                    / logstep, f / f_sp)


def mel_to_hz(m):
    m = np.asarray(m, np.float64)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filters(n_mels, sr=SAMPLE_RATE, n_fft=N_FFT):
    """librosa.filters.mel(sr, n_fft, n_mels, fmin=0, fmax=sr/2, htk=False, norm="slaney"):
    triangles between n_mels + 2 mel-spaced edges, each scaled to unit area (2 / width in Hz).
    [n_mels, n_fft/2 + 1], computed in float64, returned as float32 as librosa does."""
    fft_freqs = np.linspace(0.0, sr / 2.0, 1 + n_fft // 2)
    edges = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2.0), n_mels + 2))
    fdiff = np.diff(edges)
    ramps = edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0.0, np.minimum(lower, upper))
    w *= (2.0 / (edges[2:n_mels + 2] - edges[:n_mels]))[:, None]
    return w.astype(np.float32)


def log_mel(samples, filters, bug=None):
    """[n_mels, 3000] float32 log-mel of 16 kHz samples, padded or trimmed to 30 s."""
    a = np.zeros(CHUNK, np.float64)
    s = np.asarray(samples, np.float32)[:CHUNK]
    a[: s.size] = s
    x = np.pad(a, N_FFT // 2, mode="reflect")  # centred frames
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP]  # [3001, 400]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    power = np.abs(np.fft.rfft(frames * window, axis=1)[:-1]) ** 2  # last frame dropped
    mel = filters.astype(np.float64) @ power.T  # [n_mels, 3000]
    if bug == "power-to-db":  # librosa.power_to_db(S, ref=1, amin=1e-10, top_db=80)
        db = 10.0 * np.log10(np.maximum(mel, 1e-10))
        return np.maximum(db, db.max() - 80.0).astype(np.float32)
    lg = np.log10(np.maximum(mel, 1e-10))
    lg = np.maximum(lg, lg.max() - 8.0)
    return ((lg + 4.0) / 4.0).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Encoder (model.py AudioEncoder, ResidualAttentionBlock)

def gelu(x):  # exact erf GELU, as torch.nn.GELU(), in float64
    x64 = np.asarray(x, np.float64)
    return (0.5 * x64 * (1.0 + np.asarray(_erf(x64 / math.sqrt(2.0)), np.float64))).astype(
        np.float32)


def layer_norm(x, w, b, f16=False):
    """(x - mean) / sqrt(var + eps) * w + b over channels; statistics in float64 (the bug:
    float16)."""
    if f16:
        h = x.astype(np.float16)
        mu = h.mean(axis=-1, keepdims=True, dtype=np.float16)
        var = ((h - mu) ** 2).mean(axis=-1, keepdims=True, dtype=np.float16)
        y = ((h - mu) / np.sqrt(var + np.float16(LN_EPS))).astype(np.float32)
        return y * w + b
    x64 = x.astype(np.float64)
    mu = x64.mean(axis=-1, keepdims=True)
    var = ((x64 - mu) ** 2).mean(axis=-1, keepdims=True)
    return ((x64 - mu) / np.sqrt(var + LN_EPS)).astype(np.float32) * w + b


def conv1d(x, w, b, stride):
    """x [C_in, L], w [C_out, C_in, 3], padding 1 -> [L_out, C_out] (frame, channel)."""
    c_in, n = x.shape
    xp = np.pad(x, ((0, 0), (1, 1)))
    n_out = (n + 2 - 3) // stride + 1
    cols = np.stack([xp[:, k:k + stride * (n_out - 1) + 1:stride] for k in range(3)], axis=-1)
    cols = cols.transpose(1, 0, 2).reshape(n_out, c_in * 3)  # [L_out, C_in*3]
    return cols @ w.reshape(w.shape[0], -1).T + b


def softmax(x):
    """Over the last axis, in place (x is a scratch score matrix; no temporaries of its size)."""
    x -= x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    x /= x.sum(axis=-1, keepdims=True)
    return x


def attention(q, k, v, n_head, scale_pow=0.25):
    """Whisper's qkv_attention: q and k each scaled by d_head^-0.25, softmax over keys."""
    t, c = q.shape
    dh = c // n_head
    scale = np.float32(dh ** -scale_pow)
    qh = (q * scale).reshape(t, n_head, dh).transpose(1, 0, 2)
    kh = (k * scale).reshape(t, n_head, dh).transpose(1, 2, 0)
    vh = v.reshape(t, n_head, dh).transpose(1, 0, 2)
    w = softmax(qh @ kh)
    return (w @ vh).transpose(1, 0, 2).reshape(t, c)


def parse_bug(spec, n_layer):
    """(name, block) of a --bug value; ValueError naming the choices."""
    if spec is None:
        return None, None
    m = re.fullmatch(r"(attn-scale|ln-f16)@(\d+)", spec)
    if m:
        i = int(m.group(2))
        if i >= n_layer:
            raise ValueError(f"--bug {spec}: block {i} (the model has blocks 0..{n_layer - 1})")
        return m.group(1), i
    if spec in ("power-to-db", "no-ln-post"):
        return spec, None
    raise ValueError(f"--bug '{spec}' (expected {', '.join(BUGS)})")


class Encoder:
    """The weights of one checkpoint and the computation, stage by stage; taps via tap(name, x)."""

    def __init__(self, model, bug=None):
        self.dims = wbdump.ModelDims.from_checkpoint(model)
        if os.path.isdir(model):
            raw = wbdump.load_safetensors(model)
            self.W = {k[6:] if k.startswith("model.") else k: v for k, v in raw.items()}
        else:
            self.W = {wbdump.openai_to_hf_name(k): v for k, v in wbdump.load_ggml(model)[1].items()}
        self.bug, self.bug_block = parse_bug(bug, self.dims.n_audio_layer)
        self.filters = mel_filters(self.dims.n_mels)

    def frontend(self, samples, tap):
        mel = log_mel(samples, self.filters, self.bug)
        tap("mel", mel)
        return mel

    def stem(self, mel, tap):
        W, p = self.W, "encoder."
        x = gelu(conv1d(np.asarray(mel, np.float32), W[p + "conv1.weight"], W[p + "conv1.bias"], 1))
        tap("encoder.conv1", x)
        x = gelu(conv1d(x.T, W[p + "conv2.weight"], W[p + "conv2.bias"], 2))
        tap("encoder.conv2", x)
        x = x + W[p + "embed_positions.weight"][: x.shape[0]]
        tap("encoder.pos_embed", x)
        return x

    def block(self, i, x, tap):
        W, L, e = self.W, f"encoder.layers.{i}.", f"encoder.blocks.{i}."
        x = np.asarray(x, np.float32)
        here = self.bug_block == i
        f16 = here and self.bug == "ln-f16"
        h = layer_norm(x, W[L + "self_attn_layer_norm.weight"], W[L + "self_attn_layer_norm.bias"],
                       f16)
        tap(e + "attn_ln", h)
        q = h @ W[L + "self_attn.q_proj.weight"].T + W[L + "self_attn.q_proj.bias"]
        k = h @ W[L + "self_attn.k_proj.weight"].T
        v = h @ W[L + "self_attn.v_proj.weight"].T + W[L + "self_attn.v_proj.bias"]
        tap(e + "attn.q", q)
        tap(e + "attn.k", k)
        tap(e + "attn.v", v)
        a = attention(q, k, v, self.dims.n_audio_head,
                      0.5 if here and self.bug == "attn-scale" else 0.25)
        a = a @ W[L + "self_attn.out_proj.weight"].T + W[L + "self_attn.out_proj.bias"]
        tap(e + "attn.out", a)
        x = x + a
        tap(e + "resid_attn", x)
        h = layer_norm(x, W[L + "final_layer_norm.weight"], W[L + "final_layer_norm.bias"], f16)
        tap(e + "mlp_ln", h)
        f1 = h @ W[L + "fc1.weight"].T + W[L + "fc1.bias"]
        tap(e + "mlp.fc1", f1)
        g = gelu(f1)
        tap(e + "mlp.gelu", g)
        f2 = g @ W[L + "fc2.weight"].T + W[L + "fc2.bias"]
        tap(e + "mlp.fc2", f2)
        x = x + f2
        tap(e + "out", x)
        return x

    def ln_post(self, x, tap):
        x = np.asarray(x, np.float32)
        if self.bug != "no-ln-post":
            x = layer_norm(x, self.W["encoder.layer_norm.weight"], self.W["encoder.layer_norm.bias"])
        tap("encoder.ln_post", x)
        return x

    def encode(self, mel, tap):
        x = self.stem(mel, tap)
        for i in range(self.dims.n_audio_layer):
            x = self.block(i, x, tap)
        return self.ln_post(x, tap)


class NumpyPort:
    """The port served by wbdump.serve: run (audio -> every encoder tap) and every stage."""

    def __init__(self, model=None, bug=None):
        self.model_path, self.bug, self.enc = model, bug, None
        if model:
            self.enc = Encoder(model, bug)

    def hello(self, request):
        if self.enc is None:
            model = request.get("model")
            if not model:
                raise ValueError("no model: start the port with --model M, or wb with --model")
            self.model_path, self.enc = model, Encoder(model, self.bug)
        return {"name": "numpy-port" + (f" (bug {self.bug})" if self.bug else ""),
                "model_dims": self.enc.dims, "model_sha256": wbdump.model_sha256(self.model_path),
                "precision": "float32"}

    def run(self, samples):
        taps = {}

        def tap(name, x):
            taps[name] = x
        self.enc.encode(self.enc.frontend(samples, tap), tap)
        return taps

    def stage(self, stage, block, inputs):
        taps = {}

        def tap(name, x):
            taps[name] = x
        src = inputs[wbdump.stage_input(self.enc.dims, stage, block)]
        if stage == "frontend":
            self.enc.frontend(src, tap)
        elif stage == "stem":
            self.enc.stem(src, tap)
        elif stage == "block":
            self.enc.block(block, src, tap)
        else:
            self.enc.ln_post(src, tap)
        return taps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="HF Whisper directory or ggml file (serving: default wb's)")
    ap.add_argument("--bug", help=f"plant a porting bug: {', '.join(BUGS)}")
    ap.add_argument("--out", help="write a dump here instead of serving the protocol")
    ap.add_argument("--audio", help="with --out: a 16 kHz WAV (FLAC with soundfile)")
    ap.add_argument("--mel-from", help="with --out: a reference dump whose 'mel' is the input")
    args = ap.parse_args(argv)
    if not args.out:
        if args.audio or args.mel_from:
            ap.error("--audio and --mel-from write a dump: give --out")
        try:
            port = NumpyPort(args.model, args.bug)
        except (OSError, ValueError) as e:
            print(f"numpy_port: error: {e}", file=sys.stderr)
            return 2
        return wbdump.serve(port)
    if (args.audio is None) == (args.mel_from is None) or not args.model:
        ap.error("a dump needs --model and one of --audio, --mel-from")
    try:
        enc = Encoder(args.model, args.bug)
        audio_sha = audio_name = ""
        if args.audio:
            samples = wbdump.read_audio(args.audio)
            audio_sha, audio_name = wbdump.sha256_file(args.audio), os.path.basename(args.audio)
        else:
            ref = wbdump.open_dump(args.mel_from)
            mel = ref.read("mel", dtype=np.float32)
            audio_sha, audio_name = ref.attrs.get("audio_sha256", ""), ref.attrs.get("audio_name", "")
    except (OSError, ValueError, KeyError) as e:
        print(f"numpy_port: error: {e}", file=sys.stderr)
        return 2
    impl = "numpy-port" + (f" (bug {args.bug})" if args.bug else "")
    with wbdump.DumpWriter(args.out, implementation=impl, precision="float32",
                           dims=enc.dims, model_sha256=wbdump.model_sha256(args.model),
                           audio_sha256=str(audio_sha), audio_name=str(audio_name)) as w:
        t0 = time.perf_counter()
        taps = {}

        def tap(name, a):
            taps[name] = a
        if args.audio:
            mel = enc.frontend(samples, tap)
        else:
            tap("mel", mel)
        enc.encode(mel, tap)
        w.set_timing("encoder", time.perf_counter() - t0)
        for name, a in taps.items():
            w.add(name, np.asarray(a, dtype=np.float32))
    return 0


if __name__ == "__main__":
    sys.exit(main())
