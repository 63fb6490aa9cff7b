"""Sentence and box provenance: edit distance, validation of values, and folding the append-only decision
history into the current state (a later decision supersedes an earlier one; both rows stay)."""

from __future__ import annotations

import math
from typing import Any, Iterable

from rapidfuzz.distance import Levenshtein

from .models import BoxDecisionRow, SentenceDecisionRow
from .records import BoxDecision, InvalidInput, SentenceDecision

# "accepted_at_signoff": the reader signed with the item still pending and chose "accept the rest" -- an explicit
# acceptance without a look at that item, kept apart from an ordinary accept. The browser may record it item by
# item, or sign_off(accept_rest=True) records it for every item still pending.
ACCEPTED_AT_SIGNOFF = "accepted_at_signoff"
ACCEPTED_DECISIONS = ("accepted", ACCEPTED_AT_SIGNOFF)
SENTENCE_DECISIONS = ("accepted", "edited", "deleted", ACCEPTED_AT_SIGNOFF)
BOX_DECISIONS = ("accepted", "moved", "resized", "rejected", "added", ACCEPTED_AT_SIGNOFF)
SIGNOFF_DECISIONS = ("accept", "modify", "reject")
ERROR_CATEGORIES = ("finding", "location", "severity", "style", "other")
SECTIONS = ("findings", "impression")
HUMAN_SENTENCE_PREFIX = "h"
DRAWN_BOX_PREFIX = "b"

# Limits of every value the service stores (the app imports these; nothing else defines them).
USERNAME_MAX = 64
TEXT_MAX = 20_000
ITEM_ID_MAX = 40
EVENT_TYPE_MAX = 64
PAYLOAD_MAX = 64_000
DECISION_ID_MAX = 64
JSON_DEPTH_MAX = 32
ID_MAX = 2**31 - 1
DURATION_MAX_MS = 7 * 24 * 3600 * 1000.0
CLIENT_TS_MAX = 4_102_444_800_000.0  # 2100-01-01 in epoch ms


def edit_distance(original: str | None, final: str | None) -> int:
    """Character Levenshtein distance (rapidfuzz); a deletion costs the whole original, an addition the whole new text."""
    return Levenshtein.distance(original or "", final or "")


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if not isinstance(value, str) or value not in choices:
        raise InvalidInput(f"{name} {_show(value)} is not one of {', '.join(choices)}")
    return value


def check_text(value: Any, name: str, *, limit: int = TEXT_MAX, required: bool = True,
               single_line: bool = False) -> str | None:
    """Text that stores identically on SQLite and PostgreSQL: no unpaired surrogate, no NUL, no control
    character (tab and, unless single_line, line breaks are allowed), at most ``limit`` characters.
    None passes only when not required; required text must not be blank."""
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text, got {type(value).__name__}")
    if len(value) > limit:
        raise InvalidInput(f"{name} is {len(value)} characters long; the limit is {limit}")
    if required and not value.strip():
        raise InvalidInput(f"{name} is empty")
    for position, char in enumerate(value, start=1):
        problem = _bad_character(char, single_line)
        if problem:
            raise InvalidInput(f"{name} contains {problem} (U+{ord(char):04X}) at character {position}")
    return value


def _bad_character(char: str, single_line: bool) -> str | None:
    code = ord(char)
    if 0xD800 <= code <= 0xDFFF:
        return "an unpaired surrogate"
    if code == 0:
        return "a NUL character"
    if char == "\t" or (char in "\n\r" and not single_line):
        return None
    if code < 0x20 or 0x7F <= code <= 0x9F:
        return "a control character"
    return None


def check_item_id(value: Any, name: str, *, required: bool = True) -> str | None:
    """A sentence/box id: short single-line text."""
    return check_text(value, name, limit=ITEM_ID_MAX, required=required, single_line=True)


def check_id(value: Any, name: str) -> int:
    """A database row id: a whole number 1..2^31-1 (PostgreSQL INTEGER); 12.0 from JSON counts as 12."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be a whole number, got {_show(value)}")
    if not 1 <= value <= ID_MAX:
        raise InvalidInput(f"{name} {value} is out of range (1-{ID_MAX})")
    return value


def check_number(value: Any, name: str, *, low: float, high: float, required: bool = False) -> float | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, got {_show(value)}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} {value!r} is out of range ({low:g}-{high:g})")
    return float(value)


def check_duration(value: Any, name: str) -> float | None:
    """Milliseconds, 0 to 7 days (None = not measured)."""
    return check_number(value, name, low=0.0, high=DURATION_MAX_MS)


def check_client_ts(value: Any) -> float | None:
    """The browser's epoch milliseconds (None = unknown)."""
    return check_number(value, "client_ts", low=0.0, high=CLIENT_TS_MAX)


def check_decision_id(value: Any) -> str | None:
    """The client's idempotency key of a decision: letters, digits and ._:- (a UUID fits)."""
    if value is None:
        return None
    text = check_text(value, "decision_id", limit=DECISION_ID_MAX, single_line=True)
    if not all(ch.isascii() and (ch.isalnum() or ch in "._:-") for ch in text):
        raise InvalidInput("decision_id may hold only ASCII letters, digits and ._:-")
    return text


def check_username(value: Any) -> str:
    text = check_text(value, "username", limit=USERNAME_MAX, single_line=True)
    if not all(ch.isalnum() or ch in "._-@" for ch in text):
        raise InvalidInput(f"username must be 1-{USERNAME_MAX} letters, digits or ._-@")
    return text


def check_json(value: Any, name: str, *, depth: int = 0) -> None:
    """Plain JSON (objects, lists, text, finite numbers, booleans, null) whose every key and text is valid text
    (PostgreSQL JSONB refuses NUL and unpaired surrogates that SQLite would store)."""
    if depth > JSON_DEPTH_MAX:
        raise InvalidInput(f"{name} is nested deeper than {JSON_DEPTH_MAX} levels")
    if isinstance(value, str):
        check_text(value, name, limit=PAYLOAD_MAX, required=False)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(f"{name} is {value!r}; JSON has no NaN or infinity")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"{name} has a non-text key {_show(key)}")
            check_text(key, f"{name} key", limit=ITEM_ID_MAX * 4, single_line=True)
            check_json(item, f"{name}.{key[:40]}", depth=depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_json(item, f"{name}[{index}]", depth=depth + 1)
    elif value is not None and not isinstance(value, (bool, int, float)):
        raise InvalidInput(f"{name} holds a {type(value).__name__}, which is not JSON")


def check_box(box: Any) -> tuple[float, float, float, float]:
    """Normalised 0-1 (x_min, y_min, x_max, y_max) with x_max > x_min and y_max > y_min; refused, never clamped."""
    if isinstance(box, dict):
        box = [box.get(k) for k in ("x_min", "y_min", "x_max", "y_max")]
    if not isinstance(box, (tuple, list)) or len(box) != 4:
        raise InvalidInput("box must be [x_min, y_min, x_max, y_max]")
    coords = tuple(check_number(v, f"box {axis}", low=0.0, high=1.0, required=True)
                   for axis, v in zip(("x_min", "y_min", "x_max", "y_max"), box))
    x_min, y_min, x_max, y_max = coords
    if not (x_max > x_min and y_max > y_min):
        raise InvalidInput(f"box {list(coords)} needs x_max > x_min and y_max > y_min")
    return coords  # type: ignore[return-value]


def _show(value: Any) -> str:
    """A value for a one-line message: repr (escapes line breaks and surrogates), cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


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
