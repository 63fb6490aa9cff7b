"""Report-generation metrics of the field, offline: BLEU-1..4, METEOR, ROUGE-L and CIDEr through
pycocoevalcap (METEOR runs its bundled Java jar), and clinical efficacy — micro and macro precision,
recall and F1 over the 14 CheXpert observations as read by the project's labeler (gazex_core.labeler).

Text is lower-cased and split into words and punctuation here (pycocoevalcap's PTB tokenizer would start
a Stanford CoreNLP JVM per call); the same tokens go to every metric.
"""

from __future__ import annotations

import functools
import re
import shutil
from typing import Any

from gazex_core.labeler import CHEXPERT_OBSERVATIONS, report_labels

TOKEN = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*|[^\sa-z0-9]")


def tokens(text: str) -> str:
    return " ".join(TOKEN.findall((text or "").lower()))


def nlg_metrics(references: list[str], hypotheses: list[str], *, meteor: bool = True) -> dict[str, float | None]:
    """Corpus BLEU-1..4, METEOR (None without a Java runtime), ROUGE-L and CIDEr-D of paired reports."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    if len(references) != len(hypotheses) or not references:
        raise ValueError(f"need paired, non-empty reports (got {len(references)} references, "
                         f"{len(hypotheses)} hypotheses)")
    gts = {i: [tokens(r)] for i, r in enumerate(references)}
    res = {i: [tokens(h) or "."] for i, h in enumerate(hypotheses)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    out: dict[str, float | None] = {f"bleu{n}": float(b) for n, b in enumerate(bleu, start=1)}
    out["rouge_l"] = float(Rouge().compute_score(gts, res)[0])
    out["cider"] = float(Cider().compute_score(gts, res)[0])
    out["meteor"] = _meteor(gts, res) if meteor else None
    return out


def _meteor(gts: dict, res: dict) -> float | None:
    if shutil.which("java") is None:
        return None
    return float(_meteor_scorer().compute_score(gts, res)[0])


@functools.cache
def _meteor_scorer():
    """One METEOR Java process per Python process: starting it (JVM + paraphrase tables) takes about 14 s, scoring
    a few hundred reports well under one; it ends with the process (the scorer's ``__del__``, or EOF on its stdin)."""
    from pycocoevalcap.meteor.meteor import Meteor

    return Meteor()


def clinical_efficacy(references: list[str], hypotheses: list[str],
                      observations: tuple[str, ...] = CHEXPERT_OBSERVATIONS) -> dict[str, Any]:
    """Micro and macro P/R/F1 of the labels the labeler reads from each hypothesis against its reference."""
    counts = {label: [0, 0, 0] for label in observations}  # tp, fp, fn
    for reference, hypothesis in zip(references, hypotheses):
        truth, guess = report_labels(reference), report_labels(hypothesis)
        for label in observations:
            counts[label][0] += label in truth and label in guess
            counts[label][1] += label in guess and label not in truth
            counts[label][2] += label in truth and label not in guess
    per_label = {label: dict(zip(("precision", "recall", "f1"), _prf(*c)), support=c[0] + c[2])
                 for label, c in counts.items()}
    present = [v for v in per_label.values() if v["support"] > 0]
    micro = _prf(*(sum(c[i] for c in counts.values()) for i in range(3)))
    return {"micro": dict(zip(("precision", "recall", "f1"), micro)),
            "macro": {k: sum(v[k] for v in present) / len(present) if present else 0.0
                      for k in ("precision", "recall", "f1")},
            "per_label": per_label}


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return precision, recall, f1
