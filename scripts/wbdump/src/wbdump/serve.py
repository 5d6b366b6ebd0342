"""wbdump.serve(port): a Python port served to `wb --port CMD` (docs/ports.md, protocol 1).

The port is any object with
    hello([request]) -> {"name", "model_dims" (a ModelDims or its dict), "model_sha256",
                         "precision"[, "stages"]}
    run(samples[, audio_path=, taps=]) -> {tap name: array or (array, compute_dtype)}
    stage(stage, block, inputs[, taps=]) -> the same        (optional)
hello receives the request (its `model`, `scratch`) when it takes an argument; run and stage
receive the keywords their signatures name. `requests` is ["run"] plus "stage" when the object
has a `stage` method; `stages` comes from the port's `stages` attribute or hello's "stages",
else all four.

While the port's code runs, sys.stdout is stderr and file descriptor 1 is a copy of 2 (a stray
print, even from a C library, cannot corrupt the protocol); answers go to the real stdout, kept
privately. Every tap is checked against the registry of the dims the port declared (name,
shape, type; a NaN is a finding, not an error) before the answer's tensor file is written. An
exception becomes {"ok": false, "error": "<one line>"} and serving goes on.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time
import traceback

from . import protocol as P
from .dump import STAGES, stage_input, stage_label

_MAX_ERROR = 400  # characters of an error line


def _one_line(e: BaseException) -> str:
    if isinstance(e, P.ProtocolError):
        msg = str(e)
    else:
        msg = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
    msg = " ".join(msg.split())
    return msg if len(msg) <= _MAX_ERROR else msg[:_MAX_ERROR - 3] + "..."


def _accepts(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind == p.VAR_KEYWORD for p in params)


def _n_positional(fn) -> int:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD,
                                               p.VAR_POSITIONAL))


def _kwargs(fn, **kw) -> dict:
    return {k: v for k, v in kw.items() if _accepts(fn, k)}


class _Server:
    def __init__(self, port, out):
        self.port = port
        self.out = out
        self.hello = None  # protocol.Hello once hello succeeded

    def answer(self, obj) -> None:
        self.out.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self.out.flush()

    # -- requests
    def do_hello(self, req) -> dict:
        fn = self.port.hello
        info = fn(req) if _n_positional(fn) >= 1 else fn()
        if not isinstance(info, dict):
            raise P.ProtocolError(f"hello() returned {type(info).__name__}, expected a dict")
        has_stage = callable(getattr(self.port, "stage", None))
        stages = getattr(self.port, "stages", None) or info.get("stages")
        if stages is None:
            stages = list(STAGES) if has_stage else []
        fields = {"protocol": P.PROTOCOL, "name": info.get("name"),
                  "model_dims": info.get("model_dims"), "model_sha256": info.get("model_sha256"),
                  "precision": info.get("precision"),
                  "requests": ["run", "stage"] if has_stage else ["run"],
                  "stages": list(stages) if has_stage else []}
        self.hello = P.check_hello(fields)
        return self.hello.answer_fields()

    def _finish(self, req, where, result, seconds, *, required, stage=None) -> dict:
        h = self.hello
        taps = P.check_taps(h.dims, P.normalize_taps(result), where, required=required,
                            stage=stage)
        wanted = req.get("taps")
        if wanted is not None:
            keep = set(wanted) | set(required)
            taps = {k: v for k, v in taps.items() if k in keep}
        out = req.get("output")
        if not isinstance(out, str) or not out:
            raise P.ProtocolError(f"{where}: the request has no 'output' path")
        P.write_tap_file(out, h.dims, taps, implementation=h.name, precision=h.precision,
                         model_sha256=h.model_sha256)
        return {"compute_seconds": round(seconds, 6)}

    def do_run(self, req) -> dict:
        inputs = P.read_input_file(str(req.get("input", "")))
        if "samples" not in inputs:
            raise P.ProtocolError("run: the input file has no /samples")
        wanted = req.get("taps")
        fn = self.port.run
        t0 = time.perf_counter()
        result = fn(inputs["samples"], **_kwargs(fn, audio_path=req.get("audio_path"),
                                                   taps=wanted))
        dt = time.perf_counter() - t0
        return self._finish(req, "run", result, dt,
                            required=P.required_taps(self.hello.dims, "run", wanted))

    def do_stage(self, req) -> dict:
        fn = getattr(self.port, "stage", None)
        if not callable(fn):
            raise P.ProtocolError("this port does not implement 'stage'")
        stage, block = req.get("stage"), req.get("block")
        if stage != "block":
            block = None
        label = stage_label(stage, block)
        if stage not in self.hello.stages:
            raise P.ProtocolError(f"stage '{stage}' is not among this port's stages "
                                  f"{self.hello.stages}")
        need = stage_input(self.hello.dims, stage, block)  # also checks the block index
        inputs = P.read_input_file(str(req.get("input", "")))
        if need not in inputs:
            raise P.ProtocolError(f"stage {label}: the input file has no "
                                  f"{'/samples' if need == 'samples' else '/taps/' + need}")
        wanted = req.get("taps")
        t0 = time.perf_counter()
        result = fn(stage, block, inputs, **_kwargs(fn, taps=wanted))
        dt = time.perf_counter() - t0
        return self._finish(req, f"stage {label}", result, dt, stage=(stage, block),
                            required=P.required_taps(self.hello.dims, "stage", wanted,
                                                     (stage, block)))

    # -- the loop
    def handle(self, line: str) -> bool:
        """Answers one request line; False after bye."""
        rid = None
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise P.ProtocolError("the request is not a JSON object")
            rid = req.get("id")
            op = req.get("op")
            if op == "bye":
                self.answer({"id": rid, "ok": True})
                return False
            if op == "hello":
                fields = self.do_hello(req)
            elif self.hello is None:
                raise P.ProtocolError(f"'{op}' before a successful hello")
            elif op == "run":
                fields = self.do_run(req)
            elif op == "stage":
                fields = self.do_stage(req)
            else:
                raise P.ProtocolError(f"unknown op {op!r}")
            self.answer({"id": rid, "ok": True, **fields})
        except Exception as e:  # noqa: BLE001 - every failure becomes an answer
            if not isinstance(e, (P.ProtocolError, json.JSONDecodeError)):
                traceback.print_exc(file=sys.stderr)
            self.answer({"id": rid, "ok": False, "error": _one_line(e)})
        return True


def serve(port, stdin=None, stdout=None) -> int:
    """Serves `port` until bye or end of input; returns 0 (for sys.exit).

    stdin/stdout default to the process's own; given (tests), no file descriptor is touched.
    """
    real_stdout = sys.stdout
    saved_fd = None
    if stdout is None:
        sys.stdout.flush()
        saved_fd = os.dup(1)
        os.dup2(2, 1)  # C-level writes to fd 1 land on stderr too
        out = os.fdopen(os.dup(saved_fd), "w", encoding="utf-8")
    else:
        out = stdout
    sys.stdout = sys.stderr
    try:
        server = _Server(port, out)
        src = stdin if stdin is not None else sys.stdin
        for line in src:
            if not line.strip():
                continue
            if not server.handle(line):
                break
    finally:
        sys.stdout = real_stdout
        if saved_fd is not None:
            out.close()
            os.dup2(saved_fd, 1)
            os.close(saved_fd)
    return 0
