"""``gazex evaluate --model M --data DIR --out DIR``: GazeX on a dataset's test split, end to end.

Every study's image file is read with gazex_core.imaging and run through the public API (``analyze``,
``ask``, ``ground``), exactly as the app does. Written: ``metrics.json`` and ``metrics.md`` (a table).

Metrics
* finding labels: the draft's positive labels (sentence labels) vs the ground-truth labels; per-label
  precision/recall/F1 and the macro F1 over the labels that occur in the split's ground truth
  (No Finding excluded). The finding head alone (calibrated thresholds) is reported for reference.
* observation box: for each ground-truth finding with a box whose label the draft reports, the best IoU
  of the draft's boxes for that label; mean and acc@0.5. Also ``ground(gt sentence)`` box IoU.
* severity wording: for each ground-truth finding with one severity grade whose label the draft reports with a
  severity word, whether every severity word of the draft's sentences with that label words its grade
  (gazex_core.report_text.grade_words: "small" effusion, "mild" cardiomegaly, ...). Floor: every finding
  worded with the training split's most common grade.
* closed VQA: 4 fixed questions per study (presence yes/no, sided yes/no, which side, severity; fixed seed),
  exact-match accuracy, per kind.
* trajectory: per simulated reader, region coverage = |regions the draft gives a trajectory for ∩ regions
  the reader inspected while dictating| / |the reader's regions|; order agreement of the draft's region
  sequence with the reader's (Kendall tau over shared regions, 1 - normalised edit distance); mean
  distance of predicted clue centroids to the nearest reader clue of the same sentence. Trajectory
  ordering task (shuffled key frames -> order): exact match and Kendall tau.
* text (training/report_metrics.py): corpus BLEU-1..4, METEOR, ROUGE-L and CIDEr-D of the draft against the
  ground-truth report (pycocoevalcap), and clinical efficacy: micro/macro precision, recall and F1 over the
  14 CheXpert observations the project's labeler reads from both.

* consistency (gazex_core/report_text.py ``consistency_issues``): counts over the split's drafts of
  self-contradictions (a sentence negating a finding the draft states), repeated sentences, garbled tokens
  (letter runs, malformed numbers, doubled words) and present findings the impression does not state; and
  sentences without a trajectory (every sentence must carry its evidence). Counts, not rates, with no floor (a
  property of the draft; the target is 0 of each).

* gaze-conditioned report (task e, ``--looks N``): the first N studies drafted from their first reader's looks
  (``GazeX.analyze(image, looks=...)``), in reading order and reversed; the share of looks whose sentence is nearest
  in wording to the sentence the look came from (reversed order is the control for writing by position).

Floors (training/floors.py): every metric is written with its image-blind floor on the same studies and the
margin over it (``metrics.json["floors"]``, and the floor / margin columns of the report) — label priors,
always-"no" / majority / question-only VQA answers, a per-label-and-side location prior, one blank-image
draft reused for every study, the identity order — fitted on the training split only.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from gazex_core.evidence import Box
from gazex_core.imaging import load_image
from gazex_core.inference import GazeX
from gazex_core.report_text import GRADE_PHRASE, consistency_issues, grade_words
from gazex_core.evidence import TrajectoryPoint
from gazex_core.sequence import Clue, dequantise, order_prompt, parse_order, quantise, select_clues
from gazex_core.vocab import CHEXPERT_LABELS, REGIONS
from training.cache import build_cache, load_cache
from training.floors import LOWER_IS_BETTER, Priors, below_floor, blank_image, fit_priors, floor_table, lookup, record_labels
from training.report_metrics import clinical_efficacy, nlg_metrics
from training.tasks import closed_questions


def kendall_tau(a: list, b: list) -> float | None:
    """Kendall tau between two orderings of their shared items (None if fewer than 2 shared)."""
    shared = [x for x in a if x in b]
    if len(shared) < 2:
        return None
    pos_b = {x: b.index(x) for x in shared}
    conc = disc = 0
    for i in range(len(shared)):
        for j in range(i + 1, len(shared)):
            if pos_b[shared[i]] < pos_b[shared[j]]:
                conc += 1
            else:
                disc += 1
    return (conc - disc) / (conc + disc)


def edit_distance(a: list, b: list) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def _dedupe(seq: list) -> list:
    out = []
    for x in seq:
        if x is not None and (not out or out[-1] != x):
            out.append(x)
    return out


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return p, r, f


class DraftScorer:
    """Draft-level metrics (labels, boxes, trajectories, text) of one drafting source over the split: the model,
    or a floor's draft reused for every study."""

    def __init__(self, labels: list[str]):
        self.labels = labels
        self.counts = {k: [0, 0, 0] for k in labels}  # tp fp fn
        self.ious: list[float] = []
        self.coverage: list[float] = []
        self.taus: list[float] = []
        self.ned: list[float] = []
        self.clue_dist: list[float] = []
        # each study's mean, None where the study has nothing to score (for the paired comparison with a floor)
        self.by_study: dict[str, list[float | None]] = {"trajectory_region_coverage": [],
                                                         "trajectory_clue_distance_mean": []}
        self.hyps: list[str] = []
        self.severity_words: list[bool] = []  # per graded ground-truth finding the draft words a severity for
        self.severity_truth: list[str] = []  # its grade
        self.consistency: Counter = Counter(dict.fromkeys([*consistency_issues([]), "sentences_without_trajectory"], 0))

    def add(self, rec: dict, bundle) -> None:
        pred = bundle.positive_labels()
        count_labels(self.counts, record_labels(rec), pred)
        self.ious += box_ious(rec, bundle, pred)
        self._trajectories(rec, bundle)
        distances = clue_distances(rec, bundle)
        self.clue_dist += distances
        self.by_study["trajectory_clue_distance_mean"].append(_mean(distances))
        self._severity_wording(rec, bundle, pred)
        self.hyps.append(" ".join(s.text for s in bundle.sentences))
        self.consistency.update(consistency_issues(bundle.sentences))
        self.consistency["sentences_without_trajectory"] += sum(not s.trajectory for s in bundle.sentences)

    def _severity_wording(self, rec: dict, bundle, pred: set[str]) -> None:
        for label in sorted(pred):
            grades = {f["severity"] for f in rec["findings"] if f["label"] == label}
            if len(grades) != 1 or None in grades:
                continue
            grade = grades.pop()
            words = [m.group(0).lower() for s in bundle.sentences if s.label == label for m in GRADE_PHRASE.finditer(s.text)]
            if words:
                self.severity_words.append(all(w in grade_words(label, grade) for w in words))
                self.severity_truth.append(grade)

    def _trajectories(self, rec: dict, bundle) -> None:
        pred_regions = [s.region for s in bundle.sentences if s.section == "findings" and s.trajectory]
        pred_seq = _dedupe([s.region for s in bundle.sentences if s.section == "findings"])
        readings_before = len(self.coverage)
        for reading in rec["readings"]:
            reader_regions = [rec["sentences"][j]["region"] for j, g in enumerate(reading["sentences"])
                              if g and g["clues"] and rec["sentences"][j]["section"] == "findings"
                              and rec["sentences"][j]["region"] in REGIONS]
            if reader_regions:
                rset = set(reader_regions)
                self.coverage.append(len(rset & set(pred_regions)) / len(rset))
                rseq = _dedupe(reader_regions)
                t = kendall_tau(pred_seq, rseq)
                if t is not None:
                    self.taus.append(t)
                self.ned.append(1 - edit_distance(pred_seq, rseq) / max(len(pred_seq), len(rseq), 1))
        self.by_study["trajectory_region_coverage"].append(_mean(self.coverage[readings_before:]))

    def metrics(self, refs: list[str], support: Counter) -> dict:
        per_label = label_metrics(self.counts, support)
        return {
            "finding_macro_f1": macro_f1(per_label),
            "per_label": per_label,
            "box_iou_mean": _mean(self.ious, 0.0),
            "box_acc_at_0.5": _mean([i >= 0.5 for i in self.ious], 0.0),
            "trajectory_region_coverage": _mean(self.coverage, 0.0),
            "trajectory_order_kendall_tau": _mean(self.taus),
            "trajectory_order_1_minus_ned": _mean(self.ned),
            "trajectory_clue_distance_mean": _mean(self.clue_dist),
            "severity_wording_accuracy": _mean(self.severity_words),
            **nlg_metrics(refs, self.hyps),
            "clinical_efficacy": clinical_efficacy(refs, self.hyps),
            "consistency": dict(self.consistency),
        }


def _mean(values: list, empty: float | None = None) -> float | None:
    return float(np.mean(values)) if values else empty


def count_labels(counts: dict[str, list[int]], gt: set[str], pred: set[str]) -> None:
    for lab, c in counts.items():
        c[0] += (lab in gt) and (lab in pred)
        c[1] += (lab not in gt) and (lab in pred)
        c[2] += (lab in gt) and (lab not in pred)


def label_metrics(counts: dict[str, list[int]], support: Counter) -> dict[str, dict]:
    """Per-label precision / recall / F1 over the labels that occur in the split's ground truth."""
    out = {}
    for lab, c in counts.items():
        if support[lab]:
            p, r, f = prf(*c)
            out[lab] = {"support": support[lab], "precision": p, "recall": r, "f1": f}
    return out


def macro_f1(per_label: dict[str, dict], key: str = "f1") -> float:
    return float(np.mean([v[key] for v in per_label.values()])) if per_label else 0.0


def box_ious(rec: dict, bundle, pred: set[str]) -> list[float]:
    """For each ground-truth finding with a box whose label the draft reports: best IoU of the draft's boxes."""
    out = []
    for f in rec["findings"]:
        if f["box"] is None or f["label"] not in pred:
            continue
        gbox = Box(*f["box"])
        cands = [s.observation_box for s in bundle.sentences if s.label == f["label"] and s.observation_box]
        out.append(max((gbox.iou(b) for b in cands), default=0.0))
    return out


def clue_distances(rec: dict, bundle) -> list[float]:
    """Clue centroids vs the readers' clues of the matching ground-truth sentence (same region + label)."""
    out, used = [], set()
    for s in bundle.sentences:
        if s.section != "findings" or not s.trajectory:
            continue
        js = [j for j, g in enumerate(rec["sentences"]) if j not in used and g["section"] == "findings"
              and g["region"] == s.region and g["label"] == s.label]
        if not js:
            continue
        used.add(js[0])
        rc = [c for rd in rec["readings"] for c in ((rd["sentences"][js[0]] or {}).get("clues") or [])]
        if rc:
            for p in s.trajectory:
                out.append(min(math.hypot(p.x - c[0], p.y - c[1]) for c in rc))
    return out


def ground_sentences(rec: dict) -> list[tuple[dict, str | None]]:
    """The ground-truth finding sentences with a box, each with the side of the finding its box belongs to."""
    out = []
    for s in rec["sentences"]:
        if s["gt_box"] is not None and s["section"] == "findings":
            side = next((f["laterality"] for f in rec["findings"] if f["box"] == s["gt_box"]), None)
            out.append((s, side))
    return out


def ordering_case(rec: dict, k: int) -> tuple[list[Clue], list[int], list[int]] | None:
    """The trajectory-ordering task of study k: shuffled key frames, the shuffle, the true order."""
    frames = [Clue(*c) for c in rec["readings"][0]["frames"]][:8]
    if len(frames) < 2:
        return None
    rng = random.Random(20_000 + k)
    perm = list(range(len(frames)))
    rng.shuffle(perm)
    truth = sorted(range(len(perm)), key=lambda i: perm[i])
    return [frames[p] for p in perm], perm, truth


def predict_order(gx: GazeX, img, shuffled: list[Clue]) -> list[int]:
    import torch

    from gazex_core.imaging import resize_square

    with gx._lock, torch.inference_mode():
        pix = torch.from_numpy(resize_square(img.pixels, gx.config.image_size))[None, None]
        memory, _ = gx.model.encode(pix)
        ids, _ = gx._generate(memory, order_prompt(shuffled), 20)
    return parse_order(gx.tok.decode(ids), len(shuffled))


class FloorScorer:
    """The prior-based floors, scored on exactly the items the model is scored on."""

    def __init__(self, priors: Priors, labels: list[str]):
        self.priors = priors
        self.label_counts = {name: {k: [0, 0, 0] for k in labels} for name in ("label_majority", "label_prevalence")}
        self.box_ious: list[float] = []
        self.ground_ious: list[float] = []
        self.vqa: dict[str, Counter] = defaultdict(Counter)  # baseline -> kind -> correct
        self.order_exact: list[bool] = []
        self.order_tau: list[float] = []

    def add_labels(self, gt: set[str]) -> None:
        count_labels(self.label_counts["label_majority"], gt, self.priors.majority_labels())
        count_labels(self.label_counts["label_prevalence"], gt, self.priors.prevalent_labels())

    def add_box(self, finding: dict) -> None:
        prior = self.priors.box(finding["label"], finding["laterality"])
        self.box_ious.append(Box(*finding["box"]).iou(prior) if prior else 0.0)

    def add_ground(self, sentence: dict, side: str | None) -> None:
        prior = self.priors.box(sentence["label"], side) if sentence["label"] else None
        self.ground_ious.append(Box(*sentence["gt_box"]).iou(prior) if prior else 0.0)

    def add_question(self, kind: str, question: str, answer: str, blank_answer: str) -> None:
        answers = {**self.priors.answers(kind, question), "blank_image": blank_answer}
        for name, guess in answers.items():
            self.vqa[name][kind] += guess == answer

    def add_order(self, truth: list[int]) -> None:
        identity = list(range(len(truth)))
        self.order_exact.append(identity == truth)
        self.order_tau.append(kendall_tau(identity, truth) or 0.0)

    def baselines(self, support: Counter, vqa_n: Counter) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for name, counts in self.label_counts.items():
            per_label = label_metrics(counts, support)
            for v in per_label.values():
                v["head_f1"] = v["f1"]
            out[name] = {"finding_macro_f1": macro_f1(per_label), "finding_head_macro_f1": macro_f1(per_label),
                         "per_label": per_label}
        out["location_prior"] = {
            "box_iou_mean": _mean(self.box_ious, 0.0), "box_acc_at_0.5": _mean([i >= 0.5 for i in self.box_ious], 0.0),
            "ground_iou_mean": _mean(self.ground_ious, 0.0),
            "ground_acc_at_0.5": _mean([i >= 0.5 for i in self.ground_ious], 0.0)}
        total = sum(vqa_n.values())
        for name, ok in self.vqa.items():
            out[name] = {"vqa_closed_accuracy": sum(ok.values()) / total if total else 0.0,
                         "vqa_by_kind": {k: {"accuracy": ok[k] / n} for k, n in vqa_n.items()}}
        out["identity_order"] = {"ordering_task_exact": _mean(self.order_exact),
                                 "ordering_task_kendall_tau": _mean(self.order_tau)}
        return out


def evaluate(model_dir: str | None, data: str, out_dir: str, cache: str | None = None, split: str = "test",
             limit: int = 0, questions_per_study: int = 4, threads: int = 0, looks: int = 0) -> dict:
    gx = GazeX(model_dir, threads=threads or None)
    size = gx.config.image_size
    cache_dir = Path(cache or Path(data) / "cache")
    build_cache(data, cache_dir, size)
    _, records = load_cache(cache_dir, size)
    recs = [r for r in records if r["split"] == split]
    if limit:
        recs = recs[:limit]
    if not recs:
        raise RuntimeError(f"{data}: no studies in split {split!r}")
    priors = fit_priors([r for r in records if r["split"] == "train"], questions_per_study)
    labels_eval = [k for k in CHEXPERT_LABELS if k != "No Finding"]
    draft, blank = DraftScorer(labels_eval), DraftScorer(labels_eval)
    floors = FloorScorer(priors, labels_eval)
    blank_img = blank_image()
    blank_bundle = gx.analyze(blank_img, draft_out_of_scope=True)  # the input check refuses it; the floor is its draft
    blank_answers: dict[str, str] = {}
    head_counts = {k: [0, 0, 0] for k in labels_eval}
    thr = dict(zip(CHEXPERT_LABELS, gx.config.finding_thresholds))
    gt_support = Counter()
    ground_ious = []
    vqa = Counter()
    vqa_ok = Counter()
    order_exact, order_tau = [], []
    refs = []
    analyze_ms = []
    use_gaze = bool(getattr(gx.config, "use_gaze", True))
    for k, rec in enumerate(tqdm(recs, desc=f"evaluate {split}", unit="study")):
        img = load_image(Path(rec["image_path"]))
        t0 = time.perf_counter()
        bundle = gx.analyze(img, draft_out_of_scope=True)  # every test study is scored, even one the input check flags
        analyze_ms.append((time.perf_counter() - t0) * 1e3)
        gt = record_labels(rec)
        gt_support.update(gt & set(labels_eval))
        draft.add(rec, bundle)
        blank.add(rec, blank_bundle)
        floors.add_labels(gt)
        probs = dict(bundle.findings)
        count_labels(head_counts, gt, {lab for lab in labels_eval if probs.get(lab, 0) >= thr[lab]})
        pred = bundle.positive_labels()
        for f in rec["findings"]:
            if f["box"] is not None and f["label"] in pred:
                floors.add_box(f)
        for s, side in ground_sentences(rec):
            g = gx.ground(img, s["text"])
            ground_ious.append(Box(*s["gt_box"]).iou(g.box) if g.box else 0.0)
            floors.add_ground(s, side)
        for kind, q, a in closed_questions(rec, random.Random(10_000 + k), n=questions_per_study):
            vqa[kind] += 1
            vqa_ok[kind] += _answer(gx, img, q) == a
            if q not in blank_answers:
                blank_answers[q] = _answer(gx, blank_img, q)
            floors.add_question(kind, q, a, blank_answers[q])
        case = ordering_case(rec, k) if use_gaze and rec["readings"] else None
        if case is not None:
            shuffled, _, truth = case
            got = predict_order(gx, img, shuffled)
            order_exact.append(got == truth)
            t = kendall_tau(got, truth)
            order_tau.append(t if t is not None else 0.0)
            floors.add_order(truth)
        refs.append(" ".join(s["text"] for s in rec["sentences"]))

    model_metrics = draft.metrics(refs, gt_support)
    head = label_metrics(head_counts, gt_support)
    for lab, v in model_metrics["per_label"].items():
        v["head_f1"] = head[lab]["f1"]
    vqa_total = sum(vqa.values())
    metrics = {
        "model": str(gx.path), "model_version": gx.version, "model_identity": gx.identity,  # checkpoint.model_identity
        "use_gaze": use_gaze, "data": str(data), "split": split,
        "n_studies": len(recs),
        "finding_macro_f1": model_metrics["finding_macro_f1"],
        "finding_head_macro_f1": macro_f1(head),
        "per_label": model_metrics["per_label"],
        "box_iou_mean": model_metrics["box_iou_mean"],
        "box_acc_at_0.5": model_metrics["box_acc_at_0.5"],
        "box_n": len(draft.ious),
        "ground_iou_mean": _mean(ground_ious, 0.0),
        "ground_acc_at_0.5": _mean([i >= 0.5 for i in ground_ious], 0.0),
        "ground_n": len(ground_ious),
        "severity_wording_accuracy": model_metrics["severity_wording_accuracy"],
        "severity_wording_n": len(draft.severity_words),
        "vqa_closed_accuracy": sum(vqa_ok.values()) / vqa_total if vqa_total else 0.0,
        "vqa_closed_n": vqa_total,
        "vqa_by_kind": {k: {"n": vqa[k], "accuracy": vqa_ok[k] / vqa[k]} for k in vqa},
        **{k: model_metrics[k] for k in ("trajectory_region_coverage", "trajectory_order_kendall_tau",
                                          "trajectory_order_1_minus_ned", "trajectory_clue_distance_mean")},
        "ordering_task_exact": _mean(order_exact),
        "ordering_task_kendall_tau": _mean(order_tau),
        **{k: model_metrics[k] for k in ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider")},
        "clinical_efficacy": model_metrics["clinical_efficacy"],
        "consistency": model_metrics["consistency"],
        "analyze_ms_p50": float(np.percentile(analyze_ms, 50)),
        "analyze_ms_p95": float(np.percentile(analyze_ms, 95)),
    }
    baselines = floors.baselines(gt_support, vqa)
    baselines["blank_draft"] = blank.metrics(refs, gt_support)
    majority_grade = priors.kind_majority.get("severity")
    baselines["severity_majority"] = {"severity_wording_accuracy": _mean([g == majority_grade for g in draft.severity_truth])}
    metrics["floors"] = floor_table(metrics, baselines)
    metrics["paired_with_blank_draft"] = {
        path: paired_by_study(draft.by_study[path], blank.by_study[path], lower_is_better=path in LOWER_IS_BETTER)
        for path in draft.by_study}
    metrics["floor_priors"] = {**priors.summary(), "blank_draft": blank.hyps[0]}
    if looks and use_gaze:
        metrics["gaze_conditioned_report"] = look_agreement(gx, recs[:looks])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / "metrics.md").write_text(markdown(metrics))
    return metrics


def paired_by_study(model: list[float | None], floor: list[float | None], lower_is_better: bool = False) -> dict:
    """The model against a floor on the same studies (each study's value): in how many studies each is better,
    the median per-study difference (model - floor), and the Wilcoxon signed-rank test's two-sided p. Studies
    where either has no value are left out."""
    from scipy.stats import wilcoxon

    diffs = [m - f for m, f in zip(model, floor) if m is not None and f is not None]
    if not diffs:
        return {"n_studies": 0}
    gains = [-d if lower_is_better else d for d in diffs]  # > 0 where the model is better
    nonzero = [d for d in diffs if d != 0]
    return {
        "n_studies": len(diffs),
        "model_better": sum(g > 0 for g in gains),
        "floor_better": sum(g < 0 for g in gains),
        "median_difference": float(np.median(diffs)),
        "wilcoxon_p": float(wilcoxon(nonzero).pvalue) if len(nonzero) >= 2 else None,
    }


def reader_looks(rec: dict, reading: int = 0) -> list[tuple[int, list[TrajectoryPoint]]]:
    """(sentence index, key frames) of one reading's findings sentences that have gaze, in report order."""
    out = []
    for j, g in enumerate(rec["readings"][reading]["sentences"] if rec["readings"] else []):
        clues = (g or {}).get("clues") or []
        if clues and rec["sentences"][j]["section"] == "findings":
            out.append((j, [Clue(*c).to_point() for c in clues]))
    return out


def _look_key(points: list[TrajectoryPoint]) -> tuple:
    """A look as the drafted sentence carries it: its MAX_CLUES longest dwells, quantised to the sequence bins."""
    kept = select_clues([Clue(p.x, p.y, 0.1, 0.1, p.dwell_ms) for p in points])
    return tuple((round(dequantise(quantise(c.cx)), 4), round(dequantise(quantise(c.cy)), 4)) for c in kept)


def _word_f1(a: str, b: str) -> float:
    wa, wb = set(_norm_words(a)), set(_norm_words(b))
    both = len(wa & wb)
    return 2 * both / (len(wa) + len(wb)) if both else 0.0


def _norm_words(text: str) -> list[str]:
    return "".join(ch if ch.isalnum() else " " for ch in text.lower()).split()


def look_agreement(gx: GazeX, recs: list[dict]) -> dict:
    """Task (e), the gaze-conditioned report: each study drafted from its first reader's looks, in reading order and
    reversed. A look agrees when the sentence written for it is closer in wording (word F1) to the sentence the look
    came from than to any other sentence of the report. Reversed looks are the control: a decoder that writes by
    position rather than by the look agrees there only when the position happens to fit."""
    agree: dict[str, list[bool]] = {"in_order": [], "reversed": []}
    for rec in tqdm([r for r in recs if reader_looks(r)], desc="looks", unit="study"):
        looks = reader_looks(rec)
        for name, given in (("in_order", looks), ("reversed", looks[::-1])):
            bundle = gx.analyze(Path(rec["image_path"]), looks=[pts for _, pts in given], draft_out_of_scope=True)
            by_key = {tuple((round(p.x, 4), round(p.y, 4)) for p in s.trajectory): s for s in bundle.sentences}
            for j, pts in given:
                s = by_key.get(_look_key(pts))
                scores = [_word_f1(s.text, g["text"]) for g in rec["sentences"]] if s else []
                agree[name].append(bool(scores) and int(np.argmax(scores)) == j)
    return {"n_looks": len(agree["in_order"]), **{k: _mean(v) for k, v in agree.items()}}


def _answer(gx: GazeX, img, question: str) -> str:
    return gx.ask(img, question).text.strip().lower().rstrip(".")


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    return f"{v:.3f}" if isinstance(v, float) else str(v)


def _signed(v) -> str:
    return "n/a" if v is None else f"{v:+.3f}"


ROWS = [
    ("finding-label macro F1 (draft)", "finding_macro_f1"),
    ("finding-label macro F1 (finding head alone)", "finding_head_macro_f1"),
    ("observation-box IoU mean, correctly reported findings (n={box_n})", "box_iou_mean"),
    ("observation-box acc@0.5", "box_acc_at_0.5"),
    ("grounding IoU mean, GT finding sentences (n={ground_n})", "ground_iou_mean"),
    ("grounding acc@0.5", "ground_acc_at_0.5"),
    ("severity wording right, reported graded findings (n={severity_wording_n})", "severity_wording_accuracy"),
    ("closed VQA accuracy (n={vqa_closed_n})", "vqa_closed_accuracy"),
    ("trajectory region coverage vs readers", "trajectory_region_coverage"),
    ("trajectory order Kendall tau vs readers", "trajectory_order_kendall_tau"),
    ("trajectory order 1 - normalised edit distance", "trajectory_order_1_minus_ned"),
    ("clue centroid distance to nearest reader clue (normalised; lower is better)", "trajectory_clue_distance_mean"),
    ("ordering task exact match", "ordering_task_exact"),
    ("ordering task Kendall tau", "ordering_task_kendall_tau"),
    *((f"BLEU-{n}", f"bleu{n}") for n in range(1, 5)),
    ("METEOR", "meteor"), ("ROUGE-L", "rouge_l"), ("CIDEr-D", "cider"),
    *((f"clinical efficacy {avg} {name} (labeler, 14 observations)", f"clinical_efficacy.{avg}.{key}")
      for avg in ("micro", "macro") for name, key in (("P", "precision"), ("R", "recall"), ("F1", "f1"))),
]


def _p(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def _floor_cells(m: dict, path: str) -> str:
    e = m["floors"][path]
    mark = "" if e["beats_floor"] is not False else " **not above floor**"
    return f"{_fmt(e['floor'])} | {_signed(e['margin'])}{mark} | {e['floor_baseline'] or 'n/a'}"


def markdown(m: dict) -> str:
    """The report: every metric beside its image-blind floor (training/floors.py) and the margin over it."""
    lines = [f"# GazeX evaluation: {m['model_version']} on {m['split']} ({m['n_studies']} studies, gaze={'on' if m['use_gaze'] else 'off'})",
             "", "Floor = the best image-blind baseline on the same studies (priors from the training split, "
             "training/floors.py); margin = model - floor.",
             "", "| metric | model | floor | margin | floor baseline |", "|---|---|---|---|---|"]
    lines += [f"| {name.format(**m)} | {_fmt(lookup(m, path))} | {_floor_cells(m, path)} |" for name, path in ROWS]
    lines.append(f"| analyze p50 / p95 ms (during evaluation) | {m['analyze_ms_p50']:.0f} / {m['analyze_ms_p95']:.0f} | | | |")
    lines += ["", "| label | support | precision (floor) | recall (floor) | F1 draft | F1 floor | margin | F1 head | head margin |",
              "|---|---|---|---|---|---|---|---|---|"]
    for lab, v in m["per_label"].items():
        f = {key: m["floors"][f"per_label.{lab}.{key}"] for key in ("precision", "recall", "f1", "head_f1")}
        lines.append(f"| {lab} | {v['support']} | {v['precision']:.3f} ({_fmt(f['precision']['floor'])}) | "
                     f"{v['recall']:.3f} ({_fmt(f['recall']['floor'])}) | {v['f1']:.3f} | {_fmt(f['f1']['floor'])} | "
                     f"{_signed(f['f1']['margin'])} | {v['head_f1']:.3f} | {_signed(f['head_f1']['margin'])} |")
    lines += ["", "| VQA kind | n | accuracy | always no | kind majority | question majority | blank image | floor | margin |",
              "|---|---|---|---|---|---|---|---|---|"]
    for k, v in m["vqa_by_kind"].items():
        e = m["floors"][f"vqa_by_kind.{k}.accuracy"]
        b = e["baselines"]
        lines.append(f"| {k} | {v['n']} | {v['accuracy']:.3f} | " + " | ".join(
            _fmt(b.get(n)) for n in ("always_no", "kind_majority", "question_majority", "blank_image"))
            + f" | {_fmt(e['floor'])} | {_signed(e['margin'])} |")
    paired = {path: v for path, v in (m.get("paired_with_blank_draft") or {}).items() if v.get("n_studies")}
    if paired:
        lines += ["", "Paired by study against the reused blank draft (the floor of the trajectory metrics):", "",
                  "| metric | studies | model better | floor better | median difference | Wilcoxon p |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {path} | {v['n_studies']} | {v['model_better']} | {v['floor_better']} | "
                  f"{_signed(v['median_difference'])} | {_p(v['wilcoxon_p'])} |" for path, v in paired.items()]
    issues = m.get("consistency", {})
    lines += ["", f"Text consistency over the {m['n_studies']} drafts (counts, target 0): "
              + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in issues.items()) + "."]
    looked = m.get("gaze_conditioned_report")
    if looked:
        lines += ["", f"Gaze-conditioned report (task e; {looked['n_looks']} looks of the first reader): the sentence "
                  f"written for a look is the nearest in wording to the look's own sentence for {_fmt(looked['in_order'])} "
                  f"of looks given in reading order, {_fmt(looked['reversed'])} given reversed (the control)."]
    below = below_floor(m["floors"])
    lines += ["", f"Not above the floor ({len(below)} of {len(m['floors'])} metrics): "
              + (", ".join(below) if below else "none") + "."]
    return "\n".join(lines) + "\n"


def main(args: argparse.Namespace) -> int:
    m = evaluate(args.model, args.data, args.out, args.cache, args.split, args.limit, args.questions_per_study,
                 args.threads, args.looks)
    print(markdown(m))
    return 0
