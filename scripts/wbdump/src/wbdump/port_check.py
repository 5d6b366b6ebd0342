"""wbdump port-check: drive a port through every request it declares, without `wb`.

    wbdump port-check CMD [--reference ref.h5] [--audio WAV] [--model M] [--timeout S] [--json F]

Starts CMD (sh -c, the current folder) and sends hello, run, one stage request per declared stage
(every block for `block`) and bye, as `wb` would (docs/ports.md). Every answer is checked with
the checks wbdump.serve applies (wbdump.protocol): id, ok, protocol, dims, every tensor file's
names, shapes and types. Given a reference dump, each stage is fed the reference's own input tap
and its output tap is compared: rel L2 = ||port - ref|| / ||ref|| (float64). The run's taps are
compared too when --audio names the clip the reference was made from; without --audio the run
gets a deterministic synthetic tone and is not compared (the frontend stage neither).

Exit status: 0 every request answered and valid; 1 a protocol or validation failure (one line
naming the request and the problem); 2 bad usage or unreadable input.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from . import protocol as P
from .audio import read_audio, synthetic_tone
from .dump import (ModelDims, encoder_taps, model_sha256, open_dump, sha256_file, stage_input,
                   stage_label, stage_output, stage_taps)

_STDERR_TAIL = 600  # characters of the port's stderr quoted in a failure line


class CheckFailure(Exception):
    """A protocol or validation failure: exit 1, one line."""


def rel_l2(port: np.ndarray, ref: np.ndarray) -> float:
    """||port - ref|| / ||ref|| in float64 (||port - ref|| when ref is zero); NaN propagates."""
    a = np.asarray(port, np.float64).ravel()
    b = np.asarray(ref, np.float64).ravel()
    num = float(np.linalg.norm(a - b))
    den = float(np.linalg.norm(b))
    return num / den if den > 0 else num


class PortProcess:
    """A port process spoken to over its stdin/stdout, one JSON object a line."""

    def __init__(self, cmd: str, timeout: float, work: str):
        self.cmd = cmd
        self.name = cmd
        self.timeout = timeout
        self.next_id = 0
        self.err_path = os.path.join(work, "port.stderr")
        self._err = open(self.err_path, "wb")
        self.proc = subprocess.Popen(["sh", "-c", cmd], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self._err,
                                     start_new_session=True)
        self._buf = b""

    def stderr_tail(self) -> str:
        try:
            with open(self.err_path, "rb") as fh:
                fh.seek(max(0, os.path.getsize(self.err_path) - _STDERR_TAIL))
                tail = fh.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join(ln.strip() for ln in tail.strip().splitlines() if ln.strip())

    def fail(self, what: str, problem: str, with_stderr=False) -> CheckFailure:
        tail = self.stderr_tail() if with_stderr else ""
        return CheckFailure(f"port '{self.name}': {what}: {problem}"
                            + (f" (stderr: {tail})" if tail else ""))

    def exited(self, what: str) -> CheckFailure:
        """The port's end of the pipes closed: it exited (or is about to) without an answer."""
        try:
            rc = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
            rc = self.proc.returncode
        when = "before answering" if what == "hello" else "without answering"
        return self.fail(what, f"exited with status {rc} {when}", True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        self._err.close()

    def _read_line(self, what: str, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                raise self.fail(what, f"no answer within {timeout:g} s (killed)", True)
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self.exited(what)
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line

    def request(self, op: str, what: str, **fields) -> dict:
        rid = self.next_id
        self.next_id += 1
        what = f"{what} (id {rid})" if op != "hello" else what
        msg = json.dumps({"op": op, "id": rid, **fields}) + "\n"
        try:
            self.proc.stdin.write(msg.encode("utf-8"))
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise self.exited(what) from None
        raw = self._read_line(what, self.timeout)
        text = raw.decode("utf-8", "replace")
        try:
            ans = json.loads(text)
            if not isinstance(ans, dict):
                raise ValueError
        except ValueError:
            raise self.fail(what, f"stdout is not a JSON answer: {text[:120]!r}", True) from None
        if ans.get("id") != rid:
            raise self.fail(what, f"answer id {ans.get('id')!r}, expected {rid}")
        if not isinstance(ans.get("ok"), bool):
            raise self.fail(what, "answer without a boolean 'ok'")
        if not ans["ok"]:
            err = ans.get("error")
            raise self.fail(what, f"the port says: {err if isinstance(err, str) else '(no error)'}",
                            True)
        if op in ("run", "stage"):
            cs = ans.get("compute_seconds")
            if not isinstance(cs, (int, float)) or isinstance(cs, bool) or not cs >= 0:
                raise self.fail(what, f"'compute_seconds' {cs!r} is not a number >= 0")
        return ans


def _say(line: str) -> None:
    print(line, flush=True)


def port_check(cmd: str, *, reference=None, audio=None, model=None, timeout=300.0,
               json_out=None) -> int:
    """Runs the check; prints a line per request; returns the exit status (0, 1, 2)."""
    results = {"command": cmd, "ok": False, "run": None, "stages": []}
    try:
        ref = open_dump(reference) if reference else None
        samples = read_audio(audio) if audio else synthetic_tone()
        mdims = ModelDims.from_checkpoint(model) if model else None
        msha = model_sha256(model) if model else None
    except (ValueError, OSError) as e:
        print(f"wbdump port-check: error: {e}", file=sys.stderr)
        return 2
    compare_run = ref is not None and audio is not None
    if ref is not None and audio is not None:
        want_sha = str(ref.attrs.get("audio_sha256", ""))
        if want_sha and want_sha != sha256_file(audio):
            compare_run = False
            _say(f"note: {audio} is not the audio of {reference} (audio_sha256 differs): the run "
                 "and the frontend stage are not compared")
    elif ref is not None:
        _say("note: no --audio: the run and the frontend stage get a synthetic tone and are not "
             "compared with the reference")

    work = tempfile.mkdtemp(prefix="wb-port-")
    port = PortProcess(cmd, timeout, work)
    status = 0
    try:
        status = _drive(port, work, results, ref, samples, audio, model, mdims, msha, compare_run)
    except CheckFailure as e:
        results["error"] = str(e)
        print(f"wbdump port-check: {e}", file=sys.stderr)
        status = 1
    finally:
        port.close()
        shutil.rmtree(work, ignore_errors=True)
    results["ok"] = status == 0
    if json_out:
        with open(json_out, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)
    return status


def _read_answer(port, what, path, dims, *, required, stage=None) -> dict:
    try:
        taps = P.check_taps(dims, P.read_tap_file(path), "", required=required, stage=stage)
    except P.ProtocolError as e:
        raise port.fail(what, str(e)) from None
    return taps


def _drive(port, work, results, ref, samples, audio, model, mdims, msha, compare_run) -> int:
    hello_req = {"protocol": P.PROTOCOL, "scratch": work}
    if model:
        hello_req["model"] = model
    ans = port.request("hello", "hello", **hello_req)
    try:
        h = P.check_hello(ans)
    except P.ProtocolError as e:
        raise port.fail("hello", str(e).removeprefix("hello: ")) from None
    port.name = h.name
    dims = h.dims
    if mdims is not None and mdims != dims:
        raise port.fail("hello", f"model_dims {dims.to_json()} differ from --model's "
                                 f"{mdims.to_json()}")
    if msha is not None and msha != h.model_sha256:
        _say(f"note: the port's model_sha256 {h.model_sha256[:12]}... is not --model's "
             f"{msha[:12]}... (wb refuses this unless --allow-model-mismatch)")
    if ref is not None:
        if ref.dims != dims:
            raise port.fail("hello", f"model_dims {dims.to_json()} differ from the reference's "
                                     f"{ref.dims.to_json()}")
        if str(ref.attrs.get("model_sha256")) != h.model_sha256:
            _say("note: the port's model_sha256 is not the reference's (another checkpoint file "
                 "of the same dims?)")
    results["hello"] = h.answer_fields()
    _say(f"hello: ok: name '{h.name}', precision {h.precision}, requests {','.join(h.requests)}"
         + (f", stages {','.join(h.stages)}" if h.stages else ""))
    ref_names = set(ref.names()) if ref is not None else set()

    # run
    all_taps = [t.name for t in encoder_taps(dims)]
    inp, out = os.path.join(work, "run.in.h5"), os.path.join(work, "run.out.h5")
    P.write_input_file(inp, samples=samples)
    ans = port.request("run", "run", input=inp, output=out,
                       audio_path=os.path.abspath(audio) if audio else None, taps=all_taps)
    what = f"run (id {ans['id']})"
    run_taps = _read_answer(port, what, out, dims,
                            required=P.required_taps(dims, "run", all_taps))
    run = {"compute_seconds": ans["compute_seconds"], "taps": sorted(run_taps, key=all_taps.index),
           "compute_dtypes": {k: v[1] for k, v in run_taps.items()}, "rel_l2": {}}
    if compare_run:
        for name in run["taps"]:
            if name in ref_names:
                run["rel_l2"][name] = rel_l2(run_taps[name][0], ref.read(name))
    results["run"] = run
    _say(f"run: ok: {len(run_taps)} taps, compute {ans['compute_seconds']:.3f} s")
    for name, v in run["rel_l2"].items():
        _say(f"  run {name:<34} rel L2 {v:.3e}")
    for f in (inp, out):
        os.remove(f)

    # stages
    rng = np.random.default_rng(20261202)
    for stage in h.stages:
        blocks = range(dims.n_audio_layer) if stage == "block" else [None]
        for b in blocks:
            label = stage_label(stage, b)
            src = stage_input(dims, stage, b)
            outname = stage_output(dims, stage, b)
            own = stage_taps(dims, stage, b)
            comparable = ref is not None and (compare_run if stage == "frontend" else
                                              src in ref_names)
            if src == "samples":
                feed = {"samples": samples}
            elif ref is not None and src in ref_names:
                feed = {"taps": {src: ref.read(src, np.float32)}}
            elif src in run_taps:
                feed = {"taps": {src: run_taps[src][0]}}
            else:  # neither the reference nor the run has it: a seeded random input
                spec = next(t for t in encoder_taps(dims) if t.name == src)
                feed = {"taps": {src: rng.standard_normal(spec.shape).astype(np.float32)}}
            inp = os.path.join(work, f"{port.next_id}.in.h5")
            out = os.path.join(work, f"{port.next_id}.out.h5")
            P.write_input_file(inp, **feed)
            req = {"stage": stage, "input": inp, "output": out, "taps": own}
            if stage == "block":
                req["block"] = b
            ans = port.request("stage", f"stage {label}", **req)
            what = f"stage {label} (id {ans['id']})"
            taps = _read_answer(port, what, out, dims, required=[outname], stage=(stage, b))
            entry = {"stage": stage, "block": b, "output": outname,
                     "compute_seconds": ans["compute_seconds"], "taps": {}, "rel_l2": None}
            if comparable:
                for name in own:
                    if name in taps and name in ref_names:
                        entry["taps"][name] = rel_l2(taps[name][0], ref.read(name))
                entry["rel_l2"] = entry["taps"].get(outname)
            results["stages"].append(entry)
            cmp = f", rel L2 {entry['rel_l2']:.3e} ({outname})" if entry["rel_l2"] is not None \
                else ""
            _say(f"stage {label}: ok: {len(taps)} taps, compute {ans['compute_seconds']:.3f} s{cmp}")
            for f in (inp, out):
                os.remove(f)

    # bye: answered, then the process exits within 5 s
    ans = port.request("bye", "bye")
    try:
        port.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        port.kill()
        raise port.fail(f"bye (id {ans['id']})", "still running 5 s after bye (killed)") from None
    _say(f"bye: ok (exit status {port.proc.returncode})")
    if port.proc.returncode != 0:
        raise port.fail(f"bye (id {ans['id']})", f"exited with status {port.proc.returncode}", True)
    return 0
