"""The README picture: synthetic studies with one reader's gaze and GazeX key frames.

    .venv/bin/python -m training.synth.figures [--out docs/img/synthetic_studies.png] [--seed 0]

Each panel is one synthetic study (1024 px, shown downscaled). For the sentence that states the
study's finding it draws the reader's fixations in GazeX's window [sentence start - 2 s, sentence
end] (circles sized by duration, numbered and joined in order), the key-frame clue boxes (cyan)
and observation box (magenta) from ``training.data.keyframes.sentence_keyframes``, and the
ground-truth box (green).
"""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

import cv2
import numpy as np

from gazex_core.evidence import Box
from training.data.keyframes import sentence_keyframes, split_sentences
from training.data.types import Fixation, GazeRecording

from .study import SynthStudy, make_study, sample_study_findings

PANEL_HEIGHT = 640
WANTED = ("pleural_effusion", "nodule", "pneumothorax", "support_device")
# BGR
GREEN, CYAN, MAGENTA, ORANGE, WHITE = (60, 200, 60), (255, 220, 0), (255, 60, 255), (0, 140, 255), (255, 255, 255)


def pick_studies(seed: int, size: int) -> list[int]:
    """First study index whose only finding is each wanted kind."""
    chosen = []
    for kind in WANTED:
        for index in range(500):
            _, findings = sample_study_findings(seed, index, size)
            if len(findings) == 1 and findings[0].kind == kind and index not in chosen:
                chosen.append(index)
                break
    return chosen


def recording(study: SynthStudy) -> GazeRecording:
    reading = study.readings[0]
    fixations = [Fixation(x, y, s, e) for s, e, x, y in reading.fixations]
    ppd = float(reading.pixels_per_degree)
    return GazeRecording(reading.reader_id, fixations, split_sentences(reading.words), None, (ppd, ppd))


def panel(study: SynthStudy) -> np.ndarray:
    scale = PANEL_HEIGHT / study.image.shape[0]
    gray = cv2.resize((study.image * 255).astype(np.uint8), None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
    rec = recording(study)
    index = next(i for i, s in enumerate(study.report.sentences) if s.finding_index is not None)
    sentence = rec.sentences[index]
    frames = sentence_keyframes(rec, study.image.shape[1], study.image.shape[0])[index]
    finding = study.findings[study.report.sentences[index].finding_index]

    def box(b, colour, thickness=2, inset=0):
        if b is not None:
            x0, y0, x1, y1 = (int(round(v * scale)) for v in (b.x_min, b.y_min, b.x_max, b.y_max))
            cv2.rectangle(canvas, (x0 + inset, y0 + inset), (x1 - inset, y1 - inset), colour, thickness, cv2.LINE_AA)

    box(Box(*finding.box), GREEN, 2)
    box(frames.observation_box_px, MAGENTA, 2)
    for clue in frames.clues:
        box(clue.box_px, CYAN, 1, inset=4)  # inset: a single clue often equals the observation box
    draw_fixations(canvas, rec, sentence.start_s - 2.0, sentence.end_s, scale)
    caption = f"{rec.reader_id}: \"{sentence.text}\""
    return add_caption(canvas, caption)


def draw_fixations(canvas, rec: GazeRecording, start: float, end: float, scale: float) -> None:
    shown = [f for f in rec.fixations if f.end_s >= start and f.start_s <= end]
    points = [(int(f.x * scale), int(f.y * scale)) for f in shown]
    overlay = canvas.copy()
    for a, b in zip(points, points[1:]):
        cv2.line(overlay, a, b, ORANGE, 1, cv2.LINE_AA)
    for f, p in zip(shown, points):
        cv2.circle(overlay, p, int(3 + 14 * f.duration_s), ORANGE, -1, cv2.LINE_AA)
    cv2.addWeighted(overlay, 0.3, canvas, 0.7, 0, dst=canvas)
    for n, (f, p) in enumerate(zip(shown, points), 1):
        cv2.circle(canvas, p, int(3 + 14 * f.duration_s), ORANGE, 1, cv2.LINE_AA)
        cv2.putText(canvas, str(n), (p[0] + 4, p[1] - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, WHITE, 1, cv2.LINE_AA)


def add_caption(image: np.ndarray, text: str) -> np.ndarray:
    lines = textwrap.wrap(text, 52)[:3]
    band = np.full((18 * len(lines) + 10, image.shape[1], 3), 24, np.uint8)
    for i, line in enumerate(lines):
        cv2.putText(band, line, (6, 18 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.45, WHITE, 1, cv2.LINE_AA)
    return np.vstack([image, band])


def legend(width: int) -> np.ndarray:
    band = np.full((30, width, 3), 24, np.uint8)
    items = [("ground-truth box", GREEN), ("GazeX observation box", MAGENTA), ("key-frame clues", CYAN),
             ("fixations in [start-2 s, end], size = duration, numbered in order", ORANGE)]
    x = 8
    for text, colour in items:
        cv2.rectangle(band, (x, 9), (x + 14, 21), colour, 2)
        cv2.putText(band, text, (x + 20, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.45, WHITE, 1, cv2.LINE_AA)
        x += 40 + 9 * len(text)
    return band


def make_figure(out: Path, seed: int = 0, size: int = 1024) -> Path:
    panels = [panel(make_study(seed, i, size)) for i in pick_studies(seed, size)]
    height = max(p.shape[0] for p in panels)
    panels = [np.vstack([p, np.full((height - p.shape[0], p.shape[1], 3), 24, np.uint8)]) for p in panels]
    gap = np.full((height, 6, 3), 24, np.uint8)
    row = np.hstack([x for p in panels for x in (p, gap)][:-1])
    figure = np.vstack([row, legend(row.shape[1])])
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), figure):
        raise OSError(f"cannot write {out}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="Render the README picture of synthetic studies with gaze and key frames.")
    parser.add_argument("--out", type=Path, default=Path("docs/img/synthetic_studies.png"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(make_figure(args.out, args.seed))


if __name__ == "__main__":
    main()
