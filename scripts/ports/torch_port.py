#!/usr/bin/env python3
"""A PyTorch port of Whisper's front end and encoder, as a PyTorch user writes one, served to
`wb --port` (docs/ports.md) with wbdump.serve.

The modules follow openai/whisper model.py (written here, not imported): LayerNorm computing in
float32 and casting back, Linear and Conv1d casting their weights to the input's dtype,
MultiHeadAttention (key without bias, q and k each scaled by d_head^-0.25, softmax in float32),
ResidualAttentionBlock, AudioEncoder (conv1, GELU, conv2, GELU, + positions cast to the
activations' dtype, blocks, ln_post). Log-mel with torch.stft as audio.py (mel filters: the
Slaney filters of numpy_port.py, beside this file). Weights from an HF directory's
model.safetensors (wbdump's reader) or a ggml file. Taps are recorded with wbdump.TapRecorder's
forward hooks.

    torch_port.py [--model M] [--precision float32|bfloat16] [--threads N]

--precision bfloat16 runs the encoder under torch.autocast("cpu", dtype=torch.bfloat16): the
matmuls and convolutions compute in bfloat16 and, as in openai-whisper, the residual stream
stays bfloat16 (x + positional_embedding is cast to the conv output's dtype); every tap reports
the dtype it was computed in. Exit status: 0 served, 2 bad usage or input.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import wbdump
from numpy_port import mel_filters  # the Slaney filters, written once

SAMPLE_RATE, N_FFT, HOP, CHUNK = 16000, 400, 160, 30 * 16000


class LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


class Linear(nn.Linear):
    def forward(self, x):
        return F.linear(x, self.weight.to(x.dtype),
                        None if self.bias is None else self.bias.to(x.dtype))


class Conv1d(nn.Conv1d):
    def _conv_forward(self, x, weight, bias):
        return super()._conv_forward(x, weight.to(x.dtype),
                                     None if bias is None else bias.to(x.dtype))


class MultiHeadAttention(nn.Module):
    def __init__(self, n_state, n_head):
        super().__init__()
        self.n_head = n_head
        self.query = Linear(n_state, n_state)
        self.key = Linear(n_state, n_state, bias=False)
        self.value = Linear(n_state, n_state)
        self.out = Linear(n_state, n_state)

    def forward(self, x):
        q, k, v = self.query(x), self.key(x), self.value(x)
        n_batch, n_ctx, n_state = q.shape
        scale = (n_state // self.n_head) ** -0.25
        q = q.view(n_batch, n_ctx, self.n_head, -1).permute(0, 2, 1, 3) * scale
        k = k.view(n_batch, n_ctx, self.n_head, -1).permute(0, 2, 3, 1) * scale
        v = v.view(n_batch, n_ctx, self.n_head, -1).permute(0, 2, 1, 3)
        w = F.softmax((q @ k).float(), dim=-1).to(q.dtype)
        return self.out((w @ v).permute(0, 2, 1, 3).flatten(start_dim=2))


class ResidualAttentionBlock(nn.Module):
    def __init__(self, n_state, n_head):
        super().__init__()
        self.attn = MultiHeadAttention(n_state, n_head)
        self.attn_ln = LayerNorm(n_state)
        self.mlp = nn.Sequential(Linear(n_state, 4 * n_state), nn.GELU(), Linear(4 * n_state, n_state))
        self.mlp_ln = LayerNorm(n_state)

    def forward(self, x):
        x = x + self.attn(self.attn_ln(x))
        return x + self.mlp(self.mlp_ln(x))


class AudioEncoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.conv1 = Conv1d(d.n_mels, d.n_audio_state, kernel_size=3, padding=1)
        self.conv2 = Conv1d(d.n_audio_state, d.n_audio_state, kernel_size=3, stride=2, padding=1)
        self.register_buffer("positional_embedding", torch.zeros(d.n_audio_ctx, d.n_audio_state))
        self.blocks = nn.ModuleList(ResidualAttentionBlock(d.n_audio_state, d.n_audio_head)
                                    for _ in range(d.n_audio_layer))
        self.ln_post = LayerNorm(d.n_audio_state)

    def stem(self, mel):
        """[B, n_mels, 2T] -> [B, T, C]: conv1, GELU, conv2, GELU, + positions."""
        x = F.gelu(self.conv1(mel))
        x = F.gelu(self.conv2(x)).permute(0, 2, 1)
        return (x + self.positional_embedding).to(x.dtype)

    def forward(self, mel):
        x = self.stem(mel)
        for b in self.blocks:
            x = b(x)
        return self.ln_post(x)


def log_mel(samples, filters):
    """audio.py log_mel_spectrogram on pad_or_trim(audio): [n_mels, 3000] float32."""
    audio = torch.zeros(CHUNK)
    s = torch.as_tensor(np.asarray(samples, np.float32)[:CHUNK])
    audio[: s.numel()] = s
    stft = torch.stft(audio, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    magnitudes = stft[..., :-1].abs() ** 2
    log_spec = torch.clamp(filters @ magnitudes, min=1e-10).log10()
    log_spec = torch.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


def load_encoder(model):
    """(AudioEncoder in eval mode, dims) from an HF directory or a ggml file."""
    dims = wbdump.ModelDims.from_checkpoint(model)
    if os.path.isdir(model):
        weights = {wbdump.hf_to_openai_name(k): v for k, v in wbdump.load_safetensors(model).items()}
    else:
        weights = wbdump.load_ggml(model)[1]
    enc = AudioEncoder(dims)
    sd = {k[len("encoder."):]: torch.from_numpy(np.asarray(v, np.float32))
          for k, v in weights.items() if k.startswith("encoder.")}
    missing, unexpected = enc.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise ValueError(f"{model}: encoder weights do not fit (missing {missing[:4]}, "
                         f"unexpected {unexpected[:4]})")
    return enc.eval(), dims


class TorchPort:
    def __init__(self, model=None, precision="float32"):
        self.model_path, self.precision, self.enc = model, precision, None
        if model:
            self._load(model)

    def _load(self, model):
        self.enc, self.dims = load_encoder(model)
        self.filters = torch.from_numpy(mel_filters(self.dims.n_mels))
        self.rec = wbdump.TapRecorder(self.enc, style="openai")
        self.model_path = model

    def hello(self, request):
        if self.enc is None:
            if not request.get("model"):
                raise ValueError("no model: start the port with --model M, or wb with --model")
            self._load(request["model"])
        return {"name": f"torch-port {torch.__version__} ({self.precision})",
                "model_dims": self.dims, "model_sha256": wbdump.model_sha256(self.model_path),
                "precision": self.precision}

    def _autocast(self):
        return torch.autocast("cpu", dtype=torch.bfloat16,
                              enabled=self.precision == "bfloat16")

    def _taps(self, names=None):
        out = {k: (v, self.rec.compute_dtypes[k]) for k, v in self.rec.taps.items()
               if names is None or k in names}
        self.rec.taps.clear()
        return out

    def _tensor(self, x):
        return torch.as_tensor(np.asarray(x, np.float32))[None]

    def run(self, samples):
        with torch.inference_mode():
            mel = log_mel(samples, self.filters)
            with self._autocast():
                self.enc(mel[None])
        return self._taps()

    def stage(self, stage, block, inputs):
        d = self.dims
        x = inputs[wbdump.stage_input(d, stage, block)]
        with torch.inference_mode():
            if stage == "frontend":
                return {"mel": log_mel(x, self.filters)}
            with self._autocast():
                if stage == "stem":
                    y = self.enc.stem(self._tensor(x))
                    own = self._taps(wbdump.stage_taps(d, "stem"))
                    own["encoder.pos_embed"] = (y[0].float(), str(y.dtype).replace("torch.", ""))
                    return own
                if stage == "block":
                    # the stage's input in the dtype the residual stream has in a whole run
                    t = self._tensor(x).to(torch.bfloat16 if self.precision == "bfloat16"
                                           else torch.float32)
                    self.enc.blocks[block](t)
                else:
                    t = self._tensor(x).to(torch.bfloat16 if self.precision == "bfloat16"
                                           else torch.float32)
                    self.enc.ln_post(t)
        return self._taps(wbdump.stage_taps(d, stage, block))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", help="HF Whisper directory or ggml file (default: wb's --model)")
    ap.add_argument("--precision", default="float32", choices=("float32", "bfloat16"))
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        port = TorchPort(args.model, args.precision)
    except (OSError, ValueError) as e:
        print(f"torch_port: error: {e}", file=sys.stderr)
        return 2
    return wbdump.serve(port)


if __name__ == "__main__":
    sys.exit(main())
