"""Reader studies: designs, randomised per-reader case order, arm counterbalancing, washout gating.

Designs
- ``crossover`` (two arms, two periods): the cases are split once (seeded) into halves A and B. In period 1
  even-numbered readers read A in arm 0 and B in arm 1, odd-numbered readers the opposite; in period 2 every
  reader reads each case again in the other arm. Period 2 opens ``washout_days`` after the reader's last
  period-1 case was finished.
- ``parallel`` (any number of arms, one period): every reader reads every case once; the arm rotates over the
  seeded case order and over readers, so each case gets every arm across readers as evenly as possible.
Each reader's case order inside a period is shuffled with a seed derived from (seed, reader, period).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Assignment, Draft, Experiment, ModelVersion, Reader, ReviewSession, Study
from .queries import study_infos, worklist_status
from .records import AccessDenied, InvalidInput, InvalidTransition, NotFound, WorklistItem

DESIGNS = ("crossover", "parallel")
NO_AI_ARM = "no_ai"


@dataclass(frozen=True)
class Slot:
    reader: str
    study_id: int
    arm: str
    period: int
    position: int


def schedule(design: str, arms: list[str], readers: list[str], study_ids: list[int], seed: int) -> list[Slot]:
    """The full assignment table of an experiment (pure; same inputs give the same table)."""
    cases = list(study_ids)
    random.Random(f"{seed}:cases").shuffle(cases)
    slots: list[Slot] = []
    for index, reader in enumerate(readers):
        periods = _crossover_arms(arms, cases, index) if design == "crossover" else [_parallel_arms(arms, cases, index)]
        for period, arm_of in enumerate(periods, start=1):
            order = list(cases)
            random.Random(f"{seed}:{reader}:{period}").shuffle(order)
            slots += [Slot(reader, study_id, arm_of[study_id], period, position)
                      for position, study_id in enumerate(order, start=1)]
    return slots


def _crossover_arms(arms: list[str], cases: list[int], reader_index: int) -> list[dict[int, str]]:
    half = len(cases) // 2
    first, second = (arms[0], arms[1]) if reader_index % 2 == 0 else (arms[1], arms[0])
    period1 = {c: (first if i < half else second) for i, c in enumerate(cases)}
    period2 = {c: (arms[1] if arm == arms[0] else arms[0]) for c, arm in period1.items()}
    return [period1, period2]


def _parallel_arms(arms: list[str], cases: list[int], reader_index: int) -> dict[int, str]:
    return {c: arms[(i + reader_index) % len(arms)] for i, c in enumerate(cases)}


def check_design(design: str, arms: list[str], readers: list[str], study_ids: list[int], washout_days: int) -> None:
    if design not in DESIGNS:
        raise InvalidInput(f"design {design!r} is not one of {', '.join(DESIGNS)}")
    if not arms or len(set(arms)) != len(arms) or not all(isinstance(a, str) and a for a in arms):
        raise InvalidInput("arms must be distinct non-empty names")
    if design == "crossover" and len(arms) != 2:
        raise InvalidInput("a crossover needs exactly two arms")
    if not readers or len(set(readers)) != len(readers):
        raise InvalidInput("an experiment needs distinct readers")
    if not study_ids or len(set(study_ids)) != len(study_ids):
        raise InvalidInput("an experiment needs distinct studies")
    if not isinstance(washout_days, int) or washout_days < 0:
        raise InvalidInput("washout_days must be a non-negative whole number")


class ExperimentsMixin:
    """Experiment methods of ReviewService (uses its _write/_read/_now)."""

    def create_experiment(self, name: str, *, design: str, arms: list[str], readers: list[str], study_ids: list[int],
                          washout_days: int = 28, blinded: bool = True, seed: int = 0, acting: str) -> int:
        """Admin only. Pins the currently active model version for the AI arms; writes every assignment."""
        check_design(design, list(arms), list(readers), list(study_ids), washout_days)
        if not name or not isinstance(name, str):
            raise InvalidInput("an experiment needs a name")
        with self._write() as session:
            admin = _admin(session, acting)
            reader_ids = _reader_ids(session, readers)
            _check_studies(session, study_ids)
            if session.scalar(select(Experiment.id).where(Experiment.name == name)):
                raise InvalidTransition(f"experiment {name!r} already exists")
            experiment = Experiment(
                name=name, design=design, arms={"arms": list(arms)}, washout_days=washout_days, blinded=bool(blinded),
                seed=int(seed), created_by=admin.id, created_at=self._now(),
                model_version_id=session.scalar(select(ModelVersion.id).where(ModelVersion.status == "active")))
            session.add(experiment)
            session.flush()
            session.add_all(Assignment(experiment_id=experiment.id, reader_id=reader_ids[s.reader],
                                       study_id=s.study_id, arm=s.arm, period=s.period, position=s.position)
                            for s in schedule(design, list(arms), list(readers), list(study_ids), int(seed)))
            return experiment.id

    def get_experiment(self, experiment_id: int) -> dict[str, Any]:
        with self._read() as session:
            experiment = session.get(Experiment, experiment_id)
            if experiment is None:
                raise NotFound(f"experiment {experiment_id!r} does not exist")
            n = session.scalar(select(func.count(Assignment.id)).where(Assignment.experiment_id == experiment_id))
            return {"id": experiment.id, "name": experiment.name, "design": experiment.design,
                    "arms": list(experiment.arms["arms"]), "washout_days": experiment.washout_days,
                    "blinded": experiment.blinded, "seed": experiment.seed,
                    "model_version_id": experiment.model_version_id, "assignments": n,
                    "created_at": experiment.created_at}

    def list_experiments(self) -> list[dict[str, Any]]:
        with self._read() as session:
            ids = list(session.scalars(select(Experiment.id).order_by(Experiment.id)))
        return [self.get_experiment(i) for i in ids]

    # --- used by worklist / open_session --------------------------------
    def _experiment_worklist(self, session: Session, me: Reader, experiment_id: int | None) -> list[WorklistItem] | None:
        """None when the reader has no assignments (routine worklist); else only their open-period assignments."""
        assignments = _assignments(session, me.id, experiment_id)
        if not assignments and experiment_id is None:
            return None
        sessions = _sessions_by_assignment(session, me.id)
        period_open: dict[tuple[int, int], bool] = {}
        visible = []
        for assignment in assignments:
            key = (assignment.experiment_id, assignment.period)
            if key not in period_open:
                period_open[key] = self._period_is_open(session, assignment)
            if period_open[key]:
                visible.append(assignment)
        infos = study_infos(session, list(session.scalars(select(Study).where(
            Study.id.in_({a.study_id for a in visible})))))
        drafted = _drafted_studies(session, {a.experiment_id for a in visible})
        return [WorklistItem(study=infos[a.study_id], status=worklist_status(sessions.get(a.id)), position=position,
                             session_id=sessions[a.id].id if a.id in sessions else None, arm=a.arm,
                             has_draft=a.arm != NO_AI_ARM and (a.experiment_id, a.study_id) in drafted)
                for position, a in enumerate(visible, start=1)]

    def _assignment_to_open(self, session: Session, me: Reader, study_id: int,
                            experiment_id: int | None) -> Assignment | None:
        """The reader's next unfinished assignment of this study (or the last one when all are finished)."""
        candidates = _assignments(session, me.id, experiment_id, study_id)
        if not candidates:
            if experiment_id is not None:
                raise NotFound(f"study {study_id} is not assigned to {me.username} in experiment {experiment_id}")
            return None
        finished = None
        for assignment in candidates:
            row = session.scalar(select(ReviewSession).where(ReviewSession.assignment_id == assignment.id))
            if row is not None and row.status != "open":
                finished = assignment
                continue
            if finished is not None and not self._period_is_open(session, assignment):
                return finished  # during the washout the finished read stays viewable (read-only)
            self._check_period_open(session, assignment)
            return assignment
        return finished

    def _period_opens_at(self, session: Session, assignment: Assignment) -> datetime | None:
        """When the assignment's period opens for its reader; None while the previous period is unfinished."""
        if assignment.period == 1:
            return datetime.min.replace(tzinfo=self._now().tzinfo)
        previous = list(session.scalars(select(Assignment.id).where(
            Assignment.experiment_id == assignment.experiment_id, Assignment.reader_id == assignment.reader_id,
            Assignment.period == assignment.period - 1)))
        finished = list(session.scalars(select(ReviewSession.closed_at).where(
            ReviewSession.assignment_id.in_(previous), ReviewSession.status.in_(("signed", "closed")))))
        if len(finished) < len(previous):
            return None
        washout = session.scalar(select(Experiment.washout_days).where(Experiment.id == assignment.experiment_id))
        return max(finished) + timedelta(days=washout)

    def _period_is_open(self, session: Session, assignment: Assignment) -> bool:
        opens_at = self._period_opens_at(session, assignment)
        return opens_at is not None and self._now() >= opens_at

    def _check_period_open(self, session: Session, assignment: Assignment) -> None:
        opens_at = self._period_opens_at(session, assignment)
        if opens_at is None:
            raise InvalidTransition(f"period {assignment.period} opens after every period-{assignment.period - 1} "
                                    "case is finished")
        if self._now() < opens_at:
            raise InvalidTransition(f"washout: period {assignment.period} opens on {opens_at:%Y-%m-%d %H:%M} UTC")


def _assignments(session: Session, reader_id: int, experiment_id: int | None,
                 study_id: int | None = None) -> list[Assignment]:
    query = select(Assignment).where(Assignment.reader_id == reader_id)
    if experiment_id is not None:
        query = query.where(Assignment.experiment_id == experiment_id)
    if study_id is not None:
        query = query.where(Assignment.study_id == study_id)
    return list(session.scalars(query.order_by(Assignment.experiment_id, Assignment.period, Assignment.position)))


def _sessions_by_assignment(session: Session, reader_id: int) -> dict[int, ReviewSession]:
    rows = session.scalars(select(ReviewSession).where(ReviewSession.reader_id == reader_id,
                                                       ReviewSession.assignment_id.is_not(None)))
    return {row.assignment_id: row for row in rows}


def _drafted_studies(session: Session, experiment_ids: set[int]) -> set[tuple[int, int]]:
    """(experiment id, study id) pairs whose draft from the experiment's model (else the active one) exists."""
    active = session.scalar(select(ModelVersion.id).where(ModelVersion.status == "active"))
    drafted = set()
    for experiment_id in experiment_ids:
        model_id = session.scalar(select(Experiment.model_version_id).where(Experiment.id == experiment_id)) or active
        drafted.update((experiment_id, s) for s in session.scalars(
            select(Draft.study_id).where(Draft.model_version_id == model_id)))
    return drafted


def _admin(session: Session, username: str) -> Reader:
    admin = session.scalar(select(Reader).where(Reader.username == username))
    if admin is None or admin.role != "admin":
        raise AccessDenied(f"{username!r} is not an admin")
    return admin


def _reader_ids(session: Session, usernames: list[str]) -> dict[str, int]:
    found = dict(session.execute(select(Reader.username, Reader.id).where(Reader.username.in_(usernames))).all())
    missing = [u for u in usernames if u not in found]
    if missing:
        raise NotFound(f"unknown readers: {', '.join(missing)}")
    return found


def _check_studies(session: Session, study_ids: list[int]) -> None:
    found = set(session.scalars(select(Study.id).where(Study.id.in_(study_ids))))
    missing = [s for s in study_ids if s not in found]
    if missing:
        raise NotFound(f"unknown studies: {', '.join(map(str, missing))}")
