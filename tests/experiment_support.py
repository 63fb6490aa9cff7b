"""Simulated reader studies: long tables with known arm effects (fast coverage tests) and simulated readers
who work through the ReviewService (the end-to-end run)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from annotations_db.experiments import schedule

ARMS = ["unaided", "draft", "draft_trajectory"]


@dataclass(frozen=True)
class Truth:
    """Time ratios against unaided, detection probabilities of injected errors, and the variance parts."""

    ratio: dict = field(default_factory=lambda: {"unaided": 1.0, "draft": 0.8, "draft_trajectory": 0.9})
    detect: dict = field(default_factory=lambda: {"draft": 0.55, "draft_trajectory": 0.8})
    base_s: float = 90.0
    period_step: float = -0.05  # log-time change per later period (learning)
    reader_sd: float = 0.25
    case_sd: float = 0.3
    noise_sd: float = 0.2


def simulated_times(slots, truth: Truth, rng: np.random.Generator) -> dict[tuple[str, int, int], float]:
    """Active seconds per (reader, case, period) from a log-normal model with crossed reader and case effects."""
    readers = sorted({s.reader for s in slots})
    cases = sorted({s.study_id for s in slots})
    reader_effect = dict(zip(readers, rng.normal(0, truth.reader_sd, len(readers))))
    case_effect = dict(zip(cases, rng.normal(0, truth.case_sd, len(cases))))
    times = {}
    for s in slots:
        log_time = (math.log(truth.base_s) + math.log(truth.ratio[s.arm]) + truth.period_step * (s.period - 1)
                    + reader_effect[s.reader] + case_effect[s.study_id] + rng.normal(0, truth.noise_sd))
        times[(s.reader, s.study_id, s.period)] = math.exp(log_time)
    return times


def simulated_table(truth: Truth, seed: int, n_readers: int = 4, n_cases: int = 40,
                    injected_every: int = 4) -> pd.DataFrame:
    """The long table of a complete 3-arm crossover, as `long_table` makes it from the record."""
    rng = np.random.default_rng(seed)
    readers = [f"reader{i + 1}" for i in range(n_readers)]
    slots = schedule("crossover", ARMS, readers, list(range(1, n_cases + 1)), seed)
    times = simulated_times(slots, truth, rng)
    rows = []
    for s in slots:
        injected = s.study_id % injected_every == 0
        detected = (bool(rng.random() < truth.detect[s.arm]) if injected and s.arm in truth.detect else None)
        rows.append({"reader": s.reader, "case": s.study_id, "study_uid": f"1.2.{s.study_id}", "arm": s.arm,
                     "period": s.period, "position": s.position, "status": "signed",
                     "time_s": times[(s.reader, s.study_id, s.period)], "signoff_decision": "accept",
                     "draft_sentences": 0 if s.arm == "unaided" else 4, "sentences_accepted": 3,
                     "sentences_accepted_at_signoff": 0,
                     "sentences_edited": 1, "sentences_deleted": 0, "sentences_added": 0, "edits": 1,
                     "significant_errors": 0, "injected_kind": "false_finding" if injected else None,
                     "injected_detected": detected, "final_report": None})
    table = pd.DataFrame(rows)
    from training.experiments.analysis import _sequences

    table["sequence"] = _sequences(table)
    return table


def run_simulated_readers(service, clock, experiment_id: int, truth: Truth, seed: int) -> None:
    """Readers work through their worklists period by period: AI-arm reads accept the draft, catch an injected
    error with the arm's probability, and sign off with a simulated active time; the clock jumps the washout."""
    info = service.get_experiment(experiment_id)
    rng = np.random.default_rng(seed)
    slots = [s for s in schedule(info["design"], info["arms"], info["readers"], info["cases"], info["seed"])]
    times = simulated_times(slots, truth, rng)
    for period in range(1, max(s.period for s in slots) + 1):
        for reader in info["readers"]:
            for item in service.worklist(reader, experiment_id=experiment_id, status="unread"):
                _read_one(service, reader, item, info, times[(reader, item.study.id, period)], truth, rng)
        clock.advance(days=info["washout_days"], hours=1)


def _read_one(service, reader, item, info, seconds, truth, rng) -> None:
    state = service.open_session(reader, item.study.id, experiment_id=info["id"])
    kind = info["injected_errors"].get(item.study.id)
    catch = kind is not None and state.draft is not None and rng.random() < truth.detect[state.arm]
    for sentence in (state.draft or {}).get("sentences", []):
        injected = sentence["id"].startswith("x")
        if catch and injected:
            service.decide_sentence(reader, state.session_id, sentence["id"], "deleted")
        else:
            service.decide_sentence(reader, state.session_id, sentence["id"], "accepted")
    if catch and kind != "false_finding":
        service.add_sentence(reader, state.session_id, "Small left pleural effusion.")
    service.sign_off(reader, state.session_id, "modify" if catch else "accept", "FINDINGS: simulated.",
                     active_ms=seconds * 1000.0, accept_rest=True)
