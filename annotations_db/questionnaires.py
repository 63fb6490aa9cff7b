"""Optional questionnaires of an experiment: a post-case item set (Likert, free text), post-session NASA-TLX
(six 0-100 subscales, raw TLX = their mean) and SUS (ten 1-5 items, Brooke's 0-100 score)."""

from __future__ import annotations

from typing import Any

from .records import InvalidInput

NASA_TLX_ITEMS = ("mental", "physical", "temporal", "performance", "effort", "frustration")
SUS_ITEMS = tuple(f"q{i}" for i in range(1, 11))
POST_SESSION = ("nasa_tlx", "sus")
ITEM_TYPES = ("likert", "text")
TEXT_MAX = 4000


def check_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """{"post_case": [{"id", "type": likert|text, "text", "scale": n (likert)}], "post_session": [nasa_tlx|sus]}."""
    config = dict(config or {})
    unknown = set(config) - {"post_case", "post_session"}
    if unknown:
        raise InvalidInput(f"questionnaires: unknown keys {', '.join(sorted(unknown))}")
    items = config.get("post_case") or []
    ids = [item.get("id") if isinstance(item, dict) else None for item in items]
    if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
        raise InvalidInput("questionnaires: post-case items need distinct non-empty ids")
    for item in items:
        if item.get("type") not in ITEM_TYPES:
            raise InvalidInput(f"questionnaires: item {item['id']!r} type must be one of {', '.join(ITEM_TYPES)}")
        if item["type"] == "likert" and not (isinstance(item.get("scale"), int) and 2 <= item["scale"] <= 11):
            raise InvalidInput(f"questionnaires: likert item {item['id']!r} needs a scale of 2-11 points")
    sessions = list(config.get("post_session") or [])
    if any(s not in POST_SESSION for s in sessions) or len(set(sessions)) != len(sessions):
        raise InvalidInput(f"questionnaires: post_session items must be distinct of {', '.join(POST_SESSION)}")
    return {"post_case": items, "post_session": sessions}


def score(instrument: str, config: dict[str, Any], answers: dict[str, Any]) -> float | None:
    """Validates the answers (all items, in range) and returns the instrument's score (None for post-case)."""
    if not isinstance(answers, dict):
        raise InvalidInput(f"{instrument}: answers must be an object of item -> answer")
    if instrument == "post_case":
        _check_post_case(config["post_case"], answers)
        return None
    items, low, high = (NASA_TLX_ITEMS, 0, 100) if instrument == "nasa_tlx" else (SUS_ITEMS, 1, 5)
    values = _numbers(instrument, items, answers, low, high)
    if instrument == "nasa_tlx":
        return sum(values) / len(values)
    return 2.5 * sum((v - 1) if i % 2 == 0 else (5 - v) for i, v in enumerate(values))


def _check_post_case(items: list[dict[str, Any]], answers: dict[str, Any]) -> None:
    known = {item["id"]: item for item in items}
    extra = set(answers) - set(known)
    if extra:
        raise InvalidInput(f"post_case: unknown items {', '.join(sorted(extra))}")
    for item_id, item in known.items():
        value = answers.get(item_id)
        if item["type"] == "likert":
            if not (isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= item["scale"]):
                raise InvalidInput(f"post_case: item {item_id!r} needs a whole number 1-{item['scale']}")
        elif value is not None and (not isinstance(value, str) or len(value) > TEXT_MAX):
            raise InvalidInput(f"post_case: item {item_id!r} needs text of at most {TEXT_MAX} characters")


def _numbers(instrument: str, items: tuple[str, ...], answers: dict[str, Any], low: int, high: int) -> list[float]:
    if set(answers) != set(items):
        raise InvalidInput(f"{instrument}: needs exactly the items {', '.join(items)}")
    values = []
    for item in items:
        value = answers[item]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InvalidInput(f"{instrument}: item {item!r} must be a number {low}-{high}")
        values.append(float(value))
    return values
