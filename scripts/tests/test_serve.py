#!/usr/bin/env python3
"""CTest wbdump_serve: wbdump.serve round trips with small fake ports, and wbdump port-check's
exit statuses (0 good, 1 protocol/validation failure, 2 bad usage) on good and broken ports.

The fake port (written to a temporary folder, run by this interpreter as `wb` would run it)
returns known values: the test checks the answer fields exactly, the tensor files value for
value, compute_dtype (given as a tuple, inferred from float16), a NaN passed through as a
finding, a leading batch dimension of 1 dropped, taps not asked for left out; an exception
and a wrong shape answered as one-line errors while serving goes on; prints to sys.stdout and
raw writes to file descriptor 1 kept off the protocol (they land on stderr).

    test_serve.py [--work DIR]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

import h5py
import numpy as np

import wbdump
from wbdump import protocol as P
from wbdump.port_check import PortProcess

DIMS = wbdump.ModelDims(n_mels=80, n_audio_ctx=37, n_audio_state=48, n_audio_head=3,
                        n_audio_layer=2, n_vocab=1766, n_text_ctx=16, n_text_state=48,
                        n_text_head=3, n_text_layer=2)
FAKE = r'''
import os, sys
import numpy as np
import wbdump

D = wbdump.ModelDims.from_json(%(dims)r)
MODE = sys.argv[1]


def value(name, shape):
    """A deterministic tensor per tap: its registry order plus a ramp."""
    n = int(np.prod(shape))
    return (np.arange(n, dtype=np.float32).reshape(shape) * np.float32(1e-3)
            + np.float32(wbdump.tap_order(D, name)))


class Fake:
    def hello(self, request):
        print("loading weights...")                 # sys.stdout: must land on stderr
        os.write(1, b"native write to fd 1\n")       # file descriptor 1: must land on stderr too
        if MODE == "hang":
            import time
            time.sleep(60)
        return {"name": "fake port", "model_dims": D, "model_sha256": "ab" * 32,
                "precision": "bfloat16"}

    def run(self, samples, audio_path=None, taps=None):
        print("running on", audio_path)
        out = {t.name: value(t.name, t.shape) for t in wbdump.encoder_taps(D)}
        out["mel"][0, 0] = np.float32(samples.astype(np.float64).sum())
        out["encoder.conv1"] = out["encoder.conv1"].astype(np.float16)
        out["encoder.conv2"] = (out["encoder.conv2"], "bfloat16")
        out["encoder.blocks.0.out"][0, 0] = np.nan
        out["encoder.ln_post"] = out["encoder.ln_post"][None]    # [1, T, C]
        if MODE == "badshape":
            out["encoder.conv2"] = np.zeros((D.n_audio_ctx - 1, D.n_audio_state), np.float32)
        return out

    def stage(self, stage, block, inputs, taps=None):
        x = inputs[wbdump.stage_input(D, stage, block)]
        if stage == "frontend":
            return {"mel": np.full((D.n_mels, 2 * D.n_audio_ctx), x.mean(), np.float32)}
        if stage == "stem":
            return {"encoder.pos_embed": np.full((D.n_audio_ctx, D.n_audio_state), x.mean(),
                                                 np.float32)}
        if stage == "block" and block == 1 and MODE == "err":
            raise RuntimeError("block 1 is not ported yet\nsecond line")
        if stage == "block" and MODE == "wrongstage":
            return {"encoder.blocks.1.out": x}
        return {wbdump.stage_output(D, stage, block): x * 2}


wbdump.serve(Fake())
''' % {"dims": DIMS.to_json()}


# A port that speaks the protocol by hand (not through wbdump.serve), as a port in another
# language would: port-check's own checks of the answers and the tensor files must catch it.
RAW = r'''
import json, sys
import h5py, numpy as np
D = json.loads(%(dims)r)
MODE = sys.argv[1]
for line in sys.stdin:
    req = json.loads(line)
    if req["op"] == "hello":
        ans = {"id": req["id"], "ok": True, "protocol": 2 if MODE == "proto2" else 1,
               "name": "raw port", "model_dims": D, "model_sha256": "cd" * 32,
               "precision": "float32", "requests": ["run"], "stages": []}
    elif req["op"] == "run":
        t, c = D["n_audio_ctx"], D["n_audio_state"]
        with h5py.File(req["output"], "w") as f:
            f["taps/mel"] = np.zeros((D["n_mels"], 2 * t), np.float32)
            f["taps/encoder.ln_post"] = np.zeros((t, c), np.float32)
            f["taps/encoder.blocks.9.out"] = np.zeros((t, c), np.float32)
        ans = {"id": req["id"], "ok": True, "compute_seconds": 0.001}
    else:
        ans = {"id": req["id"], "ok": True}
    print(json.dumps(ans), flush=True)
    if req["op"] == "bye":
        break
''' % {"dims": DIMS.to_json()}


class Case:
    def __init__(self, work):
        self.work = work
        self.fake = os.path.join(work, "fake_port.py")
        with open(self.fake, "w") as fh:
            fh.write(FAKE)
        self.raw = os.path.join(work, "raw_port.py")
        with open(self.raw, "w") as fh:
            fh.write(RAW)

    def cmd(self, mode):
        return f"'{sys.executable}' '{self.fake}' {mode}"


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def raw(port, obj_or_line):
    """Sends one line, returns the parsed answer line (checks it is one JSON object)."""
    line = obj_or_line if isinstance(obj_or_line, str) else json.dumps(obj_or_line)
    port.proc.stdin.write((line + "\n").encode())
    port.proc.stdin.flush()
    text = port._read_line("test", 60).decode()
    ans = json.loads(text)
    expect(isinstance(ans, dict), f"answer {text!r} is not an object")
    return ans


def case_round_trip(c):
    port = PortProcess(c.cmd("err"), 60, c.work)
    try:
        ans = raw(port, {"op": "run", "id": 0, "input": "x", "output": "y"})
        expect(not ans["ok"] and "before a successful hello" in ans["error"], f"run first: {ans}")
        ans = raw(port, {"op": "hello", "id": 1, "protocol": 1, "scratch": c.work,
                         "model": "fixtures/none"})
        want = {"id": 1, "ok": True, "protocol": 1, "name": "fake port",
                "model_dims": json.loads(DIMS.to_json()), "model_sha256": "ab" * 32,
                "precision": "bfloat16", "requests": ["run", "stage"],
                "stages": ["frontend", "stem", "block", "ln_post"]}
        expect(ans == want, f"hello answer\n got  {ans}\n want {want}")

        # run: samples in, taps out (a subset asked for)
        samples = np.linspace(-0.5, 0.5, 16000 * 2, dtype=np.float32)
        inp, out = os.path.join(c.work, "2.in.h5"), os.path.join(c.work, "2.out.h5")
        P.write_input_file(inp, samples=samples)
        names = [t.name for t in wbdump.encoder_taps(DIMS)]
        asked = [n for n in names if n != "encoder.blocks.1.mlp.fc1"]
        ans = raw(port, {"op": "run", "id": 2, "input": inp, "output": out,
                         "audio_path": "clips/a.flac", "taps": asked})
        expect(ans["ok"] and ans["id"] == 2, f"run: {ans}")
        expect(isinstance(ans["compute_seconds"], float) and ans["compute_seconds"] >= 0,
               f"compute_seconds {ans.get('compute_seconds')!r}")
        d = wbdump.open_dump(out)  # a complete dump of the contract
        expect(d.names() == asked, f"taps written {d.names()[:4]}... ({len(d.names())})")
        with h5py.File(out, "r") as f:
            t = f["taps"]
            expect(t["encoder.conv1"].dtype == np.float16, "float16 not kept")
            cd = {n: t[n].attrs["compute_dtype"] for n in ("encoder.conv1", "encoder.conv2", "mel")}
            expect(cd == {"encoder.conv1": "float16", "encoder.conv2": "bfloat16",
                          "mel": "float32"}, f"compute_dtype {cd}")
            mel00 = float(t["mel"][0, 0])
            want00 = float(np.float32(samples.astype(np.float64).sum()))
            expect(mel00 == want00, f"samples did not travel: mel[0,0] {mel00} vs {want00}")
            b0 = t["encoder.blocks.0.out"][()]
            expect(np.isnan(b0[0, 0]) and np.isfinite(b0[1:]).all(), "the NaN was not passed on")
            lp = t["encoder.ln_post"][()]
            expect(lp.shape == (DIMS.n_audio_ctx, DIMS.n_audio_state), f"ln_post {lp.shape}")
            o = wbdump.tap_order(DIMS, "encoder.ln_post")
            expect(lp[0, 1] == np.float32(1e-3) + np.float32(o), "ln_post values")

        # stage: an exception is one line, serving goes on
        inp3 = os.path.join(c.work, "3.in.h5")
        x = np.full((DIMS.n_audio_ctx, DIMS.n_audio_state), 0.25, np.float32)
        P.write_input_file(inp3, taps={"encoder.blocks.0.out": x})
        ans = raw(port, {"op": "stage", "id": 3, "stage": "block", "block": 1, "input": inp3,
                         "output": os.path.join(c.work, "3.out.h5"), "taps": []})
        expect(ans == {"id": 3, "ok": False,
                       "error": "RuntimeError: block 1 is not ported yet second line"},
               f"error answer {ans}")
        inp4 = os.path.join(c.work, "4.in.h5")
        P.write_input_file(inp4, taps={"encoder.pos_embed": x})
        out4 = os.path.join(c.work, "4.out.h5")
        ans = raw(port, {"op": "stage", "id": 4, "stage": "block", "block": 0, "input": inp4,
                         "output": out4, "taps": ["encoder.blocks.0.out"]})
        expect(ans["ok"], f"stage block 0 after the error: {ans}")
        got = P.read_tap_file(out4)
        expect(list(got) == ["encoder.blocks.0.out"] and np.all(got["encoder.blocks.0.out"][0] == 0.5),
               "stage output values")
        # a block beyond the model, a missing input tap, an unknown op, a line that is no JSON
        for req, frag in (({"op": "stage", "id": 5, "stage": "block", "block": 2, "input": inp4,
                            "output": out4}, "block 2 (expected 0..1)"),
                          ({"op": "stage", "id": 6, "stage": "block", "block": 1, "input": inp4,
                            "output": out4}, "no /taps/encoder.blocks.0.out"),
                          ({"op": "decode", "id": 7}, "unknown op 'decode'"),
                          ("{not json", "Expecting property name")):
            ans = raw(port, req)
            expect(ans["ok"] is False and frag in ans["error"], f"{req}: {ans}")
        expect(ans["id"] is None, "a line that is no JSON is answered with id null")
        ans = raw(port, {"op": "bye", "id": 8})
        expect(ans == {"id": 8, "ok": True}, f"bye {ans}")
        rc = port.proc.wait(timeout=10)
        expect(rc == 0, f"exit status {rc} after bye")
        expect(port._buf == b"" and port.proc.stdout.read() == b"", "stdout after bye")
        err = open(port.err_path).read()
        for s in ("loading weights...", "native write to fd 1", "running on clips/a.flac",
                  "RuntimeError: block 1 is not ported yet"):
            expect(s in err, f"'{s}' not on stderr:\n{err}")
    finally:
        port.close()
    return "hello exact, run taps value for value, error answer and serving on, prints on stderr"


def case_wrong_shape(c):
    port = PortProcess(c.cmd("badshape"), 60, c.work)
    try:
        raw(port, {"op": "hello", "id": 0, "protocol": 1, "scratch": c.work})
        inp = os.path.join(c.work, "bs.in.h5")
        P.write_input_file(inp, samples=np.zeros(1600, np.float32))
        out = os.path.join(c.work, "bs.out.h5")
        ans = raw(port, {"op": "run", "id": 1, "input": inp, "output": out, "taps": None})
        want = (f"run: tap 'encoder.conv2': got [{DIMS.n_audio_ctx - 1}, {DIMS.n_audio_state}], "
                f"expected [{DIMS.n_audio_ctx}, {DIMS.n_audio_state}]")
        expect(not ans["ok"] and ans["error"].startswith(want), f"{ans}")
        expect(not os.path.exists(out), "an output file was written for a refused answer")
    finally:
        port.close()
    return ans["error"][:90]


def port_check(c, *args, timeout=120):
    p = subprocess.run([sys.executable, "-m", "wbdump", "port-check", *args],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def case_port_check(c):
    rc, out, err = port_check(c, c.cmd("clean"), "--json", os.path.join(c.work, "pc.json"))
    expect(rc == 0, f"clean fake: exit {rc}\n{out}{err}")
    res = json.load(open(os.path.join(c.work, "pc.json")))
    labels = [(s["stage"], s["block"]) for s in res["stages"]]
    expect(labels == [("frontend", None), ("stem", None), ("block", 0), ("block", 1),
                      ("ln_post", None)], f"stages driven: {labels}")
    expect("bye: ok" in out, out)
    notes = []
    for mode, code, frag in (
            ("err", 1, "port 'fake port': stage block 1 (id 5): the port says: RuntimeError: "
                       "block 1 is not ported yet second line"),
            ("badshape", 1, "port 'fake port': run (id 1): the port says: run: tap 'encoder.conv2'"),
            ("wrongstage", 1, "stage block 0 (id 4): the port says: stage block 0: tap "
                              "'encoder.blocks.1.out': not a tap of stage block 0")):
        rc, out, err = port_check(c, c.cmd(mode))
        lines = err.strip().splitlines()
        expect(rc == code and len(lines) == 1 and frag in lines[0],
               f"{mode}: exit {rc}, stderr {lines}")
        notes.append(f"{mode}: exit {rc}")
    for mode, frag in (("extra", "port 'raw port': run (id 1): tap 'encoder.blocks.9.out': not in "
                                 "the registry of this model"),
                       ("proto2", "hello: speaks protocol 2, wbdump speaks 1")):
        rc, out, err = port_check(c, f"'{sys.executable}' '{c.raw}' {mode}")
        lines = err.strip().splitlines()
        expect(rc == 1 and len(lines) == 1 and frag in lines[0], f"raw {mode}: exit {rc} {lines}")
    rc, out, err = port_check(c, "echo loading; sleep 5")
    expect(rc == 1 and "hello: stdout is not a JSON answer: 'loading'" in err, f"echo: {rc} {err}")
    rc, out, err = port_check(c, "exit 127")
    expect(rc == 1 and "hello: exited with status 127 before answering" in err, f"127: {err}")
    rc, out, err = port_check(c, c.cmd("hang"), "--timeout", "2")
    expect(rc == 1 and "hello: no answer within 2 s (killed)" in err, f"hang: {rc} {err}")
    expect("loading weights..." in err, "the stderr tail is not quoted")
    rc, out, err = port_check(c, c.cmd("clean"), "--reference", os.path.join(c.work, "none.h5"))
    expect(rc == 2 and "none.h5: no such file" in err, f"missing reference: {rc} {err}")
    rc, out, err = port_check(c, c.cmd("clean"), "--timeout", "0")
    expect(rc == 2, f"--timeout 0: exit {rc}")
    return "; ".join(notes) + ("; a raw port's tap outside the registry, protocol 2, not JSON, "
                               "exit 127, hang: exit 1; bad usage: exit 2")


CASES = {"round_trip": case_round_trip, "wrong_shape": case_wrong_shape,
         "port_check": case_port_check}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work")
    ap.add_argument("--case", action="append")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="wbdump-serve-")
    os.makedirs(work, exist_ok=True)
    print(f"wbdump from {os.path.dirname(wbdump.__file__)}; work {work}")
    failed = []
    for cid in a.case or list(CASES):
        try:
            print(f"[pass] {cid}: {CASES[cid](Case(work))}")
        except Exception as e:  # noqa: BLE001 - report every case
            failed.append(cid)
            print(f"[FAIL] {cid}: {e}")
            traceback.print_exc()
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
