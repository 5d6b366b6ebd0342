#!/usr/bin/env python3
"""Dump the Hugging Face Whisper encoder (transformers WhisperModel) through wbdump's hooks on the
workbench's weights and mel, and measure its agreement with our LibTorch reference.

The reference must agree with transformers' WhisperModel on the same weights and mel:
encoder output (encoder.ln_post) relative L2 <= 1e-5 in float32. Only the model is compared: the
mel is read from a reference dump (its `mel` tap), not recomputed by a feature extractor.

Needs torch + transformers + h5py (a GPU host with PyTorch has them); `wb` is not needed there.

    # here, with build/wb:
    wb dump --impl reference --model fixtures/trained --audio fixtures/audio/hello.wav \
        --taps encoder --no-decode -o ref.h5
    # where PyTorch is (mel only is enough there: --taps mel):
    python3 scripts/check_hf_agreement.py --model fixtures/trained --mel ref.h5 -o hf.h5 \
        [--ref ref.h5] [--device cuda] [--taps all] [--names hf] [--max-mb 15]
    # here again:
    wb compare ref.h5 hf.h5 [--map fixtures/maps/hf.json]

With --ref (a reference dump with the same taps) it prints per-tap relative L2 ||hf - ref|| /
||ref|| in float64 and exits 1 when encoder.ln_post exceeds --tol (default 1e-5), 0 otherwise,
2 on bad input. --max-mb splits the taps over several valid dumps (hf-1.h5, hf-2.h5, ...) of at
most that many MB each, for transports with a file-size limit.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

try:
    import wbdump  # the installed package (pip install scripts/wbdump)
except ImportError:  # run from a checkout without installing it: its source folder
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "wbdump", "src"))
    import wbdump  # noqa: E402

HF_MAP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "maps",
                      "hf.json")


def rel_l2(ref: np.ndarray, cand: np.ndarray) -> float:
    ref = np.asarray(ref, np.float64)
    cand = np.asarray(cand, np.float64)
    den = np.linalg.norm(ref)
    num = np.linalg.norm(cand - ref)
    return float(num / den) if den > 0 else float(num)


def write_dumps(taps: dict, out: str, max_mb: float, meta: dict, name_map) -> list:
    """Writes taps (execution order) into one dump, or several of <= max_mb each."""
    dims = meta["dims"]
    canon = name_map.canonical if name_map is not None else (lambda n: n)
    names = sorted(taps, key=lambda n: wbdump.tap_order(dims, canon(n)))
    groups, cur, size = [], [], 0
    limit = max_mb * 1e6 if max_mb else float("inf")
    for n in names:
        b = taps[n].astype(np.float32).nbytes
        if cur and size + b > limit:
            groups.append(cur)
            cur, size = [], 0
        cur.append(n)
        size += b
    groups.append(cur)
    paths = []
    stem, ext = os.path.splitext(out)
    for k, group in enumerate(groups):
        path = out if len(groups) == 1 else f"{stem}-{k + 1}{ext}"
        with wbdump.DumpWriter(path, name_map=name_map, **{k2: v for k2, v in meta.items()}) as w:
            for n in group:
                w.add(n, taps[n], "float32" if taps[n].dtype == np.float32 else "float64")
        paths.append(path)
    return paths


def from_npz(argv) -> int:
    """--from-npz TAPS.npz -o OUT.h5: write the dumps a run without h5py could not."""
    ap = argparse.ArgumentParser(prog="check_hf_agreement.py --from-npz")
    ap.add_argument("npz")
    ap.add_argument("-o", "--out", required=True)
    a = ap.parse_args(argv)
    z = np.load(a.npz)
    meta = json.loads(str(z["__meta__"]))
    names, max_mb = meta.pop("names"), meta.pop("max_mb")
    meta["dims"] = wbdump.ModelDims.from_json(meta["dims"])
    taps = {k: z[k] for k in z.files if k != "__meta__"}
    name_map = wbdump.NameMap.load(HF_MAP) if names == "hf" else None
    for p in write_dumps(taps, a.out, max_mb, meta, name_map):
        print(f"wrote {p}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="HF Whisper directory or whisper.cpp ggml file")
    ap.add_argument("--mel", required=True, help="a dump whose `mel` tap is the encoder input")
    ap.add_argument("-o", "--out", required=True, help="output dump (.h5)")
    ap.add_argument("--ref", help="reference dump to measure against (per-tap relative L2)")
    ap.add_argument("--device", default="cuda", help="cuda or cpu (default cuda; cpu if no GPU)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--attn", default="eager", help="transformers attn_implementation")
    ap.add_argument("--taps", default="encoder", help="selector as wb dump --taps")
    ap.add_argument("--names", default="canonical", choices=["canonical", "hf"],
                    help="store registry names, or HF module paths (compare with --map hf.json)")
    ap.add_argument("--max-mb", type=float, default=0, help="split into dumps of <= this size")
    ap.add_argument("--tol", type=float, default=1e-5, help="encoder.ln_post rel L2 bound")
    ap.add_argument("--summary", help="write the figures as JSON here")
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--from-npz":
        return from_npz(argv[1:])
    a = ap.parse_args(argv)

    try:
        mel_dump = wbdump.open_dump(a.mel)
        if "mel" not in mel_dump.names():
            raise wbdump.DumpError(f"{a.mel}: no 'mel' tap")
        mel = mel_dump.read("mel", np.float32)
        ref = wbdump.open_dump(a.ref) if a.ref else None
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    import torch  # noqa: PLC0415
    import transformers  # noqa: PLC0415
    wbdump.strict_float32()
    device = a.device if (a.device != "cuda" or torch.cuda.is_available()) else "cpu"
    t0 = time.perf_counter()
    model, dims = wbdump.load_hf_model(a.model, device=device, dtype=a.dtype,
                                       attn_implementation=a.attn)
    if dims != mel_dump.dims and (dims.n_mels, dims.n_audio_ctx) != \
            (mel_dump.dims.n_mels, mel_dump.dims.n_audio_ctx):
        print(f"error: {a.mel}: mel is for n_mels {mel_dump.dims.n_mels}, model has {dims.n_mels}",
              file=sys.stderr)
        return 2
    t1 = time.perf_counter()
    taps = wbdump.run_encoder(model, mel, taps=a.taps, names=a.names)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t2 = time.perf_counter()

    name_map = wbdump.NameMap.load(HF_MAP) if a.names == "hf" else None
    dev_name = torch.cuda.get_device_name(0) if device.startswith("cuda") else platform.processor()
    meta = dict(implementation=f"transformers-{transformers.__version__} WhisperModel "
                               f"({a.attn} attention)",
                precision=a.dtype, dims=dims, model_sha256=wbdump.model_sha256(a.model),
                device=f"{device} ({dev_name})", audio_sha256=mel_dump.attrs.get("audio_sha256", ""),
                audio_name=mel_dump.attrs.get("audio_name", ""),
                tool_version=f"{wbdump.TOOL_VERSION} check_hf_agreement.py",
                threads=torch.get_num_threads(),
                run_info={"torch": torch.__version__, "transformers": transformers.__version__,
                          "attn_implementation": a.attn, "tf32": False,
                          "mel_from": os.path.basename(a.mel),
                          "model": os.path.basename(os.path.normpath(a.model)),
                          "load_s": round(t1 - t0, 3), "encoder_s": round(t2 - t1, 3)})
    if wbdump.h5py is None:  # no h5py here: keep the taps; --from-npz writes the dumps elsewhere
        npz = os.path.splitext(a.out)[0] + ".npz"
        m = dict(meta, dims=dims.to_json(), names=a.names, max_mb=a.max_mb)
        np.savez(npz, __meta__=np.array(json.dumps(m)), **taps)
        print(f"h5py missing: wrote {npz}; convert with --from-npz {npz} -o {a.out}")
        paths = []
    else:
        paths = write_dumps(taps, a.out, a.max_mb, meta, name_map)
    for p in paths:
        print(f"wrote {p}")

    if ref is None:
        return 0
    canon = name_map.canonical if name_map is not None else (lambda n: n)
    rows, worst = [], ("", 0.0)
    have = set(ref.names())
    for n in sorted(taps, key=lambda n: wbdump.tap_order(dims, canon(n))):
        c = canon(n)
        if c not in have:
            continue
        r = ref.read(c)
        e = rel_l2(r, taps[n])
        cos = float(np.sum(r * taps[n]) / (np.linalg.norm(r) * np.linalg.norm(taps[n]) + 1e-300))
        mx = float(np.max(np.abs(taps[n].astype(np.float64) - r)))
        rows.append({"tap": c, "rel_l2": e, "max_abs": mx, "cosine": cos})
        if e > worst[1]:
            worst = (c, e)
        print(f"{c:<36} rel_l2 {e:10.3e}  max_abs {mx:10.3e}  cos {cos:.9f}")
    final = next((r["rel_l2"] for r in rows if r["tap"] == "encoder.ln_post"), None)
    ok = final is not None and final <= a.tol
    print(f"encoder.ln_post rel_l2 {final if final is not None else 'n/a'} (bound {a.tol:g}); "
          f"worst tap {worst[0]} {worst[1]:.3e}: {'PASS' if ok else 'FAIL'}")
    if a.summary:
        with open(a.summary, "w", encoding="utf-8") as fh:
            json.dump({"model": a.model, "device": meta["device"], "taps": rows,
                       "ln_post_rel_l2": final, "worst": worst, "pass": ok,
                       "run_info": meta["run_info"]}, fh, indent=1)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
