"""Simulated gaze: inside the image, ordered in time, longer on abnormal regions, stable reader styles."""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np
import pytest

from training.synth.readers import READERS, simulate_reading
from training.synth.study import make_study, study_rng

from synth_support import dataset

SIZE = 256


@pytest.fixture(scope="module")
def studies():
    return [make_study(21, i, SIZE) for i in range(50)]


def readings_of(root):
    for row in csv.DictReader(open(root / "readings.csv")):
        folder = root / "reflacx" / "main_data" / row["reading_id"]
        fix = list(csv.DictReader(open(folder / "fixations.csv", newline="")))
        words = list(csv.DictReader(open(folder / "timestamps_transcription.csv", newline="")))
        yield row, fix, words


def test_written_fixations_are_inside_the_image_and_ordered():
    root = dataset()
    sizes = {r["study_id"]: (int(r["width"]), int(r["height"])) for r in csv.DictReader(open(root / "metadata.csv"))}
    count = 0
    for row, fix, words in readings_of(root):
        width, height = sizes[row["study_id"]]
        starts = np.array([float(f["timestamp_start_fixation"]) for f in fix])
        ends = np.array([float(f["timestamp_end_fixation"]) for f in fix])
        xs = np.array([int(f["x_position"]) for f in fix])
        ys = np.array([int(f["y_position"]) for f in fix])
        assert ((xs >= 0) & (xs < width) & (ys >= 0) & (ys < height)).all()
        assert (ends > starts).all() and (starts[1:] >= ends[:-1]).all()
        w_start = np.array([float(w["timestamp_start_word"]) for w in words])
        w_end = np.array([float(w["timestamp_end_word"]) for w in words])
        assert (w_end > w_start).all() and (w_start[1:] >= w_end[:-1]).all()
        count += 1
    assert count >= 12


def test_fixation_durations_and_reading_times_are_realistic(studies):
    durations = np.concatenate([r.fixations[:, 1] - r.fixations[:, 0] for s in studies for r in s.readings]) * 1000
    assert 200 < np.median(durations) < 320
    assert durations.min() >= 79.5 and np.percentile(durations, 99) > 600  # 80 ms floor, times rounded to 1 ms
    times = [r.fixations[-1, 1] for s in studies for r in s.readings]
    assert 20 < np.median(times) < 60


def test_saccade_amplitudes_are_a_few_degrees(studies):
    amplitudes = []
    for s in studies:
        for r in s.readings:
            step = np.hypot(*np.diff(r.fixations[:, 2:4], axis=0).T) / r.pixels_per_degree
            amplitudes.extend(step)
    assert 1.0 < np.median(amplitudes) < 8.0


def test_each_sentence_window_catches_fixations_on_its_region(studies):
    hits = total = 0
    for s in studies:
        for r in s.readings:
            for sentence, (start, end) in zip(s.report.sentences, r.sentence_times):
                if sentence.finding_index is None:
                    continue
                x0, y0, x1, y1 = s.findings[sentence.finding_index].box
                f = r.fixations
                window = (f[:, 1] >= start - 2.0) & (f[:, 0] <= end)
                inside = (f[:, 2] >= x0 - 3) & (f[:, 2] <= x1 + 3) & (f[:, 3] >= y0 - 3) & (f[:, 3] <= y1 + 3)
                total += 1
                hits += bool((window & inside).any())
    assert total > 20 and hits / total > 0.95


def dwell_in(reading, box) -> float:
    x0, y0, x1, y1 = box
    f = reading.fixations
    inside = (f[:, 2] >= x0) & (f[:, 2] <= x1) & (f[:, 3] >= y0) & (f[:, 3] <= y1)
    return float((f[inside, 1] - f[inside, 0]).sum())


def test_abnormal_regions_get_longer_dwell_than_the_same_region_in_normal_studies(studies):
    normal = [s for s in studies if not s.findings]
    ratios = []
    for s in studies:
        for f in s.findings:
            if f.kind in ("edema", "support_device"):
                continue  # a whole-chest box / a line across regions
            abnormal = np.mean([dwell_in(r, f.box) for r in s.readings])
            baseline = np.mean([dwell_in(r, f.box) for n in normal for r in n.readings])
            ratios.append(abnormal / max(baseline, 1e-3))
    assert len(ratios) > 15
    assert np.median(ratios) > 1.5


def test_reader_styles_differ_and_are_stable(studies):
    """Per-reader medians from two disjoint halves of readings agree; the spread between readers is far larger."""
    halves = [defaultdict(list), defaultdict(list)]
    for k, s in enumerate(studies[:30]):
        for style in READERS:
            r = simulate_reading(style, s.anatomy, s.findings, s.report, study_rng(99, k, ord(style.reader_id[1])))
            halves[k % 2][style.reader_id].append(np.median(r.fixations[:, 1] - r.fixations[:, 0]))
            halves[k % 2][style.reader_id + "_t"].append(r.fixations[-1, 1])
    medians = [{k: np.median(v) for k, v in h.items()} for h in halves]
    ids = [r.reader_id for r in READERS]
    first = np.array([medians[0][i] for i in ids])
    second = np.array([medians[1][i] for i in ids])
    assert list(np.argsort(first)) == list(np.argsort(second))
    assert np.abs(first - second).max() < 0.25 * (first.max() - first.min())
    times = [np.array([m[i + "_t"] for i in ids]) for m in medians]
    assert list(np.argsort(times[0])) == list(np.argsort(times[1])) or np.abs(times[0] - times[1]).max() < 3.0
    assert times[0].max() > 1.3 * times[0].min()  # fast R1 vs slow R5: reading time per study


def test_about_five_percent_of_studies_are_read_by_all_five():
    from training.synth.readers import choose_readers

    chosen = [choose_readers(study_rng(3, i, 3)) for i in range(2000)]
    share = sum(len(c) == 5 for c in chosen) / len(chosen)
    assert 0.03 < share < 0.07
    single = [c[0] for c in chosen if len(c) == 1]
    assert set(single) == {r.reader_id for r in READERS}


def test_raw_gaze_is_1000_hz_and_passes_through_fixations():
    root = dataset(n=6, seed=3, workers=1, raw_gaze=True)
    for row in csv.DictReader(open(root / "readings.csv")):
        gaze = list(csv.DictReader(open(root / "reflacx" / "gaze_data" / row["reading_id"] / "gaze.csv", newline="")))
        t = np.array([float(g["timestamp_sample"]) for g in gaze])
        assert np.allclose(np.diff(t), 0.001, atol=1e-6)
        fix = list(csv.DictReader(open(root / "reflacx" / "main_data" / row["reading_id"] / "fixations.csv", newline="")))
        f0 = fix[len(fix) // 2]
        mid = (float(f0["timestamp_start_fixation"]) + float(f0["timestamp_end_fixation"])) / 2
        sample = gaze[int(np.argmin(np.abs(t - mid)))]
        assert abs(int(sample["x_position"]) - int(f0["x_position"])) < 10


def test_dictation_splits_back_into_the_report_sentences(studies):
    from training.data.keyframes import split_sentences

    for s in studies:
        for r in s.readings:
            timed = split_sentences(r.words)
            assert [t.text for t in timed] == [x.text for x in s.report.sentences]
            assert all(abs(t.start_s - a) < 1e-6 and abs(t.end_s - b) < 1e-6 for t, (a, b) in zip(timed, r.sentence_times))
