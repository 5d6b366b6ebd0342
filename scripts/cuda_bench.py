#!/usr/bin/env python3
"""CUDA candidate vs PyTorch (transformers WhisperEncoder, SDPA) encoder time on one GPU.

Runs on a GPU host (docs/gpu.md). For each dims preset and each batch of --encoder-batches
(default 1 and 8: B 30 s windows per call), random weights, the same precision on both sides:
  - ours: `wb-cuda-dump --time --batch B` (CUDA events, median of --iters after warm-up),
    launched on a stream and replayed as one CUDA graph;
  - PyTorch eager and PyTorch with the whole encoder captured by torch.cuda.graph, input
    [B, n_mels, 3000] (CUDA events, median of --iters after warm-up);
and prints the ratios, clips per second of both CUDA graphs, achieved TFLOP/s and the share of
the bf16 GEMM peak measured in the same run (8192^3 torch.matmul). Note: in bf16 PyTorch keeps
the residual stream in bf16, ours in float32.

In the same run it checks our output against PyTorch's (--check-dims, default large-v3, 128 mels):
`wb-cuda-dump --random-dims D --keep-model DIR` dumps `mel` and `encoder.ln_post` of a synthetic
clip with random weights, PyTorch's WhisperEncoder loads the same weights from DIR and encodes the
same mel; printed: rel L2 of ours vs PyTorch in float32 (TF32 off on both sides) and in the bench
precision, and of each side's reduced-precision output vs PyTorch's float32 one.

  LD_LIBRARY_PATH=pack/lib:/usr/local/cuda/lib64 python3 pack/cuda_bench.py --bin pack/wb-cuda-dump
  (--attention cudnn: our encoder with cuDNN's fused attention; libcudnn.so.9 on the loader path)
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tone import write_tone  # noqa: E402  (scripts/tone.py; pack-cuda.sh packs it beside this file)

import torch

PRESETS = {  # n_mels, d_model, heads, layers (OpenAI sizes)
    "tiny": (80, 384, 6, 4),
    "base": (80, 512, 8, 6),
    "small": (80, 768, 12, 12),
    "medium": (80, 1024, 16, 24),
    "large-v3": (128, 1280, 20, 32),
}


def cuda_time(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ms = []
    for _ in range(iters):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ms.append(a.elapsed_time(b))
    return statistics.median(ms)


def gemm_peak(dtype):
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=dtype)
    b = torch.randn(n, n, device="cuda", dtype=dtype)
    ms = cuda_time(lambda: torch.matmul(a, b), 10, 3)
    return 2 * n**3 / ms / 1e9  # TFLOP/s


def torch_encoder(name, dtype, iters, warmup, batch=1):
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    nm, c, h, layers = PRESETS[name]
    cfg = WhisperConfig(num_mel_bins=nm, d_model=c, encoder_layers=layers,
                        encoder_attention_heads=h, encoder_ffn_dim=4 * c,
                        max_source_positions=1500, attn_implementation="sdpa")
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    with torch.device("cuda"):
        enc = WhisperEncoder(cfg)
    enc = enc.to(dtype).eval()
    x = torch.randn(batch, nm, 3000, device="cuda", dtype=dtype)
    with torch.inference_mode():
        eager = cuda_time(lambda: enc(x), iters, warmup)
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                enc(x)
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            enc(x)
        graph = cuda_time(g.replay, iters, warmup)
    impl = getattr(enc.config, "_attn_implementation", "?")
    del enc, g
    torch.cuda.empty_cache()
    return eager, graph, impl


def ours(binary, name, precision, iters, warmup, graph, batch=1, attention="own", fc1_gelu="own",
         pdl="off"):
    cmd = [binary, "--time", "--json", "--dims", name, "--precision", precision,
           "--iters", str(iters), "--warmup", str(warmup), "--batch", str(batch),
           "--attention", attention, "--fc1-gelu", fc1_gelu]
    cmd += {"off": [], "own": ["--pdl"], "gemms": ["--pdl-gemms"]}[pdl]
    if not graph:
        cmd.append("--no-graph")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def ours_attention(binary, name, precision, batch, iters, warmup, attention="own"):
    """wb-cuda-dump --time-attention; None where that attention cannot run here (cuDNN's without
    libcudnn.so.9 on the loader path)."""
    cmd = [binary, "--time-attention", "--json", "--dims", name, "--precision", precision,
           "--batch", str(batch), "--iters", str(iters), "--warmup", str(warmup),
           "--attention", attention]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        print(f"  (ours, --attention {attention}: {r.stderr.strip()[:120]})")
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def torch_attention(name, dtype, batch, iters, warmup):
    """PyTorch's scaled_dot_product_attention on the encoder's shape, per backend (cuDNN's fused
    attention, FlashAttention-2, memory-efficient), timed as ours: 10 calls back to back per
    sample, median of `iters` samples. Returns {backend: ms per call or None if unavailable}."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    _, d, heads, _ = PRESETS[name]
    t = 1500
    q, k, v = (torch.rand(batch, heads, t, d // heads, device="cuda", dtype=dtype) * 2 - 1
               for _ in range(3))
    out = {}
    for label, be in (("cudnn", SDPBackend.CUDNN_ATTENTION), ("flash2", SDPBackend.FLASH_ATTENTION),
                      ("efficient", SDPBackend.EFFICIENT_ATTENTION)):
        try:
            with sdpa_kernel([be]):
                def ten():
                    for _ in range(10):
                        torch.nn.functional.scaled_dot_product_attention(q, k, v)
                out[label] = cuda_time(ten, iters, warmup) / 10
        except RuntimeError as e:  # backend not available for this shape/GPU/build
            print(f"  (PyTorch SDPA {label}: unavailable: {str(e).splitlines()[0][:100]})")
            out[label] = None
    return out


def attention_table(binary, names, precision, batches, iters, warmup):
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}[precision]
    print(f"attention alone ({precision}, T 1500, d_head 64; ms per call, median of {iters} samples "
          f"of 10 calls; TFLOP/s = 4 B H T^2 d / time):")
    print(f"{'dims':9} {'B':>2} {'ours':>8} {'ours cuDNN':>10} {'cuDNN':>8} {'flash2':>8} "
          f"{'effic.':>8} {'cuDNN/ours':>10} {'ours TF/s':>9} {'cuDNN TF/s':>10}")
    print("  (ours: the own kernel; ours cuDNN: wb-cuda-dump --attention cudnn; then PyTorch's SDPA)")
    rows = []
    for name in names:
        for b in batches:
            o = ours_attention(binary, name, precision, b, iters, warmup)
            oc = ours_attention(binary, name, precision, b, iters, warmup, "cudnn")
            pt = torch_attention(name, dtype, b, iters, warmup)
            gf = o["gflop"]
            cu = pt.get("cudnn")
            occ = oc["median_ms"] if oc else None
            fmt_ms = lambda x, w=8: f"{x:{w}.4f}" if x else f"{'-':>{w}}"  # noqa: E731
            print(f"{name:9} {b:2d} {o['median_ms']:8.4f} {fmt_ms(occ, 10)} {fmt_ms(cu)} "
                  f"{fmt_ms(pt.get('flash2'))} {fmt_ms(pt.get('efficient'))} "
                  f"{(cu / o['median_ms']) if cu else float('nan'):10.2f} "
                  f"{gf / o['median_ms']:9.1f} {(gf / cu) if cu else float('nan'):10.1f}", flush=True)
            rows.append({"dims": name, "batch": b, "ours_ms": o["median_ms"],
                         "ours_cudnn_ms": occ, "gflop": gf, "torch_sdpa_ms": pt})
    return rows


def rel_l2(a, b):
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def output_check(binary, name, precision, work, attention="own", fc1_gelu="own"):
    """Ours vs PyTorch's WhisperEncoder on the same weights and the same mel (ours); `attention` and `fc1_gelu`
    in the reduced precision (cuDNN's has no float32 path)."""
    import h5py
    from safetensors.torch import load_file
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    clip, mdir = os.path.join(work, "clip.wav"), os.path.join(work, f"model-{name}")
    write_tone(clip, 8)
    ours = {}
    for p in ("float32", precision):
        out = os.path.join(work, f"check-{name}-{p}.h5")
        cmd = [binary, "--audio", clip, "--precision", p, "--taps", "mel,encoder.ln_post",
               "--compress", "0", "-o", out]
        if p != "float32":
            cmd += ["--attention", attention, "--fc1-gelu", fc1_gelu]
        cmd += ["--model", mdir] if os.path.isdir(mdir) else ["--random-dims", name, "--seed", "1",
                                                              "--keep-model", mdir]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        with h5py.File(out) as f:
            mel = torch.from_numpy(f["taps/mel"][()])
            ours[p] = torch.from_numpy(f["taps/encoder.ln_post"][()])
    cfg = WhisperConfig.from_pretrained(mdir)
    cfg._attn_implementation = "sdpa"
    sd = load_file(os.path.join(mdir, "model.safetensors"))
    pre = "model.encoder."
    with torch.device("cuda"):
        enc = WhisperEncoder(cfg)
    enc.load_state_dict({k[len(pre):]: v for k, v in sd.items() if k.startswith(pre)})
    del sd
    enc = enc.eval()
    theirs = {}
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    for p in ("float32", precision):
        dt = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[p]
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        with torch.inference_mode():
            e = enc.to(dt)
            theirs[p] = e(mel[None].to("cuda", dt)).last_hidden_state[0].float().cpu()
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    del enc
    torch.cuda.empty_cache()
    r = {"dims": name, "float32_ours_vs_torch": rel_l2(ours["float32"], theirs["float32"])}
    if precision != "float32":
        r.update({f"{precision}_ours_vs_torch": rel_l2(ours[precision], theirs[precision]),
                  f"{precision}_ours_vs_torch_float32": rel_l2(ours[precision], theirs["float32"]),
                  f"{precision}_torch_vs_torch_float32": rel_l2(theirs[precision], theirs["float32"])})
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="wb-cuda-dump")
    ap.add_argument("--dims", nargs="+", default=["tiny", "base", "small", "medium", "large-v3"])
    ap.add_argument("--precision", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--check-dims", nargs="*", default=["large-v3"],
                    help="dims whose output is checked against PyTorch's (none: skip)")
    ap.add_argument("--attention-dims", nargs="*", default=["large-v3"],
                    help="dims whose attention alone is timed against PyTorch's SDPA backends "
                         "(cuDNN, FlashAttention-2, memory-efficient); none: skip")
    ap.add_argument("--attention-batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--encoder-batches", nargs="+", type=int, default=[1, 8],
                    help="clips per encoder call (both sides)")
    ap.add_argument("--skip-encoder", action="store_true", help="only the attention table")
    ap.add_argument("--attention", default="own", choices=["own", "cudnn"],
                    help="our encoder's attention (wb-cuda-dump --attention)")
    ap.add_argument("--fc1-gelu", default="own", choices=["own", "cudnn"],
                    help="our encoder's fc1 + GELU (wb-cuda-dump --fc1-gelu)")
    ap.add_argument("--pdl", default="off", choices=["off", "own", "gemms"],
                    help="programmatic dependent launch: our own kernels (wb-cuda-dump --pdl), "
                         "and the GEMMs whose kernels wait (--pdl-gemms)")
    a = ap.parse_args()
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[a.precision]
    if dtype == torch.float32:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    gpu = torch.cuda.get_device_name()
    peak = gemm_peak(torch.bfloat16)
    print(f"GPU: {gpu}; torch {torch.__version__}; measured bf16 GEMM peak (8192^3): {peak:.0f} TFLOP/s")
    print(f"precision {a.precision}, our attention {a.attention}, fc1 + GELU {a.fc1_gelu}, "
          f"dependent launch {a.pdl}, "
          f"batches {a.encoder_batches} "
          f"(B 30 s windows per call), "
          f"median of {a.iters} after {a.warmup} warm-up; ms per call")
    rows = []
    attn = []
    if a.attention_dims and a.precision != "float32":
        attn = attention_table(a.bin, a.attention_dims, a.precision, a.attention_batches, a.iters,
                               a.warmup)
    hdr = (f"{'dims':9} {'B':>2} {'ours graph':>10} {'ours strm':>10} {'pt eager':>9} {'pt graph':>9} "
           f"{'ptG/ours':>8} {'ptE/ours':>8} {'ours clip/s':>11} {'ptG clip/s':>10} {'TFLOP/s':>8} "
           f"{'%peak':>6}")
    if not a.skip_encoder:
        print(hdr)
    for name in ([] if a.skip_encoder else a.dims):
        for b in a.encoder_batches:
            og = ours(a.bin, name, a.precision, a.iters, a.warmup, True, b, a.attention, a.fc1_gelu,
                      a.pdl)
            os_ = ours(a.bin, name, a.precision, a.iters, a.warmup, False, b, a.attention,
                       a.fc1_gelu, a.pdl)
            pe, pg, impl = torch_encoder(name, dtype, a.iters, a.warmup, b)
            tf = og["tflops"]
            ocs, pcs = 1e3 * b / og["median_ms"], 1e3 * b / pg
            r = {"dims": name, "batch": b, "precision": a.precision, "gpu": gpu,
                 "attention": a.attention, "fc1_gelu": a.fc1_gelu, "dependent_launch": a.pdl,
                 "ours_graph_ms": og["median_ms"], "ours_stream_ms": os_["median_ms"],
                 "torch_eager_ms": pe, "torch_graph_ms": pg, "ours_graph_clips_per_s": ocs,
                 "torch_graph_clips_per_s": pcs, "torch_attn_impl": impl, "gflop": og["gflop"],
                 "ours_tflops": tf, "peak_tflops": peak, "ours_device": og["device"],
                 "ours_breakdown_ms": og.get("breakdown_ms", {}),
                 "ours_graph_share_ms": og.get("graph_share_ms", {})}
            rows.append(r)
            print(f"{name:9} {b:2d} {og['median_ms']:10.3f} {os_['median_ms']:10.3f} {pe:9.3f} "
                  f"{pg:9.3f} {pg / og['median_ms']:8.2f} {pe / og['median_ms']:8.2f} {ocs:11.1f} "
                  f"{pcs:10.1f} {tf:8.1f} {100 * tf / peak:6.1f}", flush=True)
    print("ratios > 1: ours faster. PyTorch attention:", rows[0]["torch_attn_impl"] if rows else "-")
    print("ours, time per op kind (ms per call, stream runs with an event after every op):")
    for r in rows:
        bd = r["ours_breakdown_ms"]
        print(f"  {r['dims']:9} B{r['batch']:<2d} " + "  ".join(f"{k} {v:.3f}" for k, v in sorted(bd.items(), key=lambda kv: -kv[1])))
    print("ours, per op kind inside the CUDA graph (ms per call: graph minus the graph captured without it):")
    for r in rows:
        gs = r["ours_graph_share_ms"]
        print(f"  {r['dims']:9} B{r['batch']:<2d} " + "  ".join(f"{k} {v:.3f}" for k, v in sorted(gs.items(), key=lambda kv: -kv[1])))
    checks = []
    with tempfile.TemporaryDirectory() as work:
        for name in ([] if a.skip_encoder else a.check_dims):
            c = output_check(a.bin, name, a.precision, work, a.attention, a.fc1_gelu)
            checks.append(c)
            print(f"output check, {name} (same random weights, same mel; rel L2 of encoder.ln_post):")
            print(f"  float32 (TF32 off), ours vs PyTorch: {c['float32_ours_vs_torch']:.3g}")
            if a.precision != "float32":
                p = a.precision
                print(f"  {p}, ours vs PyTorch: {c[p + '_ours_vs_torch']:.3g}; against PyTorch float32: "
                      f"ours {c[p + '_ours_vs_torch_float32']:.3g}, PyTorch {c[p + '_torch_vs_torch_float32']:.3g} "
                      f"(PyTorch keeps the residual stream in {p}, ours in float32)", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"timings": rows, "attention": attn, "output_checks": checks}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
