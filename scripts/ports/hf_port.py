#!/usr/bin/env python3
"""A Hugging Face transformers port of Whisper's front end and encoder, served to `wb --port`
(docs/ports.md) with wbdump.serve: what a transformers user runs, stage by stage.

Front end: transformers' WhisperFeatureExtractor (--mel hf, the default) or torch.stft as
openai-whisper's audio.py with the Slaney filters of numpy_port.py (--mel own). Encoder: a
WhisperModel loaded with wbdump.load_hf_model (from_pretrained on an HF directory; a ggml file
converted), its WhisperEncoder's submodules as the stages:
    stem     conv1, GELU, conv2, GELU, + embed_positions.weight
    block i  encoder.layers[i] (WhisperEncoderLayer)
    ln_post  encoder.layer_norm
Taps by wbdump.TapRecorder's forward hooks (HF style); each reports the dtype it was computed
in (bfloat16 with --dtype bfloat16). float32 runs with TF32 off (wbdump.strict_float32).

    hf_port.py [--model M] [--device cuda|cpu] [--dtype float32|bfloat16] [--attn eager|sdpa]
               [--mel hf|own]

Needs torch and transformers (4.x or 5.x); without them it exits 2 with one line on stderr.
Measured with transformers 5.17.0 and torch 2.11 on an H200 (the HFPort class's run and every
stage driven directly, on the 4 s tone of scripts/tone.py; rel L2 against `wb dump --impl
reference`): float32 on cuda, encoder.ln_post 5.8e-7 (trained), 6.1e-7 (nano), mel 8.1e-8; float32
on the CPU with sdpa attention 3.8e-7; bfloat16 on cuda 5.7e-3, its activations reported as
bfloat16; each stage's output equal to the same tap of the whole run.
Check it where they are installed:
    wbdump port-check 'python3 scripts/ports/hf_port.py --model M --device cuda' \
        --reference ref.h5 --audio clip.wav --model M
Exit status: 0 served, 2 bad usage or input.
"""
import argparse
import inspect
import sys

import numpy as np

import wbdump

try:
    import torch
    import transformers
    from transformers import WhisperFeatureExtractor
except ImportError as _e:
    torch = transformers = None
    _IMPORT_ERROR = _e
else:
    _IMPORT_ERROR = None


def _layer_kwargs(layer):
    """The keywords a WhisperEncoderLayer's forward takes besides hidden_states, all neutral:
    4.x requires attention_mask and layer_head_mask positionally; 5.x dropped the head mask."""
    try:
        params = inspect.signature(layer.forward).parameters
    except (TypeError, ValueError):
        return {"attention_mask": None}
    kw = {}
    for name in ("attention_mask", "layer_head_mask"):
        if name in params:
            kw[name] = None
    if "output_attentions" in params:
        kw["output_attentions"] = False
    return kw


class HFPort:
    def __init__(self, model=None, device="cpu", dtype="float32", attn="eager", mel="hf"):
        self.device, self.dtype, self.attn, self.mel_kind = device, dtype, attn, mel
        self.model_path = None
        if model:
            self._load(model)

    def _load(self, path):
        if self.dtype == "float32":
            wbdump.strict_float32()
        self.model, self.dims = wbdump.load_hf_model(path, device=self.device, dtype=self.dtype,
                                                     attn_implementation=self.attn)
        self.enc = self.model.encoder
        self.tdt = getattr(torch, self.dtype)
        self.rec = wbdump.TapRecorder(self.model, style="hf")
        self.fe = WhisperFeatureExtractor(feature_size=self.dims.n_mels, sampling_rate=16000,
                                          hop_length=160, chunk_length=30, n_fft=400)
        if self.mel_kind == "own":
            from numpy_port import mel_filters  # noqa: PLC0415 - beside this file
            self.filters = torch.from_numpy(mel_filters(self.dims.n_mels))
        self.model_path = path

    def hello(self, request):
        if self.model_path is None:
            if not request.get("model"):
                raise ValueError("no model: start the port with --model M, or wb with --model")
            self._load(request["model"])
        dev = self.device
        if dev.startswith("cuda") and torch.cuda.is_available():
            dev = f"{dev} ({torch.cuda.get_device_name(torch.device(dev))})"
        return {"name": f"transformers-{transformers.__version__} WhisperEncoder ({self.attn} "
                        f"attention, {self.dtype}, {dev}, mel {self.mel_kind})",
                "model_dims": self.dims, "model_sha256": wbdump.model_sha256(self.model_path),
                "precision": self.dtype}

    # -- pieces
    def log_mel(self, samples):
        """[n_mels, 3000] float32 of 16 kHz samples (padded or trimmed to 30 s)."""
        x = np.asarray(samples, np.float32)
        if self.mel_kind == "hf":
            feats = self.fe(x, sampling_rate=16000, return_tensors="np").input_features
            return np.asarray(feats[0], np.float32)
        audio = torch.zeros(30 * 16000)
        s = torch.from_numpy(x[: audio.numel()].copy())
        audio[: s.numel()] = s
        stft = torch.stft(audio, 400, 160, window=torch.hann_window(400), return_complex=True)
        spec = torch.clamp(self.filters @ (stft[..., :-1].abs() ** 2), min=1e-10).log10()
        spec = torch.maximum(spec, spec.max() - 8.0)
        return ((spec + 4.0) / 4.0).numpy()

    def _tensor(self, a):
        return torch.as_tensor(np.asarray(a, np.float32))[None].to(self.device, self.tdt)

    def _taps(self, names=None):
        out = {k: (v, self.rec.compute_dtypes[k]) for k, v in self.rec.taps.items()
               if names is None or k in names}
        self.rec.taps.clear()
        return out

    def _stem(self, mel):
        e = self.enc
        x = torch.nn.functional.gelu(e.conv1(mel))
        x = torch.nn.functional.gelu(e.conv2(x)).permute(0, 2, 1)
        return x + e.embed_positions.weight[: x.shape[1]]

    # -- requests
    def run(self, samples):
        mel = self.log_mel(samples)
        with torch.inference_mode():
            self.enc(input_features=self._tensor(mel))
        taps = self._taps()
        taps["mel"] = mel  # the front end's own output, in float32
        return taps

    def stage(self, stage, block, inputs):
        d = self.dims
        x = inputs[wbdump.stage_input(d, stage, block)]
        if stage == "frontend":
            return {"mel": self.log_mel(x)}
        with torch.inference_mode():
            t = self._tensor(x)
            if stage == "stem":
                y = self._stem(t)
                own = self._taps(wbdump.stage_taps(d, "stem"))
                own["encoder.pos_embed"] = (y[0].float().cpu(), str(y.dtype).replace("torch.", ""))
                return own
            if stage == "block":
                layer = self.enc.layers[block]
                layer(t, **_layer_kwargs(layer))  # taps by the hooks; 4.x returns a tuple
            else:
                self.enc.layer_norm(t)
        return self._taps(wbdump.stage_taps(d, stage, block))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="HF Whisper directory or ggml file (default: wb's --model)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--attn", default="eager", choices=("eager", "sdpa"),
                    help="transformers attention implementation")
    ap.add_argument("--mel", default="hf", choices=("hf", "own"),
                    help="WhisperFeatureExtractor, or torch.stft as audio.py")
    args = ap.parse_args(argv)
    if _IMPORT_ERROR is not None:
        print(f"hf_port: error: needs torch and transformers ({_IMPORT_ERROR}); "
              "pip install torch transformers", file=sys.stderr)
        return 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"hf_port: error: --device {args.device}: torch sees no CUDA device", file=sys.stderr)
        return 2
    try:
        port = HFPort(args.model, args.device, args.dtype, args.attn, args.mel)
    except (OSError, ValueError) as e:
        print(f"hf_port: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return wbdump.serve(port)


if __name__ == "__main__":
    sys.exit(main())
