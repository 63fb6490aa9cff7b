"""``gazex synth``: write N synthetic chest X-ray studies with reports and simulated gaze."""

from __future__ import annotations

import argparse
import os


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def add_synth_command(subparsers: argparse._SubParsersAction) -> None:
    from .study import DEFAULT_SIZE

    parser = subparsers.add_parser("synth", help="generate synthetic studies (DICOM, reports, REFLACX-style gaze)")
    parser.add_argument("--n", type=_positive_int, required=True, help="number of studies")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical output)")
    parser.add_argument("--size", type=_positive_int, default=DEFAULT_SIZE, help=f"image height in px (default {DEFAULT_SIZE})")
    parser.add_argument("--workers", type=_positive_int, default=os.cpu_count() or 1, help="worker processes (default: CPU count)")
    parser.add_argument("--raw-gaze", action="store_true", help="also write 1000 Hz gaze.csv per reading")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.set_defaults(handler=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    from .generator import generate

    out = generate(args.n, args.out, seed=args.seed, size=args.size, workers=args.workers, raw_gaze=args.raw_gaze)
    print(f"wrote {args.n} studies to {out}")
    return 0
