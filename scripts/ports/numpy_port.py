#!/usr/bin/env python3
"""A toy external port of Whisper's encoder in numpy, the test subject of `wb bisect`.

It stands for a user's port living in its own repository: it reads a Hugging Face Whisper
checkpoint (model.safetensors, read here by a 30-line numpy reader), runs the encoder (conv1,
GELU, conv2, GELU, + positions, the residual attention blocks, ln_post) in float32, and writes
every encoder tap with scripts/wbdump.py so that `wb compare` / `wb bisect` can judge it.

To stay short it does not compute the log-mel front end: it takes the `mel` tap of a reference
dump (--mel-from REF.h5, e.g. `wb dump --impl reference`) and copies it into its own dump, so the
`mel` tap agrees by construction and the comparison tests the encoder only.

    toy_port.py --model fixtures/models/nano-hf --mel-from ref.h5 --out port.h5

Exit status: 0 dump written, 2 bad input (missing or malformed file).
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np

# wbdump.py sits beside this file in a port's repository, one folder up in the workbench's.
_here = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [_here, os.path.dirname(_here)]
import wbdump  # noqa: E402

LN_EPS = 1e-5  # LayerNorm epsilon of Whisper (torch.nn.LayerNorm's default)

_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    """name -> float32 array. Format: u64 little-endian header length, JSON header, raw data."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} beyond the file ({len(blob)} bytes)")
    header = json.loads(blob[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = _ST_DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name}: dtype {info['dtype']} not supported here")
        a, b = info["data_offsets"]
        arr = np.frombuffer(blob[base + a:base + b], dtype=dt).reshape(info["shape"])
        out[name] = arr.astype(np.float32)
    return out


def erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))


def gelu(x):  # exact erf GELU, as torch.nn.GELU()
    return (0.5 * x.astype(np.float64) * (1.0 + erf(x / math.sqrt(2.0)))).astype(np.float32)


def layer_norm(x, w, b):
    mu = x.mean(axis=-1, keepdims=True)
    var = ((x - mu) ** 2).mean(axis=-1, keepdims=True)
    return (x - mu) / np.sqrt(var + LN_EPS) * w + b


def conv1d(x, w, b, stride):
    """x [C_in, L], w [C_out, C_in, 3], padding 1 -> [L_out, C_out] (frame, channel)."""
    c_in, n = x.shape
    xp = np.pad(x, ((0, 0), (1, 1)))
    n_out = (n + 2 - 3) // stride + 1
    cols = np.stack([xp[:, k:k + stride * (n_out - 1) + 1:stride] for k in range(3)], axis=-1)
    cols = cols.transpose(1, 0, 2).reshape(n_out, c_in * 3)  # [L_out, C_in*3]
    return cols @ w.reshape(w.shape[0], -1).T + b


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(q, k, v, n_head):
    """Whisper's qkv_attention: q and k each scaled by d_head^-0.25, softmax over keys."""
    t, c = q.shape
    dh = c // n_head
    scale = np.float32(dh ** -0.25)
    qh = (q * scale).reshape(t, n_head, dh).transpose(1, 0, 2)
    kh = (k * scale).reshape(t, n_head, dh).transpose(1, 2, 0)
    vh = v.reshape(t, n_head, dh).transpose(1, 0, 2)
    w = softmax(qh @ kh)
    return (w @ vh).transpose(1, 0, 2).reshape(t, c)


def encoder(W, mel, dims, tap):
    p = "model.encoder."
    x = gelu(conv1d(mel, W[p + "conv1.weight"], W[p + "conv1.bias"], 1))
    tap("encoder.conv1", x)
    x = gelu(conv1d(x.T, W[p + "conv2.weight"], W[p + "conv2.bias"], 2))
    tap("encoder.conv2", x)
    x = x + W[p + "embed_positions.weight"][: x.shape[0]]
    tap("encoder.pos_embed", x)
    for i in range(dims.n_audio_layer):
        L = f"{p}layers.{i}."
        e = f"encoder.blocks.{i}."
        h = layer_norm(x, W[L + "self_attn_layer_norm.weight"], W[L + "self_attn_layer_norm.bias"])
        tap(e + "attn_ln", h)
        q = h @ W[L + "self_attn.q_proj.weight"].T + W[L + "self_attn.q_proj.bias"]
        k = h @ W[L + "self_attn.k_proj.weight"].T
        v = h @ W[L + "self_attn.v_proj.weight"].T + W[L + "self_attn.v_proj.bias"]
        tap(e + "attn.q", q)
        tap(e + "attn.k", k)
        tap(e + "attn.v", v)
        a = attention(q, k, v, dims.n_audio_head)
        a = a @ W[L + "self_attn.out_proj.weight"].T + W[L + "self_attn.out_proj.bias"]
        tap(e + "attn.out", a)
        x = x + a
        tap(e + "resid_attn", x)
        h = layer_norm(x, W[L + "final_layer_norm.weight"], W[L + "final_layer_norm.bias"])
        tap(e + "mlp_ln", h)
        f1 = h @ W[L + "fc1.weight"].T + W[L + "fc1.bias"]
        tap(e + "mlp.fc1", f1)
        g = gelu(f1)
        tap(e + "mlp.gelu", g)
        f2 = g @ W[L + "fc2.weight"].T + W[L + "fc2.bias"]
        tap(e + "mlp.fc2", f2)
        x = x + f2
        tap(e + "out", x)
    x = layer_norm(x, W[p + "layer_norm.weight"], W[p + "layer_norm.bias"])
    tap("encoder.ln_post", x)
    return x


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="HF Whisper directory (config.json, model.safetensors)")
    ap.add_argument("--mel-from", required=True, help="a reference dump whose 'mel' tap is the input")
    ap.add_argument("--out", required=True, help="the dump to write (whisper-fidelity/1)")
    args = ap.parse_args(argv)
    try:
        dims = wbdump.ModelDims.from_hf_config(os.path.join(args.model, "config.json"))
        W = read_safetensors(os.path.join(args.model, "model.safetensors"))
        ref = wbdump.open_dump(args.mel_from)
        mel = ref.read("mel", dtype=np.float32)
        audio_sha, audio_name = ref.attrs.get("audio_sha256", ""), ref.attrs.get("audio_name", "")
    except (OSError, ValueError, KeyError) as e:
        print(f"toy_port: error: {e}", file=sys.stderr)
        return 2
    with wbdump.DumpWriter(args.out, implementation="toy-numpy-port", precision="float32",
                           dims=dims, model_sha256=wbdump.model_sha256(args.model),
                           audio_sha256=str(audio_sha), audio_name=str(audio_name)) as w:
        w.add("mel", mel)
        encoder(W, mel, dims, lambda name, a: w.add(name, np.asarray(a, dtype=np.float32)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
