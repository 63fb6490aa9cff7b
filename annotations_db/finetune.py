"""Corrections for re-fine-tuning: signed reviews as training input, fine-tune run bookkeeping (one job at a
time), and the frozen train/val split (first assignment wins and never changes)."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .models import (Amendment, BoxDecisionRow, Draft, FinetuneRun, FrozenSplit, Image, ModelVersion, Reader,
                     ReviewSession, SentenceDecisionRow, SignOff, Study)
from .provenance import current_boxes, current_sentences
from .records import InvalidInput, InvalidTransition, NotFound

RUN_TRANSITIONS = {
    "pending": ("running", "failed"),
    "running": ("running", "succeeded", "failed"),
    "succeeded": (),
    "failed": (),
}
ACTIVE_RUN_STATUSES = ("pending", "running")


class FinetuneMixin:
    """Re-fine-tuning methods of ReviewService (uses its _write/_read/_now)."""

    def signed_reviews_since(self, model_version_id: int | None = None) -> list[dict[str, Any]]:
        """Signed-off sessions (draft, sentence and box decisions, final report) made on drafts of the given
        model version or later (higher id); all signed sessions with a draft when None. Input to `gazex finetune`."""
        with self._read() as session:
            rows = _signed_sessions(session, model_version_id)
            ids = [r[0].id for r in rows]
            sentences = _grouped(session, SentenceDecisionRow, ids)
            boxes = _grouped(session, BoxDecisionRow, ids)
            amended = _latest_amendments(session, [r[1].id for r in rows])
            return [_review_dict(r, sentences[r[0].id], boxes[r[0].id], amended) for r in rows]

    def start_finetune_run(self, *, base_model_version_id: int, params: dict[str, Any],
                           inputs: dict[str, Any] | None = None, split: dict[str, Any] | None = None) -> int:
        """Refused while another run is pending or running (one job at a time; a UNIQUE slot enforces it)."""
        try:
            with self._write() as session:
                if session.get(ModelVersion, base_model_version_id) is None:
                    raise NotFound(f"model version {base_model_version_id!r} does not exist")
                _refuse_if_busy(session)
                run = FinetuneRun(base_model_version_id=base_model_version_id, params=dict(params or {}),
                                  inputs=dict(inputs or {}), split=dict(split or {}), metrics={}, status="pending",
                                  active_slot=1, progress=0.0, created_at=self._now(), heartbeat_at=self._now())
                session.add(run)
                session.flush()
                return run.id
        except IntegrityError as exc:  # another process started one at the same moment
            raise InvalidTransition("another fine-tune run is already pending or running") from exc

    def update_finetune_run(self, run_id: int, *, status: str | None = None, progress: float | None = None,
                            metrics: dict[str, Any] | None = None, message: str | None = None,
                            candidate_model_version_id: int | None = None) -> None:
        """Also the heartbeat: every call stamps heartbeat_at. pending -> running -> succeeded/failed."""
        _check_progress(progress)
        with self._write() as session:
            run = session.get(FinetuneRun, run_id) if isinstance(run_id, int) else None
            if run is None:
                raise NotFound(f"fine-tune run {run_id!r} does not exist")
            if run.status not in ACTIVE_RUN_STATUSES:
                raise InvalidTransition(f"fine-tune run {run_id} is {run.status}; it cannot change")
            if candidate_model_version_id is not None and session.get(ModelVersion, candidate_model_version_id) is None:
                raise NotFound(f"model version {candidate_model_version_id!r} does not exist")
            self._apply_run_update(run, status, progress, metrics, message, candidate_model_version_id)

    def _apply_run_update(self, run: FinetuneRun, status: str | None, progress: float | None,
                          metrics: dict[str, Any] | None, message: str | None, candidate_id: int | None) -> None:
        now = self._now()
        if status is not None and status != run.status:
            if status not in RUN_TRANSITIONS.get(run.status, ()):
                raise InvalidTransition(f"fine-tune run {run.id} cannot go from {run.status} to {status}")
            run.status = status
            run.started_at = run.started_at or (now if status == "running" else None)
            if status in ("succeeded", "failed"):
                run.finished_at, run.active_slot = now, None
                run.progress = 1.0 if status == "succeeded" else run.progress
        if progress is not None:
            run.progress = float(progress)
        if metrics:
            run.metrics = {**(run.metrics or {}), **dict(metrics)}
        if message is not None:
            run.message = str(message)[:2000]
        if candidate_id is not None:
            run.candidate_model_version_id = candidate_id
        run.heartbeat_at = now

    def fail_stale_finetune_runs(self, max_silence_s: float = 600.0) -> list[int]:
        """Marks pending/running runs whose last heartbeat is older than max_silence_s as failed (their process
        died), which frees the one-job slot. Returns the ids it failed."""
        deadline = self._now() - timedelta(seconds=max_silence_s)
        with self._write() as session:
            stale = list(session.scalars(select(FinetuneRun).where(
                FinetuneRun.status.in_(ACTIVE_RUN_STATUSES), FinetuneRun.heartbeat_at < deadline)))
            for run in stale:
                self._apply_run_update(run, "failed", None, None,
                                       f"no heartbeat for more than {max_silence_s:.0f} s", None)
            return [run.id for run in stale]

    def finetune_runs(self) -> list[dict[str, Any]]:
        with self._read() as session:
            return [_run_dict(r) for r in session.scalars(select(FinetuneRun).order_by(FinetuneRun.id))]

    def get_finetune_run(self, run_id: int) -> dict[str, Any]:
        with self._read() as session:
            run = session.get(FinetuneRun, run_id)
            if run is None:
                raise NotFound(f"fine-tune run {run_id!r} does not exist")
            return _run_dict(run)

    def frozen_split(self, study_uids: list[str], val_fraction: float, seed: int) -> dict[str, str]:
        """study_uid -> 'train'/'val'. A uid seen before keeps its first split whatever the fraction or seed now;
        a new uid goes to 'val' when sha256(seed:uid) falls below val_fraction."""
        if not 0.0 <= val_fraction <= 1.0 or not math.isfinite(val_fraction):
            raise InvalidInput("val_fraction must be between 0 and 1")
        uids = sorted({str(u) for u in study_uids})
        if not uids:
            return {}
        with self._write() as session:
            rows = [{"study_uid": uid, "split": _hash_split(uid, val_fraction, seed), "seed": int(seed),
                     "val_fraction": float(val_fraction), "assigned_at": self._now()} for uid in uids]
            _insert_ignoring_existing(session, rows)
            found = dict(session.execute(select(FrozenSplit.study_uid, FrozenSplit.split)
                                         .where(FrozenSplit.study_uid.in_(uids))).all())
        return {uid: found[uid] for uid in study_uids}


def _hash_split(uid: str, val_fraction: float, seed: int) -> str:
    digest = hashlib.sha256(f"{seed}:{uid}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < val_fraction else "train"


def _insert_ignoring_existing(session: Session, rows: list[dict[str, Any]]) -> None:
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    for start in range(0, len(rows), 500):
        session.execute(insert(FrozenSplit).values(rows[start:start + 500]).on_conflict_do_nothing())


def _refuse_if_busy(session: Session) -> None:
    busy = session.scalar(select(FinetuneRun.id).where(FinetuneRun.status.in_(ACTIVE_RUN_STATUSES)))
    if busy is not None:
        raise InvalidTransition(f"fine-tune run {busy} is still pending or running; one job at a time")


def _check_progress(progress: float | None) -> None:
    if progress is None:
        return
    if isinstance(progress, bool) or not isinstance(progress, (int, float)) or not 0.0 <= progress <= 1.0:
        raise InvalidInput(f"progress must be between 0 and 1, got {progress!r}")


def _run_dict(run: FinetuneRun) -> dict[str, Any]:
    return {"id": run.id, "base_model_version_id": run.base_model_version_id,
            "candidate_model_version_id": run.candidate_model_version_id, "inputs": dict(run.inputs or {}),
            "split": dict(run.split or {}), "params": dict(run.params or {}), "metrics": dict(run.metrics or {}),
            "status": run.status, "progress": run.progress, "message": run.message, "created_at": run.created_at,
            "started_at": run.started_at, "finished_at": run.finished_at, "heartbeat_at": run.heartbeat_at}


def _signed_sessions(session: Session, model_version_id: int | None) -> list[tuple[Any, ...]]:
    query = (select(ReviewSession, SignOff, Draft, Study, Reader)
             .join(SignOff, SignOff.session_id == ReviewSession.id)
             .join(Draft, Draft.id == ReviewSession.draft_id)
             .join(Study, Study.id == ReviewSession.study_id)
             .join(Reader, Reader.id == ReviewSession.reader_id))
    if model_version_id is not None:
        query = query.where(Draft.model_version_id >= model_version_id)
    rows = session.execute(query.order_by(SignOff.signed_at, SignOff.id)).all()
    paths = dict(session.execute(select(Image.study_id, Image.file_path).order_by(Image.id.desc())).all())
    return [(*row, paths.get(row[3].id, "")) for row in rows]


def _grouped(session: Session, model: type, session_ids: list[int]) -> dict[int, list[Any]]:
    grouped: dict[int, list[Any]] = defaultdict(list)
    for start in range(0, len(session_ids), 1000):
        chunk = session_ids[start:start + 1000]
        for row in session.scalars(select(model).where(model.session_id.in_(chunk)).order_by(model.id)):
            grouped[row.session_id].append(row)
    return grouped


def _latest_amendments(session: Session, signoff_ids: list[int]) -> dict[int, str]:
    latest: dict[int, str] = {}
    for start in range(0, len(signoff_ids), 1000):
        chunk = signoff_ids[start:start + 1000]
        for row in session.scalars(select(Amendment).where(Amendment.signoff_id.in_(chunk)).order_by(Amendment.id)):
            latest[row.signoff_id] = row.final_report
    return latest


def _review_dict(row: tuple[Any, ...], sentences: list[Any], boxes: list[Any],
                 amended: dict[int, str]) -> dict[str, Any]:
    review, signoff, draft, study, reader, image_path = row
    return {"session_id": review.id, "study_uid": study.study_uid, "image_path": image_path,
            "reader": reader.username, "arm": review.arm, "draft_id": draft.id,
            "model_version_id": draft.model_version_id, "draft": draft.bundle,
            "sentences": [vars_of(d) for d in current_sentences(sentences)],
            "boxes": [vars_of(d) for d in current_boxes(boxes)],
            "decision": signoff.decision, "final_report": amended.get(signoff.id, signoff.final_report),
            "signed_at": signoff.signed_at}


def vars_of(record: Any) -> dict[str, Any]:
    return dict(record.__dict__)
