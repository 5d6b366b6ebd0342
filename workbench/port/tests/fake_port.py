#!/usr/bin/env python3
"""A port that speaks the port protocol by hand (json + h5py, no wbdump) and answers with the
taps of a dump it was given: a well-behaved port for the protocol tests, and, with --misbehave,
every way a port can go wrong (docs/ports.md). Used by broken_ports.sh.

    fake_port.py --dump REF.h5 [--misbehave MODE] [--on-call N] [--name NAME]

MODE: crash, hang, exit-silent, garbage, bad-tap, bad-shape, bad-dtype, protocol-2, error,
nan, no-stage, wrong-model, wrong-id, no-output. --on-call N: misbehave on the Nth run/stage
request only (1-based; default every one); a file --state counts calls across restarts.
"""
import argparse
import json
import os
import sys
import time

import h5py
import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True)
    ap.add_argument("--misbehave", default="")
    ap.add_argument("--on-call", type=int, default=0)
    ap.add_argument("--state", default="")
    ap.add_argument("--name", default="fake-port")
    a = ap.parse_args()
    ref = h5py.File(a.dump, "r")
    dims = json.loads(ref.attrs["model_dims"])
    taps = {k: np.asarray(ref["taps"][k], dtype=np.float32) for k in ref["taps"]
            if not k.startswith("decoder.") and k != "logits"}
    out = sys.stdout
    sys.stdout = sys.stderr
    calls = 0

    def answer(obj):
        out.write(json.dumps(obj) + "\n")
        out.flush()

    def misbehaving():
        """The mode for this run/stage request ("" when it behaves)."""
        nonlocal calls
        calls += 1
        n = calls
        if a.state:
            n = int(open(a.state).read()) + 1 if os.path.exists(a.state) else 1
            with open(a.state, "w") as f:
                f.write(str(n))
        return a.misbehave if a.on_call == 0 or n == a.on_call else ""

    for line in sys.stdin:
        req = json.loads(line)
        op, rid = req["op"], req["id"]
        if op == "hello":
            print("fake port: hello", file=sys.stderr)
            ans = {"id": rid, "ok": True, "protocol": 2 if a.misbehave == "protocol-2" else 1,
                   "name": a.name, "model_dims": dims, "precision": "float32",
                   "model_sha256": "0" * 64 if a.misbehave == "wrong-model"
                   else ref.attrs["model_sha256"],
                   "requests": ["run"] if a.misbehave == "no-stage" else ["run", "stage"],
                   "stages": [] if a.misbehave == "no-stage"
                   else ["frontend", "stem", "block", "ln_post"]}
            answer(ans)
            continue
        if op == "bye":
            answer({"id": rid, "ok": True})
            return 0
        names = req["taps"]
        mode = misbehaving()

        def bad(m):
            return mode == m
        if bad("crash"):
            print("fake port: segmentation fault (simulated)", file=sys.stderr)
            os._exit(139)
        if bad("hang"):
            time.sleep(3600)
        if bad("exit-silent"):
            return 0
        if bad("garbage"):
            out.write("loading weights... done\n")
            out.flush()
            continue
        if bad("error"):
            answer({"id": rid, "ok": False, "error": "CUDA out of memory (simulated)"})
            continue
        if bad("wrong-id"):
            answer({"id": rid + 100, "ok": True, "compute_seconds": 0.0})
            continue
        if bad("no-output"):
            answer({"id": rid, "ok": True, "compute_seconds": 0.0})
            continue
        t0 = time.perf_counter()
        with h5py.File(req["output"], "w") as f:
            g = f.create_group("taps")
            for n in names:
                if n not in taps:
                    continue
                x = taps[n]
                if bad("nan") and n == "encoder.ln_post":
                    x = x.copy()
                    x[0, 0] = np.nan
                if n == "mel" and bad("bad-shape"):
                    x = x.T
                if n == "mel" and bad("bad-dtype"):
                    g.create_dataset(n, data=(x * 100).astype(np.int32))
                    continue
                g.create_dataset(n, data=x)
            if bad("bad-tap"):
                g.create_dataset("encoder.blocks.99.out", data=taps["encoder.ln_post"])
        answer({"id": rid, "ok": True, "compute_seconds": time.perf_counter() - t0})
    return 0


if __name__ == "__main__":
    sys.exit(main())
