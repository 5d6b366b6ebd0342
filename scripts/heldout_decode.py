#!/usr/bin/env python3
"""Greedy-decodes encoder outputs (encoder.ln_post of workbench dumps) with transformers' Whisper
decoder, by the reference decoder's rules, where PyTorch is (a GPU host); prints one line per
dump: CLIP<TAB>space-separated tokens, the format of `wb transcribe --tokens` collected by
scripts/cuda-heldout.sh.

The rules (reference/src/reference.cpp, ReferenceDecoder::greedy): the prompt is sot <|lang 0|>
transcribe notimestamps; at each step the argmax over the ids up to eot (specials after eot
suppressed), eot itself suppressed at the first step; stop at eot or after n_text_ctx / 2 tokens.
Every step recomputes the whole sequence (no cache), float32, TF32 off.

    python3 scripts/heldout_decode.py --model fixtures/trained DUMP.h5 ... > tokens.tsv

CLIP is the dump's file name without its directory, a leading PREFIX- (e.g. float32-) and .h5.
Exit 2 on bad input.
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def prompt_of(config: dict) -> tuple[list[int], int, int]:
    """(prompt, eot, step limit) from an HF Whisper config, as wb's Vocabulary derives them."""
    n_base = int(config["eos_token_id"])  # eot = the number of base tokens
    n_vocab = int(config["vocab_size"])
    n_lang = n_vocab - n_base - 1509
    if n_lang < 1:
        raise ValueError(f"vocab_size {n_vocab} leaves no room for the special tokens")
    sot = n_base + 1
    translate = sot + 1 + n_lang
    prompt = [sot, sot + 1, translate + 1, translate + 5]
    ctx = int(config["max_target_positions"])
    return prompt, n_base, min(ctx // 2, ctx - len(prompt))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="HF Whisper directory (config.json, safetensors)")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("dumps", nargs="+")
    a = ap.parse_args(argv)
    try:
        import h5py
        import torch
        from transformers import WhisperForConditionalGeneration
    except ImportError as e:
        print(f"heldout_decode: needs torch, transformers and h5py ({e})", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        with open(os.path.join(a.model, "config.json")) as f:
            prompt, eot, limit = prompt_of(json.load(f))
        model = WhisperForConditionalGeneration.from_pretrained(a.model, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as e:
        print(f"heldout_decode: {a.model}: {e}", file=sys.stderr)
        return 2
    model = model.to(a.device).eval()
    dec, proj = model.model.decoder, model.proj_out
    for path in a.dumps:
        try:
            with h5py.File(path, "r") as h:
                x = h["taps"]["encoder.ln_post"][()]
        except (OSError, KeyError) as e:
            print(f"heldout_decode: {path}: {e}", file=sys.stderr)
            return 2
        enc = torch.from_numpy(x.astype("float32")).to(a.device)
        if enc.dim() == 2:
            enc = enc.unsqueeze(0)
        tokens = list(prompt)
        out = []
        with torch.inference_mode():
            for step in range(limit):
                ids = torch.tensor([tokens], device=a.device)
                h = dec(input_ids=ids, encoder_hidden_states=enc).last_hidden_state[:, -1]
                logits = proj(h)[0]
                last = eot - 1 if step == 0 else eot
                nxt = int(torch.argmax(logits[: last + 1]).item())
                if nxt == eot:
                    break
                tokens.append(nxt)
                out.append(nxt)
        clip = os.path.basename(path)[:-3]
        clip = clip.split("-", 1)[1] if "-" in clip else clip
        print(f"{clip}\t{' '.join(map(str, out))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
