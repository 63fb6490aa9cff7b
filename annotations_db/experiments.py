"""Reader studies: designs, randomised per-reader case order, arm counterbalancing, washout gating.

Designs
- ``crossover`` (k >= 2 arms, k periods): every reader reads every case once in every arm, one arm per period.
  The cases are split once (seeded) into k blocks of near-equal size. Reader r reads block b in period p in arm
  ``(b + r + d*p) mod k`` with d = +1 for even and -1 for odd readers: each period shows every arm on one
  block, every block meets every arm once, and a pair of readers covers every arm sequence of a Williams design
  (first-order carry-over balanced). Period p+1 opens ``washout_days`` after the reader's last period-p case.
- ``parallel`` (any number of arms, one period): every reader reads every case once; the arm rotates over the
  seeded case order and over readers, so each case gets every arm across readers as evenly as possible.
Each reader's case order inside a period is shuffled with a seed derived from (seed, reader, period).

Arms are named display conditions (``ARM_VIEWS``): ``unaided`` (image and an empty report), ``draft`` (the
drafted sentences and their observation boxes, without the inspection trajectory and clue boxes),
``draft_trajectory`` (everything). ``no_ai`` and ``ai_draft`` are the older names of the first and last.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from . import injected_errors, questionnaires
from .models import (Assignment, BoxDecisionRow, Draft, Experiment, ExperimentSettings, InjectedError, ModelVersion,
                     QuestionnaireResponse, Reader, ReviewSession, SentenceDecisionRow, SignOff, Study)
from .provenance import current_boxes, current_sentences
from .queries import study_infos, worklist_status
from .records import AccessDenied, InvalidInput, InvalidTransition, NotFound, WorklistItem

DESIGNS = ("crossover", "parallel")
ARM_VIEWS = {"unaided": "none", "draft": "sentences_and_boxes", "draft_trajectory": "everything",
             "no_ai": "none", "ai_draft": "everything"}
UNAIDED_ARMS = frozenset(arm for arm, view in ARM_VIEWS.items() if view == "none")
NO_AI_ARM = "no_ai"


def is_unaided(arm: str | None) -> bool:
    return arm in UNAIDED_ARMS


def arm_view(arm: str | None, bundle: dict[str, Any] | None) -> dict[str, Any] | None:
    """The draft as the arm shows it: None without AI, no trajectory (and so no clue boxes) in ``draft``."""
    if bundle is None or is_unaided(arm):
        return None
    if ARM_VIEWS.get(arm or "") != "sentences_and_boxes":
        return bundle
    return {**bundle, "sentences": [{**sentence, "trajectory": []} for sentence in bundle["sentences"]]}


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
        slots += reader_schedule(design, arms, reader, index, cases, seed)
    return slots


def reader_schedule(design: str, arms: list[str], reader: str, reader_index: int, shuffled_cases: list[int],
                    seed: int) -> list[Slot]:
    """One reader's slots; depends only on the reader's name and index (readers can be added later)."""
    if design == "crossover":
        periods = _crossover_arms(arms, shuffled_cases, reader_index)
    else:
        periods = [_parallel_arms(arms, shuffled_cases, reader_index)]
    slots = []
    for period, arm_of in enumerate(periods, start=1):
        order = list(shuffled_cases)
        random.Random(f"{seed}:{reader}:{period}").shuffle(order)
        slots += [Slot(reader, study_id, arm_of[study_id], period, position)
                  for position, study_id in enumerate(order, start=1)]
    return slots


def _crossover_arms(arms: list[str], cases: list[int], reader_index: int) -> list[dict[int, str]]:
    k = len(arms)
    direction = 1 if reader_index % 2 == 0 else -1
    block_of = {case: i * k // len(cases) for i, case in enumerate(cases)}
    return [{case: arms[(block + reader_index + direction * period) % k] for case, block in block_of.items()}
            for period in range(k)]


def _parallel_arms(arms: list[str], cases: list[int], reader_index: int) -> dict[int, str]:
    return {c: arms[(i + reader_index) % len(arms)] for i, c in enumerate(cases)}


def check_design(design: str, arms: list[str], readers: list[str], study_ids: list[int], washout_days: int) -> None:
    if design not in DESIGNS:
        raise InvalidInput(f"design {design!r} is not one of {', '.join(DESIGNS)}")
    if not arms or len(set(arms)) != len(arms) or not all(isinstance(a, str) and a for a in arms):
        raise InvalidInput("arms must be distinct non-empty names")
    unknown = [a for a in arms if a not in ARM_VIEWS]
    if unknown:
        raise InvalidInput(f"unknown arms {', '.join(unknown)}; known: {', '.join(ARM_VIEWS)}")
    if design == "crossover" and len(arms) < 2:
        raise InvalidInput("a crossover needs at least two arms")
    if not readers or len(set(readers)) != len(readers):
        raise InvalidInput("an experiment needs distinct readers")
    if not study_ids or len(set(study_ids)) != len(study_ids):
        raise InvalidInput("an experiment needs distinct studies")
    if not isinstance(washout_days, int) or washout_days < 0:
        raise InvalidInput("washout_days must be a non-negative whole number")
    if len(study_ids) < len(arms):
        raise InvalidInput(f"cannot balance {len(arms)} arms over {len(study_ids)} cases: "
                           "every arm needs at least one case per reader")


class ExperimentsMixin:
    """Experiment methods of ReviewService (uses its _write/_read/_now)."""

    def create_experiment(self, name: str, *, design: str, arms: list[str], readers: list[str], study_ids: list[int],
                          washout_days: int = 28, blinded: bool = True, seed: int = 0, acting: str,
                          questionnaires: dict[str, Any] | None = None,
                          injected: dict[int, str] | None = None) -> int:
        """Admin only. Pins the currently active model version for the AI arms; writes every assignment, the
        settings and the injected errors ({study id: kind}) in one transaction."""
        check_design(design, list(arms), list(readers), list(study_ids), washout_days)
        if not name or not isinstance(name, str):
            raise InvalidInput("an experiment needs a name")
        config = questionnaires_config(questionnaires)
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
            if config["post_case"] or config["post_session"]:  # else no settings row (the pre-0005 shape)
                session.add(ExperimentSettings(experiment_id=experiment.id, status="open",
                                               config={"questionnaires": config}))
            session.add_all(Assignment(experiment_id=experiment.id, reader_id=reader_ids[s.reader],
                                       study_id=s.study_id, arm=s.arm, period=s.period, position=s.position)
                            for s in schedule(design, list(arms), list(readers), list(study_ids), int(seed)))
            for study_id, kind in (injected or {}).items():
                self._inject(session, experiment, admin, study_id, kind)
            return experiment.id

    def assign_readers(self, experiment_id: int, readers: list[str], *, acting: str) -> int:
        """Adds readers to an open experiment with their own schedules; returns the number of new assignments."""
        with self._write() as session:
            _admin(session, acting)
            experiment, settings = _experiment(session, experiment_id)
            _check_open(experiment, settings)
            current = _reader_order(session, experiment, settings)
            new = [r for r in readers if r not in current]
            if not readers or len(set(readers)) != len(readers) or len(new) != len(readers):
                raise InvalidInput("assign needs distinct readers who are not in the experiment yet")
            reader_ids = _reader_ids(session, new)
            cases = _case_ids(session, experiment.id)
            random.Random(f"{experiment.seed}:cases").shuffle(cases)
            slots = [slot for offset, reader in enumerate(new)
                     for slot in reader_schedule(experiment.design, experiment.arms["arms"], reader,
                                                 len(current) + offset, cases, experiment.seed)]
            session.add_all(Assignment(experiment_id=experiment.id, reader_id=reader_ids[s.reader], study_id=s.study_id,
                                       arm=s.arm, period=s.period, position=s.position) for s in slots)
            return len(slots)

    def close_experiment(self, experiment_id: int, *, acting: str) -> None:
        """No reads start or continue after closing; what was recorded stays."""
        with self._write() as session:
            _admin(session, acting)
            experiment, settings = _experiment(session, experiment_id)
            _check_open(experiment, settings)
            if settings is None:
                settings = ExperimentSettings(experiment_id=experiment.id, config={})
                session.add(settings)
            settings.status, settings.closed_at = "closed", self._now()

    def mark_injected_error(self, experiment_id: int, study_id: int, kind: str, *, acting: str) -> dict[str, Any]:
        """Marks one case to show one deliberate draft error of this kind; refused once anyone opened it."""
        with self._write() as session:
            admin = _admin(session, acting)
            experiment, settings = _experiment(session, experiment_id)
            _check_open(experiment, settings)
            row = self._inject(session, experiment, admin, study_id, kind)
            return {"study_id": row.study_id, "kind": row.kind, "sentence_id": row.sentence_id, "detail": row.detail}

    def _inject(self, session: Session, experiment: Experiment, admin: Reader, study_id: int, kind: str) -> InjectedError:
        if study_id not in set(_case_ids(session, experiment.id)):
            raise NotFound(f"study {study_id} is not a case of experiment {experiment.id}")
        if session.scalar(select(InjectedError.id).where(InjectedError.experiment_id == experiment.id,
                                                         InjectedError.study_id == study_id)):
            raise InvalidTransition(f"study {study_id} already has an injected error")
        if session.scalar(select(ReviewSession.id).where(ReviewSession.experiment_id == experiment.id,
                                                         ReviewSession.study_id == study_id).limit(1)):
            raise InvalidTransition(f"study {study_id} was already opened by a reader; its draft cannot change now")
        model_id = experiment.model_version_id or session.scalar(
            select(ModelVersion.id).where(ModelVersion.status == "active"))
        draft = session.scalar(select(Draft).where(Draft.study_id == study_id, Draft.model_version_id == model_id))
        if draft is None:
            raise InvalidTransition(f"study {study_id} has no draft from the experiment's model yet; draft it first")
        sentence_id, detail = injected_errors.resolve(draft.bundle, kind, f"{experiment.seed}:{study_id}:{kind}")
        row = InjectedError(experiment_id=experiment.id, study_id=study_id, kind=kind, sentence_id=sentence_id,
                            detail=detail, created_by=admin.id, created_at=self._now())
        session.add(row)
        session.flush()
        return row

    def submit_questionnaire(self, reader: str, experiment_id: int, instrument: str, answers: dict[str, Any], *,
                             session_id: int | None = None, period: int | None = None) -> float | None:
        """Post-case answers need the reader's finished session; NASA-TLX / SUS a period. Returns the score."""
        with self._write() as session:
            me = _reader_row(session, reader)
            experiment, settings = _experiment(session, experiment_id)
            config = (settings.config if settings else {}).get("questionnaires") or questionnaires_config(None)
            enabled = (["post_case"] if config["post_case"] else []) + list(config["post_session"])
            if instrument not in enabled:
                raise InvalidInput(f"questionnaire {instrument!r} is not part of experiment {experiment_id}")
            if instrument == "post_case":
                _check_own_finished_session(session, me, experiment_id, session_id)
                period = None
            else:
                session_id = None
                if period not in set(session.scalars(select(Assignment.period).where(
                        Assignment.experiment_id == experiment_id, Assignment.reader_id == me.id))):
                    raise InvalidInput(f"{instrument}: period {period!r} is not one of {me.username}'s periods")
            value = questionnaires.score(instrument, config, answers)
            if session.scalar(select(QuestionnaireResponse.id).where(
                    QuestionnaireResponse.experiment_id == experiment_id, QuestionnaireResponse.reader_id == me.id,
                    QuestionnaireResponse.instrument == instrument,
                    _is(QuestionnaireResponse.session_id, session_id), _is(QuestionnaireResponse.period, period))):
                raise InvalidTransition(f"{instrument} was already answered")
            session.add(QuestionnaireResponse(experiment_id=experiment_id, reader_id=me.id, session_id=session_id,
                                              instrument=instrument, period=period, answers=answers, score=value,
                                              submitted_at=self._now()))
            return value

    def get_experiment(self, experiment_id: int) -> dict[str, Any]:
        with self._read() as session:
            experiment, settings = _experiment(session, experiment_id)
            n = session.scalar(select(func.count(Assignment.id)).where(Assignment.experiment_id == experiment_id))
            injected = session.scalars(select(InjectedError).where(InjectedError.experiment_id == experiment_id)
                                       .order_by(InjectedError.study_id))
            config = settings.config if settings else {}
            return {"id": experiment.id, "name": experiment.name, "design": experiment.design,
                    "arms": list(experiment.arms["arms"]), "washout_days": experiment.washout_days,
                    "blinded": experiment.blinded, "seed": experiment.seed,
                    "model_version_id": experiment.model_version_id, "assignments": n,
                    "created_at": experiment.created_at, "status": settings.status if settings else "open",
                    "closed_at": settings.closed_at if settings else None,
                    "readers": _reader_order(session, experiment, settings),
                    "cases": sorted(_case_ids(session, experiment.id)),
                    "questionnaires": config.get("questionnaires") or questionnaires_config(None),
                    "injected_errors": {row.study_id: row.kind for row in injected}}

    def list_experiments(self) -> list[dict[str, Any]]:
        with self._read() as session:
            ids = list(session.scalars(select(Experiment.id).order_by(Experiment.id)))
        return [self.get_experiment(i) for i in ids]

    def experiment_progress(self, experiment_id: int) -> list[dict[str, Any]]:
        """Per reader: finished / total, the next case (period, position, arm), or the washout's opening date."""
        with self._read() as session:
            experiment, settings = _experiment(session, experiment_id)
            progress = []
            for username in _reader_order(session, experiment, settings):
                reader = _reader_row(session, username)
                progress.append(self._reader_progress(session, reader, experiment, settings))
            return progress

    def reader_washouts(self, reader: str) -> list[dict[str, Any]]:
        """The reader's own experiments whose next period is still in its washout: experiment id and name, the
        period and when it opens (what the worklist tells a reader instead of showing the locked cases)."""
        with self._read() as session:
            me = _reader_row(session, reader)
            locked = []
            for experiment_id in sorted(set(session.scalars(select(Assignment.experiment_id).where(
                    Assignment.reader_id == me.id)))):
                experiment, settings = _experiment(session, experiment_id)
                item = self._reader_progress(session, me, experiment, settings)
                if item["state"] == "locked" and item["opens_at"] is not None:
                    locked.append({"experiment_id": experiment.id, "experiment": experiment.name,
                                   "period": item["next"]["period"], "opens_at": item["opens_at"]})
            return locked

    def _reader_progress(self, session: Session, reader: Reader, experiment: Experiment,
                         settings: ExperimentSettings | None) -> dict[str, Any]:
        assignments = _assignments(session, reader.id, experiment.id)
        sessions = _sessions_by_assignment(session, reader.id)
        done = [a for a in assignments if a.id in sessions and sessions[a.id].status != "open"]
        pending = [a for a in assignments if a not in done]
        item = {"reader": reader.username, "done": len(done), "total": len(assignments), "state": "finished",
                "next": None, "opens_at": None}
        if not pending:
            return item
        upcoming = pending[0]
        item["next"] = {"study_id": upcoming.study_id, "period": upcoming.period, "position": upcoming.position,
                        "arm": upcoming.arm}
        if settings is not None and settings.status == "closed":
            item["state"] = "closed"
            return item
        opens_at = self._period_opens_at(session, upcoming)
        item["opens_at"] = opens_at if opens_at and opens_at > self._now() else None
        item["state"] = "reading" if item["opens_at"] is None and opens_at is not None else "locked"
        return item

    def experiment_table(self, experiment_id: int) -> list[dict[str, Any]]:
        """The long table: one row per assignment with times, decision counts, the final report, the injected
        error (kind, detected) and the questionnaire answers; the analysis reads this."""
        from .export import _experiment_rows

        with self._read() as session:
            experiment, _ = _experiment(session, experiment_id)
            rows = _experiment_rows(session, experiment)
            injected = {row.study_id: row for row in session.scalars(
                select(InjectedError).where(InjectedError.experiment_id == experiment_id))}
            session_ids = [row["session_id"] for row in rows if row.get("session_id")]
            reports = dict(session.execute(select(SignOff.session_id, SignOff.final_report)
                                           .where(SignOff.session_id.in_(session_ids))).all()) if session_ids else {}
            answers = _post_case_answers(session, experiment_id)
            for row in rows:
                row["final_report"] = reports.get(row.get("session_id"))
                row["post_case"] = answers.get(row.get("session_id"))
                error = injected.get(row["study_id"])
                row["injected_kind"] = error.kind if error else None
                row["injected_detected"] = (_detected(session, error, row) if error and not is_unaided(row["arm"])
                                            and row.get("signoff_decision") else None)
            return rows

    def questionnaire_responses(self, experiment_id: int) -> list[dict[str, Any]]:
        with self._read() as session:
            _experiment(session, experiment_id)
            rows = session.execute(select(QuestionnaireResponse, Reader.username)
                                   .join(Reader, Reader.id == QuestionnaireResponse.reader_id)
                                   .where(QuestionnaireResponse.experiment_id == experiment_id)
                                   .order_by(QuestionnaireResponse.id)).all()
            return [{"reader": username, "instrument": r.instrument, "session_id": r.session_id, "period": r.period,
                     "answers": r.answers, "score": r.score, "submitted_at": r.submitted_at} for r, username in rows]

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
                             has_draft=not is_unaided(a.arm) and (a.experiment_id, a.study_id) in drafted)
                for position, a in enumerate(visible, start=1)]

    def _assignment_to_open(self, session: Session, me: Reader, study_id: int,
                            experiment_id: int | None) -> Assignment | None:
        """The reader's next unfinished assignment of this study (or the last one when all are finished)."""
        candidates = _assignments(session, me.id, experiment_id, study_id)
        _check_experiments_open(session, candidates)
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


def questionnaires_config(config: dict[str, Any] | None) -> dict[str, Any]:
    return questionnaires.check_config(config)


def _experiment(session: Session, experiment_id: int) -> tuple[Experiment, ExperimentSettings | None]:
    experiment = session.get(Experiment, experiment_id) if isinstance(experiment_id, int) else None
    if experiment is None:
        raise NotFound(f"experiment {experiment_id!r} does not exist")
    return experiment, session.get(ExperimentSettings, experiment.id)


def _check_open(experiment: Experiment, settings: ExperimentSettings | None) -> None:
    if settings is not None and settings.status == "closed":
        raise InvalidTransition(f"experiment {experiment.id} is closed")


def _check_experiments_open(session: Session, assignments: list[Assignment]) -> None:
    for experiment_id in {a.experiment_id for a in assignments}:
        settings = session.get(ExperimentSettings, experiment_id)
        if settings is not None and settings.status == "closed":
            raise InvalidTransition(f"experiment {experiment_id} is closed")


def _reader_order(session: Session, experiment: Experiment, settings: ExperimentSettings | None) -> list[str]:
    """Readers in the order they joined (their assignments are written reader by reader)."""
    rows = session.execute(select(Reader.username, func.min(Assignment.id).label("first"))
                           .join(Assignment, Assignment.reader_id == Reader.id)
                           .where(Assignment.experiment_id == experiment.id)
                           .group_by(Reader.username).order_by("first")).all()
    return [username for username, _ in rows]


def _case_ids(session: Session, experiment_id: int) -> list[int]:
    return sorted(set(session.scalars(select(Assignment.study_id).where(Assignment.experiment_id == experiment_id))))


def _reader_row(session: Session, username: str) -> Reader:
    reader = session.scalar(select(Reader).where(Reader.username == username))
    if reader is None:
        raise NotFound(f"unknown reader {username!r}")
    return reader


def _is(column, value):
    return column.is_(None) if value is None else column == value


def _check_own_finished_session(session: Session, me: Reader, experiment_id: int, session_id: int | None) -> None:
    row = session.get(ReviewSession, session_id) if isinstance(session_id, int) else None
    if row is None or row.experiment_id != experiment_id:
        raise NotFound(f"session {session_id!r} is not a session of experiment {experiment_id}")
    if row.reader_id != me.id:
        raise AccessDenied(f"session {session_id} belongs to another reader")
    if row.status == "open":
        raise InvalidTransition(f"session {session_id} is not finished; answer the post-case items after sign-off")


def _post_case_answers(session: Session, experiment_id: int) -> dict[int, dict[str, Any]]:
    rows = session.execute(select(QuestionnaireResponse.session_id, QuestionnaireResponse.answers).where(
        QuestionnaireResponse.experiment_id == experiment_id, QuestionnaireResponse.instrument == "post_case")).all()
    return {session_id: answers for session_id, answers in rows}


def _detected(session: Session, error: InjectedError, row: dict[str, Any]) -> bool:
    sentence_rows = session.scalars(select(SentenceDecisionRow).where(SentenceDecisionRow.session_id == row["session_id"]))
    box_rows = session.scalars(select(BoxDecisionRow).where(BoxDecisionRow.session_id == row["session_id"]))
    return injected_errors.detected(error.kind, error.sentence_id, current_sentences(list(sentence_rows)),
                                    current_boxes(list(box_rows)), row.get("signoff_decision"))


def shown_draft(session: Session, row: ReviewSession, bundle: dict[str, Any] | None) -> dict[str, Any] | None:
    """The draft exactly as this session shows it: the case's injected error applied, then the arm's view."""
    if bundle is None or row.experiment_id is None:
        return bundle
    error = session.scalar(select(InjectedError).where(InjectedError.experiment_id == row.experiment_id,
                                                       InjectedError.study_id == row.study_id))
    if error is not None:
        bundle = injected_errors.apply(bundle, error.sentence_id, error.detail)
    return arm_view(row.arm, bundle)


def progress_line(item: dict[str, Any]) -> str:
    """One reader's progress in words (done / next / locked until the washout ends)."""
    head = f"{item['reader']}: {item['done']}/{item['total']} done"
    if item["state"] == "finished":
        return head + ", finished"
    nxt = item["next"]
    where = f"period {nxt['period']} case {nxt['position']} (study {nxt['study_id']}, arm {nxt['arm']})"
    if item["state"] == "closed":
        return head + f", experiment closed before {where}"
    if item["state"] == "locked":
        when = f"{item['opens_at']:%Y-%m-%d %H:%M} UTC" if item["opens_at"] else "after the previous period"
        return head + f", locked (washout) until {when}; then {where}"
    return head + f", next: {where}"
