#!/usr/bin/env python3
"""Train the workbench's small Whisper from random init on synthetic espeak-ng speech.

Runs on a CUDA machine with PyTorch + transformers. Reads training shards written (possibly
still being written) by `gen_data.py shards` into --shards, keeps all clips on the GPU as
int16, computes Whisper's log-mel on the GPU (whisper_common.LogMel), and trains
WhisperForConditionalGeneration (config below) with teacher forcing on
  sot <|en|> transcribe notimestamps  b_1 ... b_n  eot      (b_i: UTF-8 bytes of the text)
loss on b_1..eot, plus an auxiliary CTC loss on the encoder output through a linear head that
is dropped at export (it only speeds up learning the alignment). Time-based schedule: linear
warm-up, cosine decay over --train-seconds. Ends with a greedy-decoding WER on the held-out
clips and an HF export (save_pretrained, safetensors, float32) plus vocab.json.
"""
import argparse
import glob
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whisper_common as wc  # noqa: E402

T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def make_config(args):
    from transformers import WhisperConfig
    return WhisperConfig(
        vocab_size=wc.N_VOCAB, num_mel_bins=80,
        encoder_layers=args.layers, encoder_attention_heads=args.heads,
        decoder_layers=args.layers, decoder_attention_heads=args.heads,
        d_model=args.d_model, encoder_ffn_dim=4 * args.d_model, decoder_ffn_dim=4 * args.d_model,
        max_source_positions=1500, max_target_positions=448,
        activation_function="gelu", dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
        scale_embedding=False, tie_word_embeddings=True,
        pad_token_id=wc.EOT, bos_token_id=wc.EOT, eos_token_id=wc.EOT,
        decoder_start_token_id=wc.SOT, begin_suppress_tokens=None, suppress_tokens=None,
        max_length=448, use_cache=True)


def whisper_sinusoids(length, channels, max_timescale=10000):
    inc = math.log(max_timescale) / (channels // 2 - 1)
    inv = torch.exp(-inc * torch.arange(channels // 2, dtype=torch.float64))
    t = torch.arange(length, dtype=torch.float64)[:, None] * inv[None, :]
    return torch.cat([torch.sin(t), torch.cos(t)], dim=1).float()


class Pool:
    """All training clips on the GPU: a flat int16 buffer + (start, length) + token lists."""

    def __init__(self, folder, device, capacity_samples):
        self.folder, self.device = folder, device
        self.buf = torch.empty(int(capacity_samples), dtype=torch.int16, device=device)
        self.used = 0
        self.starts, self.lens, self.tokens = [], [], []
        self.loaded = set()
        self.full = False

    def refresh(self):
        if self.full:
            return 0
        added = 0
        for f in sorted(glob.glob(os.path.join(self.folder, "shard*.npz"))):
            if f in self.loaded:
                continue
            z = np.load(f)
            pcm, lens, texts = z["pcm"], z["lens"], json.loads(str(z["texts"]))
            if self.used + len(pcm) > self.buf.numel():
                self.full = True
                log(f"pool full at {len(self.lens)} clips")
                break
            self.buf[self.used:self.used + len(pcm)] = torch.from_numpy(pcm).to(self.device)
            off = self.used + np.concatenate([[0], np.cumsum(lens)[:-1]])
            self.starts += off.tolist()
            self.lens += lens.tolist()
            self.tokens += [wc.encode_text(t) for t in texts]
            self.used += len(pcm)
            self.loaded.add(f)
            added += len(lens)
        return added

    def __len__(self):
        return len(self.lens)

    def batch(self, idx):
        starts = torch.tensor([self.starts[i] for i in idx], device=self.device)
        lens = torch.tensor([min(self.lens[i], wc.N_SAMPLES) for i in idx], device=self.device)
        ar = torch.arange(wc.N_SAMPLES, device=self.device)
        gather = (starts[:, None] + ar[None, :]).clamp_max(self.buf.numel() - 1)
        audio = self.buf[gather].float() / 32768.0
        audio = audio * (ar[None, :] < lens[:, None])
        toks = [self.tokens[i] for i in idx]
        return audio, lens, toks


def decoder_batch(toks, device):
    seqs = [wc.PROMPT + t + [wc.EOT] for t in toks]
    L = max(len(s) for s in seqs) - 1
    inp = torch.full((len(seqs), L), wc.EOT, dtype=torch.long)
    lab = torch.full((len(seqs), L), -100, dtype=torch.long)
    for i, s in enumerate(seqs):
        inp[i, :len(s) - 1] = torch.tensor(s[:-1])
        tgt = torch.tensor(s[1:])
        tgt[:len(wc.PROMPT) - 1] = -100  # the prompt itself is given, not learned
        lab[i, :len(s) - 1] = tgt
    return inp.to(device, non_blocking=True), lab.to(device, non_blocking=True)


def forward(model, mel, inp):
    enc = model.model.encoder(mel).last_hidden_state
    dec = model.model.decoder(input_ids=inp, encoder_hidden_states=enc, use_cache=False).last_hidden_state
    return enc, model.proj_out(dec)


@torch.no_grad()
def greedy(model, mel, max_tokens=160):
    enc = model.model.encoder(mel).last_hidden_state
    B = mel.shape[0]
    seq = torch.tensor([wc.PROMPT] * B, device=mel.device)
    done = torch.zeros(B, dtype=torch.bool, device=mel.device)
    out = [[] for _ in range(B)]
    for _ in range(max_tokens):
        h = model.model.decoder(input_ids=seq, encoder_hidden_states=enc, use_cache=False).last_hidden_state
        nxt = model.proj_out(h[:, -1]).float().argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, wc.EOT), nxt)
        for i, t in enumerate(nxt.tolist()):
            if not done[i] and t != wc.EOT:
                out[i].append(t)
        done |= nxt == wc.EOT
        seq = torch.cat([seq, nxt[:, None]], 1)
        if bool(done.all()):
            break
    return out


def load_heldout(folder):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from gen_data import read_wav
    items = []
    with open(os.path.join(folder, "expect.tsv")) as fh:
        for line in fh:
            name, text = line.rstrip("\n").split("\t", 1)
            items.append((name, text, read_wav(os.path.join(folder, name))))
    hv = {}
    mp = os.path.join(folder, "meta.tsv")
    if os.path.exists(mp):
        for line in open(mp):
            if not line.startswith("#"):
                p = line.rstrip("\n").split("\t")
                hv[p[0]] = p[-1] == "1"
    return items, hv


def evaluate(model, logmel, items, hv, device, n=None, bs=64, dtype=torch.float32):
    model.eval()
    items = items[:n] if n else items
    res = []
    for k in range(0, len(items), bs):
        chunk = items[k:k + bs]
        audio = torch.zeros(len(chunk), wc.N_SAMPLES, device=device)
        for i, (_, _, pcm) in enumerate(chunk):
            a = torch.from_numpy(pcm[:wc.N_SAMPLES].astype(np.float32) / 32768.0)
            audio[i, :len(a)] = a.to(device)
        mel = logmel(audio)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
            toks = greedy(model, mel)
        for (name, ref, _), t in zip(chunk, toks):
            hyp = wc.decode_tokens(t)
            e, nw = wc.wer_counts(ref, hyp)
            res.append(dict(file=name, ref=ref, hyp=hyp, errors=e, words=nw, heldout_voice=hv.get(name, False)))
    model.train()
    tot = lambda rs: sum(r["errors"] for r in rs) / max(1, sum(r["words"] for r in rs))
    summary = dict(clips=len(res), wer=tot(res), exact=sum(r["errors"] == 0 for r in res) / max(1, len(res)),
                   wer_heldout_voices=tot([r for r in res if r["heldout_voice"]]),
                   wer_training_voices=tot([r for r in res if not r["heldout_voice"]]))
    return summary, res


def export(model, folder):
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    wc.write_vocab(os.path.join(folder, "vocab.json"))
    log("exported", folder, {f: os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shards", required=True)
    ap.add_argument("--heldout", default="fixtures/heldout")
    ap.add_argument("--out", required=True, help="folder for the exported model and eval.json")
    ap.add_argument("--ckpt", default="", help="save model+optimizer here (and resume from it if present)")
    ap.add_argument("--train-seconds", type=float, default=480)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--final-lr-frac", type=float, default=0.02)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--ctc-weight", type=float, default=0.3)
    ap.add_argument("--d-model", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--min-clips", type=int, default=2000)
    ap.add_argument("--pool-gsamples", type=float, default=6.0)
    ap.add_argument("--eval-every", type=float, default=90, help="seconds between quick evals")
    ap.add_argument("--seed", type=int, default=6)
    args = ap.parse_args()

    import transformers
    from transformers import WhisperForConditionalGeneration
    log("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name())
    torch.manual_seed(args.seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    dev = torch.device("cuda")

    cfg = make_config(args)
    try:
        model = WhisperForConditionalGeneration._from_config(cfg, attn_implementation="sdpa")
    except Exception as e:  # older/newer API
        log("sdpa via _from_config failed:", e)
        model = WhisperForConditionalGeneration(cfg)
    with torch.no_grad():
        model.model.encoder.embed_positions.weight.copy_(whisper_sinusoids(1500, args.d_model))
    model.model.encoder.embed_positions.weight.requires_grad_(False)
    model.to(dev).train()
    ctc_head = torch.nn.Linear(args.d_model, 257).to(dev)  # blank 0, byte b -> b + 1
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model params {n_params / 1e6:.2f}M, attn {getattr(model.config, '_attn_implementation', '?')}")

    params = [p for p in model.parameters() if p.requires_grad] + list(ctc_head.parameters())
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8, fused=True)
    step0 = 0
    if args.ckpt and os.path.exists(args.ckpt):
        st = torch.load(args.ckpt, map_location=dev)
        model.load_state_dict(st["model"])
        ctc_head.load_state_dict(st["ctc"])
        opt.load_state_dict(st["opt"])
        step0 = st["step"]
        log(f"resumed from {args.ckpt} at step {step0}")

    logmel = wc.LogMel(dev)
    items, hv = load_heldout(args.heldout)
    log(f"held-out clips: {len(items)}")

    pool = Pool(args.shards, dev, args.pool_gsamples * 1e9)
    while len(pool) < args.min_clips:
        pool.refresh()
        if len(pool) < args.min_clips:
            time.sleep(1)
    log(f"pool {len(pool)} clips, starting")

    rng = np.random.default_rng(args.seed + step0)
    t_start = time.time()
    last_refresh = last_eval = t_start
    step = step0
    hist = []
    ema = None
    while True:
        el = time.time() - t_start
        if el >= args.train_seconds:
            break
        frac = el / args.train_seconds
        warm = min(1.0, (step - step0 + 1) / args.warmup) if step0 == 0 else 1.0
        lr = args.lr * warm * (args.final_lr_frac + (1 - args.final_lr_frac) * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        if time.time() - last_refresh > 10:
            pool.refresh()
            last_refresh = time.time()
        idx = rng.integers(0, len(pool), size=args.batch)
        audio, lens, toks = pool.batch(idx)
        inp, lab = decoder_batch(toks, dev)
        with torch.no_grad():
            mel = logmel(audio)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            enc, logits = forward(model, mel, inp)
            ctc_logits = ctc_head(enc)
        ce = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), lab.reshape(-1), ignore_index=-100)
        loss = ce
        if args.ctc_weight > 0:
            lp = ctc_logits.float().log_softmax(-1).transpose(0, 1)  # (T, B, C)
            in_len = torch.clamp((lens + 319) // 320, max=1500)
            tgt = torch.cat([torch.tensor(t) + 1 for t in toks]).to(dev)
            tgt_len = torch.tensor([len(t) for t in toks], device=dev)
            ctc = F.ctc_loss(lp, tgt, in_len, tgt_len, blank=0, zero_infinity=True)
            loss = loss + args.ctc_weight * ctc
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gn = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % 50 == 0:
            c = float(ce)
            ema = c if ema is None else 0.8 * ema + 0.2 * c
            hist.append(dict(step=step, t=round(time.time() - t_start, 1), ce=c, lr=lr, gn=float(gn), pool=len(pool)))
            log(f"step {step} ce {c:.4f} (ema {ema:.4f}) ctc {float(ctc) if args.ctc_weight > 0 else 0:.3f} "
                f"lr {lr:.2e} gn {float(gn):.2f} pool {len(pool)} {(time.time() - t_start) / (step - step0):.3f}s/step")
        if time.time() - last_eval > args.eval_every:
            s, _ = evaluate(model, logmel, items, hv, dev, n=48, dtype=torch.bfloat16)
            log(f"quick eval (48 clips, bf16) step {step}: {s}")
            last_eval = time.time()

    train_time = time.time() - t_start
    log(f"training done: {step - step0} steps this run, {step} total, {train_time:.0f}s, pool {len(pool)}")
    if args.ckpt:
        torch.save(dict(model=model.state_dict(), ctc=ctc_head.state_dict(), opt=opt.state_dict(), step=step),
                   args.ckpt)
    summary, res = evaluate(model, logmel, items, hv, dev, dtype=torch.float32)
    log(f"final eval (float32, {len(res)} clips): {summary}")
    for r in res[:10]:
        log(f"  {r['file']}: REF {r['ref']} | HYP {r['hyp']}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "eval.json"), "w") as fh:
        json.dump(dict(summary=summary, steps=step, train_seconds_this_run=train_time, clips_in_pool=len(pool),
                       batch=args.batch, history=hist, results=res, args=vars(args)), fh, indent=1)
    export(model, os.path.join(args.out, "model"))


if __name__ == "__main__":
    main()
