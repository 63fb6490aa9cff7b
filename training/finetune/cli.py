"""``gazex finetune`` and ``gazex models list | promote ID | rollback``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--database-url", "--url", dest="database_url", default=None,
                   help="database URL (default: GAZEX_DATABASE_URL or the SQLite file under the data directory)")
    p.add_argument("--data-dir", default=None, help="data directory (SQLite file, adapters/, benchmarks/); "
                                                    "default GAZEX_DATA_DIR or ~/.gazex")


def add_finetune_command(subparsers: argparse._SubParsersAction) -> None:
    from .params import TARGET_SCOPES, FinetuneParams, LoraParams

    d, dl = FinetuneParams(), LoraParams()
    p = subparsers.add_parser("finetune", help="LoRA re-fine-tuning of the active model on signed-off corrections",
                              description="LoRA re-fine-tuning of the active model on radiologists' corrections "
                                          "(see docs/finetune.md)")
    _common(p)
    p.add_argument("--since-version", type=int, default=None,
                   help="use reviews of drafts by this model version id or later (default: the active version)")
    p.add_argument("--rank", type=int, default=dl.rank, help="LoRA rank")
    p.add_argument("--alpha", type=float, default=dl.alpha, help="LoRA alpha (scale = alpha / rank)")
    p.add_argument("--dropout", type=float, default=dl.dropout, help="LoRA dropout")
    p.add_argument("--scope", choices=sorted(TARGET_SCOPES), default=dl.scope,
                   help="attention projections (q/k/v/o_proj) to adapt: decoder (default) or all")
    p.add_argument("--epochs", type=int, default=dl.epochs)
    p.add_argument("--lr", type=float, default=dl.lr)
    p.add_argument("--batch-size", type=int, default=dl.batch_size)
    p.add_argument("--dpo-weight", type=float, default=dl.dpo_weight, help="weight of the preference (DPO) loss")
    p.add_argument("--dpo-beta", type=float, default=dl.dpo_beta)
    p.add_argument("--min-corrections", type=int, default=d.min_corrections,
                   help="refuse to train with fewer corrected reviews")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="held-out fraction for studies seen for the first time (earlier assignments never move)")
    p.add_argument("--tolerance", type=float, default=d.tolerance,
                   help="allowed drop of benchmark macro-F1 for a promotable candidate")
    p.add_argument("--min-improvement", type=float, default=d.min_improvement)
    p.add_argument("--benchmark-n", type=int, default=d.benchmark_n)
    p.add_argument("--benchmark-seed", type=int, default=d.benchmark_seed)
    p.add_argument("--benchmark-size", type=int, default=d.benchmark_size, help="benchmark image height in px")
    p.add_argument("--promote", action="store_true", help="promote the candidate when it passes the gate")
    p.add_argument("--threads", type=int, default=d.threads,
                   help="torch threads inside the run (fixed, so the same inputs give the same adapter; 0 = torch default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the finished run row as JSON")
    q = p.add_argument_group("qwen2-vl backbone (docs/full_scale.md)")
    q.add_argument("--backbone", choices=["gazex-tiny", "qwen2-vl"], default="gazex-tiny")
    q.add_argument("--model", default=None, help="qwen2-vl: the adapter (or base) directory to continue")
    q.add_argument("--out", default=None, help="qwen2-vl: directory for the new adapter")
    q.add_argument("--steps", type=int, default=200, help="qwen2-vl: optimiser steps")
    p.set_defaults(handler=finetune_main)


def params_from_args(args: argparse.Namespace):
    from .params import FinetuneParams, LoraParams

    lora = LoraParams(rank=args.rank, alpha=args.alpha, dropout=args.dropout, scope=args.scope, epochs=args.epochs,
                      lr=args.lr, batch_size=args.batch_size, dpo_weight=args.dpo_weight, dpo_beta=args.dpo_beta,
                      seed=args.seed)
    return FinetuneParams(lora=lora, since_version=args.since_version, min_corrections=args.min_corrections,
                          val_fraction=args.val_fraction, tolerance=args.tolerance,
                          min_improvement=args.min_improvement, promote=args.promote,
                          benchmark_n=args.benchmark_n, benchmark_seed=args.benchmark_seed,
                          benchmark_size=args.benchmark_size, threads=args.threads)


def _open(args: argparse.Namespace):
    from annotations_db.engine import default_data_dir
    from annotations_db.service import ReviewService

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    return ReviewService.open(args.database_url, data_dir=str(data_dir)), data_dir


def finetune_main(args: argparse.Namespace) -> int:
    from .job import FinetuneInputError, run_finetune

    if args.backbone == "qwen2-vl":
        return _finetune_qwen2vl(args)
    service, data_dir = _open(args)
    try:
        run = run_finetune(service, data_dir, params_from_args(args))
    except FinetuneInputError as exc:
        print(f"gazex finetune: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        service.close()
    gate = run["metrics"].get("gate", {})
    print(f"run {run['id']} {run['status']}: candidate version {run['candidate_model_version_id']}; "
          f"{run['message']}")
    print(metrics_table(run["metrics"]))
    if args.json:
        print(json.dumps(run, default=str))
    return 0


def _finetune_qwen2vl(args: argparse.Namespace) -> int:
    from gazex_core.qwen2vl import ModelMismatch, ModelNotFound
    from training.qwen_train import QwenTrainParams

    from .job import FinetuneInputError
    from .qwen import finetune_qwen2vl

    if not args.model or not args.out:
        print("gazex finetune: --backbone qwen2-vl needs --model DIR and --out DIR", file=sys.stderr)
        return EXIT_BAD_INPUT
    service, _ = _open(args)
    try:
        params = QwenTrainParams(base_model=args.model, data="", out=args.out, steps=args.steps, lr=args.lr,
                                 seed=args.seed)
        result = finetune_qwen2vl(service, args.model, args.out, params, parent_version_id=args.since_version)
    except (FinetuneInputError, ModelNotFound, ModelMismatch) as exc:
        print(f"gazex finetune: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        service.close()
    print(f"candidate version {result['model_version_id']}: adapter {result['adapter']} "
          f"({result['records']} records from corrections)")
    return 0


def metrics_table(summary: dict) -> str:
    """Before/after as a Markdown table."""
    rows = comparison_rows(summary)
    lines = ["| metric | base | adapted |", "|---|---|---|"]
    lines += [f"| {name} | {_fmt(a)} | {_fmt(b)} |" for name, a, b in rows]
    return "\n".join(lines)


COMPARED = (("corrections", "deleted_recurrence"), ("corrections", "overcall_rate"), ("corrections", "box_iou"),
            ("corrections", "sentence_agreement"), ("corrections", "label_f1"), ("corrections", "correction_score"),
            ("benchmark", "report_label_macro_f1"), ("benchmark", "finding_head_macro_f1"))


def comparison_rows(summary: dict) -> list[tuple[str, float | None, float | None]]:
    before, after = summary.get("before") or {}, summary.get("after") or {}
    return [(f"{group}: {key}", (before.get(group) or {}).get(key), (after.get(group) or {}).get(key))
            for group, key in COMPARED]


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------ models


def add_models_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("models", help="model version registry: list, promote, rollback")
    commands = p.add_subparsers(dest="models_command", required=True)
    lst = commands.add_parser("list", help="list model versions")
    _common(lst)
    lst.set_defaults(handler=models_list)
    pro = commands.add_parser("promote", help="make a version active (refused if it failed its gate, unless --force)")
    _common(pro)
    pro.add_argument("version_id", type=int)
    pro.add_argument("--force", action="store_true", help="promote even though the candidate failed its gate")
    pro.set_defaults(handler=models_promote)
    rb = commands.add_parser("rollback", help="re-activate the active version's parent")
    _common(rb)
    rb.set_defaults(handler=models_rollback)


def models_list(args: argparse.Namespace) -> int:
    from .registry import version_rows

    service, _ = _open(args)
    try:
        rows = version_rows(service)
    finally:
        service.close()
    print(f"{'id':>4}  {'status':<9} {'parent':>6}  {'version':<28} {'gate':<6} path")
    for r in rows:
        print(f"{r['id']:>4}  {r['status']:<9} {r['parent'] or '-':>6}  {r['version']:<28} {r['gate']:<6} {r['path']}")
    return 0


def models_promote(args: argparse.Namespace) -> int:
    from annotations_db.service import ReviewError

    from .registry import promote

    service, _ = _open(args)
    try:
        version = promote(service, args.version_id, force=args.force)
    except ReviewError as exc:
        print(f"gazex models promote: {exc}", file=sys.stderr)
        return 1
    finally:
        service.close()
    print(f"version {version.id} ({version.version}) is active")
    return 0


def models_rollback(args: argparse.Namespace) -> int:
    from annotations_db.service import ReviewError

    service, _ = _open(args)
    try:
        version = service.rollback_model_version()
    except ReviewError as exc:
        print(f"gazex models rollback: {exc}", file=sys.stderr)
        return 1
    finally:
        service.close()
    print(f"rolled back: version {version.id} ({version.version}) is active")
    return 0
