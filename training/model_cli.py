"""``gazex train``, ``gazex train-heads``, ``gazex train-second-look``, ``gazex train-gaze-head``, ``gazex train-gaze-report``
and ``gazex evaluate`` (the model's training and evaluation commands)."""

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


def _train_heads(args: argparse.Namespace) -> int:
    import json

    from gazex_core.checkpoint import DEFAULT_MODEL_DIR
    from training.attribute_head import MIN_EXAMPLES, train_heads

    summary = train_heads(args.model or DEFAULT_MODEL_DIR, args.data, args.out, args.cache, args.epochs, args.lr, args.weight_decay,
                          args.batch_size, args.seed, args.threads, args.limit,
                          MIN_EXAMPLES if args.min_examples is None else args.min_examples)
    print(json.dumps(summary, indent=2))
    return 0


def _train_second_look(args: argparse.Namespace) -> int:
    import json

    from gazex_core.checkpoint import DEFAULT_MODEL_DIR
    from training.second_look import train_second_look

    channels = tuple(int(c) for c in args.channels.split(","))
    spec = train_second_look(args.model or DEFAULT_MODEL_DIR, args.data, args.out, args.cache, args.image_size, channels,
                             args.epochs, args.lr, args.weight_decay, args.batch_size, args.shift, args.seed,
                             args.threads, args.limit, args.workers, args.reuse, args.start)
    print(json.dumps(spec, indent=2))
    return 0


def _train_gaze_head(args: argparse.Namespace) -> int:
    import json

    from gazex_core.checkpoint import DEFAULT_MODEL_DIR
    from training.gaze_head import train_gaze_head

    spec = train_gaze_head(args.model or DEFAULT_MODEL_DIR, args.data, args.out, args.cache, args.points, args.epochs,
                           args.lr, args.weight_decay, args.batch_size, args.seed, args.threads, args.limit)
    print(json.dumps(spec, indent=2))
    return 0


def _train_gaze_report(args: argparse.Namespace) -> int:
    import json

    from gazex_core.checkpoint import DEFAULT_MODEL_DIR
    from training.gaze_report import train_gaze_report

    summary = train_gaze_report(args.model or DEFAULT_MODEL_DIR, args.data, args.out, args.cache, args.steps, args.lr,
                                args.batch_size, seed=args.seed, threads=args.threads, limit=args.limit)
    print(json.dumps(summary, indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import main

    return main(args)


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True, help="dataset directory (gazex synth --out DIR)")
    p.add_argument("--out", required=True, help="model directory to write (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--cache", default=None, help="preprocessed cache directory (default DATA/cache)")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--d-model", type=int, default=128)
    p.add_argument("--n-heads", type=int, default=4)
    p.add_argument("--encoder-layers", type=int, default=2)
    p.add_argument("--stem-channels", default="16,32,64", help="conv stem widths (the last stage is d-model)")
    p.add_argument("--decoder-layers", type=int, default=3)
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--max-len", type=int, default=320)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--short-per-image", type=int, default=3)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--steps", type=int, default=0, help="total steps (overrides --epochs)")
    p.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (default: one epoch)")
    p.add_argument("--val-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--task-weights", default=None, help="e.g. report=0.9,plain=0.1,ground=0.35,vqa=0.45,order=0.2")
    p.add_argument("--no-gaze", action="store_true", help="gaze ablation: no trajectory tokens, no ordering task")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--workers", type=int, default=1, help="processes for the cache build")
    p.add_argument("--limit", type=int, default=None, help="use only the first N studies (smoke runs)")
    p.add_argument("--time-budget-min", type=float, default=0,
                   help="shrink the step count (and the cosine schedule) to fit this wall time, measured after 20 steps")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--fp16", action=argparse.BooleanOptionalAction, default=True, help="store weights in fp16")


def _add_beside_model_arguments(p: argparse.ArgumentParser,
                                data_help: str = "dataset directory (gazex synth --out DIR)") -> None:
    """The arguments of a command that trains one part beside an existing checkpoint and writes the result."""
    p.add_argument("--model", default=None, help="full checkpoint directory (default: the shipped checkpoint)")
    p.add_argument("--data", required=True, help=data_help)
    p.add_argument("--out", default=None, help="model directory to write (default: --model, in place)")
    p.add_argument("--cache", default=None, help="preprocessed cache directory (default DATA/cache)")


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N studies (smoke runs)")


def add_model_commands(subparsers: argparse._SubParsersAction) -> None:
    from training.qwen_train import add_arguments as add_qwen_arguments

    p = subparsers.add_parser("train", help="train the GazeX model (CPU by default)")
    add_train_arguments(p)
    p.add_argument("--backbone", choices=["gazex-tiny", "qwen2-vl"], default="gazex-tiny",
                   help="gazex-tiny (this repo's CPU model) or qwen2-vl (the paper's recipe; --data is an export-sft dir)")
    add_qwen_arguments(p)
    p.set_defaults(handler=_train)

    h = subparsers.add_parser("train-heads", help="train the severity / side head on the frozen encoder (minutes on CPU)")
    _add_beside_model_arguments(h)
    h.add_argument("--epochs", type=int, default=40)
    h.add_argument("--lr", type=float, default=2e-3)
    h.add_argument("--weight-decay", type=float, default=0.01)
    h.add_argument("--batch-size", type=int, default=64)
    _add_run_arguments(h)
    h.add_argument("--min-examples", type=int, default=None,
                   help="training examples each severity grade (or a side) needs before the head answers for a label (20)")
    h.set_defaults(handler=_train_heads)

    s = subparsers.add_parser("train-second-look",
                              help="train a second look at a larger copy of the image beside the frozen model (CPU, ~20 min)")
    _add_beside_model_arguments(s)
    s.add_argument("--image-size", type=int, default=256, help="the second look's input size in pixels")
    s.add_argument("--channels", default="8,16,32,64", help="its conv stages' widths (each halves the size)")
    s.add_argument("--epochs", type=int, default=20)
    s.add_argument("--lr", type=float, default=3e-3)
    s.add_argument("--weight-decay", type=float, default=0.05)
    s.add_argument("--batch-size", type=int, default=32)
    s.add_argument("--shift", type=int, default=8, help="random shift of each training image, in pixels")
    s.add_argument("--workers", type=int, default=1, help="processes for the cache build")
    _add_run_arguments(s)
    s.add_argument("--reuse", default=None,
                   help="a model directory whose trained second look is kept as it is: only the per-label choices are made again")
    s.add_argument("--start", default=None,
                   help="a model directory whose trained second look is trained further (instead of from scratch)")
    s.set_defaults(handler=_train_second_look)

    g = subparsers.add_parser("train-gaze-head",
                              help="train where readers look per region, from the study's anatomy, beside the frozen model (CPU, ~2 min)")
    _add_beside_model_arguments(g, data_help="dataset directory with reader gaze (gazex synth --out DIR)")
    g.add_argument("--points", type=int, default=3, help="points per region (a normal statement's key frames)")
    g.add_argument("--epochs", type=int, default=30)
    g.add_argument("--lr", type=float, default=3e-3)
    g.add_argument("--weight-decay", type=float, default=0.01)
    g.add_argument("--batch-size", type=int, default=64)
    _add_run_arguments(g)
    g.set_defaults(handler=_train_gaze_head)

    r = subparsers.add_parser("train-gaze-report",
                              help="fine-tune the decoder to write each sentence from its region and key frames (task e)")
    _add_beside_model_arguments(r, data_help="dataset directory with reader gaze (gazex synth --out DIR)")
    r.add_argument("--steps", type=int, default=300)
    r.add_argument("--lr", type=float, default=3e-4)
    r.add_argument("--batch-size", type=int, default=16)
    _add_run_arguments(r)
    r.set_defaults(handler=_train_gaze_report)

    e = subparsers.add_parser("evaluate", help="evaluate a GazeX model on a dataset's test split")
    e.add_argument("--model", default=None, help="model directory (default: the shipped checkpoint)")
    e.add_argument("--data", required=True, help="dataset directory (gazex synth --out DIR)")
    e.add_argument("--out", required=True, help="directory for metrics.json and metrics.md")
    e.add_argument("--cache", default=None, help="preprocessed cache directory (default DATA/cache)")
    e.add_argument("--split", default="test")
    e.add_argument("--limit", type=int, default=0, help="evaluate only the first N studies of the split")
    e.add_argument("--threads", type=int, default=0)
    e.add_argument("--questions-per-study", type=int, default=4)
    e.add_argument("--looks", type=int, default=0,
                   help="also draft the first N studies from their first reader's looks, in order and reversed (task e)")
    e.set_defaults(handler=_evaluate)
