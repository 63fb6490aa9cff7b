"""Image-blind floors for every metric ``gazex evaluate`` reports: what a model that never looks at the image
scores on the same split, so that no metric is read without its floor.

Baselines (priors fitted on the dataset's *training* split, never on the evaluated one):

* ``label_majority``: each finding label set to its training-split majority value (absent for every label
  rarer than 50 %); ``label_prevalence``: each label that occurs in training called present in every study
  (the constant prediction with the better training F1). Both also give the finding head's floor.
* ``always_no`` and ``kind_majority``: every closed question answered "no", or with the most common
  training answer of its kind; ``question_majority``: the most common training answer of the same question
  text (a question-only prior, falls back to the kind's majority); ``blank_image``: the model's own answer
  on a black image (one answer per question text).
* ``location_prior``: for a finding (or a ground-truth sentence) of label L on side S, the mean training box
  of L on S (L on any side when S never occurs with L in training).
* ``blank_draft``: one draft of the model on a black image, reused for every study — label F1, boxes,
  trajectory coverage / order / clue distance, report text (BLEU ... CIDEr, clinical efficacy).
* ``identity_order``: the trajectory-ordering task answered with the shuffled order as given.
* ``severity_majority``: every graded finding worded with the training split's most common severity grade
  (computed in training/evaluate.py on the findings the model's severity wording is scored on).

Each metric's ``floor`` is its best baseline (the highest, or the lowest for a distance); ``margin`` is
model - floor, so a negative margin on a distance and a positive one elsewhere beat the floor.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

from gazex_core.evidence import Box
from gazex_core.imaging import LoadedImage, auto_window
from gazex_core.vocab import CHEXPERT_LABELS
from training.tasks import closed_questions

LOWER_IS_BETTER = frozenset({"trajectory_clue_distance_mean"})
# keys of metrics.json that describe the run or count items, not a quality to compare with a floor
NOT_METRICS = frozenset({"model", "model_version", "model_identity", "use_gaze", "data", "split", "n_studies",
                         "box_n", "ground_n", "vqa_closed_n", "severity_wording_n", "n", "support", "analyze_ms_p50", "analyze_ms_p95",
                         "floors", "floor_priors", "consistency", "paired_with_blank_draft"})
TRAIN_QUESTION_SEED = 30_000  # questions drawn for the VQA priors (the evaluation uses 10_000 + study index)


@dataclass
class Priors:
    """What an image-blind predictor knows: statistics of the training split only."""

    n_train: int
    prevalence: dict[str, float]
    boxes: dict[tuple[str, str | None], Box] = field(default_factory=dict)
    label_boxes: dict[str, Box] = field(default_factory=dict)
    kind_majority: dict[str, str] = field(default_factory=dict)
    question_majority: dict[str, str] = field(default_factory=dict)

    def majority_labels(self) -> set[str]:
        return {lab for lab, p in self.prevalence.items() if p > 0.5}

    def prevalent_labels(self) -> set[str]:
        return {lab for lab, p in self.prevalence.items() if p > 0}

    def box(self, label: str, side: str | None) -> Box | None:
        return self.boxes.get((label, side)) or self.label_boxes.get(label)

    def answers(self, kind: str, question: str) -> dict[str, str]:
        """The image-blind answers of each VQA baseline to one question."""
        majority = self.kind_majority.get(kind, "no")
        return {"always_no": "no", "kind_majority": majority,
                "question_majority": self.question_majority.get(question, majority)}

    def summary(self) -> dict[str, Any]:
        return {"n_train_studies": self.n_train, "label_prevalence": self.prevalence,
                "vqa_kind_majority": self.kind_majority,
                "location_prior": {f"{lab} / {side or 'no side'}": [round(v, 4) for v in (b.x_min, b.y_min, b.x_max, b.y_max)]
                                   for (lab, side), b in sorted(self.boxes.items(), key=lambda x: (x[0][0], str(x[0][1])))}}


def fit_priors(train_records: list[dict], questions_per_study: int = 4) -> Priors:
    """Label prevalence, mean box per label and side, majority VQA answers — from training records only."""
    if not train_records:
        raise ValueError("no training-split studies to fit the image-blind floors on")
    labels = [lab for lab in CHEXPERT_LABELS if lab != "No Finding"]
    present = Counter(lab for rec in train_records for lab in record_labels(rec))
    prevalence = {lab: present[lab] / len(train_records) for lab in labels}
    by_side: dict[tuple[str, str | None], list[list[float]]] = defaultdict(list)
    by_label: dict[str, list[list[float]]] = defaultdict(list)
    for rec in train_records:
        for f in rec["findings"]:
            if f["box"] is not None:
                by_side[(f["label"], f["laterality"])].append(f["box"])
                by_label[f["label"]].append(f["box"])
    kind_answers: dict[str, Counter] = defaultdict(Counter)
    question_answers: dict[str, Counter] = defaultdict(Counter)
    for k, rec in enumerate(train_records):
        for kind, q, a in closed_questions(rec, random.Random(TRAIN_QUESTION_SEED + k), n=questions_per_study):
            kind_answers[kind][a] += 1
            question_answers[q][a] += 1
    return Priors(n_train=len(train_records), prevalence=prevalence,
                  boxes={key: _mean_box(v) for key, v in by_side.items()},
                  label_boxes={lab: _mean_box(v) for lab, v in by_label.items()},
                  kind_majority={kind: _most_common(c) for kind, c in kind_answers.items()},
                  question_majority={q: _most_common(c) for q, c in question_answers.items()})


def record_labels(rec: dict) -> set[str]:
    """The ground-truth finding labels of a cached study record (No Finding excluded)."""
    gt = {f["label"] for f in rec["findings"]} | {lab for lab, v in zip(CHEXPERT_LABELS, rec["labels"]) if v}
    gt.discard("No Finding")
    return gt


def _mean_box(boxes: list[list[float]]) -> Box:
    return Box(*np.mean(np.asarray(boxes, dtype=np.float64), axis=0).tolist())


def _most_common(c: Counter) -> str:
    top = max(c.values())
    return min(a for a, n in c.items() if n == top)  # ties: alphabetical, so the prior is deterministic


def blank_image(size: int = 512) -> LoadedImage:
    """A black image as the model's input. Built directly: the image reader rightly refuses a blank file."""
    values = np.zeros((size, size), dtype=np.float32)
    return LoadedImage(source="blank image (floor)", kind="array", stored=values.astype(np.uint8), values=values,
                       voi=auto_window(values, 0.0, 255.0), _pixels=values)


# ------------------------------------------------------------------ floors beside metrics


def metric_paths(metrics: dict, prefix: str = "") -> Iterator[str]:
    """Dotted paths of every numeric quality metric in a metrics.json dict (counts and run facts excluded)."""
    for key, value in metrics.items():
        if key in NOT_METRICS or isinstance(value, dict) and value.get("support") == 0:
            continue  # a label absent from the split's truth has no precision / recall / F1 to compare
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from metric_paths(value, path + ".")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) or value is None:
            yield path


def lookup(metrics: dict, path: str) -> Any:
    value: Any = metrics
    for part in _split_path(metrics, path):
        value = value[part]
    return value


def _split_path(metrics: dict, path: str) -> list[str]:
    """Split a dotted path; keys may contain dots themselves ("box_acc_at_0.5"), so match greedily."""
    parts, value, rest = [], metrics, path
    while rest:
        key = next((k for k in sorted(value, key=len, reverse=True) if rest == k or rest.startswith(k + ".")), None)
        if key is None:
            raise KeyError(path)
        parts.append(key)
        value, rest = value[key], rest[len(key) + 1:]
    return parts


def floor_entry(path: str, model: float | None, baselines: dict[str, float | None]) -> dict[str, Any]:
    """The best baseline of a metric as its floor, and the model's margin over it."""
    known = {name: v for name, v in baselines.items() if v is not None}
    lower = path.split(".")[-1] in LOWER_IS_BETTER
    if not known:
        return {"model": model, "floor": None, "floor_baseline": None, "margin": None, "higher_is_better": not lower,
                "beats_floor": None, "baselines": baselines}
    name = (min if lower else max)(known, key=lambda n: known[n])
    floor = known[name]
    margin = None if model is None else model - floor
    beats = None if margin is None else (margin < 0 if lower else margin > 0)
    return {"model": model, "floor": floor, "floor_baseline": name, "margin": margin, "higher_is_better": not lower,
            "beats_floor": beats, "baselines": baselines}


def floor_table(metrics: dict, baselines: dict[str, dict[str, dict]]) -> dict[str, dict[str, Any]]:
    """One floor entry per metric path of ``metrics``. ``baselines`` maps a baseline's name to a metrics-shaped
    dict (only the paths it has a value for); a metric no baseline covers raises, so none goes without a floor."""
    table = {}
    for path in metric_paths(metrics):
        values = {}
        for name, shaped in baselines.items():
            try:
                values[name] = lookup(shaped, path)
            except (KeyError, TypeError):
                continue
        if not values:
            raise KeyError(f"metric {path!r} has no image-blind floor")
        table[path] = floor_entry(path, lookup(metrics, path), values)
    return table


def below_floor(table: dict[str, dict[str, Any]]) -> list[str]:
    """Metric paths the model does not beat (ties included)."""
    return [path for path, e in table.items() if e["beats_floor"] is False]
