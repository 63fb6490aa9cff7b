"""Fine-tuning on a simulated reader's corrections: time, adapter size, and whether the error goes away.

Usage: nice -n 10 .venv/bin/python benchmarks/bench_finetune.py [--checkpoint DIR] [--studies 250]
       [--strategy auto|overcall|box] [--label LABEL] [--repeats 3] [--epochs 4] [--threads 2]

1. a synthetic world (``--studies`` studies, seed 2024) is generated; the base model is ``--checkpoint``
   (default: the newest checkpoint under data/ or runs/, else gazex_core/weights/gazex-tiny); ``--flawed``:
   gazex-tiny taught here to over-call an old rib fracture on every study (the tests' flawed base);
2. every study is registered in a fresh SQLite review database with the base model's draft;
3. a simulated reader reviews every draft through ReviewService (as the UI does) and systematically
   corrects ONE error: ``overcall`` deletes sentences stating LABEL when the study does not have it,
   ``box`` moves LABEL's boxes onto the ground-truth box. ``auto`` picks the base model's most frequent
   over-call (on >= 15 % of studies), else the box of its most frequent boxed finding;
4. ``run_finetune`` (the code behind ``gazex finetune``): frozen 80/20 split, LoRA, before/after evaluation
   on the held-out reviews and on the fixed synthetic regression benchmark (100 studies, seed 12345);
5. the LoRA training alone is repeated ``--repeats`` times (seeds 0..) for the timing median and spread.

Prints a Markdown table (machine noted) for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # the simulated reader and the flawed model are test scaffolding

from annotations_db.service import ReviewService  # noqa: E402
from gazex_core.checkpoint import load_model, model_identity  # noqa: E402
from training.finetune import lora as lora_mod  # noqa: E402
from training.finetune.job import run_finetune  # noqa: E402
from training.finetune.metrics import block_label  # noqa: E402
from training.finetune.modelio import generate_reports, image_array, pixel_batch  # noqa: E402
from training.finetune.params import FinetuneParams, LoraParams  # noqa: E402
from finetune_simulation import SimulatedReader, make_flawed_model, read_studies, register_and_draft  # noqa: E402


def find_checkpoint() -> Path | None:
    found = [p.parent for root in (REPO / "data", REPO / "runs") if root.exists()
             for p in root.rglob("model.safetensors") if (p.parent / "tokenizer.json").exists()]
    if found:
        return max(found, key=lambda p: (p / "model.safetensors").stat().st_mtime)
    shipped = REPO / "gazex_core" / "weights" / "gazex-tiny"
    return shipped if (shipped / "config.json").exists() else None


def choose_error(model, tok, studies, strategy: str, label: str | None) -> tuple[str, str]:
    if strategy != "auto":
        return strategy, label or "Fracture"
    reports = generate_reports(model, tok, [image_array(s.image_path, model.config.image_size) for s in studies])
    over = Counter(lab for s, r in zip(studies, reports) for lab in {block_label(b) for b in r} - s.labels - {None})
    if over and over.most_common(1)[0][1] >= 0.15 * len(studies):
        return "overcall", over.most_common(1)[0][0]
    boxed = Counter(block_label(b) for s, r in zip(studies, reports) for b in r
                    if b.box is not None and block_label(b) in s.labels)
    return "box", boxed.most_common(1)[0][0]


def time_training(base_dir: Path, service, run_row, repeats: int, params: LoraParams) -> list[float]:
    from training.finetune.corrections import examples_from_reviews

    train_uids = set(run_row["split"]["train"])
    examples = [e for e in examples_from_reviews(service.signed_reviews_since(run_row["base_model_version_id"]))
                if e.study_uid in train_uids]
    times = []
    for seed in range(repeats):
        model, tok = load_model(base_dir)
        p = LoraParams(**{**params.__dict__, "seed": seed})
        arrays = [image_array(e.image_path, model.config.image_size) for e in examples]
        t0 = time.perf_counter()
        peft_model = lora_mod.wrap_lora(model, p)
        data = lora_mod.encode_examples(examples, tok, model.config.max_positions)
        lora_mod.LoraTrainer(peft_model, tok, pixel_batch(arrays), data, p).train()
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--flawed", action="store_true", help="use the flawed model trained here, not a checkpoint")
    ap.add_argument("--studies", type=int, default=250)
    ap.add_argument("--strategy", choices=("auto", "overcall", "box"), default="auto")
    ap.add_argument("--label", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (more is slower on a shared 2-core box)")
    ap.add_argument("--work", default=None, help="working directory (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench_finetune_"))
    started = datetime.now(timezone.utc)

    from training.synth import generate

    if not (work / "synth" / "metadata.csv").exists():
        generate(args.studies, work / "synth", seed=2024, size=256, workers=1, progress=True)
    studies = read_studies(work / "synth")
    base = None if args.flawed else (Path(args.checkpoint) if args.checkpoint else find_checkpoint())
    if base is None:
        base = work / "flawed"
        if not (base / "config.json").exists():
            make_flawed_model(studies, base)
    model, tok = load_model(base)
    strategy, label = choose_error(model, tok, studies, args.strategy, args.label)
    print(f"error to correct: {strategy} of {label}", flush=True)

    data_dir = work / f"db_{int(time.time())}"
    service = ReviewService.open(None, data_dir=str(data_dir))
    version = service.register_model_version("gazex", base.name, model_identity(base), path=str(base.resolve()),
                                             status="active")
    service.create_reader("admin1", "password123", role="admin")
    service.create_reader("reader1", "password123", acting="admin1")
    ids = register_and_draft(service, studies, model, tok, version.id, version=base.name)
    reader = SimulatedReader(service, "reader1", label=label, strategy=strategy)
    for s in studies:
        reader.review(ids[s.study_uid], s)
    print(f"reader made {reader.corrections} corrections", flush=True)
    params = FinetuneParams(lora=LoraParams(rank=args.rank, alpha=2 * args.rank, epochs=args.epochs),
                            min_corrections=10)
    t0 = time.perf_counter()
    run = run_finetune(service, data_dir, params)
    wall = time.perf_counter() - t0
    m = run["metrics"]
    times = [m["train_seconds"]] + time_training(base, service, run, args.repeats - 1, params.lora)
    corrected_train = sum(1 for uid in run["split"]["train"])
    print_table(args, base, strategy, label, reader.corrections, run, m, times, wall, started, corrected_train)
    service.close()
    return 0


def print_table(args, base, strategy, label, corrections, run, m, times, wall, started, n_train) -> None:
    b, a = m["before"], m["after"]
    med = statistics.median(times)
    print(f"\nMachine: {platform.machine()} {torch.get_num_threads()} torch threads, 2-core CPU shared; "
          f"Python {platform.python_version()}; torch {torch.__version__}; started {started:%Y-%m-%d %H:%M} UTC")
    print(f"Checkpoint: {base}; error corrected: {strategy} of {label}; {corrections} corrections by the reader; "
          f"{n_train} training / {m['val_studies']} held-out reviews; LoRA r={args.rank}, {args.epochs} epochs, "
          f"{m['steps']} steps")
    print("\n| measure | value |\n|---|---|")
    print(f"| LoRA training, median of {len(times)} (s) | **{med:.1f}** (min {min(times):.1f}, max {max(times):.1f}) |")
    print(f"| whole `run_finetune` incl. evaluation (s) | {wall:.1f} |")
    print(f"| adapter size (MB) | **{m['adapter_bytes'] / 1e6:.2f}** |")
    print("\n| metric | base | adapted |\n|---|---|---|")
    for group, key in (("corrections", "deleted_recurrence"), ("corrections", "overcall_rate"),
                       ("corrections", "box_iou"), ("corrections", "sentence_agreement"),
                       ("corrections", "correction_score"), ("benchmark", "report_label_macro_f1"),
                       ("benchmark", "finding_head_macro_f1")):
        x, y = b[group].get(key), a[group].get(key)
        print(f"| {group}: {key} | {'-' if x is None else f'{x:.3f}'} | {'-' if y is None else f'{y:.3f}'} |")
    print(f"\nGate: {'passed' if m['gate']['passed'] else 'failed: ' + '; '.join(m['gate']['reasons'])}")


if __name__ == "__main__":
    sys.exit(main())
