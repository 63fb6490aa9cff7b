"""The token-sequence format: serialise -> parse round trips, quantisation, lenient parsing."""

from __future__ import annotations

import random

import pytest

from gazex_core.evidence import Box
from gazex_core.sequence import (
    N_BINS,
    Clue,
    SentenceBlock,
    SequenceError,
    dequantise,
    evidence_items,
    order_prompt,
    parse_answer,
    parse_evidence,
    parse_order,
    parse_report,
    quantise,
    select_clues,
    serialise_answer,
    serialise_order,
    serialise_report,
    SPECIAL_TOKENS,
)
from gazex_core.vocab import CHEXPERT_LABELS, REGIONS


def random_block(rng: random.Random) -> SentenceBlock:
    x1, y1 = rng.random() * 0.8, rng.random() * 0.8
    box = Box(x1, y1, x1 + 0.05 + rng.random() * 0.15, y1 + 0.05 + rng.random() * 0.15) if rng.random() < 0.6 else None
    clues = [Clue(rng.random(), rng.random(), rng.random() * 0.5, rng.random() * 0.5, rng.random() * 6000)
             for _ in range(rng.randrange(0, 4))]
    return SentenceBlock(section=rng.choice(["findings", "impression"]), region=rng.choice([*REGIONS, None]),
                         clues=clues, box=box, label=rng.choice([*CHEXPERT_LABELS, None]),
                         text=rng.choice(["Small left pleural effusion.", "The heart size is normal.", "No pneumothorax."]))


def test_report_round_trip_keeps_structure_and_quantised_geometry():
    rng = random.Random(0)
    for _ in range(50):
        blocks = [random_block(rng) for _ in range(rng.randrange(1, 8))]
        parsed = parse_report(serialise_report(blocks), strict=True)
        assert len(parsed) == len(blocks)
        for a, b in zip(blocks, parsed):
            assert (a.section, a.region, a.label, a.text) == (b.section, b.region, b.label, b.text)
            assert len(a.clues) == len(b.clues)
            for ca, cb in zip(a.clues, b.clues):
                assert abs(ca.cx - cb.cx) <= 1 / N_BINS and abs(ca.cy - cb.cy) <= 1 / N_BINS
            if a.box is None:
                assert b.box is None
            else:
                for u, v in zip(a.box.to_dict().values(), b.box.to_dict().values()):
                    assert abs(u - v) <= 1 / N_BINS + 1e-9  # quantised to 1/100 of the image


def test_report_without_clues_is_the_ablation_format():
    rng = random.Random(1)
    blocks = [random_block(rng) for _ in range(5)]
    items = serialise_report(blocks, with_clues=False)
    assert not any(it.startswith("<sz") or it.startswith("<dw") for it in items)
    assert all(not b.clues for b in parse_report(items))


def test_grounding_order_answer_round_trips():
    rng = random.Random(2)
    b = random_block(rng)
    g = parse_evidence(evidence_items(b) + ["<eos>"], strict=True)
    assert (g.region, g.label, len(g.clues)) == (b.region, b.label, len(b.clues))
    assert parse_order(serialise_order([3, 0, 2, 1])) == [3, 0, 2, 1]
    text, box = parse_answer(serialise_answer("left lower zone", Box(0.1, 0.5, 0.4, 0.9)))
    assert text == "left lower zone" and box is not None and box.iou(Box(0.1, 0.5, 0.4, 0.9)) > 0.9
    assert parse_answer(serialise_answer("yes")) == ("yes", None)
    frames = [Clue(0.1 * i, 0.5, 0.1, 0.1, 300) for i in range(5)]
    assert order_prompt(frames)[-1] == "<sep>"


def test_quantisation_bounds():
    assert quantise(0.0) == 0 and quantise(1.0) == N_BINS - 1 and quantise(-3) == 0 and quantise(float("nan")) == 0
    for k in range(N_BINS):
        assert quantise(dequantise(k)) == k


def test_lenient_parse_skips_garbage_and_strict_parse_rejects_it():
    items = ["<b3>", "junk", "<sec_findings>", "<reg_cardiac>", "<b10>", "<lab_Cardiomegaly>", "Big heart.", "<eos>", "x"]
    blocks = parse_report(items)
    assert len(blocks) == 1 and blocks[0].label == "Cardiomegaly" and blocks[0].text == "Big heart."
    with pytest.raises(SequenceError):
        parse_report(items, strict=True)


def test_select_clues_keeps_longest_dwells_in_time_order():
    clues = [Clue(0.1 * i, 0.1, 0.1, 0.1, d) for i, d in enumerate([100, 900, 50, 800, 700])]
    assert [c.dwell_ms for c in select_clues(clues, 3)] == [900, 800, 700]


def test_special_tokens_are_unique():
    assert len(SPECIAL_TOKENS) == len(set(SPECIAL_TOKENS))
