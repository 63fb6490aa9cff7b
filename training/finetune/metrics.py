"""Base vs adapted evaluation.

Correction metrics, on the held-out (frozen ``val``) reviews, comparing each model's freshly generated report
with the radiologist's final one:

* ``deleted_recurrence`` - of the sentences the radiologists deleted, the fraction the model still states
  (same finding label when the final report does not state that finding; else the same normalised text).
  This is the corrected error's rate, e.g. the over-call rate of a finding the readers keep deleting;
* ``overcall_rate`` - fraction of studies whose generated report states a finding the final report does not;
* ``box_iou`` - mean IoU of the generated box to each corrected/drawn final box (0 when missing);
* ``sentence_agreement`` - F1 between generated and final sentences (normalised text);
* ``label_f1`` - micro F1 of stated finding labels vs the final report's.

``correction_score`` averages the available components (1 - deleted_recurrence, box_iou, sentence_agreement);
higher is better. Regression benchmark: a fixed synthetic test set (default 100 studies, seed 12345), report
label macro-F1 (labels stated in the generated report vs ground truth) and finding-head macro-F1.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np

from gazex_core.sequence import SentenceBlock
from gazex_core.vocab import CHEXPERT_LABELS

from .corrections import CorrectionExample, infer_label
from .modelio import finding_probabilities, generate_reports, image_array

BENCHMARK_N = 100
BENCHMARK_SEED = 12345
BENCHMARK_SIZE = 256
SCORED_LABELS = [k for k in CHEXPERT_LABELS if k != "No Finding"]


def norm_text(text: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()


def block_label(block: SentenceBlock) -> str | None:
    """The label token, or (classifier-guided drafts may write <lab_none>) the finding the text states."""
    label = block.label or infer_label(block.text)
    return None if label == "No Finding" else label


def stated_labels(blocks: list[SentenceBlock]) -> set[str]:
    return {lab for lab in map(block_label, blocks) if lab}


def _recurs(deleted: SentenceBlock, final_labels: set[str], generated: list[SentenceBlock]) -> bool:
    label = block_label(deleted)
    if label and label not in final_labels:
        return label in stated_labels(generated)
    return norm_text(deleted.text) in {norm_text(b.text) for b in generated}


def _best_iou(change, generated: list[SentenceBlock]) -> float:
    cands = [b for b in generated if b.box is not None and
             ((change.label and block_label(b) == change.label) or norm_text(b.text) == norm_text(change.sentence_text))]
    return max((change.final_box.iou(b.box) for b in cands), default=0.0)


def _f1(tp: int, n_pred: int, n_true: int) -> float:
    return 2 * tp / (n_pred + n_true) if (n_pred + n_true) else 1.0


def correction_metrics(examples: list[CorrectionExample], generated: list[list[SentenceBlock]]) -> dict:
    deleted = recurred = overcalled = 0
    ious: list[float] = []
    agree_tp = agree_pred = agree_true = lab_tp = lab_pred = lab_true = 0
    per_label: dict[str, list[int]] = {}
    for ex, gen in zip(examples, generated):
        final_labels = stated_labels(ex.final)
        for d in ex.deleted:
            deleted += 1
            hit = _recurs(d, final_labels, gen)
            recurred += hit
            label = block_label(d)
            if label and label not in final_labels:
                per_label.setdefault(label, [0, 0])
                per_label[label][0] += hit
                per_label[label][1] += 1
        ious += [_best_iou(c, gen) for c in ex.box_changes if c.final_box is not None]
        gen_labels = stated_labels(gen)
        overcalled += bool(gen_labels - final_labels)
        gen_texts, final_texts = {norm_text(b.text) for b in gen}, {norm_text(b.text) for b in ex.final}
        agree_tp, agree_pred, agree_true = (agree_tp + len(gen_texts & final_texts), agree_pred + len(gen_texts),
                                            agree_true + len(final_texts))
        lab_tp, lab_pred, lab_true = (lab_tp + len(gen_labels & final_labels), lab_pred + len(gen_labels),
                                      lab_true + len(final_labels))
    out = {"n_studies": len(examples), "n_deleted": deleted,
           "deleted_recurrence": recurred / deleted if deleted else None,
           "overcall_rate": overcalled / len(examples) if examples else None,
           "n_box_corrections": len(ious), "box_iou": float(np.mean(ious)) if ious else None,
           "sentence_agreement": _f1(agree_tp, agree_pred, agree_true),
           "label_f1": _f1(lab_tp, lab_pred, lab_true),
           "deleted_recurrence_by_label": {k: v[0] / v[1] for k, v in sorted(per_label.items())}}
    out["correction_score"] = correction_score(out)
    return out


def correction_score(m: dict) -> float:
    parts = [m["sentence_agreement"]]
    if m.get("deleted_recurrence") is not None:
        parts.append(1.0 - m["deleted_recurrence"])
    if m.get("box_iou") is not None:
        parts.append(m["box_iou"])
    return float(np.mean(parts))


def evaluate_corrections(model, tok, examples: list[CorrectionExample], arrays: list[np.ndarray]) -> dict:
    return correction_metrics(examples, generate_reports(model, tok, arrays))


# ------------------------------------------------------------------ the fixed synthetic regression benchmark


def ensure_benchmark(root: Path, n: int = BENCHMARK_N, seed: int = BENCHMARK_SEED, size: int = BENCHMARK_SIZE) -> Path:
    """The fixed synthetic test set (generated once, deterministic for (n, seed, size))."""
    out = Path(root) / f"synth_n{n}_seed{seed}_s{size}"
    if not (out / "metadata.csv").is_file():
        from training.synth import generate

        tmp = out.with_name(out.name + ".tmp")
        generate(n, tmp, seed=seed, size=size, workers=1, progress=False)
        tmp.rename(out)
    return out


def load_benchmark(directory: Path, image_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    with open(Path(directory) / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    arrays = [image_array(Path(directory) / r["image_path"], image_size) for r in rows]
    truth = np.array([[float(r.get(k) or 0) for k in CHEXPERT_LABELS] for r in rows])
    return arrays, truth


def _macro_f1(pred: np.ndarray, truth: np.ndarray) -> float:
    cols = [CHEXPERT_LABELS.index(k) for k in SCORED_LABELS if truth[:, CHEXPERT_LABELS.index(k)].sum() > 0]
    f1s = []
    for j in cols:
        p, t = pred[:, j] > 0.5, truth[:, j] > 0.5
        f1s.append(_f1(int((p & t).sum()), int(p.sum()), int(t.sum())))
    return float(np.mean(f1s)) if f1s else 0.0


def benchmark_metrics(model, tok, arrays: list[np.ndarray], truth: np.ndarray) -> dict:
    reports = generate_reports(model, tok, arrays)
    stated = np.array([[float(k in stated_labels(r)) for k in CHEXPERT_LABELS] for r in reports])
    head = (finding_probabilities(model, arrays) >= np.array(model.config.head_thresholds)).astype(float)
    return {"n": len(arrays), "report_label_macro_f1": _macro_f1(stated, truth),
            "finding_head_macro_f1": _macro_f1(head, truth),
            "mean_sentences": float(np.mean([len(r) for r in reports])) if reports else 0.0}


def gate(base: dict, adapted: dict, tolerance: float, min_improvement: float) -> dict:
    """Promotable only when the correction score improves and the benchmark does not regress beyond tolerance."""
    gain = adapted["corrections"]["correction_score"] - base["corrections"]["correction_score"]
    drop = base["benchmark"]["report_label_macro_f1"] - adapted["benchmark"]["report_label_macro_f1"]
    head_drop = base["benchmark"]["finding_head_macro_f1"] - adapted["benchmark"]["finding_head_macro_f1"]
    improves = gain > min_improvement
    holds = drop <= tolerance and head_drop <= tolerance
    reasons = []
    if not improves:
        reasons.append(f"correction score gain {gain:+.3f} is not above {min_improvement:+.3f}")
    if not holds:
        reasons.append(f"benchmark macro-F1 dropped by {max(drop, head_drop):.3f} (> tolerance {tolerance:.3f})")
    return {"passed": improves and holds, "correction_gain": gain, "benchmark_drop": drop,
            "finding_head_drop": head_drop, "tolerance": tolerance, "min_improvement": min_improvement,
            "reasons": reasons}
