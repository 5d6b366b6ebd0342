"""The `wbdump` command.

    wbdump check DUMP.h5             validate as `wb` does; exit 0 ok, 2 refused
    wbdump taps --dims tiny          list the registry (names, shapes, layouts)
    wbdump taps --config DIR|FILE    ... for the dims of an HF directory or a ggml file
    wbdump port-check CMD [--reference ref.h5] [--audio WAV] [--model M] [--timeout S] [--json F]
                                     drive a port through the protocol (docs/ports.md); exit 0
                                     ok, 1 protocol or validation failure, 2 bad usage

`python3 -m wbdump` is the same command.
"""
from __future__ import annotations

import argparse
import sys

from .dump import TOOL_VERSION, ModelDims, decoder_taps, encoder_taps, open_dump
from .port_check import port_check


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(2)


def main(argv=None) -> int:
    ap = _Parser(prog="wbdump", description="whisper-fidelity/1 dumps and the port protocol")
    ap.add_argument("--version", action="version", version=TOOL_VERSION)
    sub = ap.add_subparsers(dest="cmd", required=True, parser_class=_Parser)
    c = sub.add_parser("check", help="validate a dump as wb does (exit 0 ok, 2 refused)")
    c.add_argument("dump")
    t = sub.add_parser("taps", help="list the tap registry for some dims")
    g = t.add_mutually_exclusive_group(required=True)
    g.add_argument("--dims", help="preset: nano, tiny, base, small, medium, large, large-v3")
    g.add_argument("--config", help="HF directory / config.json or ggml file")
    t.add_argument("--decoder-tokens", type=int, default=0, help="also list decoder taps")
    p = sub.add_parser("port-check", help="drive a port through every request it declares "
                       "(exit 0 ok, 1 protocol/validation failure, 2 bad usage)")
    p.add_argument("command", help="the port's command line (run with sh -c)")
    p.add_argument("--reference", help="a reference dump: rel L2 per stage, fed its inputs")
    p.add_argument("--audio", help="16 kHz WAV (FLAC with soundfile) for run and frontend; "
                   "default a synthetic tone, not compared")
    p.add_argument("--model", help="sent in hello; the port's dims must equal its dims")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per request (300)")
    p.add_argument("--json", help="write the results (rel L2 per stage and tap) to this file")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "port-check":
            if not a.timeout > 0:
                ap.error("--timeout must be > 0")
            return port_check(a.command, reference=a.reference, audio=a.audio, model=a.model,
                              timeout=a.timeout, json_out=a.json)
        if a.cmd == "check":
            d = open_dump(a.dump)
            print(f"{d.path}: ok, {len(d.taps)} taps, implementation {d.attrs['implementation']}, "
                  f"dims {d.dims.to_json()}")
            return 0
        dims = ModelDims.preset(a.dims) if a.dims else ModelDims.from_checkpoint(a.config)
        specs = encoder_taps(dims) + (decoder_taps(dims, a.decoder_tokens) if a.decoder_tokens else [])
        for s in specs:
            print(f"{s.name:<36} {str(list(s.shape)):>14}  {s.layout}")
        return 0
    except BrokenPipeError:
        return 0
    except (ValueError, OSError) as e:
        print(f"wbdump: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
