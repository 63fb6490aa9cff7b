"""``gazex train`` and ``gazex evaluate`` (the model's training and evaluation commands)."""

from __future__ import annotations

import argparse


def _train(args: argparse.Namespace) -> int:
    from training.train import main

    return main(args)


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import main

    return main(args)


def add_model_commands(subparsers: argparse._SubParsersAction) -> None:
    from training.train import add_arguments

    p = subparsers.add_parser("train", help="train the GazeX model (CPU by default)")
    add_arguments(p)
    p.set_defaults(handler=_train)

    e = subparsers.add_parser("evaluate", help="evaluate a GazeX model on a dataset's test split")
    e.add_argument("--model", default=None, help="model directory (default: the shipped checkpoint)")
    e.add_argument("--data", required=True, help="dataset directory (gazex synth --out DIR)")
    e.add_argument("--out", required=True, help="directory for metrics.json and metrics.md")
    e.add_argument("--cache", default=None, help="preprocessed cache directory (default DATA/cache)")
    e.add_argument("--split", default="test")
    e.add_argument("--limit", type=int, default=0, help="evaluate only the first N studies of the split")
    e.add_argument("--threads", type=int, default=0)
    e.add_argument("--questions-per-study", type=int, default=4)
    e.set_defaults(handler=_evaluate)
