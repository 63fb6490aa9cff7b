"""``gazex train`` and ``gazex evaluate`` (the model's training and evaluation commands)."""

from __future__ import annotations

import argparse


def _train(args: argparse.Namespace) -> int:
    if args.backbone == "qwen2-vl":
        return _train_qwen2vl(args)
    from training.train import main

    return main(args)


def _train_qwen2vl(args: argparse.Namespace) -> int:
    import sys

    from gazex_core.qwen2vl import ModelMismatch, ModelNotFound
    from training.qwen_train import params_from_args, train_qwen2vl
    from training.sft_export import ExportError

    try:
        train_qwen2vl(params_from_args(args))
    except (ModelNotFound, ModelMismatch, ExportError, ValueError) as exc:
        print(f"gazex train: {exc}", file=sys.stderr)
        return 2
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import main

    return main(args)


def add_model_commands(subparsers: argparse._SubParsersAction) -> None:
    from training.qwen_train import add_arguments as add_qwen_arguments
    from training.train import add_arguments

    p = subparsers.add_parser("train", help="train the GazeX model (CPU by default)")
    add_arguments(p)
    p.add_argument("--backbone", choices=["gazex-tiny", "qwen2-vl"], default="gazex-tiny",
                   help="gazex-tiny (this repo's CPU model) or qwen2-vl (the paper's recipe; --data is an export-sft dir)")
    add_qwen_arguments(p)
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
