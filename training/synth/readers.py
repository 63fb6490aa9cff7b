"""Five simulated radiologists (R1-R5) reading a study in ABCDEF order while dictating it.

Each reader has a stable style (fixation length, how many fixations per region, dictation
speed, how long they look before speaking, how widely they scan). For each report sentence the
reader looks at that sentence's region, starts dictating while still looking, and keeps looking
until the sentence ends, so GazeX's window [sentence start - 2 s, sentence end] catches the
fixations. Abnormal regions get more and longer fixations.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .anatomy import Anatomy
from .findings import SynthFinding
from .report import SynthReport, SynthSentence

SCREEN = (3840, 2160)  # REFLACX 4K display
SCREEN_PX_PER_DEGREE = 55.0


@dataclass(frozen=True)
class ReaderStyle:
    reader_id: str
    description: str
    fixation_median_ms: float
    fixation_sigma: float  # of the log-normal
    fixations_per_region: float  # mean count for a normal region
    abnormal_factor: float  # more fixations and longer dwell on abnormal regions
    words_per_second: float
    look_before_s: float  # looking before starting to dictate a sentence
    spread: float  # how widely fixations scatter inside a region (fraction of its size)
    overview_fixations: int  # silent survey before dictating
    devices_first: float  # probability to survey devices first when there are any
    window_width: float


READERS: tuple[ReaderStyle, ...] = (
    ReaderStyle("R1", "fast, short dwells, few fixations", 190, 0.40, 3.0, 1.6, 3.3, 0.9, 0.25, 3, 0.0, 1.0),
    ReaderStyle("R2", "thorough, many fixations", 270, 0.45, 7.0, 1.8, 2.6, 1.2, 0.35, 8, 0.0, 0.9),
    ReaderStyle("R3", "checks lines and tubes first", 240, 0.45, 4.5, 1.7, 2.8, 1.2, 0.3, 5, 0.8, 1.0),
    ReaderStyle("R4", "broad scanner, long survey", 220, 0.50, 5.0, 1.5, 2.9, 1.2, 0.5, 12, 0.2, 1.1),
    ReaderStyle("R5", "slow, long dwells", 340, 0.45, 4.0, 1.9, 2.3, 1.6, 0.3, 5, 0.1, 0.8),
)
READER_BY_ID = {r.reader_id: r for r in READERS}


@dataclass
class Reading:
    reader_id: str
    fixations: np.ndarray  # (N, 4): start_s, end_s, x_px, y_px
    words: list[tuple[str, float, float]]  # word, start_s, end_s
    sentence_times: list[tuple[float, float]]  # per report sentence
    pupil: np.ndarray  # (N,)
    pixels_per_degree: float
    window_level: float
    window_width: float

    @property
    def transcription(self) -> str:
        text = " ".join(w for w, _, _ in self.words)
        return re.sub(r" ([.,])", r"\1", text)


def region_boxes(anatomy: Anatomy, findings: list[SynthFinding]) -> dict[str, list[tuple[float, float, float, float]]]:
    """Where a reader looks for each ABCDEF region of a normal statement."""
    x0, y0, x1, y1 = anatomy.lung_box
    mid, w, h = anatomy.midline, anatomy.width, anatomy.height
    tw = anatomy.trachea_half_width * 2.5
    right, left = anatomy.side_box(0), anatomy.side_box(1)
    lung_h = y1 - y0
    return {
        "airway": [(mid - tw, y0 - 0.06 * h, mid + tw, anatomy.carina[1] + 0.03 * h)],
        "breathing": [
            (b[0], b[1] + k * (b[3] - b[1]) / 3, b[2], b[1] + (k + 1) * (b[3] - b[1]) / 3) for b in (right, left) for k in range(3)
        ],
        "cardiac": [anatomy.heart_box(), (mid - anatomy.mediastinum_half_width * 1.3, y0, mid + anatomy.mediastinum_half_width * 1.3, anatomy.heart_top + 0.05 * h)],
        "diaphragm": [(b[0], b[3] - 0.12 * lung_h, b[2], b[3] + 0.03 * h) for b in (right, left)],
        "everything_else": [
            (mid - 0.42 * w, y0 - 0.05 * h, mid - 0.05 * w, y0 + 0.05 * h),
            (mid + 0.05 * w, y0 - 0.05 * h, mid + 0.42 * w, y0 + 0.05 * h),
            (x0 - 0.02 * w, y0 + 0.2 * lung_h, x0 + 0.08 * w, y1 - 0.1 * lung_h),
            (x1 - 0.08 * w, y0 + 0.2 * lung_h, x1 + 0.02 * w, y1 - 0.1 * lung_h),
            (mid - 0.04 * w, y0, mid + 0.04 * w, y1),
        ],
        "foreign_bodies": [f.box for f in findings if f.kind == "support_device" and f.box] or [(x0, y0, x1, y1)],
    }


def targets_for(sentence: SynthSentence, findings: list[SynthFinding], boxes) -> list[tuple[float, float, float, float]]:
    if sentence.finding_index is not None and findings[sentence.finding_index].box:
        return [findings[sentence.finding_index].box]
    return boxes[sentence.region]


def simulate_reading(
    style: ReaderStyle, anatomy: Anatomy, findings: list[SynthFinding], report: SynthReport, rng: np.random.Generator
) -> Reading:
    boxes = region_boxes(anatomy, findings)
    ppd = SCREEN_PX_PER_DEGREE * anatomy.height / SCREEN[1]
    fixations: list[tuple[float, float, float, float]] = []
    clock = _Clock(style, rng, ppd, anatomy)
    survey = [(anatomy.lung_box)]
    if any(f.kind == "support_device" for f in findings) and rng.random() < style.devices_first:
        clock.look(fixations, boxes["foreign_bodies"], 3, 1.3)
    clock.look(fixations, survey, style.overview_fixations, 1.0, wide=True)
    words: list[tuple[str, float, float]] = []
    sentence_times = []
    for sentence in report.sentences:
        abnormal = sentence.label is not None
        factor = style.abnormal_factor if abnormal else 1.0
        targets = targets_for(sentence, findings, boxes)
        look_until = clock.t + style.look_before_s * factor * rng.uniform(0.7, 1.3)
        count = max(2, int(rng.poisson(style.fixations_per_region * factor * 0.8)))
        clock.look(fixations, targets, count, factor, until=look_until)
        start = clock.t + rng.uniform(0.05, 0.3)
        sentence_words = dictate(sentence.text, start, style, rng)
        end = sentence_words[-1][2]
        words += sentence_words
        sentence_times.append((sentence_words[0][1], end))
        clock.look(fixations, targets, max(1, int(rng.poisson(style.fixations_per_region * factor * 0.5))), factor, until=end)
        clock.t = max(clock.t, end) + rng.uniform(0.1, 0.5)
    array = np.array(fixations, dtype=np.float64)
    pupil = np.clip(rng.normal(1.0, 0.08, len(array)) + 0.05 * (array[:, 1] - array[:, 0]), 0.6, 1.6)
    return Reading(style.reader_id, array, words, sentence_times, pupil, ppd, 0.5 + rng.normal(0, 0.02), style.window_width)


class _Clock:
    """Appends fixations one after another, with saccade gaps scaled by amplitude."""

    def __init__(self, style: ReaderStyle, rng, ppd: float, anatomy: Anatomy):
        self.style, self.rng, self.ppd = style, rng, ppd
        self.t = float(rng.uniform(0.2, 0.8))
        self.width, self.height = anatomy.width, anatomy.height
        self.pos = (anatomy.width / 2, anatomy.height / 2)
        self.offset = rng.normal(0, 0.3 * ppd, 2).tolist()  # calibration error, constant in a reading; floats: scalar math

    def look(self, out, boxes, count: int, factor: float, until: float | None = None, wide: bool = False) -> None:
        done = 0
        while done < count or (until is not None and self.t < until):
            box = boxes[int(self.rng.integers(len(boxes)))]
            target = self._point_in(box, wide)
            amplitude_deg = math.hypot(target[0] - self.pos[0], target[1] - self.pos[1]) / self.ppd
            self.t += 0.02 + 0.0025 * amplitude_deg  # saccade
            duration = math.exp(self.rng.normal(math.log(self.style.fixation_median_ms * (1 + 0.25 * (factor - 1))), self.style.fixation_sigma))
            duration = min(max(duration, 80.0), 2500.0) / 1000
            x = min(max(target[0] + self.offset[0], 0.0), self.width - 1)
            y = min(max(target[1] + self.offset[1], 0.0), self.height - 1)
            out.append((round(self.t, 3), round(self.t + duration, 3), float(round(x)), float(round(y))))
            self.pos = target
            self.t = round(self.t + duration, 3)
            done += 1
            if done > 60:
                break

    def _point_in(self, box, wide: bool) -> np.ndarray:
        x0, y0, x1, y1 = box
        spread = 0.6 if wide else self.style.spread
        dx, dy = self.rng.normal(0, 1, 2).tolist()
        x = (x0 + x1) / 2 + dx * ((x1 - x0) / 2) * spread
        y = (y0 + y1) / 2 + dy * ((y1 - y0) / 2) * spread
        return (min(max(x, x0), x1), min(max(y, y0), y1))


def dictate(text: str, start: float, style: ReaderStyle, rng) -> list[tuple[str, float, float]]:
    """Word timings of one dictated sentence (punctuation is dictated as its own word, as in REFLACX)."""
    tokens = re.findall(r"\d+(?:\.\d+)?|[\w'/\-]+|[.,]", text)  # "4.5" stays one word: "." ends a sentence
    t = start
    out = []
    for token in tokens:
        syllables = max(1, len(re.findall(r"[aeiouy]+", token.lower()))) if token not in ".," else 2
        duration = syllables * rng.uniform(0.16, 0.22) * 2.9 / style.words_per_second
        out.append((token, round(t, 3), round(t + duration, 3)))
        t += duration + rng.uniform(0.02, 0.08)
    return out


def raw_gaze(reading: Reading, rng: np.random.Generator) -> np.ndarray:
    """1000 Hz samples (t_s, x, y): jitter around each fixation, minimum-jerk saccades between them."""
    fix = reading.fixations
    t_end = fix[-1, 1]
    times = np.round(np.arange(0, int(t_end * 1000) + 1) / 1000, 3)
    x = np.full(times.shape, np.nan)
    y = np.full(times.shape, np.nan)
    start_idx = np.round(fix[:, 0] * 1000).astype(int)
    end_idx = np.round(fix[:, 1] * 1000).astype(int)
    jitter = 0.05 * reading.pixels_per_degree
    for i in range(len(fix)):
        a, b = start_idx[i], end_idx[i]
        x[a:b] = fix[i, 2] + rng.normal(0, jitter, b - a)
        y[a:b] = fix[i, 3] + rng.normal(0, jitter, b - a)
        if i + 1 < len(fix):
            c = start_idx[i + 1]
            if c > b:
                s = (np.arange(b, c) - b + 1) / (c - b + 1)
                profile = 10 * s**3 - 15 * s**4 + 6 * s**5
                x[b:c] = fix[i, 2] + (fix[i + 1, 2] - fix[i, 2]) * profile
                y[b:c] = fix[i, 3] + (fix[i + 1, 3] - fix[i, 3]) * profile
    keep = ~np.isnan(x)
    return np.stack([times[keep], x[keep], y[keep]], 1)


def choose_readers(rng: np.random.Generator) -> list[str]:
    """~5% of studies are read by all five radiologists (REFLACX phases 1-2), the rest by one (phase 3)."""
    if rng.random() < 0.05:
        return [r.reader_id for r in READERS]
    return [READERS[int(rng.integers(len(READERS)))].reader_id]
