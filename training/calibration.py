"""Fit and evaluate the sentence-confidence calibrator (gazex_core.calibration) of a gazex-tiny model directory.

    gazex calibrate fit      --model gazex_core/weights/gazex-tiny      # writes calibration.json
    gazex calibrate evaluate --model gazex_core/weights/gazex-tiny --out docs/model_eval/calibration
    python scripts/render_reliability_png.py docs/model_eval/calibration/calibration.json docs/img/calibration_reliability.png

``fit`` drafts synthetic studies of the training seed's **val** split (``gazex synth --seed 0``: the same
studies, through the same DICOM writer and gazex_core's one image reader), scores each drafted sentence
(:func:`gazex_core.calibration.statement`), judges it true or false against the study's ground truth
(:func:`sentence_is_true`) and fits one isotonic map per statement kind. ``evaluate`` drafts the first
studies of the **test** split and reports, for the legacy confidence (before), the calibrated one (after) and
the floor (one constant confidence: the val split's share of true sentences), the expected calibration error
(10 equal-width bins), the Brier score and the AUROC (how well the confidence ranks true above false
sentences; a constant has 0.5), overall and per statement kind, with a plotly reliability diagram.
Deterministic: studies depend only on (seed, index), one torch thread, greedy decoding.

What "true" means (against the synthetic ground truth, read with the one text-to-label mapping,
gazex_core.labeler): a sentence is true when every observation it states is present in the study (and, when
it names a side - left / right / bilateral - on that side), every observation it negates is absent, and,
for a normal statement (no observation named), its ABCDEF region holds no finding (an impression: the study
holds none). Severity and size wording are not judged (issue 11 item 3 measures them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gazex_core import labeler
from gazex_core.calibration import (CALIBRATION_FILE, CLIP, KINDS, Calibrator, expected_calibration_error,
                                    head_probabilities, statement)
from gazex_core.vocab import LABEL_REGION

TRAIN_SEED = 0
SIZE = 384  # the shipped model's data: gazex synth --size 384
BINS = 10


@dataclass
class Judged:
    """One drafted sentence: its statement kind and score, the legacy confidence, and whether it is true."""

    kind: str
    score: float
    legacy: float
    true: bool


def _model(model_dir: Path):
    import torch

    from gazex_core.inference import GazeX

    torch.set_num_threads(1)  # deterministic sums, whatever the machine
    gx = GazeX(model_dir)
    gx.calibrator = None  # drafts carry the legacy confidence; the statement score is recomputed from them
    return gx


# ------------------------------------------------------------------ ground truth


def ground_truth(study) -> dict[str, set[str | None]]:
    """Observation -> the sides it is on (None: no side) for one synthetic study: its findings' labels and
    what the labeler reads from its report's finding sentences (e.g. "airspace disease" -> Lung Opacity)."""
    truth: dict[str, set[str | None]] = {}
    for f in study.findings:
        truth.setdefault(f.label, set()).add(f.laterality)
    for s in study.report.sentences:
        if s.finding_index is None:
            continue
        side = study.findings[s.finding_index].laterality
        for label, value in labeler.label_sentence(s.text).items():
            if value in (labeler.POSITIVE, labeler.UNCERTAIN):
                truth.setdefault(label, set()).add(side)
    return truth


def _side_holds(text: str, sides: set[str | None]) -> bool:
    named = {m.lower() for m in labeler.SIDE_WORD.findall(text)}
    if not named or None in sides:
        return True
    allowed = set(sides)
    if "bilateral" in allowed:
        allowed |= {"left", "right"}
    if {"left", "right"} <= allowed:
        allowed.add("bilateral")
    return named <= allowed


def sentence_is_true(text: str, section: str, region: str | None, truth: dict[str, set[str | None]]) -> bool:
    st = statement(text, section, region, {})
    if any(label not in truth or not _side_holds(text, truth[label]) for label in st.stated):
        return False
    if any(label in truth for label in st.negated):
        return False
    if st.kind != "normal":
        return True
    pathology = [label for label in truth if label not in ("Support Devices", "No Finding")]
    if section == "impression":
        return not pathology
    return not any(LABEL_REGION.get(label) == region for label in pathology)


# ------------------------------------------------------------------ drafting


def study_indices(seed: int, split: str, n: int, skip: int = 0) -> list[int]:
    from training.input_check import study_indices as first

    return first(seed, split, n + skip)[skip:]


def judge_studies(gx, seed: int, indices: list[int], desc: str) -> tuple[list[Judged], int]:
    """Every sentence of the drafts of these studies, judged; and how many studies the input check refused."""
    from gazex_core.input_check import InputRefused
    from training.synth import make_study
    from training.synth.dicom_io import write_dicom

    judged, refused = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        for index in tqdm(indices, desc=desc, leave=False):
            study = make_study(seed, index, SIZE)
            path = Path(tmp) / f"{seed}-{index}.dcm"
            write_dicom(path, study.stored_pixels(), study.header)
            try:
                bundle = gx.analyze(path)
            except InputRefused:
                refused += 1  # never drafted in use either
                continue
            judged += judge_bundle(bundle, ground_truth(study))
    return judged, refused


def judge_bundle(bundle, truth: dict[str, set[str | None]]) -> list[Judged]:
    probs = head_probabilities(bundle.findings)
    out = []
    for s in bundle.sentences:
        st = statement(s.text, s.section, s.region, probs)
        out.append(Judged(st.kind, st.score, s.confidence, sentence_is_true(s.text, s.section, s.region, truth)))
    return out


# ------------------------------------------------------------------ fit


def fit_isotonic(scores: np.ndarray, truth: np.ndarray) -> tuple[list[float], list[float]]:
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, increasing=True, out_of_bounds="clip").fit(scores, truth)
    return [float(x) for x in iso.X_thresholds_], [float(y) for y in iso.y_thresholds_]


def fit_calibrator(judged: list[Judged], fitted_on: str) -> Calibrator:
    points = {}
    for kind in KINDS:
        rows = [j for j in judged if j.kind == kind]
        if len(rows) < 20:
            raise ValueError(f"only {len(rows)} '{kind}' sentences to fit on; draft more studies (--n-val)")
        points[kind] = fit_isotonic(np.array([j.score for j in rows]), np.array([j.true for j in rows], dtype=float))
    base = float(np.mean([j.true for j in judged]))
    return Calibrator(points, {"fitted_on": fitted_on, "n_fit": str(len(judged)), "base_rate": repr(round(base, 6)),
                               "method": f"isotonic per statement kind, clipped to {list(CLIP)}"})


def fit(model_dir: Path, n_val: int = 300, seed: int = TRAIN_SEED) -> dict:
    gx = _model(model_dir)
    judged, refused = judge_studies(gx, seed, study_indices(seed, "val", n_val), "val drafts")
    fitted_on = (f"gazex synth --seed {seed} --size {SIZE}: drafts of the first {n_val} val-split studies "
                 f"({n_val - refused} drafted, {len(judged)} sentences)")
    calibrator = fit_calibrator(judged, fitted_on)
    path = calibrator.save(model_dir)
    return {"file": str(path), "fitted_on": fitted_on,
            "sentences_per_kind": {k: sum(j.kind == k for j in judged) for k in KINDS},
            "true_share": float(np.mean([j.true for j in judged]))}


# ------------------------------------------------------------------ evaluate


def auroc(confidence: np.ndarray, truth: np.ndarray) -> float | None:
    pos, neg = confidence[truth], confidence[~truth]
    if not len(pos) or not len(neg):
        return None
    return float(np.mean((pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])))


def scores(confidence: np.ndarray, truth: np.ndarray) -> dict:
    return {"ece": expected_calibration_error(confidence, truth, BINS),
            "brier": float(np.mean((confidence - truth) ** 2)), "auroc": auroc(confidence, truth.astype(bool))}


def reliability(confidence: np.ndarray, truth: np.ndarray) -> list[dict]:
    which = np.minimum((confidence * BINS).astype(int), BINS - 1)
    return [{"bin": [b / BINS, (b + 1) / BINS], "n": int((which == b).sum()),
             "mean_confidence": float(confidence[which == b].mean()), "observed": float(truth[which == b].mean())}
            for b in range(BINS) if (which == b).any()]


def compare(judged: list[Judged], calibrator: Calibrator, base_rate: float) -> dict:
    from gazex_core.calibration import Statement

    truth = np.array([j.true for j in judged], dtype=float)
    arms = {"before (legacy confidence)": np.array([j.legacy for j in judged]),
            "after (calibrated)": np.array([calibrator.confidence(Statement(j.kind, j.score)) for j in judged]),
            "floor (constant val base rate)": np.full(len(judged), base_rate)}
    out = {"sentences": len(judged), "true_share": float(truth.mean()),
           "overall": {name: scores(conf, truth) for name, conf in arms.items()},
           "reliability": {name: reliability(conf, truth) for name, conf in arms.items()}, "per_kind": {}}
    for kind in KINDS:
        sel = np.array([j.kind == kind for j in judged])
        if sel.any():
            out["per_kind"][kind] = {"n": int(sel.sum()), "true_share": float(truth[sel].mean()),
                                     **{name: scores(conf[sel], truth[sel]) for name, conf in arms.items()}}
    return out


def evaluate(model_dir: Path, n_test: int = 300, seed: int = TRAIN_SEED) -> dict:
    from gazex_core.checkpoint import load_calibration

    calibrator = load_calibration(model_dir)
    if calibrator is None:
        raise FileNotFoundError(f"{model_dir}: no {CALIBRATION_FILE}; run `gazex calibrate fit` first")
    gx = _model(model_dir)
    judged, refused = judge_studies(gx, seed, study_indices(seed, "test", n_test), "test drafts")
    result = compare(judged, calibrator, float(calibrator.meta["base_rate"]))
    result.update({"model": str(model_dir), "fitted_on": calibrator.meta.get("fitted_on"), "bins": BINS,
                   "evaluated_on": f"gazex synth --seed {seed} --size {SIZE}: drafts of the first {n_test} "
                                   f"test-split studies ({n_test - refused} drafted; {refused} refused by the input check)"})
    return result


def reliability_figure(result: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line={"dash": "dot", "color": "#888"}))
    for name, rows in result["reliability"].items():
        if name.startswith("floor"):
            continue
        ece = result["overall"][name]["ece"]
        fig.add_trace(go.Scatter(x=[r["mean_confidence"] for r in rows], y=[r["observed"] for r in rows],
                                 mode="lines+markers", name=f"{name}: ECE {ece:.3f}",
                                 text=[f"n={r['n']}" for r in rows], marker={"size": [6 + 14 * (r["n"] / result["sentences"]) ** 0.5 * 3 for r in rows]}))
    fig.update_layout(title=f"Sentence confidence reliability, synthetic test split<br><sub>{result['sentences']} "
                            f"sentences, {BINS} bins, marker size ~ bin count</sub>",
                      legend={"orientation": "h", "y": -0.15},
                      xaxis_title="mean confidence in the bin", yaxis_title="share of true sentences in the bin",
                      xaxis={"range": [0, 1]}, yaxis={"range": [0, 1]}, width=760, height=600, template="plotly_white")
    return fig


def markdown(result: dict) -> str:
    lines = [f"{result['evaluated_on']}; {result['sentences']} sentences, {result['true_share']:.3f} true.",
             f"Calibrator fitted on: {result['fitted_on']}.", "",
             "| confidence | ECE | Brier | AUROC |", "|---|---|---|---|"]
    for name, s in result["overall"].items():
        lines.append(f"| {name} | {s['ece']:.3f} | {s['brier']:.3f} | {_opt(s['auroc'])} |")
    lines += ["", "| kind | n | true share | ECE before | ECE after | ECE floor | AUROC before | AUROC after |",
              "|---|---|---|---|---|---|---|---|"]
    for kind, k in result["per_kind"].items():
        before, after, floor = (k["before (legacy confidence)"], k["after (calibrated)"], k["floor (constant val base rate)"])
        lines.append(f"| {kind} | {k['n']} | {k['true_share']:.3f} | {before['ece']:.3f} | {after['ece']:.3f} | "
                     f"{floor['ece']:.3f} | {_opt(before['auroc'])} | {_opt(after['auroc'])} |")
    return "\n".join(lines) + "\n"


def _opt(v) -> str:
    return "-" if v is None else f"{v:.3f}"


# ------------------------------------------------------------------ command line


def _fit(args: argparse.Namespace) -> int:
    print(json.dumps(fit(Path(args.model), args.n_val), indent=2))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    result = evaluate(Path(args.model), args.n_test)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "calibration.json").write_text(json.dumps(result, indent=2))
    (out / "calibration.md").write_text(markdown(result))
    reliability_figure(result).write_html(out / "reliability.html", include_plotlyjs=True)  # no CDN: opens offline
    print(markdown(result))
    return 0


def add_calibrate_command(subparsers: argparse._SubParsersAction) -> None:
    from gazex_core.checkpoint import DEFAULT_MODEL_DIR

    p = subparsers.add_parser("calibrate", help="fit / evaluate a model's sentence-confidence calibrator")
    sub = p.add_subparsers(dest="action", required=True)
    f = sub.add_parser("fit", help=f"fit on drafts of the val split, write MODEL/{CALIBRATION_FILE}")
    f.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    f.add_argument("--n-val", type=int, default=300, help="val-split studies to draft")
    f.set_defaults(handler=_fit)
    e = sub.add_parser("evaluate", help="ECE before / after / floor on drafts of the test split, reliability diagram")
    e.add_argument("--model", default=str(DEFAULT_MODEL_DIR))
    e.add_argument("--out", default="runs/calibration")
    e.add_argument("--n-test", type=int, default=300, help="test-split studies to draft")
    e.set_defaults(handler=_evaluate)
