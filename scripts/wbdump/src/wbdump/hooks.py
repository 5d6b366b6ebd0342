"""PyTorch helpers: load the workbench's checkpoints into transformers / openai-whisper models and
record the registry's encoder taps with forward hooks. torch and transformers are imported only
when a helper is called.
"""
from __future__ import annotations

import os

import numpy as np

from .dump import _DIM_FIELDS, DumpWriter, ModelDims, glob_match, hf_to_openai_name, load_ggml, \
    openai_to_hf_name, tap_order

def _torch():
    import torch  # noqa: PLC0415 - optional dependency
    return torch


def strict_float32() -> None:
    """No TF32 anywhere (matmul and cuDNN convolutions): float32 means IEEE float32."""
    torch = _torch()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def hf_config(dims: ModelDims):
    from transformers import WhisperConfig  # noqa: PLC0415
    return WhisperConfig(num_mel_bins=dims.n_mels, max_source_positions=dims.n_audio_ctx,
                         d_model=dims.n_audio_state, encoder_attention_heads=dims.n_audio_head,
                         encoder_layers=dims.n_audio_layer, encoder_ffn_dim=4 * dims.n_audio_state,
                         vocab_size=dims.n_vocab, max_target_positions=dims.n_text_ctx,
                         decoder_attention_heads=dims.n_text_head,
                         decoder_layers=dims.n_text_layer, decoder_ffn_dim=4 * dims.n_text_state,
                         activation_function="gelu", scale_embedding=False,
                         dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
                         # token ids only matter to the decoder; keep them inside the vocabulary
                         pad_token_id=dims.n_vocab - 1, bos_token_id=dims.n_vocab - 1,
                         eos_token_id=dims.n_vocab - 1, decoder_start_token_id=dims.n_vocab - 1)


def load_hf_model(path: str, *, device="cpu", dtype="float32", attn_implementation="eager"):
    """A transformers WhisperModel (eval mode) on the weights `wb` reads at `path`.

    An HF directory is loaded with from_pretrained; a whisper.cpp ggml file is converted with
    openai_to_hf_name. Returns (model, dims).
    """
    torch = _torch()
    from transformers import WhisperModel  # noqa: PLC0415
    tdt = getattr(torch, dtype)
    if os.path.isdir(path):
        dims = ModelDims.from_hf_config(path)
        kw = dict(attn_implementation=attn_implementation, output_loading_info=True)
        try:
            model, info = WhisperModel.from_pretrained(path, dtype=tdt, **kw)
        except TypeError:  # transformers < 4.56 spells it torch_dtype
            model, info = WhisperModel.from_pretrained(path, torch_dtype=tdt, **kw)
        missing = [k for k in info.get("missing_keys", []) if k]
        if missing:  # transformers would initialise them at random: refuse
            raise ValueError(f"{path}: weights missing for WhisperModel: {sorted(missing)[:5]}")
    else:
        dims, weights = load_ggml(path)
        cfg = hf_config(dims)
        cfg._attn_implementation = attn_implementation
        model = WhisperModel(cfg)
        sd = {openai_to_hf_name(k): torch.from_numpy(v) for k, v in weights.items()}
        missing, unexpected = model.load_state_dict(sd, strict=False)
        if missing or unexpected:
            raise ValueError(f"{path}: weights do not fit WhisperModel (missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]})")
        model = model.to(tdt)
    return model.to(device).eval(), dims


def load_openai_model(path: str, *, device="cpu", dtype="float32"):
    """An openai-whisper `Whisper` model on the weights at `path` (HF directory or ggml)."""
    torch = _torch()
    import whisper.model as wm  # noqa: PLC0415
    if os.path.isdir(path):
        from safetensors.numpy import load_file  # noqa: PLC0415
        dims = ModelDims.from_hf_config(path)
        weights = {hf_to_openai_name(k): v for k, v in
                   load_file(os.path.join(path, "model.safetensors")).items()}
    else:
        dims, weights = load_ggml(path)
    model = wm.Whisper(wm.ModelDimensions(**{f: getattr(dims, f) for f in _DIM_FIELDS}))
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in
                           weights.items()}, strict=True)
    return model.to(device=device, dtype=getattr(torch, dtype)).eval(), dims


def _first_tensor(x):
    return x[0] if isinstance(x, (tuple, list)) else x


class TapRecorder:
    """Forward hooks that record the registry's encoder taps of one forward pass.

    style "hf": transformers WhisperModel / WhisperForConditionalGeneration / WhisperEncoder;
    style "openai": openai-whisper's Whisper / AudioEncoder. Detected when left None.
    Where a tap is not a module output it is taken where the model itself computes it:
      encoder.conv1     = the input of conv2 (GELU of conv1 output, computed by the model)
      encoder.conv2     = GELU(conv2 output), the same F.gelu call the model makes
      encoder.pos_embed = the input of block 0
      blocks.i.resid_attn = the input of the block's mlp_ln (HF: final_layer_norm)
      blocks.i.mlp.gelu = the input of fc2
    attn.q/k/v are the projection outputs (before any scaling: both implementations scale
    after the Linear), attn.out the out projection's output. HF's encoder.layer_norm is ln_post.
    `taps` is a selector (comma-separated globs/levels as `wb dump --taps`); tensors are copied
    to host memory as float32 (float64 models: float64), batch item 0; `compute_dtypes` keeps
    each tensor's own dtype name (a bfloat16 autocast run: "bfloat16").
    """

    def __init__(self, model, style=None, taps="all", names="canonical"):
        self.model = model
        self.style = style or self._detect(model)
        self.selector = taps
        self.names = names  # "canonical" or "hf" (HF module paths, see fixtures/maps/hf.json)
        self.taps = {}
        self.compute_dtypes = {}  # name -> the tensor's own dtype name ("bfloat16", "float32", ...)
        self._handles = []
        self._attach()

    @staticmethod
    def _detect(model) -> str:
        names = {n for n, _ in model.named_modules()}
        if any(n.endswith("self_attn.q_proj") for n in names):
            return "hf"
        if any(n.endswith("attn.query") for n in names):
            return "openai"
        raise ValueError("neither a transformers Whisper nor an openai-whisper model")

    def _encoder(self):
        m = self.model
        if hasattr(m, "model") and hasattr(m.model, "encoder"):  # WhisperForConditionalGeneration
            m = m.model
        return m.encoder if hasattr(m, "encoder") else m  # WhisperModel / Whisper, or the encoder

    def _wanted(self, name) -> bool:
        return _selected(self.selector, name)

    def _put(self, name, hf_name, tensor, transpose=False):
        if not self._wanted(name):
            return
        t = tensor.detach()[0]
        if transpose:
            t = t.transpose(0, 1)
        torch = _torch()
        key = hf_name if self.names == "hf" else name
        self.compute_dtypes[key] = str(t.dtype).replace("torch.", "")
        t = t.to(torch.float64 if t.dtype == torch.float64 else torch.float32)
        self.taps[key] = t.contiguous().cpu().numpy()

    def _attach(self):
        torch = _torch()
        enc = self._encoder()
        hf = self.style == "hf"
        p = "" if not hf else "encoder."
        gelu = torch.nn.functional.gelu

        def fwd(module, name, hf_name, fn=None, transpose=False):
            def hook(_m, _inp, out):
                o = _first_tensor(out)
                self._put(name, hf_name, fn(o) if fn else o, transpose)
            self._handles.append(module.register_forward_hook(hook))

        def pre(module, name, hf_name, transpose=False):
            def hook(_m, args, kwargs=None):
                kwargs = kwargs or {}
                x = args[0] if args else kwargs.get("hidden_states", kwargs.get("x"))
                self._put(name, hf_name, x, transpose)
            try:
                h = module.register_forward_pre_hook(hook, with_kwargs=True)
            except TypeError:  # torch < 2.0: positional arguments only (Whisper's modules)
                h = module.register_forward_pre_hook(hook)
            self._handles.append(h)

        pre(enc.conv1, "mel", "input_features")
        pre(enc.conv2, "encoder.conv1", p + "conv1:gelu", transpose=True)
        fwd(enc.conv2, "encoder.conv2", p + "conv2:gelu", fn=gelu, transpose=True)
        blocks = enc.layers if hf else enc.blocks
        pre(blocks[0], "encoder.pos_embed", p + "embed_positions:added")
        for i, b in enumerate(blocks):
            c = f"encoder.blocks.{i}."
            h = f"encoder.layers.{i}."
            if hf:
                a = b.self_attn
                fwd(b.self_attn_layer_norm, c + "attn_ln", h + "self_attn_layer_norm")
                fwd(a.q_proj, c + "attn.q", h + "self_attn.q_proj")
                fwd(a.k_proj, c + "attn.k", h + "self_attn.k_proj")
                fwd(a.v_proj, c + "attn.v", h + "self_attn.v_proj")
                fwd(a.out_proj, c + "attn.out", h + "self_attn.out_proj")
                pre(b.final_layer_norm, c + "resid_attn", h + "final_layer_norm:input")
                fwd(b.final_layer_norm, c + "mlp_ln", h + "final_layer_norm")
                fwd(b.fc1, c + "mlp.fc1", h + "fc1")
                pre(b.fc2, c + "mlp.gelu", h + "activation_fn")
                fwd(b.fc2, c + "mlp.fc2", h + "fc2")
            else:
                fwd(b.attn_ln, c + "attn_ln", h + "self_attn_layer_norm")
                fwd(b.attn.query, c + "attn.q", h + "self_attn.q_proj")
                fwd(b.attn.key, c + "attn.k", h + "self_attn.k_proj")
                fwd(b.attn.value, c + "attn.v", h + "self_attn.v_proj")
                fwd(b.attn.out, c + "attn.out", h + "self_attn.out_proj")
                pre(b.mlp_ln, c + "resid_attn", h + "final_layer_norm:input")
                fwd(b.mlp_ln, c + "mlp_ln", h + "final_layer_norm")
                fwd(b.mlp[0], c + "mlp.fc1", h + "fc1")
                fwd(b.mlp[1], c + "mlp.gelu", h + "activation_fn")
                fwd(b.mlp[2], c + "mlp.fc2", h + "fc2")
            fwd(b, c + "out", h.rstrip("."))
        fwd(enc.layer_norm if hf else enc.ln_post, "encoder.ln_post", p + "layer_norm")

    def remove(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    def write(self, writer: DumpWriter) -> None:
        """Adds the recorded taps to `writer` in execution order."""
        canon = writer.canonical
        for name in sorted(self.taps, key=lambda n: tap_order(writer.dims, canon(n))):
            arr = self.taps[name]
            writer.add(name, arr, "float64" if arr.dtype == np.float64 else "float32")


def _selected(spec: str, name: str) -> bool:
    levels = {
        "all": ["**"], "encoder": ["mel", "encoder.**"], "decoder": ["decoder.**", "logits"],
        "blocks": ["mel", "encoder.conv1", "encoder.conv2", "encoder.pos_embed",
                   "encoder.blocks.*.out", "encoder.ln_post", "decoder.blocks.*.out",
                   "decoder.ln", "logits"],
        "minimal": ["mel", "encoder.ln_post", "logits"], "none": []}
    globs = []
    for item in filter(None, spec.split(",")):
        globs += levels.get(item, [item])
    return any(glob_match(g, name) for g in globs)


def run_encoder(model, mel, *, device=None, style=None, taps="all", names="canonical"):
    """Runs the encoder on one mel [n_mels, frames] with hooks; returns {tap name: array}."""
    torch = _torch()
    param = next(model.parameters())
    x = torch.as_tensor(np.asarray(mel), dtype=param.dtype, device=device or param.device)[None]
    with TapRecorder(model, style, taps, names) as rec, torch.no_grad():
        enc = rec._encoder()
        enc(x)
    return rec.taps
