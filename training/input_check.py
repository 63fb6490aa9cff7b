"""Fit and evaluate the input check (gazex_core.input_check) of a gazex-tiny model directory.

    gazex input-check fit      --model gazex_core/weights/gazex-tiny      # writes input_check.safetensors
    gazex input-check evaluate --model gazex_core/weights/gazex-tiny --out runs/input-check

``fit`` renders synthetic studies of the training seed (``gazex synth --seed 0``: the same studies, picked
by the generator's split, through the same DICOM writer and gazex_core's one image reader), fits the
per-position means and shared covariance of the encoder output on the first ``--n-train`` studies of the
**train** split, and sets the threshold at the ``--quantile`` of the scores of the first ``--n-val`` studies
of the **val** split. Deterministic: studies depend only on (seed, index), one torch thread, float64 sums.

``evaluate`` scores in-distribution test studies of a seed never used for fitting (``--test-seed``) and an
out-of-distribution set built from what is installed here: every image in pydicom's test corpus and in
pydicom-data (CT, MR, US, RGB photos, nuclear medicine...; one per distinct picture), pydicom-data's real
adult chest CR (RG1) and real tibia CR (RG3), and corruptions of in-distribution test studies (noise,
near-blank, cropped, rotated 90 / 180, inverted). It reports the AUROC of the score, the false-positive
rate at 95 % true-positive rate (in-distribution = positive: the share of out-of-distribution images that a
threshold letting 95 % of the in-distribution studies through would also let through), the pass rate of the
in-distribution studies at the shipped threshold, and per-group flag rates (score alone and full check).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gazex_core.imaging import ImageInputError, load_image
from gazex_core.input_check import STATS_FILE, fit_stats

TRAIN_SEED = 0
TEST_SEED = 2026
SIZE = 384  # the shipped model's data: gazex synth --size 384
CORRUPTIONS = ("noise", "near-blank", "cropped", "rotated 90", "rotated 180", "inverted")


def _model(model_dir: Path):
    import torch

    from gazex_core.inference import GazeX

    torch.set_num_threads(1)  # deterministic sums, whatever the machine
    return GazeX(model_dir)


def study_indices(seed: int, split: str | None, n: int) -> list[int]:
    """The first ``n`` study indices of ``seed`` in ``split`` (None: any split)."""
    from training.synth.study import split_of, study_ids

    found, index = [], 0
    while len(found) < n:
        if split is None or split_of(study_ids(seed, index).study_id) == split:
            found.append(index)
        index += 1
    return found


def synthetic_dicom(seed: int, index: int, folder: Path) -> Path:
    """One synthetic study written as the generator writes it (its DICOM only)."""
    from training.synth import make_study
    from training.synth.dicom_io import write_dicom

    study = make_study(seed, index, SIZE)
    path = folder / f"{seed}-{index}.dcm"
    write_dicom(path, study.stored_pixels(), study.header)
    return path


def synthetic_features(gx, seed: int, indices: list[int], desc: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        return np.stack([gx.encoder_features(synthetic_dicom(seed, i, Path(tmp)))
                         for i in tqdm(indices, desc=desc, leave=False)])


def fit(model_dir: Path, n_train: int = 300, n_val: int = 100, quantile: float = 0.99, seed: int = TRAIN_SEED) -> dict:
    gx = _model(model_dir)
    stats = fit_stats(synthetic_features(gx, seed, study_indices(seed, "train", n_train), "train features"))
    val = [stats.score(m) for m in synthetic_features(gx, seed, study_indices(seed, "val", n_val), "val features")]
    stats.threshold = float(np.quantile(val, quantile))
    stats.meta.update({
        "fitted_on": f"gazex synth --seed {seed} --size {SIZE}: first {n_train} train-split studies (statistics), "
                     f"first {n_val} val-split studies (threshold)",
        "threshold_rule": f"quantile {quantile} of the val-split scores",
    })
    path = stats.save(model_dir)
    return {"file": str(path), "threshold": stats.threshold, "val_pass_rate": float(np.mean(np.array(val) <= stats.threshold))}


# ------------------------------------------------------------------ the out-of-distribution set


def _corpus_files() -> list[Path]:
    import data_store
    import pydicom

    roots = (Path(pydicom.__file__).parent / "data" / "test_files", Path(data_store.__file__).parent / "data")
    return [p for root in roots for p in sorted(root.rglob("*.dcm"))]


def _group(path: Path, modality: str | None) -> str:
    if path.name.startswith("RG1"):
        return "real adult chest CR (RG1)"
    if path.name.startswith("RG3"):
        return "real tibia CR (RG3)"
    return f"pydicom corpus {modality or 'no modality'}"


def corpus_images() -> list[tuple[str, str, object]]:
    """(group, name, LoadedImage) for every readable corpus image, one per distinct picture."""
    from gazex_core.imaging import resize_square

    images, seen = [], set()
    for path in _corpus_files():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the corpus holds deliberately odd files
                image = load_image(path)
        except ImageInputError:
            continue
        key = tuple(np.round(resize_square(image.pixels, 8).ravel(), 1))
        if key not in seen:  # the same picture in several encodings counts once
            seen.add(key)
            images.append((_group(path, image.modality), path.name, image))
    return images


def corrupted(pixels: np.ndarray, kind: str, rng: np.random.Generator) -> np.ndarray:
    h, w = pixels.shape
    if kind == "noise":
        return rng.random((h, w))
    if kind == "near-blank":
        return 0.5 + 0.01 * rng.random((h, w))
    if kind == "cropped":
        return pixels[: h // 2, : w // 2]
    if kind == "rotated 90":
        return np.rot90(pixels).copy()
    if kind == "rotated 180":
        return np.rot90(pixels, 2).copy()
    if kind == "inverted":
        return 1.0 - pixels
    raise ValueError(kind)


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    """P(an out-of-distribution score > an in-distribution score), ties counted half."""
    ins, outs = np.asarray(in_scores)[:, None], np.asarray(out_scores)[None, :]
    return float(np.mean((outs > ins) + 0.5 * (outs == ins)))


def fpr_at_tpr(in_scores: np.ndarray, out_scores: np.ndarray, tpr: float = 0.95) -> float:
    threshold = np.quantile(in_scores, tpr)
    return float(np.mean(np.asarray(out_scores) <= threshold))


def evaluate(model_dir: Path, n_test: int = 150, n_corrupt: int = 40, test_seed: int = TEST_SEED) -> dict:
    gx = _model(model_dir)
    if gx.input_stats is None:
        raise FileNotFoundError(f"{model_dir}: no {STATS_FILE}; run `gazex input-check fit` first")
    rng = np.random.default_rng(7)
    in_scores, in_passed, ood = [], [], defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for index in tqdm(study_indices(test_seed, None, n_test), desc="in-distribution", leave=False):
            path = synthetic_dicom(test_seed, index, Path(tmp))
            check = gx.check_input(path)
            in_scores.append(check.score)
            in_passed.append(check.passed)
            if len(ood["noise"]) < n_corrupt:
                pixels = load_image(path).pixels
                for kind in CORRUPTIONS:
                    ood[kind].append(gx.check_input(corrupted(pixels, kind, rng)))
    for group, _, image in tqdm(corpus_images(), desc="corpus", leave=False):
        ood[group].append(gx.check_input(image))
    ins = np.array(in_scores)
    outs = np.array([c.score for checks in ood.values() for c in checks])
    return {
        "model": str(model_dir), "threshold": gx.input_stats.threshold, "fitted_on": gx.input_stats.meta.get("fitted_on"),
        "in_distribution": {"studies": len(ins), "seed": test_seed, "pass_rate": float(np.mean(in_passed)),
                            "max_score": float(ins.max())},
        "ood_images": len(outs), "auroc": auroc(ins, outs), "fpr_at_95_tpr": fpr_at_tpr(ins, outs),
        "groups": {group: {"n": len(checks),
                           "flagged_by_score": float(np.mean([c.score > gx.input_stats.threshold for c in checks])),
                           "refused": float(np.mean([not c.passed for c in checks])),
                           "auroc": auroc(ins, np.array([c.score for c in checks])),
                           "min_score": float(min(c.score for c in checks))}
                   for group, checks in sorted(ood.items())},
    }


def markdown(result: dict) -> str:
    lines = [f"threshold {result['threshold']:.3f}; in-distribution pass rate "
             f"{result['in_distribution']['pass_rate']:.3f} ({result['in_distribution']['studies']} studies, seed "
             f"{result['in_distribution']['seed']}; highest score {result['in_distribution']['max_score']:.2f}); AUROC "
             f"{result['auroc']:.3f}; FPR at 95 % TPR {result['fpr_at_95_tpr']:.3f} ({result['ood_images']} "
             "out-of-distribution images)", "",
             "| group | n | AUROC | lowest score | flagged by the score | refused (score or header) |",
             "|---|---|---|---|---|---|"]
    for group, g in result["groups"].items():
        lines.append(f"| {group} | {g['n']} | {g['auroc']:.3f} | {g['min_score']:.2f} | {g['flagged_by_score']:.2f} "
                     f"| {g['refused']:.2f} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ command line


def _fit(args: argparse.Namespace) -> int:
    print(json.dumps(fit(Path(args.model), args.n_train, args.n_val, args.quantile), indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    result = evaluate(Path(args.model), args.n_test, args.n_corrupt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "input_check.json").write_text(json.dumps(result, indent=2))
    (out / "input_check.md").write_text(markdown(result))
    print(markdown(result))
    return 0


def add_input_check_command(subparsers: argparse._SubParsersAction) -> None:
    from gazex_core.checkpoint import DEFAULT_MODEL_DIR

    p = subparsers.add_parser("input-check", help="fit / evaluate a model's out-of-distribution input check")
    sub = p.add_subparsers(dest="action", required=True)
    f = sub.add_parser("fit", help=f"fit the statistics and threshold, write MODEL/{STATS_FILE}")
    f.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    f.add_argument("--n-train", type=int, default=300)
    f.add_argument("--n-val", type=int, default=100)
    f.add_argument("--quantile", type=float, default=0.99)
    f.set_defaults(handler=_fit)
    e = sub.add_parser("evaluate", help="AUROC and FPR at 95 %% TPR on the built out-of-distribution set")
    e.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    e.add_argument("--out", default="runs/input-check")
    e.add_argument("--n-test", type=int, default=150)
    e.add_argument("--n-corrupt", type=int, default=40, help="in-distribution studies corrupted per corruption kind")
    e.set_defaults(handler=_evaluate)
