"""Scheduler properties for any design the check accepts (hypothesis): balance, counterbalancing, order."""

from __future__ import annotations

from collections import Counter
from itertools import permutations

import pytest
from hypothesis import given, settings, strategies as st

from annotations_db import InvalidInput
from annotations_db.experiments import check_design, schedule

ARMS = ["unaided", "draft", "draft_trajectory"]
designs = st.fixed_dictionaries({
    "arms": st.integers(2, 3).map(lambda k: ARMS[:k]),
    "readers": st.integers(1, 6).map(lambda n: [f"r{i}" for i in range(n)]),
    "cases": st.integers(3, 41).map(lambda n: list(range(100, 100 + n))),
    "seed": st.integers(0, 2**31 - 1),
})


@settings(max_examples=60, deadline=None)
@given(designs)
def test_crossover_every_reader_reads_every_case_once_in_every_arm_one_arm_per_period(d):
    slots = schedule("crossover", d["arms"], d["readers"], d["cases"], d["seed"])
    k = len(d["arms"])
    for reader in d["readers"]:
        mine = [s for s in slots if s.reader == reader]
        assert len(mine) == k * len(d["cases"])
        assert Counter((s.study_id, s.arm) for s in mine) == {(c, a): 1 for c in d["cases"] for a in d["arms"]}
        assert Counter((s.study_id, s.period) for s in mine) == {(c, p): 1 for c in d["cases"] for p in range(1, k + 1)}
        for period in range(1, k + 1):
            per_arm = Counter(s.arm for s in mine if s.period == period)
            assert set(per_arm) == set(d["arms"]) and max(per_arm.values()) - min(per_arm.values()) <= 1


@settings(max_examples=60, deadline=None)
@given(designs)
def test_crossover_reader_pairs_cover_every_arm_sequence_equally(d):
    """Williams balance: with an even number of readers every ordered arm sequence is used by the same number
    of case blocks, so every arm follows every other arm equally often (first-order carry-over)."""
    readers = d["readers"] if len(d["readers"]) % 2 == 0 else d["readers"] + ["extra"]
    slots = schedule("crossover", d["arms"], readers, d["cases"], d["seed"])
    k = len(d["arms"])
    sequences = Counter()
    for reader in readers:
        by_case: dict[int, list[str]] = {}
        for s in sorted((s for s in slots if s.reader == reader), key=lambda s: s.period):
            by_case.setdefault(s.study_id, []).append(s.arm)
        sequences.update({tuple(seq) for seq in by_case.values()})  # one count per distinct block sequence
    expected = set(permutations(d["arms"])) if k == 3 else {tuple(d["arms"]), tuple(reversed(d["arms"]))}
    assert set(sequences) == expected and len(set(sequences.values())) == 1


@settings(max_examples=60, deadline=None)
@given(designs)
def test_parallel_reads_each_case_once_and_balances_arms_per_reader_and_per_case(d):
    slots = schedule("parallel", d["arms"], d["readers"], d["cases"], d["seed"])
    for reader in d["readers"]:
        mine = [s for s in slots if s.reader == reader]
        assert sorted(s.study_id for s in mine) == d["cases"] and {s.period for s in mine} == {1}
        per_arm = Counter(s.arm for s in mine)
        assert max(per_arm.values()) - min(per_arm.values()) <= 1
    for case in d["cases"]:
        per_arm = Counter(s.arm for s in slots if s.study_id == case)
        counts = [per_arm.get(a, 0) for a in d["arms"]]
        assert max(counts) - min(counts) <= 1


@settings(max_examples=40, deadline=None)
@given(designs, st.sampled_from(["crossover", "parallel"]))
def test_case_order_is_a_seeded_permutation_per_reader_and_period(d, design):
    slots = schedule(design, d["arms"], d["readers"], d["cases"], d["seed"])
    assert slots == schedule(design, d["arms"], d["readers"], d["cases"], d["seed"])
    orders = {}
    for s in slots:
        orders.setdefault((s.reader, s.period), []).append(s)
    for key, period_slots in orders.items():
        assert [s.position for s in period_slots] == list(range(1, len(d["cases"]) + 1))
        assert sorted(s.study_id for s in period_slots) == d["cases"]
    if len(d["cases"]) >= 12:  # 12! orders: two identical shuffles would be a bug, not chance
        distinct = {tuple(s.study_id for s in v) for v in orders.values()}
        assert len(distinct) == len(orders)
        other_seed = schedule(design, d["arms"], d["readers"], d["cases"], d["seed"] + 1)
        assert [s.study_id for s in other_seed] != [s.study_id for s in slots]


@pytest.mark.parametrize("design, arms, readers, cases, washout, message", [
    ("crossover", ["unaided", "draft"], ["a"], [1], 28, "cannot balance 2 arms over 1 cases"),
    ("parallel", ARMS, ["a"], [1, 2], 0, "cannot balance 3 arms over 2 cases"),
    ("crossover", ["draft"], ["a"], [1, 2], 0, "a crossover needs at least two arms"),
    ("crossover", ["draft", "sketch"], ["a"], [1, 2], 0, "unknown arms sketch"),
    ("crossover", ["unaided", "draft"], ["a"], [1, 2], -1, "washout_days must be a non-negative"),
    ("latin", ["unaided", "draft"], ["a"], [1, 2], 0, "design 'latin' is not one of"),
])
def test_designs_that_cannot_run_are_refused_with_one_line(design, arms, readers, cases, washout, message):
    with pytest.raises(InvalidInput, match=message) as error:
        check_design(design, arms, readers, cases, washout)
    assert "\n" not in str(error.value)
