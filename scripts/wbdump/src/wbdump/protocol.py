"""The port protocol, version 1 (docs/ports.md): the checks of a port's answers and the tensor
files that travel beside the JSON lines. Written once, used by wbdump.serve (before an answer
leaves a Python port) and by wbdump port-check (on what any port answered).
"""
from __future__ import annotations

import json
import os
import re

import numpy as np

from .dump import (COMPUTE_DTYPES, SCHEMA, STAGES, TOOL_VERSION, DumpError, ModelDims, _to_numpy,
                   encoder_taps, registry, stage_label, stage_of, stage_output, stage_taps,
                   tap_order)

try:
    import h5py
except ImportError:  # serve and port-check need it; importing wbdump does not
    h5py = None

PROTOCOL = 1
PRECISIONS = ("float32", "bfloat16", "float16")  # a port's declared compute precision
REQUESTS = ("run", "stage")
_TAP_TYPES = (np.dtype(np.float32), np.dtype(np.float16), np.dtype(np.float64))
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ProtocolError(ValueError):
    """An answer or a tensor file that breaks the protocol (one-line message)."""


class Hello:
    """The checked fields of a hello answer."""

    def __init__(self, name, dims, model_sha256, precision, requests, stages):
        self.name = name
        self.dims = dims
        self.model_sha256 = model_sha256
        self.precision = precision
        self.requests = requests
        self.stages = stages

    def answer_fields(self) -> dict:
        return {"protocol": PROTOCOL, "name": self.name,
                "model_dims": json.loads(self.dims.to_json()),
                "model_sha256": self.model_sha256, "precision": self.precision,
                "requests": list(self.requests), "stages": list(self.stages)}


def check_hello(ans: dict) -> Hello:
    """The fields of a hello answer (or of a Python port's hello() dict plus `protocol`)."""
    if not isinstance(ans, dict):
        raise ProtocolError("hello: the answer is not a JSON object")
    proto = ans.get("protocol")
    if proto != PROTOCOL:
        raise ProtocolError(f"hello: speaks protocol {proto!r}, wbdump speaks {PROTOCOL}")
    name = ans.get("name")
    if not isinstance(name, str) or not name.strip() or "\n" in name:
        raise ProtocolError(f"hello: 'name' must be a non-empty one-line string, got {name!r}")
    dims = ans.get("model_dims")
    try:
        dims = dims.validate() if isinstance(dims, ModelDims) else ModelDims.from_json(dims)
    except (ValueError, TypeError) as e:
        raise ProtocolError(f"hello: 'model_dims': {e}") from None
    sha = ans.get("model_sha256")
    if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
        raise ProtocolError(f"hello: 'model_sha256' must be 64 lowercase hex digits, got {sha!r}")
    prec = ans.get("precision")
    if prec not in PRECISIONS:
        raise ProtocolError(f"hello: 'precision' {prec!r} (expected {', '.join(PRECISIONS)})")
    req = ans.get("requests")
    if not isinstance(req, list) or "run" not in req or \
            any(r not in REQUESTS for r in req) or len(set(req)) != len(req):
        raise ProtocolError(f"hello: 'requests' {req!r} (expected [\"run\"] or [\"run\", \"stage\"])")
    stages = ans.get("stages", [])
    if not isinstance(stages, list) or any(s not in STAGES for s in stages) or \
            len(set(stages)) != len(stages):
        raise ProtocolError(f"hello: 'stages' {stages!r} (expected a subset of {list(STAGES)})")
    if stages and "stage" not in req:
        raise ProtocolError("hello: 'stages' given but 'stage' is not among the requests")
    if "stage" in req and not stages:
        raise ProtocolError("hello: 'stage' among the requests but no 'stages'")
    return Hello(name, dims, sha, prec, req, stages)


# ----------------------------------------------------------------------------------------------
# Taps: {name: (array, compute_dtype)}

def _is_bfloat16(x) -> bool:
    return str(getattr(x, "dtype", "")) == "torch.bfloat16"


def normalize_taps(result) -> dict:
    """A port's result ({name: array} or {name: (array, compute_dtype)}; numpy arrays or torch
    tensors) -> {name: (ndarray, compute_dtype)}. float16/float64 are kept, other floating types
    become float32; the compute_dtype defaults to the array's own type (a bfloat16 tensor:
    "bfloat16")."""
    if not isinstance(result, dict):
        raise ProtocolError(f"the port returned {type(result).__name__}, expected a dict "
                            "{tap name: array}")
    out = {}
    for name, v in result.items():
        if not isinstance(name, str):
            raise ProtocolError(f"tap name {name!r} is not a string")
        cdt = None
        if isinstance(v, tuple):
            if len(v) != 2 or not isinstance(v[1], str):
                raise ProtocolError(f"tap '{name}': expected an array or (array, compute_dtype)")
            v, cdt = v
        bf16 = _is_bfloat16(v)
        try:
            a = _to_numpy(v)
        except Exception as e:  # noqa: BLE001 - whatever the object, one line naming the tap
            raise ProtocolError(f"tap '{name}': not an array ({type(v).__name__}: {e})") from None
        if a.dtype.kind != "f":
            raise ProtocolError(f"tap '{name}': dtype {a.dtype} is not floating point")
        if a.dtype not in _TAP_TYPES:
            a = a.astype(np.float32)
        if cdt is None:
            cdt = "bfloat16" if bf16 else {"float16": "float16", "float64": "float64"}.get(
                a.dtype.name, "float32")
        out[name] = (a, cdt)
    return out


def check_taps(dims: ModelDims, taps: dict, where: str, *, required=(), stage=None) -> dict:
    """Checks {name: (array, compute_dtype)} against the registry of `dims`; returns it with a
    leading batch dimension of 1 dropped. `stage` = (stage, block) restricts names to that
    stage's taps. ProtocolError "<where>: tap 'x': ..." otherwise (no prefix when `where` is
    empty)."""
    where = f"{where}: " if where else ""
    specs = {t.name: t for t in encoder_taps(dims)}
    allowed = set(stage_taps(dims, *stage)) if stage else None
    out = {}
    for name, (a, cdt) in taps.items():
        spec = specs.get(name)
        if spec is None:
            what = ("a decoder tap (ports answer encoder taps)" if name in registry(dims)
                    else "not in the registry of this model")
            raise ProtocolError(f"{where}tap '{name}': {what}")
        if allowed is not None and name not in allowed:
            raise ProtocolError(f"{where}tap '{name}': not a tap of stage "
                                f"{stage_label(*stage)}")
        if a.ndim == len(spec.shape) + 1 and a.shape[0] == 1:
            a = a[0]
        if tuple(a.shape) != spec.shape:
            raise ProtocolError(f"{where}tap '{name}': got {list(a.shape)}, expected "
                                f"{list(spec.shape)} for model_dims {dims.to_json()}")
        if a.dtype not in _TAP_TYPES:
            raise ProtocolError(f"{where}tap '{name}': dtype {a.dtype} (expected float32, "
                                "float16 or float64)")
        if cdt not in COMPUTE_DTYPES:
            raise ProtocolError(f"{where}tap '{name}': compute_dtype {cdt!r} (expected "
                                f"{', '.join(COMPUTE_DTYPES)})")
        out[name] = (a, cdt)
    missing = [r for r in required if r not in out]
    if missing:
        raise ProtocolError(f"{where}tap '{missing[0]}' missing (required)")
    return out


def required_taps(dims: ModelDims, op: str, wanted, stage=None) -> list:
    """What an answer must hold: run: mel and encoder.ln_post (those of them asked for); stage:
    the stage's output tap."""
    if op == "stage":
        return [stage_output(dims, *stage)]
    need = ["mel", "encoder.ln_post"]
    return [n for n in need if wanted is None or n in wanted]


# ----------------------------------------------------------------------------------------------
# Tensor files

def _need_h5py():
    if h5py is None:
        raise ProtocolError("h5py is needed for the port protocol's tensor files "
                            "(apt-get install python3-h5py)")


def write_tap_file(path: str, dims: ModelDims, taps: dict, *, implementation: str,
                   precision: str, model_sha256: str) -> None:
    """The answer's tensor file: /taps/<name> in their own type (float32, float16, float64) with
    compute_dtype, order and layout attributes, and the dump contract's root attributes (a complete
    dump, so that any dump reader takes it). Written under a temporary name, then renamed."""
    _need_h5py()
    specs = {t.name: t for t in encoder_taps(dims)}
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            a = f.attrs
            a["schema"] = SCHEMA
            a["implementation"] = implementation
            a["precision"] = precision
            a["model_sha256"] = model_sha256
            a["model_dims"] = dims.to_json()
            a["tool_version"] = TOOL_VERSION
            g = f.create_group("taps")
            for name in sorted(taps, key=lambda n: tap_order(dims, n)):
                arr, cdt = taps[name]
                ds = g.create_dataset(name, data=np.ascontiguousarray(arr))
                ds.attrs["compute_dtype"] = cdt
                ds.attrs["order"] = np.int64(tap_order(dims, name))
                ds.attrs["layout"] = specs[name].layout
            a["complete"] = np.int64(1)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def read_tap_file(path: str) -> dict:
    """{name: (array, compute_dtype)} of /taps in a tensor file (names and shapes unchecked:
    check_taps does that). ProtocolError for a file that is not HDF5 or lacks /taps."""
    _need_h5py()
    if not os.path.isfile(path):
        raise ProtocolError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise ProtocolError(f"{path}: not an HDF5 file")
    out = {}
    try:
        with h5py.File(path, "r") as f:
            g = f.get("taps")
            if not isinstance(g, h5py.Group):
                raise ProtocolError(f"{path}: no /taps group")
            for name, ds in g.items():
                if not isinstance(ds, h5py.Dataset):
                    raise ProtocolError(f"{path}: /taps/{name} is not a dataset")
                cdt = ds.attrs.get("compute_dtype", None)
                if isinstance(cdt, bytes):
                    cdt = cdt.decode("utf-8", "replace")
                if cdt is None:
                    cdt = {"float16": "float16", "float64": "float64"}.get(ds.dtype.name,
                                                                          "float32")
                out[name] = (ds[()], str(cdt))
    except OSError as e:
        raise ProtocolError(f"{path}: cannot read ({e})") from None
    return out


def write_input_file(path: str, *, samples=None, taps=None) -> None:
    """A request's input file: /samples (float32, attribute sample_rate) or /taps/<name>."""
    _need_h5py()
    with h5py.File(path, "w") as f:
        if samples is not None:
            ds = f.create_dataset("samples", data=np.asarray(samples, np.float32))
            ds.attrs["sample_rate"] = np.int64(16000)
        if taps:
            g = f.create_group("taps")
            for name, arr in taps.items():
                g.create_dataset(name, data=np.asarray(arr))


def read_input_file(path: str) -> dict:
    """{"samples": float32 [n]} and/or {tap name: array} of a request's input file."""
    _need_h5py()
    if not os.path.isfile(path):
        raise ProtocolError(f"input {path}: no such file")
    if not h5py.is_hdf5(path):
        raise ProtocolError(f"input {path}: not an HDF5 file")
    out = {}
    with h5py.File(path, "r") as f:
        if "samples" in f:
            s = f["samples"]
            rate = int(s.attrs.get("sample_rate", 16000))
            if rate != 16000:
                raise ProtocolError(f"input {path}: sample_rate {rate} (expected 16000)")
            out["samples"] = np.asarray(s[()], np.float32).reshape(-1)
        if "taps" in f:
            for name, ds in f["taps"].items():
                out[name] = np.asarray(ds[()])
    return out


__all__ = ["PROTOCOL", "PRECISIONS", "ProtocolError", "Hello", "check_hello", "normalize_taps",
           "check_taps", "required_taps", "write_tap_file", "read_tap_file", "write_input_file",
           "read_input_file", "stage_of", "DumpError"]
