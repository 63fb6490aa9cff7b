"""CSV exports: per-experiment case x reader x arm table, and the sentence provenance log.

Both read in a handful of bulk queries (no per-row round trips), so 10,000 sign-offs export in seconds.
"""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import (Amendment, Assignment, BoxDecisionRow, Draft, Experiment, InteractionEvent, ModelVersion,
                     Reader, ReviewSession, SentenceDecisionRow, SignOff, Study)
from .provenance import ACCEPTED_AT_SIGNOFF, ACCEPTED_DECISIONS, current_boxes, current_sentences, draft_sentences
from .records import NotFound

EXPERIMENT_COLUMNS = [
    "experiment_id", "experiment", "design", "blinded", "reader", "study_uid", "study_id", "arm", "period",
    "position", "session_id", "status", "model_version", "opened_at", "signed_at", "total_ms", "active_ms",
    "idle_ms", "hidden_ms", "signoff_decision", "amended", "draft_sentences", "sentences_accepted",
    "sentences_edited", "sentences_deleted", "sentences_added", "sentences_undecided", "edit_distance_total",
    "significant_errors", "boxes_accepted", "boxes_moved", "boxes_resized", "boxes_rejected", "boxes_added",
    "sentences_accepted_at_signoff", "boxes_accepted_at_signoff", "decision_rows", "events", "first_event_client_ts",
    "last_event_client_ts",
]
PROVENANCE_COLUMNS = [
    "session_id", "experiment_id", "arm", "reader", "study_uid", "model_version_id", "model_name", "model_version",
    "draft_id", "sentence_id", "section", "label", "provenance", "explicit_decision", "original_text", "final_text",
    "edit_distance", "error_category", "clinically_significant", "duration_ms", "box_id", "box_decision",
    "history_rows", "signoff_decision", "signed_at",
]
CHUNK = 900  # stays under SQLite's bound-parameter limit


class ExportMixin:
    """Export methods of ReviewService (uses its _read)."""

    def export_experiment_csv(self, experiment_id: int, path: str) -> int:
        """One row per assignment (case x reader x arm x period); returns the number of rows written."""
        with self._read() as session:
            experiment = session.get(Experiment, experiment_id) if isinstance(experiment_id, int) else None
            if experiment is None:
                raise NotFound(f"experiment {experiment_id!r} does not exist")
            rows = _experiment_rows(session, experiment)
        return _write_csv(path, EXPERIMENT_COLUMNS, rows)

    def export_provenance_csv(self, path: str) -> int:
        """One row per sentence of every signed session; returns the number of rows written."""
        with self._read() as session:
            rows = _provenance_rows(session)
        return _write_csv(path, PROVENANCE_COLUMNS, rows)

    def signoff_times(self, reader: str) -> dict[int, dict[str, Any]]:
        """The reader's own sign-offs by session id: decision and active / idle / hidden ms (one query)."""
        with self._read() as session:
            rows = session.execute(
                select(SignOff.session_id, SignOff.decision, SignOff.active_ms, SignOff.idle_ms, SignOff.hidden_ms)
                .join(ReviewSession, ReviewSession.id == SignOff.session_id)
                .join(Reader, Reader.id == ReviewSession.reader_id).where(Reader.username == reader))
            return {r.session_id: {"decision": r.decision, "active_ms": r.active_ms, "idle_ms": r.idle_ms,
                                   "hidden_ms": r.hidden_ms} for r in rows}


def _write_csv(path: str, columns: list[str], rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(column)) for column in columns])
            count += 1
    return count


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return value


# --- experiment table -------------------------------------------------------------------------------------


def _experiment_rows(session: Session, experiment: Experiment) -> list[dict[str, Any]]:
    query = (select(Assignment, Reader.username, Study.study_uid, ReviewSession, SignOff)
             .join(Reader, Reader.id == Assignment.reader_id).join(Study, Study.id == Assignment.study_id)
             .outerjoin(ReviewSession, ReviewSession.assignment_id == Assignment.id)
             .outerjoin(SignOff, SignOff.session_id == ReviewSession.id)
             .where(Assignment.experiment_id == experiment.id)
             .order_by(Reader.username, Assignment.period, Assignment.position))
    records = session.execute(query).all()
    session_ids = [r[3].id for r in records if r[3] is not None]
    details = _session_details(session, session_ids)
    return [_experiment_row(experiment, *record, details) for record in records]


def _experiment_row(experiment: Experiment, assignment: Assignment, reader: str, study_uid: str,
                    review: ReviewSession | None, signoff: SignOff | None, details: dict[str, Any]) -> dict[str, Any]:
    row = {"experiment_id": experiment.id, "experiment": experiment.name, "design": experiment.design,
           "blinded": experiment.blinded, "reader": reader, "study_uid": study_uid, "study_id": assignment.study_id,
           "arm": assignment.arm, "period": assignment.period, "position": assignment.position,
           "status": review.status if review else "unread"}
    if review is None:
        return row
    row.update(session_id=review.id, opened_at=review.opened_at,
               model_version=details["model"].get(review.draft_id, ""))
    if signoff is not None:
        row.update(signed_at=signoff.signed_at, total_ms=signoff.total_ms, active_ms=signoff.active_ms,
                   idle_ms=signoff.idle_ms, hidden_ms=signoff.hidden_ms, signoff_decision=signoff.decision,
                   amended=signoff.id in details["amended"])
    row.update(_decision_counts(details, review))
    row.update(details["events"].get(review.id, {"events": 0}))
    return row


def _decision_counts(details: dict[str, Any], review: ReviewSession) -> dict[str, Any]:
    sentence_rows = details["sentences"].get(review.id, [])
    box_rows = details["boxes"].get(review.id, [])
    sentences = current_sentences(sentence_rows)
    decided = Counter(d.decision for d in sentences)
    n_draft = details["draft_sizes"].get(review.draft_id, 0)
    draft_decided = sum(1 for d in sentences if d.decision != "added" and not d.sentence_id.startswith("h"))
    boxes = Counter(d.decision for d in current_boxes(box_rows))
    counts = {f"sentences_{k}": decided.get(k, 0)
              for k in ("accepted", "edited", "deleted", "added", ACCEPTED_AT_SIGNOFF)}
    counts.update({f"boxes_{k}": boxes.get(k, 0)
                   for k in ("accepted", "moved", "resized", "rejected", "added", ACCEPTED_AT_SIGNOFF)})
    counts.update(draft_sentences=n_draft, sentences_undecided=max(n_draft - draft_decided, 0),
                  edit_distance_total=sum(d.edit_distance for d in sentences if d.decision not in ACCEPTED_DECISIONS),
                  significant_errors=sum(1 for d in sentences if d.clinically_significant),
                  decision_rows=len(sentence_rows) + len(box_rows))
    return counts


def _session_details(session: Session, session_ids: list[int]) -> dict[str, Any]:
    drafts = _draft_info(session, session_ids)
    return {"sentences": _rows_by_session(session, SentenceDecisionRow, session_ids),
            "boxes": _rows_by_session(session, BoxDecisionRow, session_ids),
            "events": _event_summary(session, session_ids), "amended": _amended_signoffs(session, session_ids),
            "model": {d: f"{info['model_name']}:{info['model_version']}" for d, info in drafts.items()},
            "draft_sizes": {d: info["n_sentences"] for d, info in drafts.items()}, "drafts": drafts}


def _chunks(ids: list[int]) -> Iterable[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start:start + CHUNK]


def _rows_by_session(session: Session, model: type, session_ids: list[int]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    table = model.__table__
    for chunk in _chunks(session_ids):
        for row in session.execute(select(table).where(table.c.session_id.in_(chunk)).order_by(table.c.id)):
            grouped[row.session_id].append(row)
    return grouped


def _event_summary(session: Session, session_ids: list[int]) -> dict[int, dict[str, Any]]:
    summary = {}
    for chunk in _chunks(session_ids):
        query = (select(InteractionEvent.session_id, func.count(), func.min(InteractionEvent.client_ts),
                        func.max(InteractionEvent.client_ts))
                 .where(InteractionEvent.session_id.in_(chunk)).group_by(InteractionEvent.session_id))
        for session_id, count, first, last in session.execute(query):
            summary[session_id] = {"events": count, "first_event_client_ts": first, "last_event_client_ts": last}
    return summary


def _amended_signoffs(session: Session, session_ids: list[int]) -> set[int]:
    amended: set[int] = set()
    for chunk in _chunks(session_ids):
        amended.update(session.scalars(select(Amendment.signoff_id).join(SignOff, SignOff.id == Amendment.signoff_id)
                                       .where(SignOff.session_id.in_(chunk))))
    return amended


def _draft_info(session: Session, session_ids: list[int]) -> dict[int, dict[str, Any]]:
    """draft id -> model name/version and its sentences, for the drafts these sessions showed."""
    draft_ids: set[int] = set()
    for chunk in _chunks(session_ids):
        draft_ids.update(d for d in session.scalars(select(ReviewSession.draft_id).where(ReviewSession.id.in_(chunk)))
                         if d is not None)
    info = {}
    for chunk in _chunks(sorted(draft_ids)):
        query = (select(Draft.id, Draft.bundle, Draft.model_version_id, ModelVersion.name, ModelVersion.version)
                 .join(ModelVersion, ModelVersion.id == Draft.model_version_id).where(Draft.id.in_(chunk)))
        for draft_id, bundle, model_id, name, version in session.execute(query):
            sentences = draft_sentences(bundle)
            info[draft_id] = {"model_version_id": model_id, "model_name": name, "model_version": version,
                              "sentences": sentences, "n_sentences": len(sentences)}
    return info


# --- provenance log -----------------------------------------------------------------------------------------


def _provenance_rows(session: Session) -> Iterable[dict[str, Any]]:
    query = (select(ReviewSession, SignOff, Reader.username, Study.study_uid)
             .join(SignOff, SignOff.session_id == ReviewSession.id)
             .join(Reader, Reader.id == ReviewSession.reader_id).join(Study, Study.id == ReviewSession.study_id)
             .order_by(SignOff.signed_at, SignOff.id))
    records = session.execute(query).all()
    details = _session_details(session, [r[0].id for r in records])
    for review, signoff, reader, study_uid in records:
        base = {"session_id": review.id, "experiment_id": review.experiment_id, "arm": review.arm, "reader": reader,
                "study_uid": study_uid, "draft_id": review.draft_id, "signoff_decision": signoff.decision,
                "signed_at": signoff.signed_at}
        base.update(_model_columns(details["drafts"].get(review.draft_id)))
        yield from _sentence_rows(base, details, review)


def _model_columns(draft: dict[str, Any] | None) -> dict[str, Any]:
    if draft is None:
        return {}
    return {k: draft[k] for k in ("model_version_id", "model_name", "model_version")}


def _sentence_rows(base: dict[str, Any], details: dict[str, Any], review: ReviewSession) -> Iterable[dict[str, Any]]:
    draft = details["drafts"].get(review.draft_id, {"sentences": {}})["sentences"]
    history = details["sentences"].get(review.id, [])
    decisions = {d.sentence_id: d for d in current_sentences(history)}
    boxes = _box_by_sentence(details["boxes"].get(review.id, []))
    rows_per_sentence = Counter(r.sentence_id for r in history)
    sections = {r.sentence_id: r.section for r in history if r.decision == "added"}
    for sentence_id in list(draft) + [s for s in decisions if s not in draft]:
        decision = decisions.get(sentence_id)
        sentence = draft.get(sentence_id, {})
        yield {**base, "sentence_id": sentence_id, "section": sentence.get("section") or sections.get(sentence_id),
               "label": sentence.get("label"), "provenance": _label(decision, sentence_id in draft),
               "explicit_decision": decision is not None and decision.decision != ACCEPTED_AT_SIGNOFF, "original_text": sentence.get("text"),
               "final_text": _final(decision, sentence),
               "edit_distance": decision.edit_distance if decision else 0,
               "error_category": decision.error_category if decision else None,
               "clinically_significant": decision.clinically_significant if decision else None,
               "duration_ms": decision.duration_ms if decision else None,
               **boxes.get(sentence_id, {}), "history_rows": rows_per_sentence.get(sentence_id, 0)}


def _label(decision: Any, from_draft: bool) -> str:
    if not from_draft:
        return "human_deleted" if decision.decision == "deleted" else "human_added"
    if decision is None or decision.decision == "accepted":
        return "ai_accepted"
    return {"edited": "ai_edited", "deleted": "ai_deleted", ACCEPTED_AT_SIGNOFF: "ai_accepted_at_signoff"}[
        decision.decision]


def _final(decision: Any, sentence: dict[str, Any]) -> str | None:
    if decision is None:
        return sentence.get("text")
    return decision.final_text


def _box_by_sentence(rows: list[Any]) -> dict[str, dict[str, Any]]:
    linked: dict[str, dict[str, Any]] = {}
    for box in current_boxes(rows):
        if box.linked_sentence_id:
            linked[box.linked_sentence_id] = {"box_id": box.box_id, "box_decision": box.decision}
    return linked
