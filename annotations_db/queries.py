"""Small shared read helpers (bulk where a list is built, so worklists cost a fixed number of queries)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Image, ReviewSession, Study
from .records import StudyInfo

CHUNK = 900  # stays under SQLite's bound-parameter limit


def study_info(session: Session, study: Study) -> StudyInfo:
    return study_infos(session, [study])[study.id]


def study_infos(session: Session, studies: list[Study]) -> dict[int, StudyInfo]:
    """StudyInfo per study id, with the study's first image as its file reference (one query per chunk)."""
    images: dict[int, Image] = {}
    ids = [s.id for s in studies]
    for start in range(0, len(ids), CHUNK):
        rows = session.scalars(select(Image).where(Image.study_id.in_(ids[start:start + CHUNK]))
                               .order_by(Image.id.desc()))
        images.update({image.study_id: image for image in rows})  # lowest id wins (applied last)
    return {s.id: _info(s, images.get(s.id)) for s in studies}


def _info(study: Study, image: Image | None) -> StudyInfo:
    return StudyInfo(id=study.id, study_uid=study.study_uid, image_path=image.file_path if image else "",
                     width=image.width if image else None, height=image.height if image else None,
                     meta=dict(study.meta or {}))


def worklist_status(row: ReviewSession | None) -> str:
    """Opening a study makes it "viewed"; its first decision makes it "in_progress"."""
    if row is None:
        return "unread"
    if row.status == "open":
        return "in_progress" if row.first_decision_at is not None else "viewed"
    return {"signed": "signed", "closed": "closed"}[row.status]
