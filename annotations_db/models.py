"""SQLAlchemy 2 models of the review record (the schema at the head migration).

The migrations in ``annotations_db/migrations/versions`` are the source of truth for the database; these
classes mirror them for queries. EvidenceBundle JSON is stored as plain dicts (no gazex_core import).

Provenance rules enforced here and by database triggers (see migrations):
- sign-offs, interaction events, sentence/box decisions, amendments and model-version events are append-only;
- a later decision on the same sentence/box supersedes the earlier one in the current state (highest ``id``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, TypeDecorator,
                        UniqueConstraint)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

JSONDict = JSON().with_variant(postgresql.JSONB(), "postgresql")


class UTCDateTime(TypeDecorator):
    """Stores naive UTC, returns timezone-aware UTC datetimes on every backend."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONDict, datetime: UTCDateTime}


class Reader(Base):
    __tablename__ = "readers"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Study(Base):
    __tablename__ = "studies"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_uid: Mapped[str] = mapped_column(String(128), unique=True)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Image(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    series_uid: Mapped[str | None] = mapped_column(String(128))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(128))
    file_path: Mapped[str] = mapped_column(Text)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(100))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    weights_hash: Mapped[str] = mapped_column(String(128))
    path: Mapped[str | None] = mapped_column(Text)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))
    # 1 while active, NULL otherwise; UNIQUE makes "at most one active" a database rule.
    active_slot: Mapped[int | None] = mapped_column(Integer, unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelVersionEvent(Base):
    """Audit of promotions/rollbacks (append-only)."""

    __tablename__ = "model_version_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(32))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    previous_active_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Draft(Base):
    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("study_id", "model_version_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    bundle: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    bundle_sha256: Mapped[str | None] = mapped_column(String(64))  # revision 0003


class Experiment(Base):
    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    design: Mapped[str] = mapped_column(String(32))
    arms: Mapped[dict[str, Any]] = mapped_column()  # {"arms": [...]}
    washout_days: Mapped[int] = mapped_column(Integer)
    blinded: Mapped[bool] = mapped_column(Boolean)
    seed: Mapped[int] = mapped_column(Integer)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    created_by: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Assignment(Base):
    """One case for one reader in one arm and period; ``position`` is that reader's randomised order."""

    __tablename__ = "experiment_assignments"
    __table_args__ = (UniqueConstraint("experiment_id", "reader_id", "study_id", "period"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    arm: Mapped[str] = mapped_column(String(64))
    period: Mapped[int] = mapped_column(Integer)
    position: Mapped[int] = mapped_column(Integer)


class ReviewSession(Base):
    __tablename__ = "review_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    draft_id: Mapped[int | None] = mapped_column(ForeignKey("drafts.id"))
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"))
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("experiment_assignments.id"), unique=True)
    arm: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    last_seq: Mapped[int] = mapped_column(Integer, default=0)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column()
    # revision 0003: NULL while the study was only viewed; the first decision makes it "in progress"
    first_decision_at: Mapped[datetime | None] = mapped_column()


class SentenceDecisionRow(Base):
    __tablename__ = "sentence_decisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("review_sessions.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    sentence_id: Mapped[str] = mapped_column(String(40))
    section: Mapped[str | None] = mapped_column(String(32))
    after_sentence_id: Mapped[str | None] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(24))  # 16 before revision 0003 (accepted_at_signoff)
    original_text: Mapped[str | None] = mapped_column(Text)
    final_text: Mapped[str | None] = mapped_column(Text)
    edit_distance: Mapped[int] = mapped_column(Integer)
    error_category: Mapped[str | None] = mapped_column(String(16))
    clinically_significant: Mapped[bool | None] = mapped_column(Boolean)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    client_ts: Mapped[float | None] = mapped_column(Float)
    server_ts: Mapped[datetime] = mapped_column(default=utcnow)
    decision_id: Mapped[str | None] = mapped_column(String(64))  # revision 0003: client idempotency key


class BoxDecisionRow(Base):
    __tablename__ = "box_decisions"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("review_sessions.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    box_id: Mapped[str] = mapped_column(String(40))
    decision: Mapped[str] = mapped_column(String(24))  # 16 before revision 0003 (accepted_at_signoff)
    x_min: Mapped[float | None] = mapped_column(Float)
    y_min: Mapped[float | None] = mapped_column(Float)
    x_max: Mapped[float | None] = mapped_column(Float)
    y_max: Mapped[float | None] = mapped_column(Float)
    linked_sentence_id: Mapped[str | None] = mapped_column(String(40))
    duration_ms: Mapped[float | None] = mapped_column(Float)
    client_ts: Mapped[float | None] = mapped_column(Float)
    server_ts: Mapped[datetime] = mapped_column(default=utcnow)
    decision_id: Mapped[str | None] = mapped_column(String(64))  # revision 0003: client idempotency key


class InteractionEvent(Base):
    __tablename__ = "interaction_events"
    __table_args__ = (UniqueConstraint("session_id", "seq"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("review_sessions.id"))
    seq: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    client_ts: Mapped[float | None] = mapped_column(Float)
    server_ts: Mapped[datetime] = mapped_column(default=utcnow)


class SignOff(Base):
    __tablename__ = "signoffs"
    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("review_sessions.id"), unique=True)
    decision: Mapped[str] = mapped_column(String(16))
    final_report: Mapped[str] = mapped_column(Text)
    total_ms: Mapped[float] = mapped_column(Float)
    active_ms: Mapped[float] = mapped_column(Float)
    idle_ms: Mapped[float] = mapped_column(Float)
    hidden_ms: Mapped[float] = mapped_column(Float)
    client_ts: Mapped[float | None] = mapped_column(Float)
    signed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # revision 0003: idempotency key, and the hash chain (see annotations_db/integrity.py)
    decision_id: Mapped[str | None] = mapped_column(String(64))
    prev_sha256: Mapped[str | None] = mapped_column(String(64))
    record_sha256: Mapped[str | None] = mapped_column(String(64))


class Amendment(Base):
    __tablename__ = "amendments"
    id: Mapped[int] = mapped_column(primary_key=True)
    signoff_id: Mapped[int] = mapped_column(ForeignKey("signoffs.id"), index=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    final_report: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    amended_at: Mapped[datetime] = mapped_column(default=utcnow)
    prev_sha256: Mapped[str | None] = mapped_column(String(64))  # revision 0003: hash chain
    record_sha256: Mapped[str | None] = mapped_column(String(64))


# --- revision 0002 -------------------------------------------------------------------------------


class FinetuneRun(Base):
    __tablename__ = "finetune_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    base_model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"))
    candidate_model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    inputs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    split: Mapped[dict[str, Any]] = mapped_column(default=dict)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16))
    # 1 while pending/running, NULL otherwise; UNIQUE makes "one job at a time" a database rule.
    active_slot: Mapped[int | None] = mapped_column(Integer, unique=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()
    heartbeat_at: Mapped[datetime | None] = mapped_column()


class FrozenSplit(Base):
    """study_uid -> train/val, first assignment wins and never changes (no re-shuffling across re-fine-tunes)."""

    __tablename__ = "frozen_splits"
    study_uid: Mapped[str] = mapped_column(String(128), primary_key=True)
    split: Mapped[str] = mapped_column(String(8))
    seed: Mapped[int] = mapped_column(Integer)
    val_fraction: Mapped[float] = mapped_column(Float)
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- revision 0006 (imported studies: study sets, import runs) ---


class StudySet(Base):
    __tablename__ = "study_sets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StudySetMember(Base):
    __tablename__ = "study_set_members"
    __table_args__ = (UniqueConstraint("study_set_id", "study_id", name="uq_study_set_member"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    study_set_id: Mapped[int] = mapped_column(ForeignKey("study_sets.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"), index=True)
    source: Mapped[str] = mapped_column(String(32))  # "file" | "dicomweb"
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class ImportRun(Base):
    """Counts of one import (reasons as {reason: count}; never file names, which may name patients)."""

    __tablename__ = "import_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    study_set_id: Mapped[int] = mapped_column(ForeignKey("study_sets.id"))
    source: Mapped[str] = mapped_column(String(32))
    imported: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[dict[str, Any]] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- revision 0004 (accounts) -------------------------------------------------------------------


class LoginThrottle(Base):
    """Failed sign-ins of one username (scope 'user') or one client address (scope 'client') in the window."""

    __tablename__ = "login_throttles"
    scope: Mapped[str] = mapped_column(String(8), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column()


class LoginSession(Base):
    """One sign-in; the cookie token is stored only as its SHA-256."""

    __tablename__ = "login_sessions"
    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    client: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    end_reason: Mapped[str | None] = mapped_column(String(16))


class AccountEvent(Base):
    """Append-only: disable / enable / password change of a reader, and who did it."""

    __tablename__ = "account_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    acting_reader_id: Mapped[int | None] = mapped_column(ForeignKey("readers.id"))
    acting: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column()


# --- revision 0005 (experiment design) ---


class ExperimentSettings(Base):
    """Per-experiment state beyond the design: open/closed, reader order, questionnaires."""

    __tablename__ = "experiment_settings"
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict[str, Any]] = mapped_column(JSONDict)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class InjectedError(Base):
    """One deliberate draft error on one case of an experiment (append-only; readers are not told)."""

    __tablename__ = "experiment_injected_errors"
    __table_args__ = (UniqueConstraint("experiment_id", "study_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id"))
    kind: Mapped[str] = mapped_column(String(32))
    sentence_id: Mapped[str] = mapped_column(String(40))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONDict)
    created_by: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class QuestionnaireResponse(Base):
    """Answers to a post-case item set or a post-session NASA-TLX / SUS (append-only)."""

    __tablename__ = "questionnaire_responses"
    id: Mapped[int] = mapped_column(primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    reader_id: Mapped[int] = mapped_column(ForeignKey("readers.id"))
    session_id: Mapped[int | None] = mapped_column(ForeignKey("review_sessions.id"))
    instrument: Mapped[str] = mapped_column(String(32))
    period: Mapped[int | None] = mapped_column(Integer)
    answers: Mapped[dict[str, Any]] = mapped_column(JSONDict)
    score: Mapped[float | None] = mapped_column(Float)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
