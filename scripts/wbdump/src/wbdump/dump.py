"""Dumps of the contract whisper-fidelity/1 (docs/dump-format.md): model dims, the tap registry,
name maps, the writer, the validating reader, and the checkpoint readers (ggml, safetensors).

Any Whisper port (PyTorch, JAX, ONNX Runtime, MAX Graph, ...) can produce a dump that
`wb inspect` and `wb compare` read:

    import wbdump
    dims = wbdump.ModelDims.from_hf_config("model-dir/config.json")
    with wbdump.DumpWriter("port.h5", implementation="my-port", precision="float32",
                           dims=dims, model_sha256=wbdump.model_sha256("model-dir")) as w:
        w.add("mel", mel)                        # [n_mels, 2*n_audio_ctx]
        w.add("encoder.ln_post", enc_out)        # [n_audio_ctx, n_audio_state]; batch dim of 1 dropped
    # leaving the block without an exception writes `complete` and renames into place;
    # an exception deletes the temporary file.

Only numpy and h5py are imported here (wbdump.hooks imports torch and transformers when called).

The tap registry, the dims rules and the refusals mirror workbench/core (taps.cpp, dims.cpp,
dump.cpp); keep them equal. Errors: ValueError for a caller's mistake (name, shape, metadata),
DumpError (a ValueError) for a file the reader refuses.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import struct
from dataclasses import dataclass

import numpy as np

try:
    import h5py
except ImportError:  # a machine with PyTorch but no h5py can still record taps (save_npz)
    h5py = None

SCHEMA = "whisper-fidelity/1"
VERSION = "0.2.0"
TOOL_VERSION = f"wbdump {VERSION}"

# Root attributes every reader requires (strings), besides `schema` and `complete`.
REQUIRED_ATTRS = ("implementation", "precision", "model_sha256", "model_dims")
STORAGE_TYPES = {"float32": np.float32, "float16": np.float16, "float64": np.float64}
COMPUTE_DTYPES = ("float32", "float64", "float16", "bfloat16")


class DumpError(ValueError):
    """A dump that `wb` would refuse (message starts with the path)."""


# ----------------------------------------------------------------------------------------------
# Model dims (workbench/core/include/wb/core/dims.h, src/dims.cpp)

_DIM_FIELDS = ("n_mels", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer",
               "n_vocab", "n_text_ctx", "n_text_state", "n_text_head", "n_text_layer")


@dataclass(frozen=True)
class ModelDims:
    n_mels: int = 80
    n_audio_ctx: int = 1500  # encoder frames after the stride-2 conv (30 s window)
    n_audio_state: int = 384
    n_audio_head: int = 6
    n_audio_layer: int = 4
    n_vocab: int = 51865
    n_text_ctx: int = 448
    n_text_state: int = 384
    n_text_head: int = 6
    n_text_layer: int = 4

    @property
    def n_mel_frames(self) -> int:
        return 2 * self.n_audio_ctx

    def validate(self) -> "ModelDims":
        for f in _DIM_FIELDS:
            v = getattr(self, f)
            hi = (1 << 20) if f == "n_vocab" else (1 << 16)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0 or v > hi:
                raise ValueError(f"model dims: {f} = {v!r} (expected 1..{hi})")
        if self.n_audio_state % self.n_audio_head:
            raise ValueError(f"model dims: n_audio_state {self.n_audio_state} not divisible by "
                             f"n_audio_head {self.n_audio_head}")
        if self.n_text_state % self.n_text_head:
            raise ValueError(f"model dims: n_text_state {self.n_text_state} not divisible by "
                             f"n_text_head {self.n_text_head}")
        if self.n_vocab < 1509 + 257:
            raise ValueError(f"model dims: n_vocab {self.n_vocab} too small for Whisper's 1509 "
                             "special tokens")
        return self

    def to_json(self) -> str:
        return json.dumps({f: int(getattr(self, f)) for f in _DIM_FIELDS}, separators=(",", ":"))

    @staticmethod
    def from_json(obj) -> "ModelDims":
        if isinstance(obj, (str, bytes)):
            obj = json.loads(obj)
        if not isinstance(obj, dict):
            raise ValueError("model dims: not a JSON object")
        vals = {}
        for f in _DIM_FIELDS:
            v = obj.get(f)
            if not isinstance(v, int) or isinstance(v, bool):
                raise ValueError(f"model dims: missing integer field '{f}'")
            vals[f] = v
        return ModelDims(**vals).validate()

    @staticmethod
    def preset(name: str) -> "ModelDims":
        def make(mels, state, head, layer, vocab, **kw):
            return ModelDims(n_mels=mels, n_audio_state=state, n_text_state=state,
                             n_audio_head=head, n_text_head=head, n_audio_layer=layer,
                             n_text_layer=layer, n_vocab=vocab, **kw)
        table = {
            "nano": make(80, 64, 2, 2, 256 + 1509 + 1, n_text_ctx=64),
            "tiny": make(80, 384, 6, 4, 51865), "base": make(80, 512, 8, 6, 51865),
            "small": make(80, 768, 12, 12, 51865), "medium": make(80, 1024, 16, 24, 51865),
            "large": make(80, 1280, 20, 32, 51865), "large-v2": make(80, 1280, 20, 32, 51865),
            "large-v3": make(128, 1280, 20, 32, 51866),
        }
        if name not in table:
            raise ValueError(f"unknown dims preset '{name}' (expected {', '.join(table)})")
        return table[name]

    @staticmethod
    def from_hf_config(path: str) -> "ModelDims":
        """Dims of an HF Whisper config.json (or the directory holding it)."""
        if os.path.isdir(path):
            path = os.path.join(path, "config.json")
        with open(path, encoding="utf-8") as fh:
            cfg = json.load(fh)

        def get(k):
            v = cfg.get(k)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{path}: missing integer field '{k}'")
            return v
        d = ModelDims(n_mels=get("num_mel_bins"), n_audio_ctx=get("max_source_positions"),
                      n_audio_state=get("d_model"), n_audio_head=get("encoder_attention_heads"),
                      n_audio_layer=get("encoder_layers"), n_vocab=get("vocab_size"),
                      n_text_ctx=get("max_target_positions"), n_text_state=get("d_model"),
                      n_text_head=get("decoder_attention_heads"),
                      n_text_layer=get("decoder_layers"))
        return d.validate()

    @staticmethod
    def from_checkpoint(path: str) -> "ModelDims":
        """Dims of an HF directory or a whisper.cpp ggml file, as `wb` reads them."""
        if os.path.isdir(path):
            return ModelDims.from_hf_config(path)
        return read_ggml_header(path)[0]


# ----------------------------------------------------------------------------------------------
# The tap registry (workbench/core/src/taps.cpp): names in execution order, shapes, layouts.

ENCODER_BLOCK_TAPS = ("attn_ln", "attn.q", "attn.k", "attn.v", "attn.out", "resid_attn",
                      "mlp_ln", "mlp.fc1", "mlp.gelu", "mlp.fc2", "out")
DECODER_BLOCK_TAPS = ("attn_ln", "attn.q", "attn.k", "attn.v", "attn.out", "resid_attn",
                      "cross_attn_ln", "cross_attn.q", "cross_attn.out", "resid_cross", "mlp_ln",
                      "mlp.fc1", "mlp.gelu", "mlp.fc2", "out")
_WIDE = ("mlp.fc1", "mlp.gelu")


@dataclass(frozen=True)
class TapSpec:
    name: str
    shape: tuple
    layout: str


def encoder_taps(d: ModelDims) -> list:
    """mel [n_mels, 2T]; conv1 (after GELU) [2T, C]; every other encoder tap [T, C] or [T, 4C]."""
    t, c = d.n_audio_ctx, d.n_audio_state
    taps = [TapSpec("mel", (d.n_mels, 2 * t), "mel,frame"),
            TapSpec("encoder.conv1", (2 * t, c), "frame,channel"),
            TapSpec("encoder.conv2", (t, c), "frame,channel"),
            TapSpec("encoder.pos_embed", (t, c), "frame,channel")]
    for i in range(d.n_audio_layer):
        for s in ENCODER_BLOCK_TAPS:
            taps.append(TapSpec(f"encoder.blocks.{i}.{s}", (t, 4 * c if s in _WIDE else c),
                                "frame,channel"))
    taps.append(TapSpec("encoder.ln_post", (t, c), "frame,channel"))
    return taps


def decoder_taps(d: ModelDims, n_tokens: int) -> list:
    """Teacher-forced decoder taps over n_tokens tokens, then logits [n_tokens, n_vocab]."""
    n, c = n_tokens, d.n_text_state
    taps = [TapSpec("decoder.embed", (n, c), "token,channel")]
    for i in range(d.n_text_layer):
        for s in DECODER_BLOCK_TAPS:
            taps.append(TapSpec(f"decoder.blocks.{i}.{s}", (n, 4 * c if s in _WIDE else c),
                                "token,channel"))
    taps.append(TapSpec("decoder.ln", (n, c), "token,channel"))
    taps.append(TapSpec("logits", (n, d.n_vocab), "token,vocab"))
    return taps


def registry(d: ModelDims) -> dict:
    """name -> (order, TapSpec); decoder shapes for one token (their row count is free)."""
    return {t.name: (i, t) for i, t in enumerate(encoder_taps(d) + decoder_taps(d, 1))}


def tap_order(d: ModelDims, name: str) -> int:
    e = registry(d).get(name)
    return -1 if e is None else e[0]


def is_decoder_tap(name: str) -> bool:
    return name.startswith("decoder.") or name == "logits"


def glob_match(pattern: str, text: str) -> bool:
    """'*' within one dot-separated segment, '**' across segments, '?' one non-dot character."""
    rx = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            rx += ".*"
            i += 2
        elif pattern[i] == "*":
            rx += "[^.]*"
            i += 1
        elif pattern[i] == "?":
            rx += "[^.]"
            i += 1
        else:
            rx += re.escape(pattern[i])
            i += 1
    return re.fullmatch(rx, text) is not None



# The encoder's stages (the seam of workbench/core/include/wb/core/encoder.h; the registry's
# `stage` field): what each consumes and produces, for the port protocol (docs/ports.md).
STAGES = ("frontend", "stem", "block", "ln_post")


def stage_label(stage: str, block=None) -> str:
    return f"block {block}" if stage == "block" else stage


def _check_stage(d: ModelDims, stage: str, block) -> None:
    if stage not in STAGES:
        raise ValueError(f"stage '{stage}' (expected one of {', '.join(STAGES)})")
    if stage == "block":
        if not isinstance(block, int) or isinstance(block, bool) or \
                not 0 <= block < d.n_audio_layer:
            raise ValueError(f"stage block: block {block!r} (expected 0..{d.n_audio_layer - 1})")


def stage_taps(d: ModelDims, stage: str, block=None) -> list:
    """The registry taps a stage computes, in execution order (its output tap last)."""
    _check_stage(d, stage, block)
    if stage == "frontend":
        return ["mel"]
    if stage == "stem":
        return ["encoder.conv1", "encoder.conv2", "encoder.pos_embed"]
    if stage == "block":
        return [f"encoder.blocks.{block}.{s}" for s in ENCODER_BLOCK_TAPS]
    return ["encoder.ln_post"]


def stage_output(d: ModelDims, stage: str, block=None) -> str:
    return stage_taps(d, stage, block)[-1]


def stage_input(d: ModelDims, stage: str, block=None) -> str:
    """The tap that feeds a stage; "samples" (the 16 kHz audio) for the front end."""
    _check_stage(d, stage, block)
    if stage == "frontend":
        return "samples"
    if stage == "stem":
        return "mel"
    if stage == "block":
        return "encoder.pos_embed" if block == 0 else f"encoder.blocks.{block - 1}.out"
    return f"encoder.blocks.{d.n_audio_layer - 1}.out"


def stage_of(d: ModelDims, name: str):
    """(stage, block) of an encoder tap of the registry; ValueError for any other name."""
    if name == "mel":
        return "frontend", None
    if name in ("encoder.conv1", "encoder.conv2", "encoder.pos_embed"):
        return "stem", None
    if name == "encoder.ln_post":
        return "ln_post", None
    m = re.fullmatch(r"encoder\.blocks\.(\d+)\.(.+)", name)
    if m and int(m.group(1)) < d.n_audio_layer and m.group(2) in ENCODER_BLOCK_TAPS:
        return "block", int(m.group(1))
    raise ValueError(f"tap '{name}' is not an encoder tap of the registry")

# ----------------------------------------------------------------------------------------------
# Name maps (compare/src/name_map.cpp; fixtures/maps/hf.json)

_MAP_META_KEYS = ("description", "comment", "name", "version", "$schema", "schema", "source")


class NameMap:
    """Foreign tap name -> registry name; "{i}" on both sides stands for a layer index."""

    def __init__(self, obj=None, origin="<map>"):
        self.origin = origin
        self.entries = []
        if obj is None:
            return
        if not isinstance(obj, dict):
            raise ValueError(f"{origin}: a name map must be a JSON object")
        body, top = obj, True
        for k in ("map", "names", "taps"):
            if isinstance(obj.get(k), dict):
                body, top = obj[k], False
                break
        for src, dst in body.items():
            if top and src in _MAP_META_KEYS:
                continue
            if not isinstance(dst, str) or not src or not dst:
                raise ValueError(f"{origin}: entry '{src}': expected a tap name string")
            if ("{i}" in src) != ("{i}" in dst):
                raise ValueError(f"{origin}: entry '{src}' -> '{dst}': {{i}} must appear on both "
                                 "sides or neither")
            self.entries.append((src, dst))

    @staticmethod
    def load(path: str) -> "NameMap":
        with open(path, encoding="utf-8") as fh:
            return NameMap(json.load(fh), path)

    def canonical(self, stored: str) -> str:
        for src, dst in self.entries:
            if "{i}" not in src:
                if src == stored:
                    return dst
                continue
            pre, post = src.split("{i}", 1)
            if len(stored) <= len(pre) + len(post) or not stored.startswith(pre):
                continue
            if post and not stored.endswith(post):
                continue
            mid = stored[len(pre):len(stored) - len(post)]
            if mid.isdigit() and mid.isascii():
                return dst.replace("{i}", mid, 1)
        return stored

    def foreign(self, canonical: str) -> str | None:
        """The first stored name that maps onto `canonical` (inverse lookup), or None."""
        for src, dst in self.entries:
            if "{i}" not in src:
                if dst == canonical:
                    return src
                continue
            pre, post = dst.split("{i}", 1)
            if canonical.startswith(pre) and canonical.endswith(post) and \
                    len(canonical) > len(pre) + len(post):
                mid = canonical[len(pre):len(canonical) - len(post)]
                if mid.isdigit():
                    return src.replace("{i}", mid, 1)
        return None

    def validate(self, d: ModelDims) -> None:
        reg = registry(d)
        for src, dst in self.entries:
            if dst.replace("{i}", "0") not in reg:
                raise ValueError(f"{self.origin}: maps '{src}' to unknown tap '{dst}'")


# ----------------------------------------------------------------------------------------------
# Writer

def _utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def model_sha256(path: str) -> str:
    """What `wb` records as model_sha256: of model.safetensors for an HF directory, else the file."""
    if os.path.isdir(path):
        return sha256_file(os.path.join(path, "model.safetensors"))
    return sha256_file(path)


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch
        x = x.detach()
        if str(getattr(x, "dtype", "")) == "torch.bfloat16":
            x = x.float()
        x = x.cpu().numpy()
    return np.asarray(x)


class DumpWriter:
    """Writes one dump: metadata at open, taps by canonical name, `complete` + rename at finish().

    Nothing is visible at `path` until finish(); the data go to "<path>.partial-<pid>", which is
    deleted if the writer is closed unfinished (or its `with` block raises).

    name_map: optional NameMap / dict / JSON path. With it, add() also takes the map's foreign
    names (e.g. Hugging Face module paths), stores the tap under that name (for
    `wb compare --map`) and validates it as the registry tap it maps onto.
    """

    def __init__(self, path, *, implementation, precision, dims, model_sha256,
                 device="cpu", audio_sha256="", audio_name="", tool_version=TOOL_VERSION,
                 created=None, threads=1, run_info=None, store="float32", compression=0,
                 name_map=None):
        if isinstance(dims, dict) or isinstance(dims, str):
            dims = ModelDims.from_json(dims)
        if not isinstance(dims, ModelDims):
            raise ValueError("dims must be a ModelDims (or its JSON)")
        self.dims = dims.validate()
        for key, val in (("implementation", implementation), ("precision", precision),
                         ("model_sha256", model_sha256)):
            if not isinstance(val, str) or not val:
                raise ValueError(f"root attribute '{key}' must be a non-empty string, got {val!r}")
        if precision not in COMPUTE_DTYPES:
            raise ValueError(f"precision '{precision}' (expected one of {', '.join(COMPUTE_DTYPES)})")
        if store not in STORAGE_TYPES:
            raise ValueError(f"store '{store}' (expected float32, float16 or float64)")
        if not (isinstance(compression, int) and 0 <= compression <= 9):
            raise ValueError(f"compression {compression!r} (expected gzip level 0..9)")
        if not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads {threads!r} (expected an integer >= 0)")
        if isinstance(name_map, str):
            name_map = NameMap.load(name_map)
        elif isinstance(name_map, dict):
            name_map = NameMap(name_map)
        self.name_map = name_map
        if name_map is not None:
            name_map.validate(self.dims)
        if h5py is None:
            raise ImportError("h5py is needed to write a dump (or save taps with save_npz)")
        self.path = os.fspath(path)
        self.tmp = f"{self.path}.partial-{os.getpid()}"
        self.store = store
        self.compression = compression
        self._registry = registry(self.dims)
        self._canonical_written = {}
        self._finished = False
        self._f = h5py.File(self.tmp, "w")
        try:
            a = self._f.attrs
            a["schema"] = SCHEMA
            a["implementation"] = implementation
            a["precision"] = precision
            a["device"] = device
            a["model_sha256"] = model_sha256
            a["model_dims"] = self.dims.to_json()
            a["audio_sha256"] = audio_sha256
            a["audio_name"] = audio_name
            a["tool_version"] = tool_version
            a["created"] = created or _utc_now()
            a["threads"] = np.int64(threads)
            a["run_info"] = json.dumps(run_info or {}, separators=(",", ":"), sort_keys=True)
            a["storage"] = store
            self._taps = self._f.create_group("taps")
            self._decode = self._f.create_group("decode")
            self._timing = self._f.create_group("timing")
        except BaseException:
            self.abort()
            raise

    # -- taps
    def canonical(self, name: str) -> str:
        return self.name_map.canonical(name) if self.name_map is not None else name

    def check(self, name: str, shape) -> TapSpec:
        """The registry spec for `name` if `shape` fits it; ValueError otherwise."""
        canon = self.canonical(name)
        entry = self._registry.get(canon)
        if entry is None:
            hint = " (not mapped by the name map)" if self.name_map is not None else ""
            near = [n for n in self._registry if n.split(".")[-1] == canon.split(".")[-1]][:3]
            raise ValueError(f"tap '{name}' is not in the registry{hint}"
                             + (f"; similar: {', '.join(near)}" if near else ""))
        spec = entry[1]
        shape = tuple(int(s) for s in shape)
        if is_decoder_tap(canon):
            ok = len(shape) == 2 and shape[0] >= 1 and shape[1] == spec.shape[1]
            want = f"[n_tokens, {spec.shape[1]}]"
        else:
            ok = shape == spec.shape
            want = list(spec.shape)
        if not ok:
            raise ValueError(f"tap '{name}': got {list(shape)}, expected {want} for model_dims "
                             f"{self.dims.to_json()}")
        return spec

    def add(self, name: str, data, compute_dtype: str | None = None) -> None:
        """Adds one tap. A leading batch dimension of 1 is dropped ([1, T, C] -> [T, C])."""
        if self._finished or self._f is None:
            raise ValueError(f"{self.path}: writer already finished or closed")
        arr = _to_numpy(data)
        if arr.dtype.kind != "f":
            raise ValueError(f"tap '{name}': dtype {arr.dtype} is not floating point")
        spec_shape = self._registry.get(self.canonical(name))
        if spec_shape is not None and arr.ndim == len(spec_shape[1].shape) + 1 and arr.shape[0] == 1:
            arr = arr[0]
        spec = self.check(name, arr.shape)
        canon = self.canonical(name)
        if canon in self._canonical_written:
            raise ValueError(f"tap '{name}' given twice (as '{self._canonical_written[canon]}')")
        if "/" in name or name in (".", ""):
            raise ValueError(f"tap name '{name}' cannot be an HDF5 dataset name")
        if compute_dtype is None:
            compute_dtype = {np.dtype(np.float64): "float64", np.dtype(np.float16): "float16"}.get(
                arr.dtype, "float32")
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"tap '{name}': compute_dtype '{compute_dtype}'")
        stored = np.ascontiguousarray(arr, dtype=STORAGE_TYPES[self.store])
        row = int(np.prod(stored.shape[1:])) if stored.ndim > 1 else 1
        chunk_rows = max(1, min(stored.shape[0], (1 << 16) // max(row, 1)))
        kw = {"chunks": (chunk_rows,) + stored.shape[1:]} if stored.size else {}
        if self.compression and stored.size:
            kw.update(compression="gzip", compression_opts=self.compression)
        ds = self._taps.create_dataset(name, data=stored, **kw)
        ds.attrs["order"] = np.int64(tap_order(self.dims, canon))
        ds.attrs["layout"] = spec.layout
        ds.attrs["compute_dtype"] = compute_dtype
        self._canonical_written[canon] = name

    def set_decode(self, tokens, text: str) -> None:
        self._decode.create_dataset("tokens", data=np.asarray(tokens, dtype="<i4"))
        self._decode.create_dataset("text", data=text, dtype=h5py.string_dtype("utf-8"))

    def set_teacher_tokens(self, tokens) -> None:
        """The decoder taps and logits follow the prompt + these tokens (another dump's
        /decode/tokens) instead of this run's own: a teacher-forced pass (docs/dump-format.md)."""
        self._decode.create_dataset("teacher_tokens", data=np.asarray(tokens, dtype="<i4"))

    def set_timing(self, name: str, seconds: float) -> None:
        self._timing.create_dataset(name, data=np.float64(seconds))

    @property
    def taps_written(self) -> int:
        return len(self._canonical_written)

    # -- end
    def finish(self) -> str:
        """Writes `complete` (last), closes and renames into place; returns the path."""
        if self._finished:
            return self.path
        if self._f is None:
            raise ValueError(f"{self.path}: writer was aborted")
        self._f.attrs["complete"] = np.int64(1)
        self._f.close()
        self._f = None
        os.replace(self.tmp, self.path)
        self._finished = True
        return self.path

    def abort(self) -> None:
        """Closes and deletes the temporary file; nothing appears at `path`."""
        if self._f is not None:
            try:
                self._f.close()
            except Exception:  # noqa: BLE001 - closing a broken file must not hide the cause
                pass
            self._f = None
        if not self._finished and os.path.exists(self.tmp):
            os.remove(self.tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finish()
        else:
            self.abort()
        return False

    def __del__(self):
        if getattr(self, "_f", None) is not None and not self._finished:
            self.abort()


# ----------------------------------------------------------------------------------------------
# Reader / validator: refuses what workbench/core/src/dump.cpp refuses.

@dataclass
class Dump:
    path: str
    attrs: dict
    dims: ModelDims
    taps: list  # [(name, shape, stored dtype, order)] in execution order

    def read(self, name: str, dtype=np.float64) -> np.ndarray:
        with h5py.File(self.path, "r") as f:
            return np.asarray(f["taps"][name][()], dtype=dtype)

    def names(self) -> list:
        return [t[0] for t in self.taps]


def _str_attr(f, key, path):
    v = f.attrs[key]
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, str):
        return v
    raise DumpError(f"{path}: attribute '{key}' is not a string")


def open_dump(path: str) -> Dump:
    """Opens and validates a dump as `wb` does; DumpError with a one-line message if refused."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DumpError(f"{path}: no such file")
    if not h5py.is_hdf5(path):
        raise DumpError(f"{path}: not an HDF5 file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DumpError(f"{path}: cannot open: truncated, corrupt or still being written ({e})")
    with f:
        if "schema" not in f.attrs:
            raise DumpError(f"{path}: not a whisper-fidelity dump (no 'schema' attribute)")
        schema = _str_attr(f, "schema", path)
        if schema != SCHEMA:
            raise DumpError(f"{path}: schema '{schema}' is not supported (expected '{SCHEMA}')")
        comp = f.attrs.get("complete")
        if comp is None or not np.issubdtype(np.asarray(comp).dtype, np.integer) or int(comp) != 1:
            raise DumpError(f"{path}: dump is incomplete (no 'complete' attribute: still being "
                            "written, or its writer died)")
        for k in REQUIRED_ATTRS:
            if k not in f.attrs:
                raise DumpError(f"{path}: missing root attribute '{k}'")
        attrs = {}
        for k, v in f.attrs.items():
            attrs[k] = v.decode("utf-8") if isinstance(v, bytes) else v
        for k in REQUIRED_ATTRS:
            _str_attr(f, k, path)
        try:
            dims = ModelDims.from_json(_str_attr(f, "model_dims", path))
            json.loads(attrs.get("run_info") or "{}")
        except ValueError as e:
            raise DumpError(f"{path}: bad model_dims/run_info attribute ({e})") from None
        if "taps" not in f:
            raise DumpError(f"{path}: no /taps group")
        reg = registry(dims)
        taps = []
        for name, ds in f["taps"].items():
            if not isinstance(ds, h5py.Dataset):
                raise DumpError(f"{path}: /taps/{name} is not a dataset")
            if not 1 <= ds.ndim <= 4:
                raise DumpError(f"{path}: tap '{name}' has {ds.ndim} dimensions")
            if ds.dtype.kind != "f":
                raise DumpError(f"{path}: tap '{name}' is not floating point")
            if ds.dtype.itemsize not in (2, 4, 8):
                raise DumpError(f"{path}: tap '{name}' has {ds.dtype.itemsize}-byte floats")
            if name in reg:
                want = reg[name][1].shape
                ok = (len(ds.shape) == 2 and ds.shape[1] == want[1]) if is_decoder_tap(name) \
                    else tuple(ds.shape) == tuple(want)
                if not ok:
                    raise DumpError(f"{path}: tap '{name}': got {list(ds.shape)}, expected "
                                    f"{list(want)} for its model_dims")
            order = int(ds.attrs["order"]) if "order" in ds.attrs else tap_order(dims, name)
            taps.append((name, tuple(ds.shape), str(ds.dtype), order if order >= 0 else 1 << 30))
        taps.sort(key=lambda t: (t[3], t[0]))
        return Dump(path, attrs, dims, taps)


# ----------------------------------------------------------------------------------------------
# Checkpoints: whisper.cpp ggml (numpy only) and HF names (workbench/core/src/checkpoint_*.cpp)

GGML_MAGIC = 0x67676D6C


def read_ggml_header(path: str):
    """(dims, offset of the first tensor) of a whisper.cpp ggml file."""
    with open(path, "rb") as fh:
        raw = fh.read(4 + 44)
        if len(raw) < 48:
            raise ValueError(f"{path}: truncated ggml header")
        magic, = struct.unpack("<I", raw[:4])
        if magic != GGML_MAGIC:
            raise ValueError(f"{path}: not a whisper.cpp ggml file (magic {magic:#010x}, "
                             f"expected {GGML_MAGIC:#010x})")
        hp = struct.unpack("<11i", raw[4:48])
        d = ModelDims(n_vocab=hp[0], n_audio_ctx=hp[1], n_audio_state=hp[2], n_audio_head=hp[3],
                      n_audio_layer=hp[4], n_text_ctx=hp[5], n_text_state=hp[6],
                      n_text_head=hp[7], n_text_layer=hp[8], n_mels=hp[9]).validate()
        n_mel, n_fft = struct.unpack("<2i", fh.read(8))
        fh.seek(n_mel * n_fft * 4, os.SEEK_CUR)
        n_tok, = struct.unpack("<i", fh.read(4))
        for _ in range(n_tok):
            ln, = struct.unpack("<I", fh.read(4))
            fh.seek(ln, os.SEEK_CUR)
        return d, fh.tell()


def load_ggml(path: str):
    """(dims, {OpenAI name: float32 array}) of a whisper.cpp ggml file (f32/f16 tensors)."""
    dims, off = read_ggml_header(path)
    weights = {}
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        fh.seek(off)
        while fh.tell() < size:
            n_dims, name_len, typ = struct.unpack("<3i", fh.read(12))
            if not (1 <= n_dims <= 4 and 0 < name_len <= 256):
                raise ValueError(f"{path}: corrupt tensor header")
            ne = struct.unpack(f"<{n_dims}i", fh.read(4 * n_dims))
            name = fh.read(name_len).decode("utf-8")
            if typ not in (0, 1):
                raise ValueError(f"{path}: tensor '{name}': type {typ} not supported")
            shape = tuple(reversed(ne))
            dt = np.dtype("<f4") if typ == 0 else np.dtype("<f2")
            n = int(np.prod(shape))
            arr = np.frombuffer(fh.read(n * dt.itemsize), dtype=dt).reshape(shape).astype(np.float32)
            if name in ("encoder.conv1.bias", "encoder.conv2.bias") and arr.ndim == 2:
                arr = arr[:, 0]
            weights[name] = arr
    return dims, weights


_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "<u2"}


def load_safetensors(path: str, dtype=np.float32) -> dict:
    """{name: array} of a safetensors file (F32, F16, F64, BF16), converted to `dtype`.

    Format: u64 little-endian header length, a JSON header (name -> dtype, shape, data_offsets
    relative to the end of the header), the raw little-endian data. An HF directory is read at
    its model.safetensors; names are kept as stored ("model.encoder.conv1.weight", ...).
    """
    if os.path.isdir(path):
        path = os.path.join(path, "model.safetensors")
    with open(path, "rb") as fh:
        blob = fh.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError(f"{path}: header length {n} beyond the file ({len(blob)} bytes)")
    try:
        header = json.loads(blob[8:8 + n])
    except ValueError as e:
        raise ValueError(f"{path}: safetensors header is not JSON ({e})") from None
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        code = _ST_DTYPES.get(info.get("dtype"))
        if code is None:
            raise ValueError(f"{path}: tensor {name}: dtype {info.get('dtype')} not supported")
        a, b = info["data_offsets"]
        shape = tuple(info["shape"])
        want = int(np.prod(shape, dtype=np.int64)) * np.dtype(code).itemsize
        if not 0 <= a <= b <= len(blob) - base or b - a != want:
            raise ValueError(f"{path}: tensor {name}: data_offsets [{a}, {b}] do not hold "
                             f"{list(shape)} {info['dtype']}")
        arr = np.frombuffer(blob, dtype=code, count=want // np.dtype(code).itemsize,
                            offset=base + a).reshape(shape)
        if info["dtype"] == "BF16":  # the upper half of a float32
            arr = (arr.astype(np.uint32) << np.uint32(16)).view(np.float32)
        out[name] = arr.astype(dtype)
    return out


_HF_WHOLE = {
    "encoder.positional_embedding": "encoder.embed_positions.weight",
    "decoder.positional_embedding": "decoder.embed_positions.weight",
    "decoder.token_embedding.weight": "decoder.embed_tokens.weight",
    "encoder.ln_post.weight": "encoder.layer_norm.weight",
    "encoder.ln_post.bias": "encoder.layer_norm.bias",
    "decoder.ln.weight": "decoder.layer_norm.weight",
    "decoder.ln.bias": "decoder.layer_norm.bias",
}
_HF_PARTS = (
    (".cross_attn_ln.", ".encoder_attn_layer_norm."), (".cross_attn.query.", ".encoder_attn.q_proj."),
    (".cross_attn.key.", ".encoder_attn.k_proj."), (".cross_attn.value.", ".encoder_attn.v_proj."),
    (".cross_attn.out.", ".encoder_attn.out_proj."), (".attn_ln.", ".self_attn_layer_norm."),
    (".attn.query.", ".self_attn.q_proj."), (".attn.key.", ".self_attn.k_proj."),
    (".attn.value.", ".self_attn.v_proj."), (".attn.out.", ".self_attn.out_proj."),
    (".mlp.0.", ".fc1."), (".mlp.2.", ".fc2."), (".mlp_ln.", ".final_layer_norm."))


def openai_to_hf_name(name: str) -> str:
    """OpenAI state-dict name -> HF WhisperModel parameter name (no "model." prefix)."""
    if name in _HF_WHOLE:
        return _HF_WHOLE[name]
    h = name.replace(".blocks.", ".layers.", 1)
    for a, b in _HF_PARTS:
        if a in h:
            return h.replace(a, b, 1)
    return h


def hf_to_openai_name(name: str) -> str:
    name = name[6:] if name.startswith("model.") else name
    for a, b in _HF_WHOLE.items():
        if name == b:
            return a
    o = name.replace(".layers.", ".blocks.", 1)
    for a, b in _HF_PARTS:
        if b in o:
            return o.replace(b, a, 1)
    return o
