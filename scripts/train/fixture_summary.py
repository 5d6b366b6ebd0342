#!/usr/bin/env python3
"""Prints the trained-fixture figures the docs quote from the files measure-fixture.sh writes.

Usage: fixture_summary.py OUT META_TSV   (OUT: measure-fixture.sh's output folder)
Everything printed is read from the JSON reports in OUT; nothing is computed elsewhere.
"""
import json
import os
import sys


def load(path):
    with open(path) as fh:
        return json.load(fh)


def words(s):
    return f"{s['errors']} ({s['substitutions']} / {s['deletions']} / {s['insertions']})"


def run_summary(out, meta):
    ref = load(os.path.join(out, "ref.json"))
    s = ref["summary"]
    print(f"reference, {s['clips']} clips: words {s['ref_words']}, errors {words(s)}, "
          f"WER {100 * s['wer']:.2f}%, exact clips {s['exact_clips']}, "
          f"encoder.ln_post mean {s['encoder_out']['mean']:.4f} std {s['encoder_out']['std']:.3f}, "
          f"{s['seconds']:.0f} s")
    heldout_voice = {}
    with open(meta) as fh:
        for line in fh:
            if not line.startswith("#"):
                p = line.rstrip("\n").split("\t")
                heldout_voice[p[0]] = p[-1] == "1"
    for hv, label in ((False, "training voices"), (True, "voices training never used")):
        cl = [c for c in ref["clips"] if heldout_voice.get(c["file"]) == hv]
        nw, ne = sum(c["ref_words"] for c in cl), sum(c["errors"] for c in cl)
        exact = sum(1 for c in cl if c["errors"] == 0)
        print(f"  {label}: {len(cl)} clips, {nw} words, {ne} errors, WER {100 * ne / nw:.2f}%, "
              f"exact {exact}")
    c = load(os.path.join(out, "cand.json"))["summary"]
    print(f"candidate float32: WER {100 * c['wer']:.2f}%, identical {c['agreeing_clips']}/{c['clips']}, "
          f"encoder output cosine {c['encoder_out_cosine']:.13f}, ln_post mean "
          f"{c['encoder_out']['mean']:.4f} std {c['encoder_out']['std']:.3f}")


def compare_summary(out):
    for f in ("none", "no-ln-post", "mel-db", "attn-scale=double"):
        r = load(os.path.join(out, f"compare-{f}", "report.json"))
        t = {x["name"]: x for x in r["taps"]}["encoder.ln_post"]
        fd = r["first_divergence"]
        print(f"compare {f}: verdict {r['verdict']}, {len(r['taps'])} taps, first divergent "
              f"{fd['tap'] if fd else '-'} ({fd['attribution'] if fd else ''}); ln_post mean "
              f"{t['reference']['mean']:.4f} -> {t['candidate']['mean']:.4f}, std "
              f"{t['reference']['std']:.3f} -> {t['candidate']['std']:.3f}, cosine "
              f"{t['metrics']['cosine']:.6f}, rel L2 {t['metrics']['rel_l2']:.3g}")
        if r["hints"]:
            print(f"  hint: {r['hints'][0]}")


def fault_summary(out):
    for f in ("no-ln-post", "mel-db", "attn-scale=double"):
        s = load(os.path.join(out, f"fault-{f}.json"))["summary"]
        capped = sum(1 for c in load(os.path.join(out, f"fault-{f}.json"))["clips"]
                     if c["tokens"] >= 100)
        print(f"fault {f}, first {s['clips']} clips, 100-token cap: WER {100 * s['wer']:.1f}% "
              f"{words(s)}, identical {s['agreeing_clips']}/{s['clips']}, capped {capped}, longest "
              f"run {s['longest_token_run']}, ln_post mean {s['encoder_out']['mean']:.4f} std "
              f"{s['encoder_out']['std']:.3f}, cosine {s['encoder_out_cosine']:.3f}; reference "
              f"WER {100 * s['reference']['wer']:.2f}% ({s['reference']['errors']} errors), "
              f"ln_post mean {s['reference']['encoder_out']['mean']:.4f} std "
              f"{s['reference']['encoder_out']['std']:.3f}")


def sweep_summary(out):
    r = load(os.path.join(out, "sweep", "report.json"))
    s, tr = r["summary"], r["transcripts"]
    t = {x["name"]: x for x in r["taps"]}["encoder.ln_post"]["rel_l2"]
    worst = max(r["taps"], key=lambda x: x["rel_l2"]["max"])
    print(f"sweep: {s['passed']}/{s['clips']} pass, {s['failed']} fail, transcripts identical "
          f"{tr['identical']}/{tr['clips_with_transcripts']}, WER ref {100 * tr['reference_wer']:.2f}% "
          f"cand {100 * tr['candidate_wer']:.2f}%; ln_post rel L2 mean {t['mean']:.3g} std "
          f"{t['std']:.3g} worst {t['max']:.3g} ({t['worst_clip']}); worst tap {worst['name']} "
          f"{worst['rel_l2']['max']:.3g} ({worst['rel_l2']['worst_clip']}); clip seconds "
          f"{r['run']['clip_seconds']:.0f}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: fixture_summary.py OUT META_TSV")
    out_dir, meta_tsv = sys.argv[1], sys.argv[2]
    for part in (lambda: run_summary(out_dir, meta_tsv), lambda: compare_summary(out_dir),
                 lambda: fault_summary(out_dir), lambda: sweep_summary(out_dir)):
        try:
            part()
        except (OSError, KeyError) as e:  # a step that did not run: say so, keep the rest
            print(f"(missing: {e})")
