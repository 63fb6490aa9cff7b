"""Study sets: named groups of imported studies (interop's `gazex import` and DICOMweb pulls fill them).

A mixin of ReviewService (like ExperimentsMixin): it uses the service's ``_read``/``_write``/``_now``.
Studies themselves are registered with ``register_study``; this only groups them and records import counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import ImportRun, Study, StudySet, StudySetMember
from .queries import study_infos
from .records import InvalidInput, NotFound, StudyInfo

STUDY_SET_NAME_MAX = 200
MEMBER_SOURCES = ("file", "dicomweb")


@dataclass(frozen=True)
class StudySetInfo:
    id: int
    name: str
    description: str | None
    n_studies: int


class StudySetsMixin:
    def create_study_set(self, name: str, description: str | None = None) -> StudySetInfo:
        """Idempotent on name (an existing set is returned unchanged)."""
        name = _check_set_name(name)
        with self._write() as session:
            row = session.scalar(select(StudySet).where(StudySet.name == name))
            if row is None:
                row = StudySet(name=name, description=description, created_at=self._now())
                session.add(row)
                session.flush()
            return _set_info(session, row)

    def add_to_study_set(self, name: str, study_id: int, source: str = "file") -> bool:
        """True when added, False when the study was already a member."""
        if source not in MEMBER_SOURCES:
            raise InvalidInput(f"source must be one of {', '.join(MEMBER_SOURCES)}")
        with self._write() as session:
            row = _set_row(session, name)
            if session.get(Study, study_id) is None:
                raise NotFound(f"study {study_id!r} does not exist")
            exists = session.scalar(select(StudySetMember.id).where(
                StudySetMember.study_set_id == row.id, StudySetMember.study_id == study_id))
            if exists is not None:
                return False
            session.add(StudySetMember(study_set_id=row.id, study_id=study_id, source=source, added_at=self._now()))
            return True

    def study_sets(self) -> list[StudySetInfo]:
        with self._read() as session:
            return [_set_info(session, row) for row in session.scalars(select(StudySet).order_by(StudySet.id))]

    def study_set_studies(self, name: str) -> list[StudyInfo]:
        with self._read() as session:
            row = _set_row(session, name)
            studies = list(session.scalars(select(Study).join(StudySetMember, StudySetMember.study_id == Study.id)
                                           .where(StudySetMember.study_set_id == row.id).order_by(Study.id)))
            infos = study_infos(session, studies)
            return [infos[s.id] for s in studies]

    def record_import_run(self, name: str, source: str, imported: int, skipped: int,
                          reasons: dict[str, int], started_at: Any) -> int:
        """One row of counts per import (reasons without file names: those may name a patient)."""
        with self._write() as session:
            row = _set_row(session, name)
            run = ImportRun(study_set_id=row.id, source=source, imported=int(imported), skipped=int(skipped),
                            reasons={str(k): int(v) for k, v in reasons.items()}, started_at=started_at,
                            finished_at=self._now())
            session.add(run)
            session.flush()
            return run.id

    def import_runs(self, name: str) -> list[dict[str, Any]]:
        with self._read() as session:
            row = _set_row(session, name)
            runs = session.scalars(select(ImportRun).where(ImportRun.study_set_id == row.id).order_by(ImportRun.id))
            return [{"id": r.id, "source": r.source, "imported": r.imported, "skipped": r.skipped,
                     "reasons": dict(r.reasons), "started_at": r.started_at, "finished_at": r.finished_at}
                    for r in runs]


def _check_set_name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > STUDY_SET_NAME_MAX:
        raise InvalidInput(f"study set name must be non-empty text of at most {STUDY_SET_NAME_MAX} characters")
    return name.strip()


def _set_row(session: Session, name: str) -> StudySet:
    row = session.scalar(select(StudySet).where(StudySet.name == _check_set_name(name)))
    if row is None:
        raise NotFound(f"study set {name!r} does not exist")
    return row


def _set_info(session: Session, row: StudySet) -> StudySetInfo:
    count = session.scalar(select(func.count(StudySetMember.id)).where(StudySetMember.study_set_id == row.id))
    return StudySetInfo(id=row.id, name=row.name, description=row.description, n_studies=int(count or 0))
