#!/usr/bin/env python3
"""Calibrate the float32 profile: clean-side worst case per tap vs each fault's smallest case.

Measures, with `wb dump ... --no-decode` and `wb compare --format json` (taps[].metrics.rel_l2):

  clean side  the float32 candidate against the float32 reference on every clip, for every vector
              ISA path this CPU runs (`wb info --json`: WB_ISA=each ISA of the candidate's list but
              its portable first) and threads 1 and 2; plus the float64 reference against
              the float32 reference (a correct implementation with different rounding)
  fault side  every example of `wb faults --json` (and --extra specs) against the float32
              reference, rel L2 at the example's expected first tap

on the trained fixture (fixtures/trained) over the tone clip of compare/tests/fault_matrix.sh and
the first N held-out clips, and on random-weight nano and tiny dims over the tone.

Results are cached in WORK/results.json (one key per model|clip|run), so a rerun with more clips
or more fault specs only computes what is missing. Prints the tables (Markdown) and writes
WORK/calibration.svg (both distributions on a log axis, with the limits).

Usage: scripts/calibrate.py --wb build/wb [--clips 30] [--work /dev/shm/wb-cal]
           [--extra ln-eps=1e-6:encoder.blocks.0.attn_ln ...] [--limit 1.4e-5]
Only the Python standard library is used.
"""
import argparse
import glob
import json
import math
import os
import shutil
import subprocess
import sys
import re

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tone import write_tone as tone  # noqa: E402  (the one tone: scripts/tone.py)
ROOT = os.path.dirname(HERE)
# Filled from `wb info --json` by read_info(): the vector ISA paths this CPU runs (the candidate's
# list, narrowest first, without the portable first entry) and the precisions (float32 first).
ISAS = []
REDUCED_PRECISIONS = []


def read_info(wb):
    rc, out = run([wb, "info", "--json"])
    if rc:
        raise RuntimeError(f"wb info --json failed ({rc}): {out}")
    info = json.loads(out)
    ISAS[:] = [i["name"] for i in info["isas"][1:] if i["supported"]]
    REDUCED_PRECISIONS[:] = info["precisions"][1:]
    if not ISAS:
        raise RuntimeError("this CPU runs none of the candidate's vector ISA paths (wb info)")


def heldout_clip(i):
    """fixtures/heldout/clipNNN.* (WAV today, FLAC after the conversion): the one file of that stem."""
    found = glob.glob(os.path.join(ROOT, "fixtures", "heldout", f"clip{i:03d}.*"))
    if len(found) != 1:
        raise RuntimeError(f"expected one fixtures/heldout/clip{i:03d}.*, found {found}")
    return found[0]


def reduced(run_name):
    """A run of the reduced-precision calibration (--precisions), not of the float32 one."""
    return any(run_name.startswith(f"{kind}-{p}") for p in REDUCED_PRECISIONS
               for kind in ("cand", "fault"))


def isa_env(isa):
    """The environment of one ISA path: our kernels (WB_ISA) and oneDNN's GEMMs (DNNL_MAX_CPU_ISA,
    which takes the ISA's name in capitals) both limited, so a narrower path is what a machine
    without the wider ISA computes (for AVX2: oneDNN's AVX2 jit GEMM, bfloat16/float16 weights
    widened to float32) and the widest path uses all the CPU has (AVX512-BF16 where present)."""
    return {"WB_ISA": isa, "DNNL_MAX_CPU_ISA": "ALL" if isa == ISAS[-1] else isa.upper()}


def save(args, results):
    with open(args.cache + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(args.cache + ".tmp", args.cache)


def run(cmd, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(cmd, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p.returncode, p.stdout + p.stderr


def compare(wb, ref, cand, rep):
    rc, out = run([wb, "compare", ref, cand, "-q", "--report", rep, "--format", "json"])
    if rc not in (0, 1):
        raise RuntimeError(f"wb compare failed ({rc}): {out}")
    with open(os.path.join(rep, "report.json")) as f:
        j = json.load(f)
    shutil.rmtree(rep, ignore_errors=True)
    fd = j["first_divergence"]
    return {t["name"]: t["metrics"]["rel_l2"] for t in j["taps"] if t.get("metrics")}, \
        (fd["tap"] if fd else None)


def measure_runs(args, results, label, model, clip, clean, faults):
    """The one measurement loop: dump the float32 reference once, then each run still missing
    from results, each compared against that reference. clean: (key, dump args, env) of the
    clean runs; faults: (key, spec, tap, dump args) of the fault runs (a refused dump is
    recorded with its message)."""
    clean = [r for r in clean if r[0] not in results]
    faults = [f for f in faults if f[0] not in results]
    if not clean and not faults:
        return
    w = args.work
    ref, cand = os.path.join(w, "ref.h5"), os.path.join(w, "cand.h5")
    base = [args.wb, "dump", "--model", model, "--audio", clip, "--no-decode"]
    rc, out = run(base + ["--impl", "reference", "--taps", "encoder", "-o", ref])
    if rc:
        raise RuntimeError(out)
    runs = [(k, dump_args, env, None, None) for k, dump_args, env in clean] + \
           [(k, dump_args + ["--fault", spec], None, spec, tap) for k, spec, tap, dump_args in faults]
    for k, dump_args, env, spec, tap in runs:
        rc, out = run(base + dump_args + ["-o", cand], env)
        if rc and spec is None:
            raise RuntimeError(out)
        if rc:
            print(f"  {spec}: dump refused ({out.strip()})", file=sys.stderr)
            results[k] = {"rel_l2": {}, "first": None, "refused": out.strip()}
            continue
        rel, first = compare(args.wb, ref, cand, os.path.join(w, "rep"))
        results[k] = {"rel_l2": rel, "first": first}
        if spec is not None:
            results[k]["tap"] = tap
        save(args, results)
        what = f"{spec} @ {tap}: {rel.get(tap, float('nan')):.3g}" if spec is not None else \
            f"worst {max(rel.values()):.3g} first {first}"
        print(f"  {label} {k.rsplit('|', 1)[1]} {what}", file=sys.stderr)
    for p in (ref, cand):
        if os.path.exists(p):
            os.remove(p)


REF64 = ["--impl", "reference", "--dtype", "float64", "--taps", "encoder"]


def measure(args, results, model_name, model, clip_name, clip, faults, full):
    """Fill results[model|clip|run] for every run still missing. full: every clean run (each ISA
    path x threads 1, 2) and every fault; else only the candidate on the narrowest vector path
    with 1 thread and the widest with 2, no faults."""
    key = lambda r: f"{model_name}|{clip_name}|{r}"
    runs = [(isa, t) for isa in ISAS for t in (1, 2)] if full else [(ISAS[0], 1), (ISAS[-1], 2)]
    clean = [(key(f"cand-{isa}-t{t}"), ["--impl", "candidate", "--taps", "encoder", "--threads",
                                        str(t)], isa_env(isa)) for isa, t in runs]
    if full:
        clean.append((key("ref64"), REF64, None))
    fault_runs = [(key("fault:" + s), s, tap, ["--impl", "candidate", "--taps", tap, "--threads",
                                               "2"]) for s, tap in (faults if full else [])]
    measure_runs(args, results, f"{model_name} {clip_name}", model, clip, clean, fault_runs)


def measure_reduced(args, results, model_name, model, clip_name, clip, faults, with_faults):
    """Fill results[model|clip|run] for the reduced-precision runs still missing: the candidate in
    each of args.precisions on every ISA path (2 threads), the float64 reference (the floor), and
    with_faults: every fault in bfloat16 (the default ISA, 2 threads), all against the float32
    reference."""
    key = lambda r: f"{model_name}|{clip_name}|{r}"
    clean = [(key(f"cand-{p}-{isa}-t2"), ["--impl", "candidate", "--precision", p, "--taps",
                                          "encoder", "--threads", "2"], isa_env(isa))
             for p in args.precisions for isa in ISAS] + [(key("ref64"), REF64, None)]
    fault_runs = [(key("fault-bfloat16:" + s), s, tap,
                   ["--impl", "candidate", "--precision", "bfloat16", "--taps", "encoder",
                    "--threads", "2"]) for s, tap in (faults if with_faults else [])]
    measure_runs(args, results, f"{model_name} {clip_name}", model, clip, clean, fault_runs)


def round_up(x, digits=2):
    """x rounded up to `digits` significant digits (a limit is never below k x clean worst)."""
    e = math.floor(math.log10(x)) - digits + 1
    v = float(f"{math.ceil(x / 10 ** e - 1e-9) * 10 ** e:.{digits}g}")
    return int(v) if v >= 100 else v


def tap_kind(tap):
    """The profile glob of a tap: block index generalised (encoder.blocks.*.attn_ln)."""
    return re.sub(r"blocks\.\d+\.", "blocks.*.", tap)


def tap_groups(tap):
    """The profile rules a tap falls under, the overriding one last: its kind (any block), and for
    block 0, the tap itself (error grows with depth: the first block, in every model, holds
    its own tighter limit)."""
    kd = tap_kind(tap)
    return [kd, tap] if tap.startswith("encoder.blocks.0.") else [kd]


PROFILE_FILE = {"bfloat16": "bfloat16.json", "float16": "float16.json"}  # <precision>.json


def write_profile(prec, rules, f32, k, n, mel, fx):
    """fixtures/profiles/<PROFILE_FILE[prec]> from this calibration: per tap kind (and block 0)
    rel L2 limits; mel held to the float32 profile's limits (the front end is float32 in every
    precision); defaults (taps no rule names, e.g. decoder taps: not calibrated) at the largest
    kind limit; logits as before, not calibrated."""
    worst = max(r["fail"]["rel_l2"]["max"] for r in rules)
    worst_warn = max(r["warn"]["rel_l2"]["max"] for r in rules)
    fx_fail, fx_warn = rules[0]["fail"]["rel_l2"]["max_floor"], rules[0]["warn"]["rel_l2"]["max_floor"]
    name = prec  # a built-in profile is named after its precision
    other = ("float16: fixtures/profiles/float16.json, tighter" if prec == "bfloat16"
             else "bfloat16: fixtures/profiles/bfloat16.json")
    prof = {
        "name": name,
        "description": (
            f"A {prec} candidate against a float32 reference ({other}). Calibrated by "
            f"scripts/calibrate.py --precisions (docs/calibration.md): per tap kind (any block; "
            f"block 0 on its own, errors grow with depth) fail at {k:g} x and warn at 2 x the "
            f"clean worst rel L2 over {n} runs (the CPU candidate in {prec}, both ISA paths, "
            f"2 threads; the trained model on a tone and held-out speech, random nano and tiny "
            f"weights on the tone), rounded up. With --floor, the same as multiples of the "
            f"reference's float32-vs-float64 error ({k:g} x / 2 x the worst, {fx[0]:.3g}), never "
            f"above the absolute limit. mel: the float32 profile's limits (the front end computes "
            f"in float32 in every precision; clean worst {mel:.2g}). No cosine threshold: next to "
            f"a rel L2 limit r, 1 - cos <= r^2/2 can never fail (docs/report-json.md)."),
        "atol": 1e-3,
        "rtol": 1e-2,
        "warn": {"rel_l2": {"max": worst_warn, "max_floor": fx_warn}},
        "fail": {"rel_l2": {"max": worst, "max_floor": fx_fail}},
        "rules": rules + [
            {"taps": "mel",
             "comment": "the front end computes in float32 in every precision: the float32 "
                        "profile's limits (fixtures/profiles/float32.json)",
             "warn": {"rel_l2": f32["warn"]["rel_l2"]},
             "fail": {"rel_l2": f32["fail"]["rel_l2"],
                      **{m: t for r in f32["rules"] if r["taps"] == "mel"
                         for m, t in r["fail"].items()}}},
            {"taps": "logits",
             "comment": "decoder logits (teacher-forced): not part of the encoder calibration",
             "fail": {"rel_l2": {"max": 1e-1}}}],
        "changepoint": {"ratio": 30, "min_rel_l2": 3e-3},
        "attribution": {"local_ratio": 4},
    }
    path = os.path.join(ROOT, "fixtures", "profiles", PROFILE_FILE[prec])
    rules_text = ",\n".join("    " + json.dumps(r) for r in prof.pop("rules"))
    head = json.dumps(prof, indent=2)  # one rule per line: the profile stays readable
    with open(path, "w") as f:
        f.write(head[:head.rindex('"changepoint"')] + f'"rules": [\n{rules_text}\n  ],\n  '
                + head[head.rindex('"changepoint"'):] + "\n")
    print(f"wrote {path}\n")


def report_reduced(args, results, done, faults):
    """Tables of the reduced-precision calibration, per precision: the clean worst per tap kind
    (over blocks, models, clips, ISAs; block 0 on its own) and the limits k x clean worst (warn 2 x), the profile rules
    they make (WORK/<precision>.rules.json); then each fault in bfloat16 at its first tap, and the
    first tap where it exceeds the bfloat16 limits. mel is left to the float32 profile's limit: the
    front end computes in float32 in every precision."""
    f32 = json.load(open(os.path.join(ROOT, "fixtures", "profiles", "float32.json")))
    mel_limit = f32["fail"]["rel_l2"]["max"]
    k = args.rp_k
    kind_limit = {}
    clean_at = {}  # (precision, model, clip) -> tap -> worst over ISAs
    for prec in args.precisions:
        kinds, mel, fx, n = {}, 0.0, (0.0, ""), 0
        for key, v in results.items():
            m, c, r = key.split("|", 2)
            if (m, c) not in done or not r.startswith(f"cand-{prec}-"):
                continue
            n += 1
            fl = results.get(f"{m}|{c}|ref64", {}).get("rel_l2", {})
            ca = clean_at.setdefault((prec, m, c), {})
            for tap, x in v["rel_l2"].items():
                ca[tap] = max(ca.get(tap, 0.0), x)
                if tap == "mel":
                    mel = max(mel, x)
                    continue
                for kd in tap_groups(tap):
                    if x > kinds.get(kd, (0.0,))[0]:
                        kinds[kd] = (x, f"{tap}, {m} {c} {r[5:]}")
                if fl.get(tap) and x / fl[tap] > fx[0]:
                    fx = (x / fl[tap], f"{tap}, {m} {c} {r[5:]}")
        if not n:
            continue
        print(f"## {prec}: candidate against the float32 reference, {n} runs (both ISA paths, "
              f"2 threads); fail = {k:g} x clean worst, warn = 2 x (rounded up)\n")
        print("| tap kind | clean worst rel L2 | where | warn | fail |\n|---|---|---|---|---|")
        fx_fail, fx_warn = round_up(k * fx[0]), round_up(2 * fx[0])
        rules = []
        kind_limit[prec] = {}
        # kinds first (execution order of the first run), then block 0's own taps, which override
        order = [kd for kd in kinds if "*" in kd or "blocks" not in kd] + \
                [kd for kd in kinds if "blocks.0." in kd]
        for kd in order:
            x, where = kinds[kd]
            lim, warn = round_up(k * x), round_up(2 * x)
            kind_limit[prec][kd] = lim
            print(f"| {kd} | {x:.3g} | {where} | {warn:.2g} | {lim:.2g} |")
            rules.append({"taps": kd, "comment": f"clean worst {x:.3g} ({where})",
                          "warn": {"rel_l2": {"max": warn, "max_floor": fx_warn}},
                          "fail": {"rel_l2": {"max": lim, "max_floor": fx_fail}}})
        print(f"\nmel (float32 front end in every precision): clean worst {mel:.3g}. Worst floor "
              f"multiple (not mel): {fx[0]:.4g} ({fx[1]}): max_floor {k:g} x = "
              f"{round_up(k * fx[0]):.2g}, warn 2 x = {round_up(2 * fx[0]):.2g}\n")
        if args.write_profiles:
            write_profile(prec, rules, f32, k, n, mel, fx)
    if "bfloat16" not in kind_limit:
        return
    lims = kind_limit["bfloat16"]
    limit_of = lambda t: mel_limit if t == "mel" else lims[tap_groups(t)[-1]]
    print(f"### Faults in bfloat16 at their first tap, against the bfloat16 limits above (mel: "
          f"the float32 profile's {mel_limit:.3g})\n")
    print("| fault | first tap | limit there | fault rel L2 there (min .. max) | clean bfloat16 "
          "there (max) | min / limit | max / limit | first tap beyond the limits, per clip |")
    print("|---|---|---|---|---|---|---|---|")
    for spec, tap in faults:
        vals, cleans, firsts = [], [], {}
        for key, v in results.items():
            m, c, r = key.split("|", 2)
            if (m, c) not in done or r != "fault-bfloat16:" + spec or tap not in v["rel_l2"]:
                continue
            vals.append(v["rel_l2"][tap])
            cleans.append(clean_at.get(("bfloat16", m, c), {}).get(tap, float("nan")))
            first = next((t for t, x in v["rel_l2"].items() if x > limit_of(t)), "-")
            firsts.setdefault(first, []).append(f"{m} {c}")
        if not vals:
            continue
        show = "; ".join(f"{t}: {', '.join(w)}" for t, w in sorted(firsts.items()))
        lim = limit_of(tap)
        print(f"| {spec} | {tap} | {lim:.2g} | {min(vals):.3g} .. {max(vals):.3g} | "
              f"{max(cleans):.3g} | {min(vals) / lim:.2f} | {max(vals) / lim:.2f} | {show} |")


def svg_plot(path, clean_pts, fault_pts, limit, warn):
    """Strip plot on a log10 axis: one row per source, clean (blue) and faults (red)."""
    rows = [(n, v, "#1f5fbf") for n, v in clean_pts] + [(n, v, "#c0392b") for n, v in fault_pts]
    lo, hi = -8, 2
    W, left, right, top, rh = 900, 260, 20, 30, 16
    H = top + rh * len(rows) + 40
    x = lambda v: left + (math.log10(max(v, 10 ** lo)) - lo) / (hi - lo) * (W - left - right)
    s = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
         f'font-family="sans-serif" font-size="11">',
         f'<text x="{left}" y="16" font-size="13">rel L2 at the judged tap (log scale): clean '
         f'worst per run (blue), fault smallest at its first tap (red)</text>']
    for e in range(lo, hi + 1):
        xe = x(10 ** e)
        s.append(f'<line x1="{xe:.1f}" y1="{top}" x2="{xe:.1f}" y2="{H - 30}" stroke="#ddd"/>')
        s.append(f'<text x="{xe:.1f}" y="{H - 15}" text-anchor="middle">1e{e}</text>')
    for i, (name, vals, col) in enumerate(rows):
        y = top + rh * i + rh / 2
        s.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{name}</text>')
        for v in vals:
            s.append(f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="3" fill="{col}" fill-opacity="0.5"/>')
    for v, col, lab in ((limit, "#000", "fail"), (warn, "#888", "warn")):
        s.append(f'<line x1="{x(v):.1f}" y1="{top}" x2="{x(v):.1f}" y2="{H - 30}" stroke="{col}" '
                 f'stroke-dasharray="4,3"/>')
        s.append(f'<text x="{x(v) + 3:.1f}" y="{top - 2}" fill="{col}">{lab} {v:.2g}</text>')
    s.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(s) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wb", default=os.path.join(ROOT, "build", "wb"))
    ap.add_argument("--clips", type=int, default=30, help="held-out clips (clip000...) for the "
                    "candidate's clean runs on the narrowest vector ISA path (1 thread) and the "
                    "widest (2 threads)")
    ap.add_argument("--full-clips", type=int, default=10, help="of these, the first ones that "
                    "also get every clean run (every ISA path x threads 1, 2; float64 reference) and "
                    "every fault")
    ap.add_argument("--work", default="/dev/shm/wb-cal")
    ap.add_argument("--extra", nargs="*", default=[], help="more fault specs SPEC:FIRST_TAP")
    ap.add_argument("--limit", type=float, help="fail limit to draw and to compute margins for "
                    "(default: geometric middle of clean worst and smallest caught fault)")
    ap.add_argument("--warn", type=float, help="warn limit to draw (default: 2 x clean worst)")
    ap.add_argument("--below-floor", nargs="*", default=[],
                    help="fault specs documented as below the float32 floor (not used for the limit)")
    ap.add_argument("--report-only", action="store_true", help="print from the cache only")
    ap.add_argument("--clip-start", type=int, default=0, help="first held-out clip to run")
    ap.add_argument("--heldout-only", action="store_true",
                    help="skip the tone runs (a second process sharing the work: --work elsewhere)")
    ap.add_argument("--precisions", nargs="*", default=[],
                    help="reduced-precision calibration instead: candidate runs in these "
                    "precisions (bfloat16 float16), faults in bfloat16; tables for the "
                    "reduced-precision profiles")
    ap.add_argument("--rp-fault-clips", type=int, default=2,
                    help="held-out clips that also get every fault in bfloat16 (with --precisions)")
    ap.add_argument("--rp-k", type=float, default=3.0, help="reduced-precision fail limit per tap "
                    "kind = clean worst x k (rounded up)")
    ap.add_argument("--write-profiles", action="store_true", help="with --precisions: write "
                    "fixtures/profiles/bfloat16.json and float16.json")
    ap.add_argument("--merge", nargs="*", default=[], help="more results.json caches to read")
    args = ap.parse_args()
    args.wb = os.path.abspath(args.wb)
    read_info(args.wb)
    os.makedirs(args.work, exist_ok=True)
    cache = args.cache = os.path.join(args.work, "results.json")
    results = json.load(open(cache)) if os.path.exists(cache) else {}
    for extra in args.merge:
        for k, v in json.load(open(extra)).items():
            results.setdefault(k, v)

    rc, out = run([args.wb, "faults", "--json"])
    faults = [(e["spec"], e["first_tap"]) for f in json.loads(out) for e in f["examples"]]
    faults += [tuple(x.rsplit(":", 1)) for x in args.extra]
    tone_wav = os.path.join(args.work, "tone.wav")
    if not os.path.exists(tone_wav):
        tone(tone_wav)
    models = [("trained", os.path.join(ROOT, "fixtures", "trained"))]
    for dims in ("nano", "tiny"):
        d = os.path.join(args.work, f"model-{dims}")
        if not os.path.exists(d):
            rc, out = run([args.wb, "fixture-model", "--dims", dims, "--seed", "1", "-o", d])
            if rc:
                raise RuntimeError(out)
        models.append((f"random-{dims}", d))
    clips = [("tone", tone_wav)] + [(f"clip{i:03d}", heldout_clip(i)) for i in range(args.clips)]
    plan = [(m, p, "tone", tone_wav) for m, p in models] + \
           [(models[0][0], models[0][1], c, a) for c, a in clips[1:]]
    if args.precisions:
        if not args.report_only:
            for m, p, c, a in plan:
                print(f"{m} {c}", file=sys.stderr)
                measure_reduced(args, results, m, p, c, a, faults,
                                c == "tone" or int(c[4:]) < args.rp_fault_clips)
        report_reduced(args, results, {(m, c) for m, _, c, _ in plan}, faults)
        return
    if not args.report_only:
        for i, (m, p, c, a) in enumerate(plan):
            if c == "tone" and args.heldout_only or c != "tone" and int(c[4:]) < args.clip_start:
                continue
            print(f"{m} {c}", file=sys.stderr)
            full = c == "tone" or int(c[4:]) < args.full_clips
            measure(args, results, m, p, c, a, faults, full)

    # ---- tables ----
    done = {(m, c) for m, _, c, _ in plan}
    clean_worst = {}   # tap -> (value, where)
    per_run = {}       # run label -> list of per-(model,clip) worst over taps
    for k, v in results.items():
        m, c, r = k.split("|", 2)
        if (m, c) not in done or r.startswith("fault:") or reduced(r):
            continue
        label = f"{m.split('-')[0] if m == 'trained' else m} {r}"
        per_run.setdefault(label, []).append(max(v["rel_l2"].values()))
        for tap, x in v["rel_l2"].items():
            if tap not in clean_worst or x > clean_worst[tap][0]:
                clean_worst[tap] = (x, f"{m} {c} {r}")
    fault_min = {}     # spec -> (value, where, tap, n, firsts)
    for k, v in results.items():
        m, c, r = k.split("|", 2)
        if (m, c) not in done or not r.startswith("fault:"):
            continue
        spec = r[6:]
        if spec not in dict(faults):
            continue
        tap = dict(faults)[spec]
        x = v["rel_l2"].get(tap)
        if x is None:
            continue
        cur = fault_min.get(spec)
        vals = (cur[3] if cur else []) + [(x, f"{m} {c}")]
        best = min(vals)
        fault_min[spec] = (best[0], best[1], tap, vals)
    n_clips = len({c for m, c in done if m == "trained"})
    clean_all = max(v for v, _ in clean_worst.values())
    caught = {s: v for s, v in fault_min.items() if s not in args.below_floor}
    if not caught:
        print("no fault measured yet (run without --heldout-only, or --merge its cache)")
        return
    fault_best = min(v[0] for v in caught.values())
    limit = args.limit or math.sqrt(clean_all * fault_best)
    print(f"## Calibration: trained fixture on tone + {n_clips - 1} held-out clips; "
          f"random nano and tiny on the tone\n")
    print("### Clean side: worst rel L2 per tap over every clean run\n")
    print("| tap | worst rel L2 | where |\n|---|---|---|")
    for tap, (x, where) in sorted(clean_worst.items(), key=lambda t: -t[1][0]):
        print(f"| {tap} | {x:.3g} | {where} |")
    print("\n### Clean side per run: worst over taps, max (median) over clips\n")
    print("| run | clips | max | median |\n|---|---|---|---|")
    for label, vals in sorted(per_run.items()):
        vs = sorted(vals)
        print(f"| {label} | {len(vs)} | {vs[-1]:.3g} | {vs[len(vs) // 2]:.3g} |")
    print("\n### Fault side: smallest rel L2 at the expected first tap\n")
    print("| fault | first tap | smallest | where | median | clean worst at that tap | "
          "k = smallest / limit |\n|---|---|---|---|---|---|---|")
    for spec, (x, where, tap, vals) in sorted(fault_min.items(), key=lambda t: t[1][0]):
        vs = sorted(v for v, _ in vals)
        mark = " (below floor)" if spec in args.below_floor else ""
        cw = clean_worst.get(tap, (float("nan"),))[0]
        print(f"| {spec}{mark} | {tap} | {x:.3g} | {where} | {vs[len(vs) // 2]:.3g} | {cw:.3g} | "
              f"{x / limit:.2f} |")
    # Floor multiples (what --floor judges): a run's rel L2 over the float64 reference's rel L2
    # at the same tap of the same clip (ref64 is measured against the same float32 reference).
    fx_clean, fx_fault = [], {}
    for k, v in results.items():
        m, c, r = k.split("|", 2)
        fl = results.get(f"{m}|{c}|ref64")
        if (m, c) not in done or r == "ref64" or not fl or reduced(r):
            continue
        ratios = [(x / fl["rel_l2"][t], t) for t, x in v["rel_l2"].items() if fl["rel_l2"].get(t)]
        if r.startswith("fault:"):
            tap = dict(faults).get(r[6:])
            for x, t in ratios:
                if t == tap and (r[6:] not in fx_fault or x < fx_fault[r[6:]][0]):
                    fx_fault[r[6:]] = (x, f"{m} {c}")
        elif ratios:
            fx_clean.append((max(ratios)[0], max(ratios)[1], f"{m} {c} {r}"))
    if fx_clean:
        w = max(fx_clean)
        print(f"\n### Floor multiples (rel L2 / the float64 reference's rel L2 at the same tap)\n")
        print(f"clean worst: {w[0]:.3g} x floor ({w[1]}, {w[2]}); over {len(fx_clean)} runs\n")
        print("| fault | smallest floor multiple at its tap |\n|---|---|")
        for spec, (x, where) in sorted(fx_fault.items(), key=lambda t: t[1][0]):
            print(f"| {spec} | {x:.3g} ({where}) |")
    print(f"\nclean worst {clean_all:.3g}; smallest caught fault {fault_best:.3g}; "
          f"limit {limit:.3g}; k_clean = limit / clean worst = {limit / clean_all:.2f}; "
          f"k_fault = fault best / limit = {fault_best / limit:.2f}")
    svg_plot(os.path.join(args.work, "calibration.svg"),
             sorted(per_run.items()),
             [(s, [v for v, _ in fault_min[s][3]]) for s in sorted(fault_min, key=lambda s: fault_min[s][0])],
             limit, args.warn or 2 * clean_all)


if __name__ == "__main__":
    main()
