#!/usr/bin/env python3
"""CUDA candidate vs PyTorch (transformers WhisperEncoder, SDPA) encoder time on one GPU.

Runs on the GPU machine (docs/gpu.md). For each dims preset, batch 1, one 30 s window, random
weights, the same precision on both sides:
  - ours: `wb-cuda-dump --time` (CUDA events, median of --iters after warm-up), launched on a
    stream and replayed as one CUDA graph;
  - PyTorch eager and PyTorch with the whole encoder captured by torch.cuda.graph (CUDA events,
    median of --iters after warm-up);
and prints the ratios, achieved TFLOP/s and the share of the bf16 GEMM peak measured in the same
run (8192^3 torch.matmul). Note: in bf16 PyTorch keeps the residual stream in bf16, ours in float32.

  LD_LIBRARY_PATH=pack/lib:/usr/local/cuda/lib64 python3 pack/cuda_bench.py --bin pack/wb-cuda-dump
"""
import argparse
import json
import statistics
import subprocess
import sys

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


def torch_encoder(name, dtype, iters, warmup):
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
    x = torch.randn(1, nm, 3000, device="cuda", dtype=dtype)
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


def ours(binary, name, precision, iters, warmup, graph):
    cmd = [binary, "--time", "--json", "--dims", name, "--precision", precision,
           "--iters", str(iters), "--warmup", str(warmup)]
    if not graph:
        cmd.append("--no-graph")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="wb-cuda-dump")
    ap.add_argument("--dims", nargs="+", default=["tiny", "base", "small", "large-v3"])
    ap.add_argument("--precision", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[a.precision]
    if dtype == torch.float32:
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    gpu = torch.cuda.get_device_name()
    peak = gemm_peak(torch.bfloat16)
    print(f"GPU: {gpu}; torch {torch.__version__}; measured bf16 GEMM peak (8192^3): {peak:.0f} TFLOP/s")
    print(f"precision {a.precision}, batch 1, 30 s window, median of {a.iters} after {a.warmup} warm-up")
    rows = []
    hdr = (f"{'dims':9} {'ours graph':>10} {'ours strm':>10} {'pt eager':>9} {'pt graph':>9} "
           f"{'ptG/ours':>8} {'ptE/ours':>8} {'TFLOP/s':>8} {'%peak':>6}")
    print(hdr)
    for name in a.dims:
        og = ours(a.bin, name, a.precision, a.iters, a.warmup, True)
        os_ = ours(a.bin, name, a.precision, a.iters, a.warmup, False)
        pe, pg, impl = torch_encoder(name, dtype, a.iters, a.warmup)
        tf = og["tflops"]
        r = {"dims": name, "precision": a.precision, "gpu": gpu, "ours_graph_ms": og["median_ms"],
             "ours_stream_ms": os_["median_ms"], "torch_eager_ms": pe, "torch_graph_ms": pg,
             "torch_attn_impl": impl, "gflop": og["gflop"], "ours_tflops": tf,
             "peak_tflops": peak, "ours_device": og["device"],
             "ours_breakdown_ms": og.get("breakdown_ms", {})}
        rows.append(r)
        print(f"{name:9} {og['median_ms']:10.3f} {os_['median_ms']:10.3f} {pe:9.3f} {pg:9.3f} "
              f"{pg / og['median_ms']:8.2f} {pe / og['median_ms']:8.2f} {tf:8.1f} {100 * tf / peak:6.1f}",
              flush=True)
    print("ratios > 1: ours faster. PyTorch attention:", rows[0]["torch_attn_impl"] if rows else "-")
    print("ours, time per op kind (ms, stream runs with an event after every op):")
    for r in rows:
        bd = r["ours_breakdown_ms"]
        print(f"  {r['dims']:9} " + "  ".join(f"{k} {v:.3f}" for k, v in sorted(bd.items(), key=lambda kv: -kv[1])))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
