"""ReviewService: the only way the app and training touch the review record.

Conventions (the contract the app codes against)
- Every write is one transaction; it commits before returning (durable on return).
- ``reader`` is the acting reader's username; every call that reads or writes a review session checks that
  the session belongs to that reader (admins may read all sessions unless the experiment is blinded; nobody
  writes another reader's session). Violations raise AccessDenied.
- Invalid state transitions raise InvalidTransition, bad values InvalidInput, missing rows NotFound; all are
  ReviewError with a one-line message, and change nothing (the transaction is rolled back).
- Validation lives here (annotations_db/provenance.py holds the checks and limits; the app imports them): text
  with an unpaired surrogate, NUL or a control character, over-long text, ids outside 1..2^31-1 and numbers out
  of range are refused with InvalidInput naming the field, identically on SQLite and PostgreSQL.
- Times: ``client_ts`` is the browser's epoch milliseconds; the server stamps its own UTC time on every row.
  ``duration_ms`` of a decision is measured by the client: from the moment the item was first selected or, for a
  one-click decision on an item never selected, first shown on screen (its study's own image painted), to the
  decision. The service stores it as given (0 to 7 days; None = not measured).
- Idempotent decisions: decide_sentence / add_sentence / decide_box / sign_off take an optional client-generated
  ``decision_id`` (letters, digits, ._:- up to 64, e.g. a UUID). Sending the same decision again with the same id
  (a lost acknowledgement, a reopened tab replaying its queue) records nothing new and is acknowledged with the
  current state and ``replayed=True`` -- also after the session was signed. The same id with a different
  decision is refused.
- Sessions: opening a study records a session that is only "viewed"; the first decision makes it "in progress".
- Sign-off with draft sentences or boxes still undecided is refused (PendingItems, naming how many) unless the
  reader chose "accept the rest" (``accept_rest=True``): each pending item is then recorded as
  ``accepted_at_signoff``, never as an ordinary accept. A "reject" sign-off accepts nothing and needs no choice.
- Sign-offs and the audit history (events, decisions, amendments) are append-only, and a signed or closed session
  never changes; the database refuses it with triggers as well. Every sign-off stores a SHA-256 over the draft,
  the decisions and the report, chained to the previous sign-off (annotations_db/integrity.py).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any, Callable, Iterator

from sqlalchemy import Engine, bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import integrity, passwords
from .accounts import AccountsMixin
from .engine import WRITE, holding, make_engine, resolve_url, write_lock
from .experiments import ExperimentsMixin, is_unaided, shown_draft
from .export import ExportMixin
from .finetune import FinetuneMixin
from .study_sets import StudySetsMixin
from .models import (Amendment, Assignment, BoxDecisionRow, Draft, Experiment, Image, InteractionEvent,
                     ModelVersion, ModelVersionEvent, Reader, ReviewSession, SentenceDecisionRow, SignOff, Study,
                     utcnow)
from .provenance import (ACCEPTED_AT_SIGNOFF, ACCEPTED_DECISIONS, BOX_DECISIONS, CLIENT_TS_MAX, DECISION_ID_MAX,
                         DRAWN_BOX_PREFIX, DURATION_MAX_MS, ERROR_CATEGORIES, EVENT_TYPE_MAX, HUMAN_SENTENCE_PREFIX, ID_MAX,
                         ITEM_ID_MAX, PAYLOAD_MAX, SECTIONS, SENTENCE_DECISIONS, SIGNOFF_DECISIONS, TEXT_MAX,
                         USERNAME_MAX, check_box, check_choice, check_client_ts, check_decision_id, check_duration,
                         check_id, check_item_id, check_json, check_number, check_text, check_username,
                         current_boxes, current_sentences, draft_box, draft_sentences, edit_distance)
from .queries import study_info, study_infos, worklist_status
from .records import (AccessDenied, BoxDecision, EventAck, InvalidInput, InvalidTransition, ModelVersionInfo,
                      NotFound, PendingItems, ReaderInfo, ReviewError, SentenceDecision, SessionState, StudyInfo,
                      WorklistItem)

__all__ = [
    "AccessDenied", "BoxDecision", "EventAck", "InvalidInput", "InvalidTransition", "ModelVersionInfo", "NotFound",
    "PendingItems", "ReaderInfo", "ReviewError", "ReviewService", "SentenceDecision", "SessionState", "StudyInfo",
    "WorklistItem",
    # the limits and checks the app shares (one definition, in provenance.py)
    "CLIENT_TS_MAX", "DECISION_ID_MAX", "DURATION_MAX_MS", "EVENT_TYPE_MAX", "ID_MAX", "ITEM_ID_MAX", "PAYLOAD_MAX",
    "TEXT_MAX", "USERNAME_MAX", "WORKLIST_STATUSES", "check_box", "check_choice", "check_id", "check_text",
    "check_username",
]

ROLES = ("reader", "admin")
MODEL_STATUSES = ("active", "candidate", "retired")
NO_AI_ARM = "no_ai"
WORKLIST_STATUSES = ("unread", "viewed", "in_progress", "signed", "closed")
PASSWORD_MAX = 1024
NAME_MAX = 200


class ReviewService(AccountsMixin, ExperimentsMixin, ExportMixin, FinetuneMixin, StudySetsMixin):
    """See module docstring. Construct with ``ReviewService.open(url)``."""

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utcnow) -> None:
        """Wraps an engine whose database is already migrated (use ``open`` normally)."""
        self._engine = engine
        self._clock = clock
        self._write_lock = write_lock(engine)

    # --- construction -------------------------------------------------
    @classmethod
    def open(cls, database_url: str | None = None, data_dir: str | None = None, *,
             clock: Callable[[], datetime] = utcnow) -> "ReviewService":
        """SQLite file under data_dir by default (WAL, foreign keys, busy timeout);
        GAZEX_DATABASE_URL or database_url for PostgreSQL. Runs migrations to head."""
        from .migrations import ensure_head

        engine = make_engine(resolve_url(database_url, data_dir))
        ensure_head(engine)
        return cls(engine, clock=clock)

    @property
    def engine(self) -> Engine:
        return self._engine

    @property
    def url(self) -> str:
        return self._engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self._engine.dispose()

    def _now(self) -> datetime:
        return self._clock()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session, session.begin():
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One write transaction (BEGIN IMMEDIATE on SQLite); commits on leaving, rolls back on any error."""
        with holding(self._write_lock), self._engine.connect() as connection:
            connection = connection.execution_options(**{WRITE: True})
            with Session(bind=connection, expire_on_commit=False) as session, session.begin():
                yield session

    # --- readers ------------------------------------------------------
    def create_reader(self, username: str, password: str, role: str = "reader", *, acting: str | None = None,
                      display_name: str | None = None) -> ReaderInfo:
        """acting must be an admin unless no reader exists yet (bootstrap)."""
        check_username(username)
        check_choice(role, ROLES, "role")
        check_text(display_name, "display_name", limit=NAME_MAX, required=False, single_line=True)
        check_text(password, "password", limit=PASSWORD_MAX, single_line=True)
        if len(password) < passwords.MIN_LENGTH:
            raise InvalidInput(f"password must be at least {passwords.MIN_LENGTH} characters")
        password_hash = passwords.hash_password(password)
        with self._write() as session:
            self._check_may_create_reader(session, acting)
            if session.scalar(select(Reader.id).where(Reader.username == username)) is not None:
                raise InvalidTransition(f"reader {username!r} already exists")
            reader = Reader(username=username, role=role, display_name=display_name, password_hash=password_hash,
                            created_at=self._now())
            session.add(reader)
            session.flush()
            return _reader_info(reader)

    def _check_may_create_reader(self, session: Session, acting: str | None) -> None:
        if session.scalar(select(func.count(Reader.id))) == 0:
            return
        if acting is None:
            raise AccessDenied("creating a reader needs an acting admin")
        if _reader(session, acting).role != "admin":
            raise AccessDenied(f"{acting!r} is not an admin")

    def list_readers(self) -> list[ReaderInfo]:
        with self._read() as session:
            return [_reader_info(r) for r in session.scalars(select(Reader).order_by(Reader.id))]

    def get_reader(self, username: str) -> ReaderInfo:
        with self._read() as session:
            return _reader_info(_reader(session, username))

    # --- studies, models, drafts --------------------------------------
    def register_study(self, study_uid: str, image_path: str, *, width: int | None = None, height: int | None = None,
                       meta: dict[str, Any] | None = None, series_uid: str | None = None,
                       sop_instance_uid: str | None = None) -> StudyInfo:
        """Idempotent on study_uid (a second call returns the existing study unchanged)."""
        check_text(study_uid, "study_uid", limit=128, single_line=True)
        check_text(image_path, "image_path", limit=4096, single_line=True)
        for name, value in (("series_uid", series_uid), ("sop_instance_uid", sop_instance_uid)):
            check_text(value, name, limit=128, required=False, single_line=True)
        for name, value in (("width", width), ("height", height)):
            check_number(value, name, low=1, high=1_000_000)
        check_json(meta, "meta")
        try:
            with self._write() as session:
                study = session.scalar(select(Study).where(Study.study_uid == study_uid))
                if study is None:
                    study = Study(study_uid=study_uid, meta=dict(meta or {}), created_at=self._now())
                    session.add(study)
                    session.flush()
                    session.add(Image(study_id=study.id, file_path=image_path, width=width, height=height,
                                      series_uid=series_uid, sop_instance_uid=sop_instance_uid, meta={}))
                    session.flush()
                return study_info(session, study)
        except IntegrityError:  # registered concurrently by another process: return theirs
            with self._read() as session:
                return study_info(session, session.scalar(select(Study).where(Study.study_uid == study_uid)))

    def get_study(self, study_id: int) -> StudyInfo:
        check_id(study_id, "study_id")
        with self._read() as session:
            return study_info(session, _get(session, Study, study_id, "study"))

    def find_study(self, study_uid: str) -> StudyInfo | None:
        check_text(study_uid, "study_uid", limit=128, single_line=True)
        with self._read() as session:
            study = session.scalar(select(Study).where(Study.study_uid == study_uid))
            return study_info(session, study) if study else None

    def register_model_version(self, name: str, version: str, weights_hash: str, *, parent_id: int | None = None,
                               metrics: dict[str, Any] | None = None, status: str = "candidate",
                               path: str | None = None) -> ModelVersionInfo:
        """status 'active' makes it the one active version (the previous active one is retired, audited)."""
        check_choice(status, MODEL_STATUSES, "status")
        for field, value, limit in (("name", name, 100), ("version", version, 100), ("weights_hash", weights_hash, 128)):
            check_text(value, field, limit=limit, single_line=True)
        check_text(path, "path", limit=4096, required=False, single_line=True)
        check_json(metrics, "metrics")
        if parent_id is not None:
            check_id(parent_id, "parent_id")
        with self._write() as session:
            if parent_id is not None:
                _get(session, ModelVersion, parent_id, "parent model version")
            if session.scalar(select(ModelVersion.id).where(ModelVersion.name == name,
                                                            ModelVersion.version == version)):
                raise InvalidTransition(f"model version {name} {version} already exists")
            row = ModelVersion(name=name, version=version, weights_hash=weights_hash, parent_id=parent_id,
                               metrics=dict(metrics or {}), status="candidate", path=path, created_at=self._now())
            session.add(row)
            session.flush()
            if status == "active":
                self._activate(session, row, "register")
            elif status == "retired":
                row.status = "retired"
            session.flush()
            return _model_info(row)

    def get_model_version(self, model_version_id: int) -> ModelVersionInfo:
        with self._read() as session:
            return _model_info(_get(session, ModelVersion, model_version_id, "model version"))

    def active_model_version(self) -> ModelVersionInfo | None:
        with self._read() as session:
            row = session.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
            return _model_info(row) if row else None

    def list_model_versions(self) -> list[ModelVersionInfo]:
        with self._read() as session:
            return [_model_info(r) for r in session.scalars(select(ModelVersion).order_by(ModelVersion.id))]

    def promote_model_version(self, model_version_id: int) -> ModelVersionInfo:
        """Makes it active; the previous active becomes retired. Audited."""
        with self._write() as session:
            row = _get(session, ModelVersion, model_version_id, "model version")
            if row.status != "active":
                self._activate(session, row, "promote")
            return _model_info(row)

    def rollback_model_version(self) -> ModelVersionInfo:
        """Re-activates the parent of the active version (or the previously active one)."""
        with self._write() as session:
            active = session.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
            if active is None:
                raise InvalidTransition("there is no active model version to roll back")
            target_id = active.parent_id or _previous_active_id(session, active.id)
            if target_id is None:
                raise InvalidTransition(f"model version {active.id} has no parent or earlier active version")
            target = _get(session, ModelVersion, target_id, "model version")
            self._activate(session, target, "rollback")
            return _model_info(target)

    def set_model_version_status(self, model_version_id: int, status: str) -> ModelVersionInfo:
        """candidate <-> retired; use promote/rollback for 'active'; the active version cannot be demoted here."""
        check_choice(status, ("candidate", "retired"), "status")
        with self._write() as session:
            row = _get(session, ModelVersion, model_version_id, "model version")
            if row.status == "active":
                raise InvalidTransition("the active model version changes only by promote or rollback")
            row.status = status
            session.add(ModelVersionEvent(action=f"set_{status}", model_version_id=row.id, at=self._now()))
            return _model_info(row)

    def update_model_version_metrics(self, model_version_id: int, metrics: dict[str, Any]) -> ModelVersionInfo:
        with self._write() as session:
            row = _get(session, ModelVersion, model_version_id, "model version")
            row.metrics = {**(row.metrics or {}), **dict(metrics)}
            return _model_info(row)

    def _activate(self, session: Session, row: ModelVersion, action: str) -> None:
        previous = session.scalar(select(ModelVersion).where(ModelVersion.status == "active"))
        if previous is not None:
            previous.status, previous.active_slot = "retired", None
            session.flush()  # free the unique active slot before taking it
        row.status, row.active_slot = "active", 1
        session.add(ModelVersionEvent(action=action, model_version_id=row.id,
                                      previous_active_id=previous.id if previous else None, at=self._now()))
        session.flush()

    def save_draft(self, study_id: int, model_version_id: int, bundle: dict[str, Any]) -> int:
        """Stores the EvidenceBundle JSON dict; returns the draft id. One draft per study x model version
        (saving the same bundle again returns the same id; a different one is refused)."""
        check_id(study_id, "study_id")
        check_id(model_version_id, "model_version_id")
        _check_bundle(bundle)
        try:
            with self._write() as session:
                _get(session, Study, study_id, "study")
                _get(session, ModelVersion, model_version_id, "model version")
                existing = _draft_row(session, study_id, model_version_id)
                if existing is not None:
                    return _same_draft_or_refuse(existing, bundle)
                draft = Draft(study_id=study_id, model_version_id=model_version_id, bundle=bundle,
                              created_at=self._now(), bundle_sha256=integrity.bundle_sha256(bundle))
                session.add(draft)
                session.flush()
                return draft.id
        except IntegrityError:  # saved concurrently
            with self._read() as session:
                return _same_draft_or_refuse(_draft_row(session, study_id, model_version_id), bundle)

    def get_draft(self, study_id: int, model_version_id: int | None = None) -> tuple[int, dict[str, Any]] | None:
        """The draft of the given (default: active) model version."""
        with self._read() as session:
            draft = _draft_for(session, study_id, model_version_id)
            return (draft.id, draft.bundle) if draft else None

    # --- worklist and sessions ----------------------------------------
    def worklist(self, reader: str, *, experiment_id: int | None = None, status: str | None = None) -> list[WorklistItem]:
        """A reader in an experiment sees only their own assignments (open periods, randomised order); anyone
        else sees every study with their own status. Never another reader's work."""
        if status is not None:
            check_choice(status, WORKLIST_STATUSES, "status")
        with self._read() as session:
            me = _reader(session, reader)
            items = self._experiment_worklist(session, me, experiment_id)
            if items is None:
                items = _routine_worklist(session, me)
            return [item for item in items if status is None or item.status == status]

    def open_session(self, reader: str, study_id: int, *, experiment_id: int | None = None) -> SessionState:
        """Opens (or reopens the reader's existing session on) the study and returns its full state.
        In an experiment the session belongs to the reader's next assignment of the study (arm, period).
        A new session is only "viewed" until its first decision."""
        check_id(study_id, "study_id")
        if experiment_id is not None:
            check_id(experiment_id, "experiment_id")
        with self._write() as session:
            me = _reader(session, reader)
            study = _get(session, Study, study_id, "study")
            assignment = self._assignment_to_open(session, me, study.id, experiment_id)
            row = _existing_session(session, me.id, study.id, assignment)
            if row is None:
                row = self._new_session(session, me, study, assignment)
            elif row.status == "open" and row.draft_id is None:
                self._attach_draft_if_untouched(session, row)
            return self._state(session, row)

    def _new_session(self, session: Session, me: Reader, study: Study, assignment: Assignment | None) -> ReviewSession:
        arm = assignment.arm if assignment else None
        row = ReviewSession(reader_id=me.id, study_id=study.id, status="open", last_seq=0, opened_at=self._now(),
                            experiment_id=assignment.experiment_id if assignment else None,
                            assignment_id=assignment.id if assignment else None, arm=arm)
        if not is_unaided(arm):
            draft = _draft_for(session, study.id, _experiment_model(session, assignment))
            row.draft_id = draft.id if draft else None
        session.add(row)
        session.flush()
        return row

    def _attach_draft_if_untouched(self, session: Session, row: ReviewSession) -> None:
        """A session opened before its draft was computed gets the draft, as long as nothing was decided yet."""
        if is_unaided(row.arm) or row.last_seq > 0:
            return
        assignment = session.get(Assignment, row.assignment_id) if row.assignment_id else None
        draft = _draft_for(session, row.study_id, _experiment_model(session, assignment))
        if draft is not None:
            row.draft_id = draft.id
            session.flush()

    def session_state(self, reader: str, session_id: int) -> SessionState:
        with self._read() as session:
            row = self._session_for(session, reader, session_id, write=False)
            return self._state(session, row)

    def close_session(self, reader: str, session_id: int, reason: str = "") -> SessionState:
        """Ends an open session without a sign-off (abandoned case); it stays in the record, read-only."""
        reason = check_text(str(reason)[:500], "reason", limit=500, required=False)
        with self._write() as session:
            row = self._session_for(session, reader, session_id, write=True)
            seq = self._next_seq(session, row.id)
            session.add(InteractionEvent(session_id=row.id, seq=seq, event_type="session_closed",
                                         payload={"reason": reason}, server_ts=self._now()))
            row.status, row.closed_at = "closed", self._now()
            session.flush()
            return self._state(session, row)

    def record_event(self, reader: str, session_id: int, event_type: str, payload: dict[str, Any],
                     client_ts: float | None) -> EventAck:
        """Append-only interaction log (view, play, zoom, window, tab_hidden, idle, keypress, ...)."""
        check_text(event_type, "event_type", limit=EVENT_TYPE_MAX, single_line=True)
        _check_payload(payload)
        session_id = check_id(session_id, "session_id")
        client_ts = check_client_ts(client_ts)
        values = {"sid": session_id, "reader": reader, "event_type": event_type, "payload": dict(payload or {}),
                  "client_ts": client_ts, "server_ts": self._now()}
        if self._engine.dialect.name == "postgresql":
            seq = self._record_event_one_statement(values)
        else:
            seq = self._record_event_two_statements(values)
        return EventAck(seq=seq, server_ts=values["server_ts"])

    def _record_event_one_statement(self, values: dict[str, Any]) -> int:
        """PostgreSQL: claim the seq and insert in ONE autocommitted statement (a data-modifying CTE) -- one round
        trip instead of four (BEGIN, UPDATE, INSERT, COMMIT)."""
        with self._engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            seq = connection.execute(_CLAIM_AND_INSERT_EVENT, values).scalar()
            if seq is None:
                _explain_event_refusal(connection, values["reader"], values["sid"])
            return seq

    def _record_event_two_statements(self, values: dict[str, Any]) -> int:
        with holding(self._write_lock), self._engine.connect() as connection:
            connection = connection.execution_options(**{WRITE: True})
            with connection.begin():
                seq = connection.execute(_CLAIM_EVENT_SEQ, values).scalar()
                if seq is None:
                    _explain_event_refusal(connection, values["reader"], values["sid"])
                connection.execute(_INSERT_EVENT, {**values, "session_id": values["sid"], "seq": seq})
            return seq

    def session_events(self, reader: str, session_id: int) -> list[dict[str, Any]]:
        """The session's interaction log in sequence order (same access rule as session_state)."""
        with self._read() as session:
            row = self._session_for(session, reader, session_id, write=False)
            events = session.scalars(select(InteractionEvent).where(InteractionEvent.session_id == row.id)
                                     .order_by(InteractionEvent.seq))
            return [{"seq": e.seq, "event_type": e.event_type, "payload": e.payload, "client_ts": e.client_ts,
                     "server_ts": e.server_ts} for e in events]

    def decide_sentence(self, reader: str, session_id: int, sentence_id: str, decision: str, *,
                        final_text: str | None = None, error_category: str | None = None,
                        clinically_significant: bool | None = None, client_ts: float | None = None,
                        duration_ms: float | None = None, decision_id: str | None = None) -> SentenceDecision:
        """decision in accepted/edited/deleted. A later decision on the same sentence supersedes the earlier one
        (both stay in the audit log). Works on draft sentences and on the session's human-added sentences."""
        session_id = check_id(session_id, "session_id")
        check_item_id(sentence_id, "sentence_id")
        check_choice(decision, SENTENCE_DECISIONS, "decision")
        _check_error_fields(decision, error_category, clinically_significant)
        check_text(final_text, "final_text", required=False)
        duration_ms = check_duration(duration_ms, "duration_ms")
        client_ts = check_client_ts(client_ts)
        decision_id = check_decision_id(decision_id)
        with self._write() as session:
            row = self._session_for(session, reader, session_id, write=True, need_open=False)
            earlier = _replayed(session, SentenceDecisionRow, row.id, decision_id, client_ts,
                                sentence_id=sentence_id, decision=decision)
            if earlier is not None:
                return replace(_current_sentence(session, row.id, sentence_id), replayed=True)
            _require_open(row)
            original = self._sentence_text(session, row, sentence_id)
            final = _final_text(decision, original, final_text)
            seq = self._next_seq(session, row.id)
            record = SentenceDecisionRow(
                session_id=row.id, seq=seq, sentence_id=sentence_id, decision=decision, original_text=original,
                final_text=final, edit_distance=edit_distance(original, final), error_category=error_category,
                clinically_significant=clinically_significant, duration_ms=duration_ms, client_ts=client_ts,
                server_ts=self._now(), decision_id=decision_id)
            session.add(record)
            self._mark_decided(row)
            session.flush()
            return _current_sentence(session, row.id, sentence_id)

    def _mark_decided(self, row: ReviewSession) -> None:
        """The first decision turns a viewed session into one in progress."""
        if row.first_decision_at is None:
            row.first_decision_at = self._now()

    def _sentence_text(self, session: Session, row: ReviewSession, sentence_id: str) -> str:
        """The text the decision is about: the draft sentence, or the first text of a human-added one."""
        sentences = draft_sentences(_draft_bundle(session, row))
        if isinstance(sentence_id, str) and sentence_id in sentences:
            return str(sentences[sentence_id].get("text", ""))
        added = session.scalar(select(SentenceDecisionRow.final_text).where(
            SentenceDecisionRow.session_id == row.id, SentenceDecisionRow.sentence_id == sentence_id,
            SentenceDecisionRow.decision == "added"))
        if added is None:
            raise InvalidTransition(f"sentence {sentence_id!r} is not in this session's draft")
        return added

    def add_sentence(self, reader: str, session_id: int, text: str, *, section: str = "findings",
                     after_sentence_id: str | None = None, client_ts: float | None = None,
                     duration_ms: float | None = None, decision_id: str | None = None) -> SentenceDecision:
        """A human-added sentence gets the id h<n> (n = 1, 2, ... within the session)."""
        session_id = check_id(session_id, "session_id")
        text = check_text(text, "the new sentence")
        check_choice(section, SECTIONS, "section")
        check_item_id(after_sentence_id, "after_sentence_id", required=False)
        duration_ms = check_duration(duration_ms, "duration_ms")
        client_ts = check_client_ts(client_ts)
        decision_id = check_decision_id(decision_id)
        with self._write() as session:
            row = self._session_for(session, reader, session_id, write=True, need_open=False)
            earlier = _replayed(session, SentenceDecisionRow, row.id, decision_id, client_ts, decision="added",
                                final_text=text)
            if earlier is not None:
                return replace(_current_sentence(session, row.id, earlier.sentence_id), replayed=True)
            _require_open(row)
            if after_sentence_id is not None:
                self._sentence_text(session, row, after_sentence_id)
            seq = self._next_seq(session, row.id)
            sentence_id = f"{HUMAN_SENTENCE_PREFIX}{_count_added(session, SentenceDecisionRow, row.id) + 1}"
            session.add(SentenceDecisionRow(
                session_id=row.id, seq=seq, sentence_id=sentence_id, section=section,
                after_sentence_id=after_sentence_id, decision="added", original_text=None, final_text=text,
                edit_distance=edit_distance(None, text), duration_ms=duration_ms, client_ts=client_ts,
                server_ts=self._now(), decision_id=decision_id))
            self._mark_decided(row)
            session.flush()
            return _current_sentence(session, row.id, sentence_id)

    def decide_box(self, reader: str, session_id: int, box_id: str | None, decision: str, *,
                   box: tuple[float, float, float, float] | None = None, linked_sentence_id: str | None = None,
                   client_ts: float | None = None, duration_ms: float | None = None,
                   decision_id: str | None = None) -> BoxDecision:
        """decision in accepted/moved/resized/rejected/added; box_id None with decision 'added' draws a new box
        (id b<n>). Coordinates are normalised 0-1; 'accepted' without coordinates keeps the current box."""
        session_id = check_id(session_id, "session_id")
        check_choice(decision, BOX_DECISIONS, "decision")
        check_item_id(box_id, "box_id", required=False)
        check_item_id(linked_sentence_id, "linked_sentence_id", required=False)
        coords = check_box(box) if box is not None else None
        if decision in ("moved", "resized", "added") and coords is None:
            raise InvalidInput(f"a {decision} box needs its coordinates")
        if (decision == "added") != (box_id is None):
            raise InvalidInput("box_id None goes with 'added' (a drawn box gets its id from the server), and only")
        duration_ms = check_duration(duration_ms, "duration_ms")
        client_ts = check_client_ts(client_ts)
        decision_id = check_decision_id(decision_id)
        with self._write() as session:
            row = self._session_for(session, reader, session_id, write=True, need_open=False)
            same = {"decision": decision} if box_id is None else {"decision": decision, "box_id": box_id}
            earlier = _replayed(session, BoxDecisionRow, row.id, decision_id, client_ts, **same)
            if earlier is not None:
                return replace(_current_box(session, row.id, earlier.box_id), replayed=True)
            _require_open(row)
            if linked_sentence_id is not None:
                self._sentence_text(session, row, linked_sentence_id)
            current = None if decision == "added" else self._current_box(session, row, box_id)
            coords = None if decision == "rejected" else (coords or current)
            if decision == "added":
                box_id = f"{DRAWN_BOX_PREFIX}{_count_added(session, BoxDecisionRow, row.id) + 1}"
            elif linked_sentence_id is None:
                linked_sentence_id = _default_box_link(session, row, box_id)
            seq = self._next_seq(session, row.id)
            session.add(BoxDecisionRow(
                session_id=row.id, seq=seq, box_id=box_id, decision=decision,
                **dict(zip(("x_min", "y_min", "x_max", "y_max"), coords or (None,) * 4)),
                linked_sentence_id=linked_sentence_id, duration_ms=duration_ms, client_ts=client_ts,
                server_ts=self._now(), decision_id=decision_id))
            self._mark_decided(row)
            session.flush()
            return _current_box(session, row.id, box_id)

    def _current_box(self, session: Session, row: ReviewSession, box_id: str) -> tuple[float, float, float, float]:
        """Coordinates of a draft observation box or of a box drawn in this session (latest position)."""
        sentence = draft_sentences(_draft_bundle(session, row)).get(box_id)
        if sentence is not None and draft_box(sentence) is not None:
            latest = _latest_box_coords(session, row.id, box_id)
            return latest or draft_box(sentence)
        latest = _latest_box_coords(session, row.id, box_id)
        drawn = session.scalar(select(BoxDecisionRow.id).where(
            BoxDecisionRow.session_id == row.id, BoxDecisionRow.box_id == box_id, BoxDecisionRow.decision == "added"))
        if drawn is None:
            raise InvalidTransition(f"box {box_id!r} is not in this session's draft")
        return latest  # type: ignore[return-value]

    def pending_items(self, reader: str, session_id: int) -> dict[str, list[str]]:
        """Draft sentences and boxes of the session that nobody decided yet: {"sentences": [...], "boxes": [...]}
        (a box whose sentence was deleted is not pending)."""
        session_id = check_id(session_id, "session_id")
        with self._read() as session:
            row = self._session_for(session, reader, session_id, write=False)
            sentences, boxes = _pending(session, row)
            return {"sentences": list(sentences), "boxes": list(boxes)}

    def sign_off(self, reader: str, session_id: int, decision: str, final_report: str, *,
                 active_ms: float, idle_ms: float = 0.0, hidden_ms: float = 0.0,
                 client_ts: float | None = None, accept_rest: bool = False,
                 decision_id: str | None = None) -> dict[str, Any]:
        """decision in accept/modify/reject. Immutable once written; signing twice is refused.

        accept/modify with pending draft sentences or boxes: refused (PendingItems: N sentences, M boxes) unless
        ``accept_rest`` -- the reader's explicit "accept the rest" -- which records each pending item as
        ``accepted_at_signoff`` in the same transaction. The sign-off stores its hash-chain link."""
        session_id = check_id(session_id, "session_id")
        check_choice(decision, SIGNOFF_DECISIONS, "decision")
        if final_report is None:
            raise InvalidInput("final_report must be text, got None")
        check_text(final_report, "final_report", required=False)
        if not isinstance(accept_rest, bool):
            raise InvalidInput(f"accept_rest must be true or false, got {accept_rest!r}")
        times = {name: check_duration(value, name) or 0.0
                 for name, value in (("active_ms", active_ms), ("idle_ms", idle_ms), ("hidden_ms", hidden_ms))}
        client_ts = check_client_ts(client_ts)
        decision_id = check_decision_id(decision_id)
        with self._write() as session:
            row = self._session_for(session, reader, session_id, write=True, need_open=False)
            replayed = _replayed_signoff(session, row.id, decision_id, client_ts, decision)
            if replayed is not None:
                return replayed
            _require_open(row)
            if decision != "reject":
                self._settle_pending(session, row, accept_rest, client_ts)
            self._next_seq(session, row.id)
            now = self._now()
            row.status, row.closed_at = "signed", now
            session.flush()
            values = dict(session_id=row.id, decision=decision, final_report=final_report, client_ts=client_ts,
                          total_ms=(now - row.opened_at).total_seconds() * 1000.0, signed_at=now,
                          decision_id=decision_id, **times)
            signoff = _chained_signoff(session, values)
            return _signoff_dict(session, signoff)

    def _settle_pending(self, session: Session, row: ReviewSession, accept_rest: bool, client_ts: float | None) -> None:
        sentences, boxes = _pending(session, row)
        if not sentences and not boxes:
            return
        if not accept_rest:
            raise PendingItems(list(sentences), list(boxes))
        now = self._now()
        for sentence_id, text in sentences.items():
            session.add(SentenceDecisionRow(
                session_id=row.id, seq=self._next_seq(session, row.id), sentence_id=sentence_id,
                decision=ACCEPTED_AT_SIGNOFF, original_text=text, final_text=text, edit_distance=0,
                client_ts=client_ts, server_ts=now))
        for box_id, coords in boxes.items():
            session.add(BoxDecisionRow(
                session_id=row.id, seq=self._next_seq(session, row.id), box_id=box_id, decision=ACCEPTED_AT_SIGNOFF,
                **dict(zip(("x_min", "y_min", "x_max", "y_max"), coords)), linked_sentence_id=box_id,
                client_ts=client_ts, server_ts=now))
        self._mark_decided(row)
        session.flush()  # while the session is still open (the database accepts decisions only then)

    def amend(self, reader: str, session_id: int, final_report: str, reason: str) -> dict[str, Any]:
        """A change after sign-off: a new amendment row, chained to the sign-off's hash; the sign-off never changes."""
        session_id = check_id(session_id, "session_id")
        final_report = check_text(final_report, "the amended report")
        reason = check_text(reason, "the reason for the amendment")
        with self._write() as session:
            row = self._session_for(session, reader, session_id, write=True, need_open=False)
            signoff = session.scalar(select(SignOff).where(SignOff.session_id == row.id))
            if signoff is None:
                raise InvalidTransition(f"review session {session_id} is not signed; edit it instead of amending")
            me = _reader(session, reader)
            values = dict(signoff_id=signoff.id, reader_id=me.id, final_report=final_report, reason=reason,
                          amended_at=self._now())
            values["prev_sha256"] = integrity.amendment_prev(session.connection(), signoff.id, signoff.record_sha256)
            session.add(Amendment(**values, record_sha256=integrity.amendment_sha256(values)))
            session.flush()
            return _signoff_dict(session, signoff)

    # --- session helpers ------------------------------------------------
    def _session_for(self, session: Session, reader: str, session_id: int, *, write: bool,
                     need_open: bool = True) -> ReviewSession:
        """Loads the session and checks the reader may read (owner; admin unless blinded) or write it (owner, open)."""
        me = _reader(session, reader)
        session_id = check_id(session_id, "session_id")
        row = session.get(ReviewSession, session_id, with_for_update=write)
        if row is None:
            raise NotFound(f"review session {session_id!r} does not exist")
        if row.reader_id != me.id and (write or not self._admin_may_read(session, me, row)):
            raise AccessDenied(f"review session {session_id} belongs to another reader")
        if write and need_open:
            _require_open(row)
        return row

    def _admin_may_read(self, session: Session, me: Reader, row: ReviewSession) -> bool:
        if me.role != "admin":
            return False
        experiment = session.get(Experiment, row.experiment_id) if row.experiment_id else None
        return experiment is None or not experiment.blinded

    def _next_seq(self, session: Session, session_id: int) -> int:
        seq = session.connection().execute(_NEXT_SEQ, {"sid": session_id}).scalar_one()
        return seq  # the ORM copy of last_seq is stale now; _state refreshes it

    def _state(self, session: Session, row: ReviewSession) -> SessionState:
        session.refresh(row)
        draft = session.get(Draft, row.draft_id) if row.draft_id else None
        return SessionState(
            session_id=row.id, study=study_info(session, session.get(Study, row.study_id)),
            reader=session.get(Reader, row.reader_id).username, status=row.status, arm=row.arm,
            draft=shown_draft(session, row, draft.bundle) if draft else None, draft_id=draft.id if draft else None,
            sentences=current_sentences(_rows(session, SentenceDecisionRow, row.id)),
            boxes=current_boxes(_rows(session, BoxDecisionRow, row.id)), last_seq=row.last_seq,
            opened_at=row.opened_at, signoff=_signoff_for_session(session, row.id))


# --- the event fast path: two statements on one connection (Core, compiled once) ---------------------------

_SESSIONS, _EVENTS, _READERS = ReviewSession.__table__, InteractionEvent.__table__, Reader.__table__
_CLAIM_EVENT_SEQ = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("sid"), _SESSIONS.c.status == "open",
           _SESSIONS.c.reader_id == select(_READERS.c.id).where(_READERS.c.username == bindparam("reader"))
           .scalar_subquery())
    .values(last_seq=_SESSIONS.c.last_seq + 1)
    .returning(_SESSIONS.c.last_seq))
_INSERT_EVENT = insert(_EVENTS)
_CLAIM_CTE = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("sid"), _SESSIONS.c.status == "open",
           _SESSIONS.c.reader_id == select(_READERS.c.id).where(_READERS.c.username == bindparam("reader"))
           .scalar_subquery())
    .values(last_seq=_SESSIONS.c.last_seq + 1)
    .returning(_SESSIONS.c.id, _SESSIONS.c.last_seq)
    .cte("claim"))
_CLAIM_AND_INSERT_EVENT = (
    insert(_EVENTS)
    .from_select(["session_id", "seq", "event_type", "payload", "client_ts", "server_ts"],
                 select(_CLAIM_CTE.c.id, _CLAIM_CTE.c.last_seq,
                        *(bindparam(name, type_=_EVENTS.c[name].type)
                          for name in ("event_type", "payload", "client_ts", "server_ts"))))
    .returning(_EVENTS.c.seq))
_NEXT_SEQ = (update(_SESSIONS).where(_SESSIONS.c.id == bindparam("sid"))
             .values(last_seq=_SESSIONS.c.last_seq + 1).returning(_SESSIONS.c.last_seq))


def _explain_event_refusal(connection: Any, reader: str, session_id: Any) -> None:
    """The claim matched no row: say why (unknown reader, no such session, another reader's, not open)."""
    reader_id = connection.execute(select(_READERS.c.id).where(_READERS.c.username == reader)).scalar()
    if reader_id is None:
        raise AccessDenied(f"unknown reader {reader!r}")
    row = connection.execute(select(_SESSIONS.c.reader_id, _SESSIONS.c.status)
                             .where(_SESSIONS.c.id == session_id)).first()
    if row is None:
        raise NotFound(f"review session {session_id!r} does not exist")
    if row.reader_id != reader_id:
        raise AccessDenied(f"review session {session_id} belongs to another reader")
    raise InvalidTransition(f"review session {session_id} is {row.status}; it takes no more events")


# --- module helpers (all take an open ORM session) ---------------------------------------------------


def _valid(check: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    try:
        check(*args, **kwargs)
    except InvalidInput:
        return False
    return True


def _valid_username(username: Any) -> bool:
    return _valid(check_username, username)


def _check_payload(payload: Any) -> None:
    if payload is not None and not isinstance(payload, dict):
        raise InvalidInput("payload must be a JSON object")
    check_json(payload, "payload")
    size = len(json.dumps(payload or {}, allow_nan=False))
    if size > PAYLOAD_MAX:
        raise InvalidInput(f"payload is {size} bytes of JSON; the limit is {PAYLOAD_MAX}")


def _require_open(row: ReviewSession) -> None:
    if row.status != "open":
        raise InvalidTransition(f"review session {row.id} is {row.status}; it cannot change")


def _replayed(session: Session, model: type, session_id: int, decision_id: str | None, client_ts: float | None,
              **same: Any) -> Any | None:
    """The row an earlier identical call wrote (None: a new decision).

    With a decision_id: the row recorded under it (the same id with a different decision is refused). Without one:
    a row of the same session with the same client timestamp (epoch ms, set once when the reader acted) and the
    same content -- the workstation replaying a call whose acknowledgement it never saw."""
    if decision_id is not None:
        earlier = session.scalar(select(model).where(model.session_id == session_id, model.decision_id == decision_id))
        if earlier is not None and any(getattr(earlier, name) != value for name, value in same.items()):
            raise InvalidInput(f"decision_id {decision_id} was already used for a different decision")
        return earlier
    if client_ts is None:
        return None
    conditions = [model.session_id == session_id, model.client_ts == client_ts]
    conditions += [getattr(model, name) == value for name, value in same.items()]
    return session.scalars(select(model).where(*conditions).order_by(model.id).limit(1)).first()


def _replayed_signoff(session: Session, session_id: int, decision_id: str | None, client_ts: float | None,
                      decision: str) -> dict[str, Any] | None:
    signoff = _replayed(session, SignOff, session_id, decision_id, client_ts, decision=decision)
    return {**_signoff_dict(session, signoff), "replayed": True} if signoff is not None else None


def _pending(session: Session, row: ReviewSession) -> tuple[dict[str, str], dict[str, tuple[float, ...]]]:
    """Undecided draft sentences (id -> text) and draft boxes (id -> coordinates) of the session, in draft order.
    The box of a deleted sentence is not pending (it leaves the report with its sentence)."""
    sentences = draft_sentences(_draft_bundle(session, row))
    decided = {d.sentence_id: d.decision for d in current_sentences(_rows(session, SentenceDecisionRow, row.id))}
    boxes_decided = {d.box_id for d in current_boxes(_rows(session, BoxDecisionRow, row.id))}
    pending_sentences = {sid: str(s.get("text", "")) for sid, s in sentences.items() if sid not in decided}
    pending_boxes = {sid: draft_box(s) for sid, s in sentences.items()
                     if draft_box(s) is not None and sid not in boxes_decided and decided.get(sid) != "deleted"}
    return pending_sentences, pending_boxes


def _chained_signoff(session: Session, values: dict[str, Any]) -> SignOff:
    """Inserts the sign-off with prev_sha256 (the chain head) and record_sha256 over draft, decisions and report,
    then re-reads it and checks the hash reproduces from the stored values (as `gazex db check` will)."""
    connection = session.connection()
    integrity.lock_chain(connection)
    values = {**values, "prev_sha256": integrity.chain_head(connection)}
    signoff = SignOff(**values, record_sha256=integrity.signoff_sha256(connection, values))
    session.add(signoff)
    session.flush()
    stored = connection.execute(select(SignOff.__table__).where(SignOff.__table__.c.id == signoff.id)).one()
    if integrity.signoff_sha256(connection, stored._mapping) != signoff.record_sha256:
        raise RuntimeError(f"sign-off {signoff.id}: the stored values do not reproduce its hash")
    return signoff


def _check_error_fields(decision: str, error_category: str | None, significant: bool | None) -> None:
    if error_category is not None:
        check_choice(error_category, ERROR_CATEGORIES, "error_category")
    if significant is not None and not isinstance(significant, bool):
        raise InvalidInput("clinically_significant must be true, false or None")
    if decision in ACCEPTED_DECISIONS and (error_category is not None or significant):
        raise InvalidInput("an accepted sentence has no error category or significant error")


def _final_text(decision: str, original: str, final_text: str | None) -> str | None:
    if decision in ACCEPTED_DECISIONS:
        return original
    if decision == "deleted":
        return None
    return check_text(final_text, "the edited text")


def _check_bundle(bundle: Any) -> None:
    if not isinstance(bundle, dict) or not isinstance(bundle.get("sentences"), list):
        raise InvalidInput("a draft must be an EvidenceBundle JSON object with a 'sentences' list")
    ids = [s.get("id") if isinstance(s, dict) else None for s in bundle["sentences"]]
    if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
        raise InvalidInput("every draft sentence needs a unique text id")
    for sentence_id in ids:
        check_item_id(sentence_id, "draft sentence id")
    check_json(bundle, "draft")


def _reader(session: Session, username: str) -> Reader:
    valid = _valid_username(username)
    reader = session.scalar(select(Reader).where(Reader.username == username)) if valid else None
    if reader is None:
        raise AccessDenied(f"unknown reader {username!r}")
    return reader


def _get(session: Session, model: type, row_id: Any, what: str) -> Any:
    row = session.get(model, check_id(row_id, f"{what} id"))
    if row is None:
        raise NotFound(f"{what} {row_id!r} does not exist")
    return row


def _reader_info(reader: Reader) -> ReaderInfo:
    return ReaderInfo(id=reader.id, username=reader.username, role=reader.role, display_name=reader.display_name)


def _model_info(row: ModelVersion) -> ModelVersionInfo:
    return ModelVersionInfo(id=row.id, name=row.name, version=row.version, parent_id=row.parent_id,
                            weights_hash=row.weights_hash, status=row.status, metrics=dict(row.metrics or {}),
                            path=row.path)


def _previous_active_id(session: Session, model_version_id: int) -> int | None:
    return session.scalar(select(ModelVersionEvent.previous_active_id).where(
        ModelVersionEvent.model_version_id == model_version_id,
        ModelVersionEvent.previous_active_id.is_not(None)).order_by(ModelVersionEvent.id.desc()).limit(1))


def _draft_row(session: Session, study_id: int, model_version_id: int) -> Draft | None:
    return session.scalar(select(Draft).where(Draft.study_id == study_id, Draft.model_version_id == model_version_id))


def _draft_for(session: Session, study_id: int, model_version_id: int | None) -> Draft | None:
    if model_version_id is None:
        model_version_id = session.scalar(select(ModelVersion.id).where(ModelVersion.status == "active"))
        if model_version_id is None:
            return None
    return _draft_row(session, study_id, model_version_id)


def _same_draft_or_refuse(existing: Draft, bundle: dict[str, Any]) -> int:
    if existing.bundle != bundle:
        raise InvalidTransition(f"study {existing.study_id} already has a different draft from model version "
                                f"{existing.model_version_id}; drafts never change")
    return existing.id


def _draft_bundle(session: Session, row: ReviewSession) -> dict[str, Any] | None:
    draft = session.get(Draft, row.draft_id) if row.draft_id else None
    return shown_draft(session, row, draft.bundle) if draft else None


def _experiment_model(session: Session, assignment: Assignment | None) -> int | None:
    if assignment is None:
        return None
    return session.scalar(select(Experiment.model_version_id).where(Experiment.id == assignment.experiment_id))


def _existing_session(session: Session, reader_id: int, study_id: int,
                      assignment: Assignment | None) -> ReviewSession | None:
    """The session of this assignment, or the reader's latest open/signed routine session on the study."""
    if assignment is not None:
        return session.scalar(select(ReviewSession).where(ReviewSession.assignment_id == assignment.id))
    return session.scalar(select(ReviewSession).where(
        ReviewSession.reader_id == reader_id, ReviewSession.study_id == study_id,
        ReviewSession.assignment_id.is_(None), ReviewSession.status.in_(("open", "signed")))
        .order_by(ReviewSession.id.desc()).limit(1))


def _routine_worklist(session: Session, me: Reader) -> list[WorklistItem]:
    studies = list(session.scalars(select(Study).order_by(Study.id)))
    sessions = _latest_routine_sessions(session, me.id)
    drafted = _studies_with_active_draft(session)
    infos = study_infos(session, studies)
    return [WorklistItem(study=infos[study.id], status=worklist_status(sessions.get(study.id)),
                         position=position, session_id=sessions[study.id].id if study.id in sessions else None,
                         arm=None, has_draft=study.id in drafted)
            for position, study in enumerate(studies, start=1)]


def _latest_routine_sessions(session: Session, reader_id: int) -> dict[int, ReviewSession]:
    rows = session.scalars(select(ReviewSession).where(
        ReviewSession.reader_id == reader_id, ReviewSession.assignment_id.is_(None)).order_by(ReviewSession.id))
    latest: dict[int, ReviewSession] = {}
    for row in rows:
        if row.status != "closed" or row.study_id not in latest:
            latest[row.study_id] = row
    return latest


def _studies_with_active_draft(session: Session, model_version_id: int | None = None) -> set[int]:
    if model_version_id is None:
        model_version_id = session.scalar(select(ModelVersion.id).where(ModelVersion.status == "active"))
    return set(session.scalars(select(Draft.study_id).where(Draft.model_version_id == model_version_id)))


def _rows(session: Session, model: type, session_id: int) -> list[Any]:
    return list(session.scalars(select(model).where(model.session_id == session_id).order_by(model.id)))


def _count_added(session: Session, model: type, session_id: int) -> int:
    return session.scalar(select(func.count(model.id)).where(model.session_id == session_id,
                                                             model.decision == "added"))


def _current_sentence(session: Session, session_id: int, sentence_id: str) -> SentenceDecision:
    rows = session.scalars(select(SentenceDecisionRow).where(SentenceDecisionRow.session_id == session_id,
                                                             SentenceDecisionRow.sentence_id == sentence_id))
    return current_sentences(rows)[0]


def _current_box(session: Session, session_id: int, box_id: str) -> BoxDecision:
    rows = session.scalars(select(BoxDecisionRow).where(BoxDecisionRow.session_id == session_id,
                                                        BoxDecisionRow.box_id == box_id))
    return current_boxes(rows)[0]


def _default_box_link(session: Session, row: ReviewSession, box_id: str) -> str | None:
    """A draft box belongs to its sentence; a drawn box keeps the link it was drawn with."""
    if box_id in draft_sentences(_draft_bundle(session, row)):
        return box_id
    return session.scalar(select(BoxDecisionRow.linked_sentence_id).where(
        BoxDecisionRow.session_id == row.id, BoxDecisionRow.box_id == box_id).order_by(BoxDecisionRow.id.desc())
        .limit(1))


def _latest_box_coords(session: Session, session_id: int, box_id: str) -> tuple[float, float, float, float] | None:
    row = session.scalar(select(BoxDecisionRow).where(
        BoxDecisionRow.session_id == session_id, BoxDecisionRow.box_id == box_id,
        BoxDecisionRow.x_min.is_not(None)).order_by(BoxDecisionRow.id.desc()).limit(1))
    return (row.x_min, row.y_min, row.x_max, row.y_max) if row else None


def _signoff_for_session(session: Session, session_id: int) -> dict[str, Any] | None:
    signoff = session.scalar(select(SignOff).where(SignOff.session_id == session_id))
    return _signoff_dict(session, signoff) if signoff else None


def _signoff_dict(session: Session, signoff: SignOff) -> dict[str, Any]:
    amendments = [{"final_report": a.final_report, "reason": a.reason, "amended_at": a.amended_at,
                   "reader": session.get(Reader, a.reader_id).username}
                  for a in session.scalars(select(Amendment).where(Amendment.signoff_id == signoff.id)
                                           .order_by(Amendment.id))]
    return {"signoff_id": signoff.id, "session_id": signoff.session_id, "decision": signoff.decision,
            "final_report": signoff.final_report, "total_ms": signoff.total_ms, "active_ms": signoff.active_ms,
            "idle_ms": signoff.idle_ms, "hidden_ms": signoff.hidden_ms, "client_ts": signoff.client_ts,
            "signed_at": signoff.signed_at, "amendments": amendments, "record_sha256": signoff.record_sha256,
            "current_report": amendments[-1]["final_report"] if amendments else signoff.final_report}
