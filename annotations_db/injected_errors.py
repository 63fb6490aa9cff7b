"""Deliberate draft errors for automation-bias measurement (one per marked case, readers are not told).

An injected error is resolved against the case's draft when the study lead marks it and stored in full
(``detail``): the sentence removed, the sentence inserted, or the original and shown versions of the changed
sentence. Every session of the experiment on that case shows the draft with the error applied (``apply``), so
the record of what a reader saw is exact; ``detected`` says whether the reader's decisions caught it.
"""

from __future__ import annotations

import random
import re
from typing import Any

from .records import InvalidInput

ERROR_KINDS = ("missed_finding", "false_finding", "wrong_side", "wrong_severity", "misplaced_box")
INSERTED_ID_PREFIX = "x"
SIDES = {"left": "right", "right": "left"}
SEVERITY_SWAPS = {"small": "large", "large": "small", "mild": "severe", "severe": "mild", "moderate": "severe",
                  "minimal": "marked", "marked": "minimal", "trace": "large", "tiny": "large", "massive": "small"}
FALSE_FINDINGS = (
    ("Pleural Effusion", "Small right pleural effusion.", (0.55, 0.62, 0.85, 0.82)),
    ("Pneumothorax", "Small left apical pneumothorax.", (0.18, 0.08, 0.42, 0.28)),
    ("Lung Lesion", "A 1.5 cm nodule in the right mid zone.", (0.62, 0.38, 0.72, 0.48)),
    ("Consolidation", "Left lower zone consolidation.", (0.2, 0.55, 0.45, 0.78)),
)


def resolve(bundle: dict[str, Any], kind: str, seed: str) -> tuple[str, dict[str, Any]]:
    """(target sentence id, detail) of this kind of error on this draft; InvalidInput when it has no place."""
    if kind not in ERROR_KINDS:
        raise InvalidInput(f"injected error kind {kind!r} is not one of {', '.join(ERROR_KINDS)}")
    sentences = list(bundle.get("sentences") or [])
    rng = random.Random(seed)
    resolver = {"missed_finding": _missed_finding, "false_finding": _false_finding, "wrong_side": _wrong_side,
                "wrong_severity": _wrong_severity, "misplaced_box": _misplaced_box}[kind]
    found = resolver(sentences, rng)
    if found is None:
        raise InvalidInput(f"the draft has no sentence where a {kind.replace('_', ' ')} error can be injected")
    return found


def apply(bundle: dict[str, Any], sentence_id: str, detail: dict[str, Any]) -> dict[str, Any]:
    """The draft as shown, with the stored error applied."""
    sentences = [s for s in bundle["sentences"] if str(s["id"]) != sentence_id or "shown" in detail]
    if "shown" in detail:
        sentences = [detail["shown"] if str(s["id"]) == sentence_id else s for s in sentences]
    if "inserted" in detail:
        sentences.insert(min(detail["index"], len(sentences)), detail["inserted"])
    return {**bundle, "sentences": sentences}


def detected(kind: str, sentence_id: str, sentences: list[Any], boxes: list[Any], signoff_decision: str | None) -> bool:
    """Whether a reader's final decisions caught the error (rejecting the whole report always does)."""
    if signoff_decision == "reject":
        return True
    by_id = {d.sentence_id: d.decision for d in sentences}
    if kind == "missed_finding":
        return any(d.decision in ("added", "edited") for d in sentences)
    if kind == "misplaced_box":
        box = {d.box_id: d.decision for d in boxes}.get(sentence_id)
        return box in ("moved", "resized", "rejected") or by_id.get(sentence_id) == "deleted"
    return by_id.get(sentence_id) in ("edited", "deleted")


def _findings(sentences: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in sentences if s.get("section") == "findings"
            and (s.get("observation_box") or (s.get("label") not in (None, "No Finding")))]


def _missed_finding(sentences, rng):
    candidates = _findings(sentences)
    if not candidates:
        return None
    target = rng.choice(candidates)
    return str(target["id"]), {"removed": target, "index": sentences.index(target)}


def _false_finding(sentences, rng):
    present = {s.get("label") for s in sentences}
    options = [f for f in FALSE_FINDINGS if f[0] not in present]
    if not options:
        return None
    label, text, (x0, y0, x1, y1) = rng.choice(options)
    taken = {str(s["id"]) for s in sentences}
    new_id = next(f"{INSERTED_ID_PREFIX}{i}" for i in range(1, len(taken) + 2) if f"{INSERTED_ID_PREFIX}{i}" not in taken)
    box = {"x_min": x0, "y_min": y0, "x_max": x1, "y_max": y1}
    trajectory = [{"x": x0 + (x1 - x0) * f, "y": y0 + (y1 - y0) * f, "dwell_ms": 250, "clue_box": box}
                  for f in (0.3, 0.5, 0.7)]
    inserted = {"id": new_id, "section": "findings", "region": None, "label": label, "text": text,
                "confidence": 0.8, "observation_box": box, "trajectory": trajectory}
    findings_end = max((i + 1 for i, s in enumerate(sentences) if s.get("section") == "findings"), default=0)
    return new_id, {"inserted": inserted, "index": rng.randint(0, findings_end)}


def _replace_words(text: str, swaps: dict[str, str]) -> str:
    pattern = re.compile(r"\b(" + "|".join(swaps) + r")\b", re.IGNORECASE)

    def swap(match: re.Match) -> str:
        word = swaps[match.group(0).lower()]
        return word.capitalize() if match.group(0)[0].isupper() else word
    return pattern.sub(swap, text)


def _changed_text(sentences, rng, swaps):
    candidates = [s for s in sentences if _replace_words(s.get("text", ""), swaps) != s.get("text", "")]
    if not candidates:
        return None
    target = rng.choice(candidates)
    return str(target["id"]), {"original": target, "shown": {**target, "text": _replace_words(target["text"], swaps)}}


def _wrong_side(sentences, rng):
    return _changed_text(sentences, rng, SIDES)


def _wrong_severity(sentences, rng):
    return _changed_text(sentences, rng, SEVERITY_SWAPS)


def _misplaced_box(sentences, rng):
    candidates = [s for s in sentences if s.get("observation_box") and _moved_box(s["observation_box"])]
    if not candidates:
        return None
    target = rng.choice(candidates)
    return str(target["id"]), {"original": target, "shown": {**target, "observation_box": _moved_box(target["observation_box"])}}


def _moved_box(box: dict[str, float]) -> dict[str, float] | None:
    """The box mirrored left-right, and top-bottom too when that alone still overlaps; None if it cannot move."""
    for flip_y in (False, True):
        moved = {"x_min": 1 - box["x_max"], "x_max": 1 - box["x_min"],
                 "y_min": 1 - box["y_max"] if flip_y else box["y_min"],
                 "y_max": 1 - box["y_min"] if flip_y else box["y_max"]}
        if _iou(box, moved) < 0.1:
            return moved
    return None


def _iou(a: dict[str, float], b: dict[str, float]) -> float:
    ix = max(0.0, min(a["x_max"], b["x_max"]) - max(a["x_min"], b["x_min"]))
    iy = max(0.0, min(a["y_max"], b["y_max"]) - max(a["y_min"], b["y_min"]))
    union = ((a["x_max"] - a["x_min"]) * (a["y_max"] - a["y_min"])
             + (b["x_max"] - b["x_min"]) * (b["y_max"] - b["y_min"]) - ix * iy)
    return ix * iy / union if union > 0 else 0.0
