"""Pure handler functions behind the Gradio app: testable without a browser.

Every function takes the ReviewService (and, where the model is needed, the shared
InferenceWorker) explicitly; none of them touches Gradio. The acting reader is always
the authenticated username taken from the request by the caller — never from the browser
payload — and the service checks that a session belongs to that reader.

Validation is the service's (annotations_db): the handlers pass the browser's values through and import the
service's limits and checks; they only reshape what is browser-specific (a box as an object, a drawn box's local id).

Server-function acks follow docs/workstation_contract.md; every exception becomes an answer, none escapes:
  success  -> {"ok": True, "seq": n | None, "server_ts": iso, ...}   ("replayed": True for a repeated decision_id)
  refusal  -> {"ok": False, "error": one line, "retry": False}   (ReviewError, bad arguments, any unexpected error:
              retrying it could never succeed, and the browser's ordered queue must not stall on it)
  transient-> {"ok": False, "error": one line, "retry": True}    (database unreachable, locked or timed out)
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from annotations_db.experiments import is_unaided
from annotations_db.service import (TEXT_MAX, WORKLIST_STATUSES, AccessDenied, PendingItems, ReviewError,
                                    ReviewService, SessionState, WorklistItem, check_text)

if TYPE_CHECKING:
    from .image_payload import StudyImage

QUESTION_MAX = 500  # the model's question box (an app limit: the service stores the question as event payload)
ASK_TIMEOUT_S = 60.0  # a question waits at most this long for the shared model thread
WORKLIST_COLUMNS = ["#", "Study", "Status", "Draft", "Arm", "study_id"]


class BadInput(ReviewError):
    """A browser payload that breaks the contract (wrong shape of arguments)."""


log = logging.getLogger(__name__)
RETRYABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout, OSError)  # OSError: the file system
# (a missing or full data directory) -- TimeoutError and ConnectionError are OSErrors too
MESSAGE_MAX = 300


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
    draft = "ready" if item.has_draft else ("n/a" if is_unaided(item.arm) else "pending")
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


def washout_notice(service: ReviewService, reader: str) -> str:
    """One line per experiment whose next period is still in its washout, naming the date it opens ("" if none)."""
    return "\n".join(f"Experiment '{w['experiment']}': period {w['period']} is in its washout; it opens on "
                     f"{w['opens_at']:%Y-%m-%d %H:%M} UTC." for w in service.reader_washouts(reader))


def worklist_heading(service: ReviewService, reader: str, rows: list[list[Any]]) -> str:
    """The status counts, then any washout that keeps the reader's next cases closed."""
    lines = washout_notice(service, reader).splitlines()
    return "\n\n".join([worklist_summary(rows)] + [f"**{line}**" for line in lines])


# --- opening a study -------------------------------------------------------------


def open_study(service: ReviewService, reader: str, study_id: int,
               study_image: Callable[[str], StudyImage]) -> tuple[dict[str, Any], SessionState]:
    """Opens (or reopens) the reader's session on the study; returns the workstation value and the state.

    The image comes from the study's server-side file reference only (``StudyInfo.image_path``); the value
    carries its reference (URL with the study key and the pixels' hash), never the pixels.
    """
    state = service.open_session(reader, int(study_id))
    image = study_image(state.study.image_path)
    return workstation_value(state, image.reference(state.study.study_uid)), state


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


def refusal(exc: BaseException) -> dict[str, Any]:
    """A refused item: shown by the browser, never retried."""
    answer = {"ok": False, "error": one_line(exc), "retry": False}
    if isinstance(exc, PendingItems):
        answer["pending"] = {"sentences": exc.sentences, "boxes": exc.boxes}
    return answer


def retryable(exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": f"temporarily unavailable, retrying: {one_line(exc)}", "retry": True}


def one_line(exc: BaseException) -> str:
    """The first line of the message (SQLAlchemy appends the SQL and a link on later lines), at most 300 chars."""
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    text = (text or type(exc).__name__).encode("utf-8", "backslashreplace").decode("utf-8")  # no lone surrogate
    return text if len(text) <= MESSAGE_MAX else text[:MESSAGE_MAX - 3] + "..."


def record_event(service: ReviewService, reader: str, session_id: Any, event_type: Any, payload: Any = None,
                 client_ts: Any = None) -> dict[str, Any]:
    ack = service.record_event(reader, session_id, event_type, {} if payload is None else payload, client_ts)
    return _ack(ack.seq, ack.server_ts)


def decide_sentence(service: ReviewService, reader: str, session_id: Any, sentence_id: Any, decision: Any,
                    final_text: Any = None, error_category: Any = None, clinically_significant: Any = None,
                    client_ts: Any = None, duration_ms: Any = None, decision_id: Any = None) -> dict[str, Any]:
    result = service.decide_sentence(
        reader, session_id, sentence_id, decision, final_text=final_text, error_category=error_category,
        clinically_significant=clinically_significant, client_ts=client_ts, duration_ms=duration_ms,
        decision_id=decision_id)
    return _ack(sentence_id=result.sentence_id, decision=result.decision, edit_distance=result.edit_distance,
                **_replayed(result.replayed))


def add_sentence(service: ReviewService, reader: str, session_id: Any, text: Any, section: Any = "findings",
                 after_sentence_id: Any = None, client_ts: Any = None, duration_ms: Any = None,
                 decision_id: Any = None) -> dict[str, Any]:
    text = check_text(text, "the new sentence")
    result = service.add_sentence(
        reader, session_id, text.strip(), section=section or "findings", after_sentence_id=after_sentence_id,
        client_ts=client_ts, duration_ms=duration_ms, decision_id=decision_id)
    return _ack(sentence_id=result.sentence_id, decision=result.decision, **_replayed(result.replayed))


def decide_box(service: ReviewService, reader: str, session_id: Any, box_id: Any, decision: Any, box: Any = None,
               linked_sentence_id: Any = None, client_ts: Any = None, duration_ms: Any = None,
               decision_id: Any = None) -> dict[str, Any]:
    if decision == "added":
        box_id = None  # the browser's id for a drawn box is local; the server assigns b<n>
    result = service.decide_box(
        reader, session_id, box_id, decision, box=box, linked_sentence_id=linked_sentence_id, client_ts=client_ts,
        duration_ms=duration_ms, decision_id=decision_id)
    return _ack(box_id=result.box_id, decision=result.decision, **_replayed(result.replayed))


def sign_off(service: ReviewService, reader: str, session_id: Any, decision: Any, final_report: Any,
             active_ms: Any = 0.0, idle_ms: Any = 0.0, hidden_ms: Any = 0.0, client_ts: Any = None,
             accept_rest: Any = False, decision_id: Any = None) -> dict[str, Any]:
    """accept_rest: the reader chose "accept the rest" for the pending items (recorded as accepted at sign-off).
    Refused with ``pending`` {"sentences": [...], "boxes": [...]} when items are pending and it was not chosen."""
    result = service.sign_off(
        reader, session_id, decision, "" if final_report is None else final_report,
        active_ms=0.0 if active_ms is None else active_ms, idle_ms=0.0 if idle_ms is None else idle_ms,
        hidden_ms=0.0 if hidden_ms is None else hidden_ms, client_ts=client_ts, accept_rest=accept_rest,
        decision_id=decision_id)
    return _ack(signoff=_jsonable(result), **_replayed(result.get("replayed", False)))


def _replayed(replayed: bool) -> dict[str, Any]:
    return {"replayed": True} if replayed else {}


def ask(service: ReviewService, worker: Any, reader: str, session_id: Any, question: Any,
        client_ts: Any = None) -> dict[str, Any]:
    """Answers a free-text question about the session's image with the shared model (queued on its thread)."""
    question = check_text(question, "question", limit=QUESTION_MAX)
    state = service.session_state(reader, session_id)
    if is_unaided(state.arm):
        raise AccessDenied("questions to the model are off in this reading arm")
    if worker is None:
        raise ReviewError("no model is loaded on this server (review-only mode)")
    try:
        answer = worker.ask(state.study.image_path, question.strip(), timeout_s=ASK_TIMEOUT_S)
    except TimeoutError:
        return {"ok": False, "error": "the model is busy; try again in a moment", "retry": True}
    service.record_event(reader, state.session_id, "ask_answer", {"question": question.strip(), **answer}, client_ts)
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

    Never raises: a refusal or a retryable error comes back as {"ok": False, ...} (see the module docstring)."""
    try:
        return _apply(handler, fixed, data)
    except ReviewError as exc:
        return refusal(exc)
    except RETRYABLE as exc:
        log.warning("%s: retryable failure: %s", handler.__name__, one_line(exc))
        return retryable(exc)
    except Exception as exc:  # noqa: BLE001 - any other failure refuses this item instead of stalling the queue
        log.exception("%s refused after an unexpected error", handler.__name__)
        return refusal(RuntimeError(f"server error ({type(exc).__name__}): {one_line(exc)}"))


def _apply(handler: Callable[..., dict[str, Any]], fixed: tuple, data: Any) -> dict[str, Any]:
    try:
        if isinstance(data, dict):
            return handler(*fixed, **data)
        if isinstance(data, (list, tuple)):
            return handler(*fixed, *data)
        return handler(*fixed, data)
    except TypeError as exc:
        if exc.__traceback__ is not None and exc.__traceback__.tb_next is None:  # the call itself: wrong arguments
            raise BadInput(f"bad arguments: {one_line(exc)}") from exc
        raise


# --- admin -----------------------------------------------------------------------


def add_reader(service: ReviewService, acting: str, username: str, password: str, role: str = "reader") -> str:
    require_admin(service, acting)
    username = username.strip() if isinstance(username, str) else username
    info = service.create_reader(username, password, role, acting=acting)  # the service checks every field
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
