"""Pure handler functions behind the Gradio app: testable without a browser.

Every function takes the ReviewService (and, where the model is needed, the shared
InferenceWorker) explicitly; none of them touches Gradio. The acting reader is always
the authenticated username taken from the request by the caller — never from the browser
payload — and the service checks that a session belongs to that reader.

Server-function acks follow docs/workstation_contract.md:
  success  -> {"ok": True, "seq": n | None, "server_ts": iso, ...}
  refusal  -> {"ok": False, "error": "...", "retry": False}   (AccessDenied, InvalidTransition, bad input)
  failure  -> the exception propagates (HTTP 500) so the browser shows it and retries.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Callable

from annotations_db import provenance
from annotations_db.service import AccessDenied, ReviewError, ReviewService, SessionState, WorklistItem

WORKLIST_STATUSES = ("unread", "in_progress", "signed")
SENTENCE_DECISIONS = provenance.SENTENCE_DECISIONS
BOX_DECISIONS = provenance.BOX_DECISIONS
SIGNOFF_DECISIONS = ("accept", "modify", "reject")
ERROR_CATEGORIES = ("finding", "location", "severity", "style", "other")
EVENT_TYPE_MAX = 40
TEXT_MAX = 4000
QUESTION_MAX = 500
ASK_TIMEOUT_S = 60.0  # a question waits at most this long for the shared model thread
WORKLIST_COLUMNS = ["#", "Study", "Status", "Draft", "Arm", "study_id"]


class BadInput(ReviewError):
    """A browser payload that breaks the contract (wrong type, out of range)."""


# --- login and roles -----------------------------------------------------------


def check_login(service: ReviewService, username: str, password: str) -> bool:
    """The Gradio auth callable: readers are stored in the database."""
    if not username or not password:
        return False
    return service.authenticate(username, password) is not None


def reader_role(service: ReviewService, username: str | None) -> str | None:
    for reader in service.list_readers():
        if reader.username == username:
            return reader.role
    return None


def require_admin(service: ReviewService, username: str | None) -> None:
    if reader_role(service, username) != "admin":
        raise AccessDenied("only an admin can do this")


# --- worklist --------------------------------------------------------------------


def worklist_rows(service: ReviewService, reader: str, status: str | None = None) -> list[list[Any]]:
    """One row per study in the reader's (experiment-ordered) worklist, optionally filtered by status."""
    if status in ("", "all"):
        status = None
    if status is not None and status not in WORKLIST_STATUSES:
        raise BadInput(f"unknown status filter {status!r}")
    items = sorted(service.worklist(reader, status=status), key=lambda item: item.position)
    return [_worklist_row(item) for item in items]


def _worklist_row(item: WorklistItem) -> list[Any]:
    draft = "ready" if item.has_draft else ("n/a" if item.arm == "no_ai" else "pending")
    return [item.position, item.study.study_uid, item.status.replace("_", " "), draft, item.arm or "", item.study.id]


def next_study_id(service: ReviewService, reader: str, after_study_id: int | None = None) -> int | None:
    """The next study to read: the first not-signed study after the current one in worklist order, else the first."""
    items = sorted(service.worklist(reader), key=lambda item: item.position)
    open_items = [item for item in items if item.status != "signed"]
    if not open_items:
        return None
    positions = [item.study.id for item in items]
    if after_study_id in positions:
        current = positions.index(after_study_id)
        later = [item for item in open_items if positions.index(item.study.id) > current]
        if later:
            return later[0].study.id
    return open_items[0].study.id


def worklist_summary(rows: list[list[Any]]) -> str:
    counts = {status: 0 for status in WORKLIST_STATUSES}
    for row in rows:
        counts[row[2].replace(" ", "_")] = counts.get(row[2].replace(" ", "_"), 0) + 1
    return " · ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in WORKLIST_STATUSES)


# --- opening a study -------------------------------------------------------------


def open_study(service: ReviewService, reader: str, study_id: int,
               image_payload: Callable[[str], dict[str, Any]]) -> tuple[dict[str, Any], SessionState]:
    """Opens (or reopens) the reader's session on the study; returns the workstation value and the state.

    The image comes from the study's server-side file reference only (``StudyInfo.image_path``).
    """
    state = service.open_session(reader, int(study_id))
    image = image_payload(state.study.image_path)
    return workstation_value(state, image), state


def workstation_value(state: SessionState, image: dict[str, Any]) -> dict[str, Any]:
    """The component value of docs/workstation_contract.md, with the reader's decisions restored."""
    from .workstation import workstation_value as component_value

    sentence_state = {d.sentence_id: {"status": d.decision, "final_text": d.final_text}
                      for d in state.sentences if d.decision != "added"}
    box_state = {d.box_id: {"status": d.decision, "x_min": d.x_min, "y_min": d.y_min, "x_max": d.x_max,
                            "y_max": d.y_max} for d in state.boxes if d.decision != "added"}
    added_sentences = [{"id": d.sentence_id, "text": d.final_text or "", "final_text": d.final_text or ""}
                       for d in state.sentences if d.decision == "added"]
    added_boxes = [{"id": d.box_id, "sentence_id": d.linked_sentence_id, "label": None, "x_min": d.x_min,
                    "y_min": d.y_min, "x_max": d.x_max, "y_max": d.y_max, "status": "added"}
                   for d in state.boxes if d.decision == "added" and d.x_min is not None]
    return component_value(state.draft or {}, image, session_id=state.session_id, study_key=state.study.study_uid,
                           readonly=state.status != "open", sentence_state=sentence_state, box_state=box_state,
                           added_sentences=added_sentences, added_boxes=added_boxes)


# --- server functions (browser -> Python) ------------------------------------------


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _ack(seq: int | None = None, server_ts: datetime | str | None = None, **extra: Any) -> dict[str, Any]:
    if isinstance(server_ts, datetime):
        server_ts = server_ts.isoformat(timespec="milliseconds")
    return {"ok": True, "seq": seq, "server_ts": server_ts or _now_iso(), **extra}


def refusal(exc: ReviewError) -> dict[str, Any]:
    return {"ok": False, "error": str(exc) or type(exc).__name__, "retry": False}


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise BadInput(f"{name} must be an integer")
    try:
        number = int(value)
    except ValueError as exc:
        raise BadInput(f"{name} must be an integer") from exc
    return number


def _opt_float(value: Any, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise BadInput(f"{name} must be a non-negative number")
    return float(value)


def _opt_text(value: Any, name: str, limit: int = TEXT_MAX) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise BadInput(f"{name} must be text of at most {limit} characters")
    return value


def _choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    if value not in choices:
        raise BadInput(f"{name} must be one of {', '.join(choices)}")
    return value


def _box(value: Any) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        value = [value.get(k) for k in ("x_min", "y_min", "x_max", "y_max")]
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise BadInput("box must be [x_min, y_min, x_max, y_max]")
    coords = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise BadInput("box coordinates must be numbers")
        coords.append(min(max(float(v), 0.0), 1.0))
    x_min, y_min, x_max, y_max = coords
    if x_max <= x_min or y_max <= y_min:
        raise BadInput("box must have x_max > x_min and y_max > y_min")
    return (x_min, y_min, x_max, y_max)


def record_event(service: ReviewService, reader: str, session_id: Any, event_type: Any, payload: Any = None,
                 client_ts: Any = None) -> dict[str, Any]:
    event_type = _opt_text(event_type, "event_type", EVENT_TYPE_MAX)
    if not event_type:
        raise BadInput("event_type is required")
    if payload is not None and not isinstance(payload, dict):
        raise BadInput("payload must be an object")
    ack = service.record_event(reader, _int(session_id, "session_id"), event_type, payload or {},
                               _opt_float(client_ts, "client_ts"))
    return _ack(ack.seq, ack.server_ts)


def decide_sentence(service: ReviewService, reader: str, session_id: Any, sentence_id: Any, decision: Any,
                    final_text: Any = None, error_category: Any = None, clinically_significant: Any = None,
                    client_ts: Any = None, duration_ms: Any = None) -> dict[str, Any]:
    decision = _choice(decision, SENTENCE_DECISIONS, "decision")
    if error_category is not None:
        error_category = _choice(error_category, ERROR_CATEGORIES, "error_category")
    if clinically_significant is not None and not isinstance(clinically_significant, bool):
        raise BadInput("clinically_significant must be true, false or null")
    result = service.decide_sentence(
        reader, _int(session_id, "session_id"), _opt_text(sentence_id, "sentence_id", 40) or "", decision,
        final_text=_opt_text(final_text, "final_text"), error_category=error_category,
        clinically_significant=clinically_significant, client_ts=_opt_float(client_ts, "client_ts"),
        duration_ms=_opt_float(duration_ms, "duration_ms"))
    return _ack(sentence_id=result.sentence_id, decision=result.decision, edit_distance=result.edit_distance)


def add_sentence(service: ReviewService, reader: str, session_id: Any, text: Any, section: Any = "findings",
                 after_sentence_id: Any = None, client_ts: Any = None, duration_ms: Any = None) -> dict[str, Any]:
    text = _opt_text(text, "text")
    if not text or not text.strip():
        raise BadInput("the new sentence is empty")
    section = _choice(section or "findings", ("findings", "impression"), "section")
    result = service.add_sentence(
        reader, _int(session_id, "session_id"), text.strip(), section=section,
        after_sentence_id=_opt_text(after_sentence_id, "after_sentence_id", 40),
        client_ts=_opt_float(client_ts, "client_ts"), duration_ms=_opt_float(duration_ms, "duration_ms"))
    return _ack(sentence_id=result.sentence_id, decision=result.decision)


def decide_box(service: ReviewService, reader: str, session_id: Any, box_id: Any, decision: Any, box: Any = None,
               linked_sentence_id: Any = None, client_ts: Any = None, duration_ms: Any = None) -> dict[str, Any]:
    decision = _choice(decision, BOX_DECISIONS, "decision")
    coords = _box(box)
    if decision in ("moved", "resized", "added") and coords is None:
        raise BadInput(f"a {decision} box needs its coordinates")
    if decision == "added":
        box_id = None  # the browser's id for a drawn box is local; the server assigns b<n>
    result = service.decide_box(
        reader, _int(session_id, "session_id"), _opt_text(box_id, "box_id", 40), decision, box=coords,
        linked_sentence_id=_opt_text(linked_sentence_id, "linked_sentence_id", 40),
        client_ts=_opt_float(client_ts, "client_ts"), duration_ms=_opt_float(duration_ms, "duration_ms"))
    return _ack(box_id=result.box_id, decision=result.decision)


def sign_off(service: ReviewService, reader: str, session_id: Any, decision: Any, final_report: Any,
             active_ms: Any = 0.0, idle_ms: Any = 0.0, hidden_ms: Any = 0.0, client_ts: Any = None) -> dict[str, Any]:
    decision = _choice(decision, SIGNOFF_DECISIONS, "decision")
    report = _opt_text(final_report, "final_report", 20000) or ""
    result = service.sign_off(
        reader, _int(session_id, "session_id"), decision, report,
        active_ms=_opt_float(active_ms, "active_ms") or 0.0, idle_ms=_opt_float(idle_ms, "idle_ms") or 0.0,
        hidden_ms=_opt_float(hidden_ms, "hidden_ms") or 0.0, client_ts=_opt_float(client_ts, "client_ts"))
    return _ack(signoff=_jsonable(result))


def ask(service: ReviewService, worker: Any, reader: str, session_id: Any, question: Any,
        client_ts: Any = None) -> dict[str, Any]:
    """Answers a free-text question about the session's image with the shared model (queued on its thread)."""
    question = _opt_text(question, "question", QUESTION_MAX)
    if not question or not question.strip():
        raise BadInput("the question is empty")
    state = service.session_state(reader, _int(session_id, "session_id"))
    if state.arm == "no_ai":
        raise AccessDenied("questions to the model are off in this reading arm")
    if worker is None:
        raise ReviewError("no model is loaded on this server (review-only mode)")
    answer = worker.ask(state.study.image_path, question.strip(), timeout_s=ASK_TIMEOUT_S)
    service.record_event(reader, state.session_id, "ask_answer", {"question": question.strip(), **answer},
                         _opt_float(client_ts, "client_ts"))
    return {"ok": True, **answer}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds")
    return value


def call_with_args(handler: Callable[..., dict[str, Any]], fixed: tuple, data: Any) -> dict[str, Any]:
    """Applies a browser payload (positional list, keyword object or a single value) to a handler.

    Contract refusals come back as {"ok": False, ...}; anything else propagates so the browser retries.
    """
    try:
        if isinstance(data, dict):
            return handler(*fixed, **data)
        if isinstance(data, (list, tuple)):
            return handler(*fixed, *data)
        return handler(*fixed, data)
    except TypeError as exc:
        return refusal(BadInput(f"bad arguments: {exc}"))
    except ReviewError as exc:
        return refusal(exc)


# --- admin -----------------------------------------------------------------------


def add_reader(service: ReviewService, acting: str, username: str, password: str, role: str = "reader") -> str:
    require_admin(service, acting)
    username = (username or "").strip()
    if not username or len(username) > 64 or not username.replace("_", "").replace(".", "").replace("-", "").isalnum():
        raise BadInput("username: 1-64 letters, digits, '.', '_' or '-'")
    if len(password or "") < 8:
        raise BadInput("password: at least 8 characters")
    role = _choice(role, ("reader", "admin"), "role")
    info = service.create_reader(username, password, role, acting=acting)
    return f"Added {info.role} {info.username}."


def readers_rows(service: ReviewService, acting: str) -> list[list[Any]]:
    """id, username, role, display name, account status (enabled / disabled / locked until), last sign-in."""
    require_admin(service, acting)
    states = service.account_states()
    return [[r.id, r.username, r.role, r.display_name or "", _account_status(states.get(r.username)),
             _when(states[r.username].last_sign_in) if r.username in states else ""] for r in service.list_readers()]


def _account_status(state: Any) -> str:
    if state is None:
        return ""
    if state.disabled:
        return "disabled"
    if state.locked_until is not None:
        return f"locked until {_when(state.locked_until)}"
    return f"enabled, {state.open_sessions} open session{'s' if state.open_sessions != 1 else ''}"


def _when(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def set_reader_disabled(service: ReviewService, acting: str, username: str, disabled: bool) -> str:
    """Admin: disable (ends the reader's sessions at once) or enable (also lifts a lockout) a reader."""
    require_admin(service, acting)
    username = (username or "").strip()
    service.set_reader_disabled(username, bool(disabled), acting=acting)
    return f"Disabled {username}; their sessions have ended." if disabled else f"Enabled {username}."


def set_reader_password(service: ReviewService, acting: str, username: str, password: str,
                        acting_token: str | None = None) -> str:
    """Admin: set a reader's password; the reader's sessions end (an admin's own current one is kept)."""
    require_admin(service, acting)
    username = (username or "").strip()
    keep = acting_token if username == acting else None
    service.set_password(username, password or "", acting=acting, keep_token=keep)
    return f"Password of {username} set; their other sessions have ended."


def model_version_rows(service: ReviewService, acting: str) -> list[list[Any]]:
    require_admin(service, acting)
    return [[m.id, m.name, m.version, m.status, m.parent_id or "", m.weights_hash[:12],
             ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in (m.metrics or {}).items())]
            for m in service.list_model_versions()]
