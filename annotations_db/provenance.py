"""Sentence and box provenance: edit distance, validation of values, and folding the append-only decision
history into the current state (a later decision supersedes an earlier one; both rows stay)."""

from __future__ import annotations

import math
from typing import Any, Iterable

from rapidfuzz.distance import Levenshtein

from .models import BoxDecisionRow, SentenceDecisionRow
from .records import BoxDecision, InvalidInput, SentenceDecision

# "accepted_at_signoff": the reader signed with the item still pending and chose "accept the rest" -- an explicit
# acceptance without a look at that item, kept apart from an ordinary accept.
ACCEPTED_AT_SIGNOFF = "accepted_at_signoff"
ACCEPTED_DECISIONS = ("accepted", ACCEPTED_AT_SIGNOFF)
SENTENCE_DECISIONS = ("accepted", "edited", "deleted", ACCEPTED_AT_SIGNOFF)
BOX_DECISIONS = ("accepted", "moved", "resized", "rejected", "added", ACCEPTED_AT_SIGNOFF)
SIGNOFF_DECISIONS = ("accept", "modify", "reject")
ERROR_CATEGORIES = ("finding", "location", "severity", "style", "other")
SECTIONS = ("findings", "impression")
HUMAN_SENTENCE_PREFIX = "h"
DRAWN_BOX_PREFIX = "b"


def edit_distance(original: str | None, final: str | None) -> int:
    """Character Levenshtein distance (rapidfuzz); a deletion costs the whole original, an addition the whole new text."""
    return Levenshtein.distance(original or "", final or "")


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise InvalidInput(f"{name} {value!r} is not one of {', '.join(choices)}")
    return value


def check_duration(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidInput(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def check_box(box: Any) -> tuple[float, float, float, float]:
    if not isinstance(box, (tuple, list)) or len(box) != 4:
        raise InvalidInput("box must be (x_min, y_min, x_max, y_max)")
    coords = tuple(check_duration(v, "box coordinate") for v in box)
    x_min, y_min, x_max, y_max = coords
    if max(coords) > 1.0 or not (x_max > x_min and y_max > y_min):
        raise InvalidInput(f"box {tuple(box)} must be normalised 0-1 with x_max > x_min and y_max > y_min")
    return coords  # type: ignore[return-value]


def draft_sentences(draft: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    if not draft:
        return {}
    return {str(s["id"]): s for s in draft.get("sentences", [])}


def draft_box(sentence: dict[str, Any]) -> tuple[float, float, float, float] | None:
    box = sentence.get("observation_box")
    if not box:
        return None
    return (float(box["x_min"]), float(box["y_min"]), float(box["x_max"]), float(box["y_max"]))


def latest_by(rows: Iterable[Any], key: str) -> dict[str, Any]:
    """The latest row (highest id) per key, in first-seen order of the key."""
    latest: dict[str, Any] = {}
    for row in sorted(rows, key=lambda r: r.id):
        latest[getattr(row, key)] = row
    return latest


def current_sentences(rows: Iterable[SentenceDecisionRow]) -> list[SentenceDecision]:
    rows = list(rows)
    added_text = {r.sentence_id: r for r in rows if r.decision == "added"}
    result = []
    for sentence_id, row in latest_by(rows, "sentence_id").items():
        if sentence_id in added_text and row.decision != "deleted":
            result.append(_sentence_record(row, decision="added", original=None))
        else:
            result.append(_sentence_record(row, decision=row.decision, original=row.original_text))
    return result


def _sentence_record(row: SentenceDecisionRow, *, decision: str, original: str | None) -> SentenceDecision:
    return SentenceDecision(sentence_id=row.sentence_id, decision=decision, original_text=original,
                            final_text=row.final_text, edit_distance=row.edit_distance,
                            error_category=row.error_category, clinically_significant=row.clinically_significant,
                            duration_ms=row.duration_ms)


def current_boxes(rows: Iterable[BoxDecisionRow]) -> list[BoxDecision]:
    rows = list(rows)
    drawn = {r.box_id for r in rows if r.decision == "added"}
    result = []
    for box_id, row in latest_by(rows, "box_id").items():
        decision = "added" if box_id in drawn and row.decision != "rejected" else row.decision
        result.append(BoxDecision(box_id=box_id, decision=decision, x_min=row.x_min, y_min=row.y_min,
                                  x_max=row.x_max, y_max=row.y_max, linked_sentence_id=row.linked_sentence_id,
                                  duration_ms=row.duration_ms))
    return result


def provenance_label(decision: SentenceDecision | None) -> str:
    """AI-accepted / AI-accepted at sign-off / AI-edited / AI-deleted / human-added (an undecided draft sentence signed
    off is AI-accepted)."""
    if decision is not None and decision.decision == ACCEPTED_AT_SIGNOFF:
        return "ai_accepted_at_signoff"
    if decision is None or decision.decision == "accepted":
        return "ai_accepted"
    return {"edited": "ai_edited", "deleted": "ai_deleted", "added": "human_added"}[decision.decision]
