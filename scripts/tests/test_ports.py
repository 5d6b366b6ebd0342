#!/usr/bin/env python3
"""CTests port_*: the ports of scripts/ports/ against reference dumps that `wb dump --impl
reference` makes here, checked through `wbdump port-check` (the installed package's command).

Tolerance: the float32 profile's fail limit on rel L2 (fixtures/profiles/float32.json, calibrated
on two float32 implementations of the same model: docs/calibration.md), applied to every tap of
every stage (each stage fed the reference's own input) and of the run. A planted bug must exceed
ten times that limit at its own stage and leave every other stage within it.

    test_ports.py --wb build/wb --case numpy_clean|numpy_bugs|numpy_trained|torch_float32|torch_bfloat16 [--work D]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

import h5py

import wbdump

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
PORTS = os.path.join(ROOT, "scripts", "ports")
NANO = os.path.join(ROOT, "fixtures", "models", "nano-hf")
TRAINED = os.path.join(ROOT, "fixtures", "trained")
PROFILE = os.path.join(ROOT, "fixtures", "profiles", "float32.json")
with open(PROFILE) as _fh:
    LIMIT = float(json.load(_fh)["fail"]["rel_l2"]["max"])
WBDUMP = os.path.join(os.path.dirname(sys.executable), "wbdump")


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


class Ctx:
    def __init__(self, wb, work):
        self.wb, self.work = wb, work
        self.tone = os.path.join(work, "tone.wav")
        if not os.path.exists(self.tone):  # the repository's one synthetic clip, 16 kHz
            subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "tone.py"), self.tone,
                            "4"], check=True)

    def reference(self, model):
        out = os.path.join(self.work, f"ref-{os.path.basename(model)}.h5")
        if not os.path.exists(out):
            p = subprocess.run([self.wb, "dump", "--impl", "reference", "--model", model,
                                "--audio", self.tone, "--no-decode", "-o", out],
                               capture_output=True, text=True, timeout=300)
            expect(p.returncode == 0, f"wb dump --impl reference: exit {p.returncode}: {p.stderr}")
        return out

    def port_check(self, port_cmd, model, tag):
        js = os.path.join(self.work, f"pc-{tag}.json")
        p = subprocess.run([WBDUMP, "port-check", port_cmd, "--reference", self.reference(model),
                            "--audio", self.tone, "--model", model, "--json", js],
                           capture_output=True, text=True, timeout=300)
        expect(p.returncode == 0, f"port-check {tag}: exit {p.returncode}\n{p.stdout}{p.stderr}")
        with open(js) as fh:
            return json.load(fh), p.stdout


def py(script, *args):
    return " ".join([f"'{sys.executable}'", f"'{os.path.join(PORTS, script)}'", *args])


def all_stage_taps(res):
    return [(s, name, v) for s in res["stages"] for name, v in s["taps"].items()]


def stage_key(s):
    return wbdump.stage_label(s["stage"], s["block"])


def check_clean(res, tag, n_taps):
    run = res["run"]["rel_l2"]
    expect(len(run) == n_taps, f"{tag}: {len(run)} run taps compared, expected {n_taps}")
    worst_run = max(run.items(), key=lambda kv: kv[1])
    expect(worst_run[1] <= LIMIT, f"{tag}: run tap {worst_run[0]} rel L2 {worst_run[1]:.3e} > {LIMIT}")
    st = all_stage_taps(res)
    expect(len(st) == n_taps, f"{tag}: {len(st)} stage taps compared, expected {n_taps}")
    worst = max(st, key=lambda t: t[2])
    expect(worst[2] <= LIMIT, f"{tag}: stage {stage_key(worst[0])} tap {worst[1]} rel L2 "
                              f"{worst[2]:.3e} > {LIMIT}")
    return (f"worst run tap {worst_run[0]} {worst_run[1]:.2e}, worst stage tap {worst[1]} "
            f"{worst[2]:.2e} (limit {LIMIT:g}); ln_post {run['encoder.ln_post']:.2e}")


def case_numpy_clean(c):
    res, out = c.port_check(py("numpy_port.py", "--model", f"'{NANO}'"), NANO, "numpy")
    print(out, end="")
    expect(res["hello"]["precision"] == "float32" and res["hello"]["name"] == "numpy-port",
           f"hello {res['hello']}")
    note = check_clean(res, "numpy", len(wbdump.encoder_taps(wbdump.ModelDims.from_checkpoint(NANO))))
    # the same port's dump mode, judged by wb compare with the float32 profile
    dump = os.path.join(c.work, "numpy-nano.h5")
    subprocess.run([sys.executable, os.path.join(PORTS, "numpy_port.py"), "--model", NANO,
                    "--audio", c.tone, "--out", dump], check=True, timeout=300)
    p = subprocess.run([c.wb, "compare", c.reference(NANO), dump, "--profile", PROFILE],
                       capture_output=True, text=True, timeout=300)
    expect(p.returncode == 0, f"wb compare of the dump: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return note + "; dump mode: wb compare --profile float32 PASS"


# bug -> the stage whose own taps must show it
BUGS = {"power-to-db": "frontend", "attn-scale@1": "block 1", "ln-f16@0": "block 0",
        "no-ln-post": "ln_post"}


def case_numpy_bugs(c):
    notes = []
    for bug, where in BUGS.items():
        res, out = c.port_check(py("numpy_port.py", "--model", f"'{NANO}'", "--bug", bug), NANO,
                                f"bug-{bug}")
        per_stage = {}
        for s in res["stages"]:
            per_stage[stage_key(s)] = max(s["taps"].values())
        expect(set(per_stage) == {"frontend", "stem", "block 0", "block 1", "ln_post"},
               f"{bug}: stages {sorted(per_stage)}")
        own = per_stage[where]
        expect(own > 10 * LIMIT, f"{bug}: stage {where} worst tap rel L2 {own:.3e} not above "
                                 f"10 x {LIMIT}\n{out}")
        others = {k: v for k, v in per_stage.items() if k != where}
        bad = {k: v for k, v in others.items() if v > LIMIT}
        expect(not bad, f"{bug}: other stages beyond the limit: {bad}")
        notes.append(f"{bug}: {where} {own:.2e} (others <= {max(others.values()):.1e})")
    return "; ".join(notes)


def case_numpy_trained(c):
    """The trained model (float16-stored weights): dump mode within the float32 profile; the
    encoder's own time per clip (the dump's /timing/encoder) printed."""
    dump = os.path.join(c.work, "numpy-trained.h5")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, os.path.join(PORTS, "numpy_port.py"), "--model", TRAINED,
                    "--audio", c.tone, "--out", dump], check=True, timeout=300)
    wall = time.perf_counter() - t0
    with h5py.File(dump, "r") as f:
        enc = float(f["timing"]["encoder"][()])
    p = subprocess.run([c.wb, "compare", c.reference(TRAINED), dump, "--profile", PROFILE],
                       capture_output=True, text=True, timeout=300)
    expect(p.returncode == 0, f"wb compare: exit {p.returncode}\n{p.stdout}{p.stderr}")
    ref, got = wbdump.open_dump(c.reference(TRAINED)), wbdump.open_dump(dump)
    from wbdump.port_check import rel_l2
    r = rel_l2(got.read("encoder.ln_post"), ref.read("encoder.ln_post"))
    return (f"wb compare --profile float32 PASS; ln_post rel L2 {r:.2e}; front end + encoder "
            f"{enc:.2f} s, process {wall:.2f} s (load average {os.getloadavg()[0]:.1f})")


class Skip(Exception):
    """Missing software: CTest's skip (exit 77) on a developer machine, a failure under CI=true
    (CI installs every package of scripts/packages.txt), as scripts/skip.sh does."""


def case_torch_float32(c):
    try:
        import torch  # noqa: F401 - only whether it imports
    except ImportError:
        raise Skip("no torch in this python (apt-get install python3-torch)") from None
    res, out = c.port_check(py("torch_port.py", "--model", f"'{NANO}'", "--threads", "2"), NANO,
                            "torch")
    print(out, end="")
    expect(res["hello"]["precision"] == "float32", f"hello {res['hello']}")
    return check_clean(res, "torch", len(wbdump.encoder_taps(wbdump.ModelDims.from_checkpoint(NANO))))


def case_torch_bfloat16(c):
    """bfloat16 autocast: the activations report bfloat16 (the mel float32), and the error is
    bfloat16's: above 1e-4 (no float32 run would be) and below 3e-2 (bfloat16 rounds to 2^-9
    relative; a few roundings per layer, not a wrong formula)."""
    try:
        import torch  # noqa: F401 - only whether it imports
    except ImportError:
        raise Skip("no torch in this python (apt-get install python3-torch)") from None
    res, out = c.port_check(py("torch_port.py", "--model", f"'{NANO}'", "--threads", "2",
                               "--precision", "bfloat16"), NANO, "torch-bf16")
    expect(res["hello"]["precision"] == "bfloat16", f"hello {res['hello']}")
    cd = res["run"]["compute_dtypes"]
    expect(cd["mel"] == "float32", f"mel computed in {cd['mel']}")
    not_bf16 = [k for k, v in cd.items() if k != "mel" and v != "bfloat16"]
    expect(not not_bf16, f"taps not reported bfloat16: {not_bf16}")
    r = res["run"]["rel_l2"]["encoder.ln_post"]
    expect(1e-4 < r < 3e-2, f"ln_post rel L2 {r:.3e} outside (1e-4, 3e-2)")
    worst = max(all_stage_taps(res), key=lambda t: t[2])
    expect(worst[2] < 3e-2, f"stage tap {worst[1]} rel L2 {worst[2]:.3e}")
    return (f"{len(cd) - 1} taps bfloat16, mel float32; ln_post rel L2 {r:.2e}, worst stage tap "
            f"{worst[1]} {worst[2]:.2e}")


CASES = {"numpy_clean": case_numpy_clean, "numpy_bugs": case_numpy_bugs,
         "numpy_trained": case_numpy_trained, "torch_float32": case_torch_float32,
         "torch_bfloat16": case_torch_bfloat16}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wb", required=True)
    ap.add_argument("--case", action="append")
    ap.add_argument("--work")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix="wb-ports-")
    os.makedirs(work, exist_ok=True)
    print(f"wbdump from {os.path.dirname(wbdump.__file__)}; limit {LIMIT:g} ({PROFILE}); work {work}")
    failed, skipped = [], []
    ids = a.case or list(CASES)
    for cid in ids:
        try:
            print(f"[pass] {cid}: {CASES[cid](Ctx(os.path.abspath(a.wb), work))}")
        except Skip as e:
            if os.environ.get("CI") == "true":
                failed.append(cid)
                print(f"[FAIL] {cid}: under CI=true, missing software: {e}")
            else:
                skipped.append(cid)
                print(f"[skip] {cid}: {e}")
        except Exception as e:  # noqa: BLE001 - report every case
            failed.append(cid)
            print(f"[FAIL] {cid}: {e}")
            traceback.print_exc()
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    if failed:
        return 1
    return 77 if len(skipped) == len(ids) else 0


if __name__ == "__main__":
    sys.exit(main())
