#!/usr/bin/env python3
"""Write a deterministic random-weight Whisper model as an HF directory (config.json +
model.safetensors), bit-identical on any machine with numpy, without `wb`.

Why beside `wb fixture-model`: a tiny-dims float32 model is 70-150 MB, too large to ship to the
machine that runs PyTorch/transformers. Both sides run this script with the same arguments and
get the same file (same sha256, so `wb compare` accepts the two dumps as one model). Only integer
hashing (splitmix64 of a counter) and IEEE +,-,*,sqrt are used: no libm transcendental whose last
bit could differ between machines.

    make_hf_fixture.py --dims tiny --seed 1 -o DIR [--vocab-from fixtures/models/nano-hf]
        [--expect-sha256 HEX]   # exit 1 if model.safetensors hashes otherwise

Weights are scaled like PyTorch's default init (std 1/sqrt(fan_in), uniform), layer-norm gains
1 + U, biases small, positional embeddings U(-1, 1), so activations stay O(1) through every
layer. The text side uses a byte vocabulary (n_vocab 1766) and n_text_ctx 64 to keep the file
small; the encoder has exactly the preset's dims.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import struct
import sys

import numpy as np

try:
    import wbdump  # the installed package (pip install scripts/wbdump)
except ImportError:  # run from a checkout without installing it: its source folder
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "wbdump", "src"))
    import wbdump  # noqa: E402

_M = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(z: np.ndarray) -> np.ndarray:
    z = z + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def uniform(seed: int, stream: int, n: int) -> np.ndarray:
    """n float64 in [-1, 1), from splitmix64(seed, stream, counter); exact and portable."""
    base = np.uint64((seed * 0x100000001B3 + stream * 0x9E3779B9) & 0xFFFFFFFFFFFFFFFF)
    with np.errstate(over="ignore"):
        z = splitmix64(splitmix64(np.arange(n, dtype=np.uint64) + base))
    u = (z >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)
    return 2.0 * u - 1.0


def weight_table(d: wbdump.ModelDims) -> list:
    """(OpenAI name, shape) in workbench/core/src/weights.cpp order."""
    t = []

    def linear(p, o, i, bias=True):
        t.append((p + ".weight", (o, i)))
        if bias:
            t.append((p + ".bias", (o,)))

    def norm(p, c):
        t.append((p + ".weight", (c,)))
        t.append((p + ".bias", (c,)))

    def block(p, c, cross):
        for a in (("attn", "cross_attn") if cross else ("attn",)):
            linear(f"{p}.{a}.query", c, c)
            linear(f"{p}.{a}.key", c, c, bias=False)
            linear(f"{p}.{a}.value", c, c)
            linear(f"{p}.{a}.out", c, c)
            norm(f"{p}.{a}_ln", c)
        linear(f"{p}.mlp.0", 4 * c, c)
        linear(f"{p}.mlp.2", c, 4 * c)
        norm(f"{p}.mlp_ln", c)

    c = d.n_audio_state
    t.append(("encoder.positional_embedding", (d.n_audio_ctx, c)))
    t.append(("encoder.conv1.weight", (c, d.n_mels, 3)))
    t.append(("encoder.conv1.bias", (c,)))
    t.append(("encoder.conv2.weight", (c, c, 3)))
    t.append(("encoder.conv2.bias", (c,)))
    for i in range(d.n_audio_layer):
        block(f"encoder.blocks.{i}", c, False)
    norm("encoder.ln_post", c)
    s = d.n_text_state
    t.append(("decoder.positional_embedding", (d.n_text_ctx, s)))
    t.append(("decoder.token_embedding.weight", (d.n_vocab, s)))
    for i in range(d.n_text_layer):
        block(f"decoder.blocks.{i}", s, True)
    norm("decoder.ln", s)
    return t


def make_weights(d: wbdump.ModelDims, seed: int) -> dict:
    out = {}
    sqrt3 = np.sqrt(3.0)
    for k, (name, shape) in enumerate(weight_table(d)):
        n = int(np.prod(shape))
        u = uniform(seed, k, n)
        if name.endswith("positional_embedding"):
            w = u
        elif len(shape) >= 2:
            fan_in = shape[1] * (shape[2] if len(shape) == 3 else 1)
            w = u * (sqrt3 / np.sqrt(float(fan_in)))
        elif name.endswith("ln.weight") or name.endswith("ln_post.weight"):
            w = 1.0 + 0.1 * sqrt3 * u
        else:
            w = 0.02 * sqrt3 * u
        out[name] = w.astype(np.float32).reshape(shape)
    return out


def write_safetensors(path: str, tensors: dict) -> None:
    header, offset = {}, 0
    names = sorted(tensors)
    for n in names:
        nbytes = tensors[n].nbytes
        header[n] = {"dtype": "F32", "shape": list(tensors[n].shape),
                     "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(h)))
        fh.write(h)
        for n in names:
            fh.write(np.ascontiguousarray(tensors[n], dtype="<f4").tobytes())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", default="tiny", help="encoder dims preset (nano, tiny, base, ...)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("-o", "--out", required=True, help="output directory")
    ap.add_argument("--vocab-from", help="copy vocab.json from this HF directory (n_vocab 1766)")
    ap.add_argument("--expect-sha256", help="fail unless model.safetensors has this sha256")
    a = ap.parse_args(argv)
    p = wbdump.ModelDims.preset(a.dims)
    d = wbdump.ModelDims(n_mels=p.n_mels, n_audio_ctx=p.n_audio_ctx, n_audio_state=p.n_audio_state,
                         n_audio_head=p.n_audio_head, n_audio_layer=p.n_audio_layer, n_vocab=1766,
                         n_text_ctx=64, n_text_state=p.n_audio_state, n_text_head=p.n_audio_head,
                         n_text_layer=p.n_audio_layer).validate()
    os.makedirs(a.out, exist_ok=True)
    w = make_weights(d, a.seed)
    write_safetensors(os.path.join(a.out, "model.safetensors"),
                      {"model." + wbdump.openai_to_hf_name(k): v for k, v in w.items()})
    cfg = {"model_type": "whisper", "architectures": ["WhisperForConditionalGeneration"],
           "num_mel_bins": d.n_mels, "max_source_positions": d.n_audio_ctx,
           "d_model": d.n_audio_state, "encoder_attention_heads": d.n_audio_head,
           "encoder_layers": d.n_audio_layer, "encoder_ffn_dim": 4 * d.n_audio_state,
           "vocab_size": d.n_vocab, "max_target_positions": d.n_text_ctx,
           "decoder_attention_heads": d.n_text_head, "decoder_layers": d.n_text_layer,
           "decoder_ffn_dim": 4 * d.n_text_state, "activation_function": "gelu",
           "scale_embedding": False, "tie_word_embeddings": True, "decoder_start_token_id": 257,
           "bos_token_id": 256, "eos_token_id": 256, "pad_token_id": 256,
           "torch_dtype": "float32"}
    with open(os.path.join(a.out, "config.json"), "w", encoding="utf-8") as fh:
        json.dump(cfg, fh, indent=2, sort_keys=True)
        fh.write("\n")
    if a.vocab_from:
        shutil.copyfile(os.path.join(a.vocab_from, "vocab.json"), os.path.join(a.out, "vocab.json"))
    sha = hashlib.sha256(open(os.path.join(a.out, "model.safetensors"), "rb").read()).hexdigest()
    print(f"wrote {a.out} ({a.dims} encoder dims, seed {a.seed}, float32) sha256 {sha}")
    if a.expect_sha256 and sha != a.expect_sha256:
        print(f"error: sha256 {sha} != expected {a.expect_sha256}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
