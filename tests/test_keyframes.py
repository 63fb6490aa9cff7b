"""Hand-checked key-frame cases: two well-separated gaze spots inside one sentence window."""

import numpy as np
import pytest

from training.data.keyframes import (
    KeyframeConfig,
    detect_fixations,
    sentence_keyframes,
    split_sentences,
)
from training.data.types import Fixation, GazeRecording, TimedSentence

W, H = 1000, 800
PPD = (20.0, 20.0)  # sigma = 1.5 deg = 30 px
SPOT_UL = (200.0, 200.0)
SPOT_LR = (750.0, 600.0)
DISTRACTOR = (820.0, 120.0)
SENTENCE = TimedSentence("Opacity in the left upper and right lower zones.", start_s=10.0, end_s=14.0)
JITTER = [(-12, 5), (8, -10), (0, 0), (10, 12), (-6, -8), (5, 9)]


def _fixations_at(spot, t0, n=6, dur=0.25):
    return [
        Fixation(spot[0] + dx, spot[1] + dy, t0 + i * 0.33, t0 + i * 0.33 + dur)
        for i, (dx, dy) in enumerate(JITTER[:n])
    ]


def _recording(first, second):
    fixations = (
        _fixations_at(DISTRACTOR, 2.0)  # before the window [8, 14]
        + _fixations_at(first, 8.5)
        + [Fixation(-50.0, 300.0, 10.3, 10.5)]  # outside the image
        + [Fixation(990.0, 20.0, 10.6, 10.62)]  # a brief outlier at the image corner (percentile clip)
        + _fixations_at(second, 11.6)
        + _fixations_at(DISTRACTOR, 15.0)  # after the window
    )
    return GazeRecording("r1", fixations=fixations, sentences=[SENTENCE], pixels_per_degree=PPD)


def _contains(box, point):
    return box.x_min <= point[0] <= box.x_max and box.y_min <= point[1] <= box.y_max


def test_two_spots_give_two_ordered_clues_and_a_covering_observation_box():
    (kf,) = sentence_keyframes(_recording(SPOT_UL, SPOT_LR), W, H)
    assert kf.sentence_index == 0
    assert len(kf.clues) == 2
    first, second = kf.clues
    assert first.t_mean_s < second.t_mean_s
    assert _contains(first.box_px, SPOT_UL) and not _contains(first.box_px, SPOT_LR)
    assert _contains(second.box_px, SPOT_LR) and not _contains(second.box_px, SPOT_UL)
    assert abs(first.cx - SPOT_UL[0]) < 15 and abs(first.cy - SPOT_UL[1]) < 15
    assert abs(second.cx - SPOT_LR[0]) < 15 and abs(second.cy - SPOT_LR[1]) < 15
    # Each spot: 6 fixations x 250 ms, minus what the 5-95 % clip removes at most (one edge fixation).
    for clue in kf.clues:
        assert 1000 <= clue.dwell_ms <= 1500
        assert clue.box_px.width < 250 and clue.box_px.height < 250  # a spot, not the whole image
    assert _contains(kf.observation_box_px, SPOT_UL) and _contains(kf.observation_box_px, SPOT_LR)
    # Distractors outside the window and the outliers are gone: 12 fixations remain at most.
    assert kf.n_points <= 12
    assert not any(_contains(c.box_px, DISTRACTOR) for c in kf.clues)
    assert not _contains(kf.observation_box_px, (990.0, 20.0))


def test_order_follows_time_not_position():
    (kf,) = sentence_keyframes(_recording(SPOT_LR, SPOT_UL), W, H)
    assert len(kf.clues) == 2
    assert _contains(kf.clues[0].box_px, SPOT_LR)
    assert _contains(kf.clues[1].box_px, SPOT_UL)


def test_raw_samples_are_used_when_present():
    rng = np.random.default_rng(0)
    t = np.arange(8.0, 14.0, 0.001)
    spot = np.where(t[:, None] < 11.0, SPOT_UL, SPOT_LR)
    xy = spot + rng.normal(0, 8, size=(len(t), 2))
    samples = np.column_stack([t, xy])
    samples[::500, 1] = 5000.0  # off-image glitches
    rec = GazeRecording("r1", sentences=[SENTENCE], samples=samples, pixels_per_degree=PPD, sample_rate_hz=1000)
    (kf,) = sentence_keyframes(rec, W, H)
    assert len(kf.clues) == 2
    assert _contains(kf.clues[0].box_px, SPOT_UL) and _contains(kf.clues[1].box_px, SPOT_LR)
    # ~3 s at each spot, minus the percentile clip (at most 10 % of samples in x plus 10 % in y).
    for clue in kf.clues:
        assert 2200 <= clue.dwell_ms <= 3000


def test_sentence_without_gaze_has_no_clues():
    rec = GazeRecording("r1", fixations=_fixations_at(SPOT_UL, 0.0), sentences=[TimedSentence("Late.", 50.0, 51.0)])
    (kf,) = sentence_keyframes(rec, W, H)
    assert kf.clues == [] and kf.observation_box_px is None and kf.n_points == 0


def test_one_spot_gives_one_clue():
    rec = GazeRecording("r1", fixations=_fixations_at(SPOT_UL, 9.0), sentences=[SENTENCE], pixels_per_degree=PPD)
    (kf,) = sentence_keyframes(rec, W, H)
    assert len(kf.clues) == 1
    assert kf.clues[0].box_px.iou(kf.observation_box_px) > 0.9


def test_one_spot_on_a_small_low_resolution_image_still_gives_a_clue():
    # 212x256 image at 7 px/deg (the synthetic set's scale): sigma is ~3 grid cells, the blob is compact.
    spot = (140.0, 55.0)
    fixations = [Fixation(spot[0] + dx / 3, spot[1] + dy / 3, 9.0 + i * 0.4, 9.3 + i * 0.4) for i, (dx, dy) in enumerate(JITTER)]
    rec = GazeRecording("r1", fixations=fixations, sentences=[SENTENCE], pixels_per_degree=(7.0, 7.0))
    (kf,) = sentence_keyframes(rec, 212, 256)
    assert len(kf.clues) == 1
    assert _contains(kf.clues[0].box_px, spot)


def test_bad_image_size_is_rejected():
    with pytest.raises(ValueError, match="not positive"):
        sentence_keyframes(_recording(SPOT_UL, SPOT_LR), 0, H)


def test_split_sentences_at_dictated_periods():
    words = [
        ("heart", 0.5, 0.8), ("size", 0.8, 1.1), ("normal", 1.1, 1.5), (".", 1.5, 1.6),
        ("no", 2.0, 2.2), ("effusion", 2.2, 2.8), (",", 2.8, 2.9), ("AP", 3.0, 3.2), ("/", 3.2, 3.3),
        ("portable", 3.3, 3.9), (".", 3.9, 4.0), (".", 4.1, 4.2), ("lines", 5.0, 5.4), ("unchanged", 5.4, 6.0),
    ]
    sents = split_sentences(words)
    assert [s.text for s in sents] == ["heart size normal.", "no effusion, AP/portable.", "lines unchanged"]
    assert (sents[0].start_s, sents[0].end_s) == (0.5, 1.6)
    assert (sents[1].start_s, sents[1].end_s) == (2.0, 4.0)
    assert (sents[2].start_s, sents[2].end_s) == (5.0, 6.0)


def test_detect_fixations_finds_the_dwell_periods():
    # 1000 Hz: 300 ms at A, a 20 ms saccade, 400 ms at B.
    a = np.tile([100.0, 100.0], (300, 1))
    sacc = np.linspace([100.0, 100.0], [600.0, 500.0], 20)
    b = np.tile([600.0, 500.0], (400, 1))
    xy = np.vstack([a, sacc, b]) + np.random.default_rng(1).normal(0, 0.3, size=(720, 2))
    t = np.arange(len(xy)) / 1000.0
    fixations = detect_fixations(np.column_stack([t, xy]), 1000.0, (40.0, 40.0))
    assert len(fixations) == 2
    assert abs(fixations[0].x - 100) < 2 and abs(fixations[1].y - 500) < 2
    assert 0.25 <= fixations[0].duration_s <= 0.31
    assert 0.35 <= fixations[1].duration_s <= 0.41
