"""``gazex gaze-ablation``: does gaze help? Both arms trained and evaluated over several seeds, mean +- sd.

    gazex gaze-ablation --data data/synth6k --out runs/gaze-ablation --seeds 0 1 2 --steps 1294 --threads 1

For each seed, the gaze arm (``gazex train``) and the no-gaze arm (``gazex train --no-gaze``: no trajectory tokens,
no ordering task) are trained with the same data, steps and every other setting, then evaluated with
``gazex evaluate`` on the first ``--eval-limit`` test studies. The seed sets the initial weights and the order of
the training examples. Each run lives in ``OUT/<arm>-seed<S>``; a run whose ``eval/metrics.json`` exists is
reused, so an interrupted study resumes where it stopped. ``OUT/summary.json`` and ``OUT/summary.md`` hold, per
metric, each arm's mean +- sd over seeds, the floor beside it, and the per-seed paired difference (gaze - no-gaze)
as mean +- sd: a difference smaller than its sd is not evidence either way.

Only base models are compared (encoder, finding head, decoder): the attribute head, second look, input check and
calibrator of the shipped checkpoint are trained after and beside the base and are the same recipe for both arms.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from training.floors import lookup

ARMS = {"gaze": [], "no-gaze": ["--no-gaze"]}
METRICS = (  # (metrics.json path, what it measures); trajectory metrics are the gaze arm's alone
    ("finding_macro_f1", "finding macro F1 of the draft"),
    ("box_iou_mean", "observation-box IoU on correctly reported findings"),
    ("ground_iou_mean", "grounding IoU (ground(gt sentence))"),
    ("vqa_closed_accuracy", "closed-question VQA accuracy"),
    ("severity_wording_accuracy", "severity wording of the draft"),
    ("bleu4", "BLEU-4 against the ground-truth report"),
    ("trajectory_region_coverage", "trajectory ABCDEF region coverage"),
    ("trajectory_clue_distance_mean", "clue distance to the nearest reader clue (lower is better)"),
)


def run_dir(out: Path, arm: str, seed: int) -> Path:
    return out / f"{arm}-seed{seed}"


def train_args(data: str, model_out: Path, arm: str, seed: int, steps: int, threads: int, extra: list[str]) -> argparse.Namespace:
    """The ``gazex train`` arguments of one run: the train command's own defaults, so both arms share every setting."""
    from training.model_cli import add_train_arguments

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    return parser.parse_args(["--data", data, "--out", str(model_out), "--seed", str(seed), "--steps", str(steps),
                              "--threads", str(threads), *ARMS[arm], *extra])


def run_one(data: str, out: Path, arm: str, seed: int, steps: int, threads: int, eval_limit: int, extra: list[str]) -> dict:
    from training.evaluate import evaluate
    from training.train import train

    where = run_dir(out, arm, seed)
    metrics_path = where / "eval" / "metrics.json"
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())
    train(train_args(data, where / "model", arm, seed, steps, threads, extra))
    return evaluate(str(where / "model"), data, str(where / "eval"), limit=eval_limit, threads=threads)


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(runs: dict[str, dict[int, dict]], seeds: list[int]) -> dict:
    """Per metric: each arm's mean and sd over seeds, the gaze arm's floor, and the paired gaze - no-gaze difference."""
    rows = {}
    for path, meaning in METRICS:
        per_arm = {arm: [lookup(runs[arm][s], path) for s in seeds] for arm in ARMS}
        diffs = [g - n for g, n in zip(per_arm["gaze"], per_arm["no-gaze"]) if g is not None and n is not None]
        floor = [runs["gaze"][s].get("floors", {}).get(path, {}).get("floor") for s in seeds]
        rows[path] = {
            "meaning": meaning,
            **{arm: dict(zip(("mean", "sd"), mean_sd(v)), values=v) for arm, v in per_arm.items()},
            "gaze_minus_no_gaze": dict(zip(("mean", "sd"), mean_sd(diffs)), values=diffs),
            "floor": mean_sd(floor)[0],
        }
    return rows


def _cell(mean: float | None, sd: float | None) -> str:
    return "n/a" if mean is None else f"{mean:.3f} ± {sd:.3f}"


def markdown(summary: dict, meta: dict) -> str:
    lines = [f"# Gaze ablation: {len(meta['seeds'])} seeds per arm ({', '.join(map(str, meta['seeds']))}), "
             f"{meta['steps']} steps each", "",
             f"Data `{meta['data']}`; evaluated on the first {meta['eval_limit']} test studies. mean ± sd over seeds; "
             "the difference is paired by seed.", "",
             "| metric | gaze | no-gaze | gaze - no-gaze | floor |", "|---|---|---|---|---|"]
    for path, row in summary.items():
        d = row["gaze_minus_no_gaze"]
        floor = "n/a" if row["floor"] is None else f"{row['floor']:.3f}"
        lines.append(f"| {row['meaning']} (`{path}`) | {_cell(row['gaze']['mean'], row['gaze']['sd'])} | "
                     f"{_cell(row['no-gaze']['mean'], row['no-gaze']['sd'])} | {_cell(d['mean'], d['sd'])} | {floor} |")
    return "\n".join(lines) + "\n"


def gaze_ablation(data: str, out: str | Path, seeds: list[int], steps: int, threads: int = 1, eval_limit: int = 150,
                  extra: list[str] | None = None, arms: tuple[str, ...] = tuple(ARMS)) -> dict | None:
    """Run (or reuse) every seed of ``arms``; with both arms, summarise. One arm alone lets two processes share the
    work (``--arms gaze`` and ``--arms no-gaze``); a last run without ``--arms`` reuses both and summarises."""
    out = Path(out)
    runs = {arm: {s: run_one(data, out, arm, s, steps, threads, eval_limit, extra or []) for s in seeds} for arm in arms}
    if set(runs) != set(ARMS):
        return None
    meta = {"data": data, "seeds": seeds, "steps": steps, "eval_limit": eval_limit, "train_extra": extra or []}
    summary = {"meta": meta, "metrics": summarise(runs, seeds)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "summary.md").write_text(markdown(summary["metrics"], meta))
    return summary


def _handler(args: argparse.Namespace) -> int:
    summary = gaze_ablation(args.data, args.out, args.seeds, args.steps, args.threads, args.eval_limit, args.train_arg,
                            tuple(args.arms))
    if summary is None:
        print(f"ran {', '.join(args.arms)}; run again without --arms (finished runs are reused) for the summary")
    else:
        print(markdown(summary["metrics"], summary["meta"]))
    return 0


def add_gaze_ablation_command(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("gaze-ablation", help="train and evaluate the gaze and no-gaze arms over seeds (mean ± sd)")
    p.add_argument("--data", required=True, help="dataset directory (gazex synth --out DIR)")
    p.add_argument("--out", required=True, help="directory for the runs, summary.json and summary.md")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=1294, help="training steps of every run (gazex-tiny's recipe: 1294)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--eval-limit", type=int, default=150, help="test studies evaluated per run (0 = all)")
    p.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                   help="run only these arms (no summary unless both)")
    p.add_argument("--train-arg", action="append", default=[],
                   help="extra gazex train argument for both arms, e.g. --train-arg=--batch-size=16 (repeatable)")
    p.set_defaults(handler=_handler)
