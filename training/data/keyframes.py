"""Gaze key frames per dictated sentence (GazeX preprocessing, gazex_method.md section 3).

For every dictated sentence the gaze inside [start - 2 s, end] becomes:

* an ordered list of *clues* (one DBSCAN cluster of hot heatmap pixels = one key
  frame), each with a box, an intensity-weighted centroid, the dwell time spent
  there and the mean time it was looked at;
* one holistic *observation box* (the extent of the whole sentence heatmap > 0.1).

Deviations from the GazeX scripts (all for speed, documented in docs/keyframes.md):

* The heatmap is built on a grid whose long side is ``grid_long_side`` cells (GazeX
  divides the image by 4) by binning the points and blurring once with a Gaussian
  (``scipy.ndimage.gaussian_filter``), which equals the sum of per-point Gaussians
  up to the binning.
* ``min_samples`` is given at GazeX's resolution (image / 4) and scaled to the grid
  by the ratio of cell areas (floor ``min_samples_floor``), because on a coarser grid
  the same physical area holds fewer pixels.
* Points outside the image are dropped *before* the 5-95th percentile clip, so
  off-image gaze cannot shift the percentiles. With fixations the percentiles are
  weighted by duration (equivalent to expanding fixations into samples).

All boxes and centroids are in original-image pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter
from scipy.spatial import cKDTree
import sklearn
from sklearn.cluster import DBSCAN

from gazex_core.evidence import Box
from training.data.types import Fixation, GazeRecording, TimedSentence

GAZEX_GRID_SCALE = 0.25  # GazeX divides image and gaze coordinates by 4
SENTENCE_END_TOKENS = {"."}
ATTACHED_PUNCTUATION = {".", ","}


@dataclass
class KeyframeConfig:
    window_before_s: float = 2.0
    percentile_clip: tuple[float, float] = (5.0, 95.0)
    sigma_degrees: float = 1.5
    grid_long_side: int = 160  # heatmap grid cells along the image's long side, at most
    cells_per_sigma: float = 3.0  # and no finer than this many cells per Gaussian sigma (speed)
    heat_threshold: float = 0.1
    eps: float = 0.3
    min_samples: int = 10  # at GazeX's resolution (image / 4); scaled to the grid
    min_samples_floor: int = 4
    intensity_weight: float = 0.1
    min_eps_cells: float = 1.5  # eps never below this many grid cells, so neighbouring hot pixels link on a coarse grid
    max_assign_sigmas: float = 3.0  # gaze points farther than this from any hot pixel count for no cluster


@dataclass
class Clue:
    """One DBSCAN cluster = one key frame. Pixel units of the original image."""

    box_px: Box
    cx: float
    cy: float
    dwell_ms: float
    t_mean_s: float
    n_pixels: int = 0


@dataclass
class SentenceKeyframes:
    sentence: TimedSentence
    sentence_index: int
    clues: list[Clue]  # ordered by t_mean_s
    observation_box_px: Box | None
    observation_centroid: tuple[float, float] | None
    n_points: int


@dataclass
class _GazePoints:
    """Points of one window: time, position, weight (seconds of gaze each stands for)."""

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray

    def __len__(self) -> int:
        return len(self.t)

    def subset(self, keep: np.ndarray | slice) -> "_GazePoints":
        return _GazePoints(self.t[keep], self.x[keep], self.y[keep], self.w[keep])


# ----------------------------------------------------------------------------- sentences


def split_sentences(words: list[tuple[str, float, float]]) -> list[TimedSentence]:
    """REFLACX ``timestamps_transcription`` rows (word, start, end) -> sentences split at ".".

    Punctuation is dictated as its own "word"; "." and "," are attached to the
    previous word and "/" joins its neighbours. Trailing words without a final
    period form a last sentence; empty sentences (". .") are skipped.
    """
    sentences: list[TimedSentence] = []
    current: list[tuple[str, float, float]] = []
    for word, start, end in words:
        current.append((str(word).strip(), float(start), float(end)))
        if current[-1][0] in SENTENCE_END_TOKENS:
            _append_sentence(sentences, current)
            current = []
    _append_sentence(sentences, current)
    return sentences


def _append_sentence(sentences: list[TimedSentence], words: list[tuple[str, float, float]]) -> None:
    content = [w for w in words if w[0] and w[0] not in SENTENCE_END_TOKENS | {","}]
    if not content:
        return
    text = _join_words([w[0] for w in words if w[0]])
    sentences.append(TimedSentence(text=text, start_s=words[0][1], end_s=max(w[2] for w in words)))


def _join_words(tokens: list[str]) -> str:
    text = ""
    glue_next = False
    for token in tokens:
        if token in ATTACHED_PUNCTUATION or token == "/" or glue_next or not text:
            text += token
        else:
            text += " " + token
        glue_next = token == "/"
    return text


# ----------------------------------------------------------------------------- fixations


def detect_fixations(
    samples: np.ndarray,
    sample_rate_hz: float,
    pixels_per_degree: tuple[float, float] | float,
    velocity_threshold_deg_s: float = 35.0,
    minimum_duration_ms: int = 60,
) -> list[Fixation]:
    """Raw samples (N, 3: t_s, x_px, y_px) -> fixations with pymovements' I-VT.

    The default threshold is REFLACX's EyeLink saccade velocity threshold (35 deg/s).
    Rows with NaN positions (blinks, track loss) break fixations.
    """
    import pymovements as pm

    samples = np.asarray(samples, dtype=float)
    if samples.ndim != 2 or samples.shape[1] != 3 or len(samples) < 3:
        return []
    samples = samples[np.argsort(samples[:, 0], kind="stable")]
    ppd_x, ppd_y = _pair(pixels_per_degree)
    t_ms = np.round((samples[:, 0] - samples[0, 0]) * 1000.0).astype(np.int64)
    deg = np.column_stack([samples[:, 1] / ppd_x, samples[:, 2] / ppd_y])
    dt_s = np.gradient(samples[:, 0]) if len(samples) > 1 else np.ones(1)
    dt_s[dt_s <= 0] = 1.0 / sample_rate_hz
    velocities = np.gradient(deg, axis=0) / dt_s[:, None]
    events = pm.events.ivt(
        velocities=velocities,
        timesteps=t_ms,
        minimum_duration=minimum_duration_ms,
        velocity_threshold=velocity_threshold_deg_s,
    )
    fixations = []
    index_of_ms = {int(v): i for i, v in enumerate(t_ms)}
    for onset, offset in events.frame.select(["onset", "offset"]).iter_rows():
        i0, i1 = index_of_ms[int(onset)], index_of_ms[int(offset)]
        block = samples[i0 : i1 + 1]
        block = block[~np.isnan(block[:, 1:]).any(axis=1)]
        if len(block) == 0:
            continue
        fixations.append(
            Fixation(
                x=float(block[:, 1].mean()),
                y=float(block[:, 2].mean()),
                start_s=float(samples[i0, 0]),
                end_s=float(samples[i1, 0] + 1.0 / sample_rate_hz),
            )
        )
    return fixations


# ----------------------------------------------------------------------------- key frames


def sentence_keyframes(
    recording: GazeRecording,
    width: int,
    height: int,
    config: KeyframeConfig | None = None,
) -> list[SentenceKeyframes]:
    """One SentenceKeyframes per dictated sentence of ``recording``, in sentence order."""
    config = config or KeyframeConfig()
    if width <= 0 or height <= 0:
        raise ValueError(f"image size {width}x{height} is not positive")
    all_points = _recording_points(recording)
    grid = _Grid(width, height, config, recording.pixels_per_degree)
    results = []
    for index, sentence in enumerate(recording.sentences):
        points = _window_points(recording, all_points, sentence, config)
        points = _clean_points(points, width, height, config.percentile_clip)
        results.append(_keyframes_for_points(sentence, index, points, grid, config))
    return results


def keyframes_for_window(
    recording: GazeRecording,
    sentence: TimedSentence,
    width: int,
    height: int,
    config: KeyframeConfig | None = None,
    sentence_index: int = 0,
) -> SentenceKeyframes:
    """Key frames of one sentence (or any time window) of a recording."""
    config = config or KeyframeConfig()
    grid = _Grid(width, height, config, recording.pixels_per_degree)
    points = _window_points(recording, _recording_points(recording), sentence, config)
    points = _clean_points(points, width, height, config.percentile_clip)
    return _keyframes_for_points(sentence, sentence_index, points, grid, config)


def _recording_points(recording: GazeRecording) -> _GazePoints:
    """Raw samples when present (weight = one sample period), else fixations (weight = duration)."""
    if recording.samples is not None and len(recording.samples):
        s = np.asarray(recording.samples, dtype=float)
        s = s[np.isfinite(s).all(axis=1)]
        s = s[np.argsort(s[:, 0], kind="stable")]
        period = 1.0 / recording.sample_rate_hz if recording.sample_rate_hz else _median_period(s[:, 0])
        return _GazePoints(s[:, 0], s[:, 1], s[:, 2], np.full(len(s), period))
    fx = recording.fixations
    starts = np.array([f.start_s for f in fx], dtype=float)
    ends = np.array([f.end_s for f in fx], dtype=float)
    x = np.array([f.x for f in fx], dtype=float)
    y = np.array([f.y for f in fx], dtype=float)
    # For fixations ``t`` holds the start and ``w`` the end until the window clips them.
    return _GazePoints(starts, x, y, ends)


def _median_period(t: np.ndarray) -> float:
    if len(t) < 2:
        return 0.001
    d = np.diff(np.sort(t))
    d = d[d > 0]
    return float(np.median(d)) if len(d) else 0.001


def _window_points(
    recording: GazeRecording, points: _GazePoints, sentence: TimedSentence, config: KeyframeConfig
) -> _GazePoints:
    lo, hi = sentence.start_s - config.window_before_s, sentence.end_s
    if recording.samples is not None and len(recording.samples):
        i0, i1 = np.searchsorted(points.t, lo, side="left"), np.searchsorted(points.t, hi, side="right")
        return points.subset(slice(i0, i1))
    # Fixations: keep the part of each fixation inside the window; t = its middle.
    start = np.maximum(points.t, lo)
    end = np.minimum(points.w, hi)
    keep = end > start
    return _GazePoints((start[keep] + end[keep]) / 2, points.x[keep], points.y[keep], end[keep] - start[keep])


def _clean_points(points: _GazePoints, width: int, height: int, clip: tuple[float, float]) -> _GazePoints:
    """Drop points outside the image, then outside the (weighted) percentile band in x and y."""
    inside = (points.x >= 0) & (points.x < width) & (points.y >= 0) & (points.y < height)
    inside &= np.isfinite(points.x) & np.isfinite(points.y) & (points.w > 0)
    points = points.subset(inside)
    if len(points) < 3:
        return points
    keep = np.ones(len(points), dtype=bool)
    uniform = bool(np.all(points.w == points.w[0]))
    for coord in (points.x, points.y):
        if uniform:  # raw samples: plain percentiles (O(n) partition instead of a sort)
            lo, hi = np.percentile(coord, clip, method="inverted_cdf")
        else:
            lo, hi = _weighted_percentiles(coord, points.w, clip)
        keep &= (coord >= lo) & (coord <= hi)
    return points.subset(keep)


def _weighted_percentiles(values: np.ndarray, weights: np.ndarray, q: tuple[float, float]) -> tuple[float, float]:
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    total = cum[-1]
    # Value at which the cumulative weight crosses q% (inverted CDF, like np.percentile(method="inverted_cdf")).
    lo = v[min(np.searchsorted(cum, total * q[0] / 100.0, side="left"), len(v) - 1)]
    hi = v[min(np.searchsorted(cum, total * q[1] / 100.0, side="left"), len(v) - 1)]
    return float(lo), float(hi)


class _Grid:
    """The downscaled heatmap grid of one image."""

    def __init__(self, width: int, height: int, config: KeyframeConfig, ppd: tuple[float, float] | float):
        self.width, self.height = width, height
        ppd_x, ppd_y = _pair(ppd)
        sigma_px = min(ppd_x, ppd_y) * config.sigma_degrees
        self.scale = min(1.0, config.grid_long_side / max(width, height), config.cells_per_sigma / sigma_px)
        self.nx = max(1, math.ceil(width * self.scale))
        self.ny = max(1, math.ceil(height * self.scale))
        self.sigma_cells = (ppd_y * config.sigma_degrees * self.scale, ppd_x * config.sigma_degrees * self.scale)
        area_ratio = (self.scale / GAZEX_GRID_SCALE) ** 2
        self.min_samples = max(config.min_samples_floor, round(config.min_samples * min(1.0, area_ratio)))

    def heatmap(self, points: _GazePoints) -> np.ndarray:
        col = np.clip((points.x * self.scale).astype(np.int64), 0, self.nx - 1)
        row = np.clip((points.y * self.scale).astype(np.int64), 0, self.ny - 1)
        counts = np.bincount(row * self.nx + col, weights=points.w, minlength=self.nx * self.ny)
        heat = gaussian_filter(counts.reshape(self.ny, self.nx), sigma=self.sigma_cells, mode="constant", truncate=3.0)
        peak = heat.max()
        return heat / peak if peak > 0 else heat

    def box_of(self, rows: np.ndarray, cols: np.ndarray) -> Box:
        return Box(
            float(cols.min() / self.scale),
            float(rows.min() / self.scale),
            float(min((cols.max() + 1) / self.scale, self.width)),
            float(min((rows.max() + 1) / self.scale, self.height)),
        )

    def centroid_of(self, rows: np.ndarray, cols: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
        total = weights.sum()
        return (
            float(((cols + 0.5) * weights).sum() / total / self.scale),
            float(((rows + 0.5) * weights).sum() / total / self.scale),
        )


def _keyframes_for_points(
    sentence: TimedSentence, index: int, points: _GazePoints, grid: _Grid, config: KeyframeConfig
) -> SentenceKeyframes:
    empty = SentenceKeyframes(sentence, index, [], None, None, len(points))
    if len(points) == 0:
        return empty
    heat = grid.heatmap(points)
    rows, cols = np.nonzero(heat > config.heat_threshold)
    if len(rows) == 0:
        return empty
    intensity = heat[rows, cols]
    observation_box = grid.box_of(rows, cols)
    observation_centroid = grid.centroid_of(rows, cols, intensity)
    labels = _cluster_pixels(rows, cols, intensity, grid.min_samples, config)
    clues = _clues_from_clusters(rows, cols, intensity, labels, points, grid, config)
    return SentenceKeyframes(sentence, index, clues, observation_box, observation_centroid, len(points))


def _cluster_pixels(
    rows: np.ndarray, cols: np.ndarray, intensity: np.ndarray, min_samples: int, config: KeyframeConfig
) -> np.ndarray:
    """DBSCAN over hot pixels on StandardScaler(x, y) + intensity_weight x intensity (GazeX)."""
    xy = np.column_stack([cols, rows]).astype(float)
    std = xy.std(axis=0)
    std[std == 0] = 1.0
    features = np.column_stack([(xy - xy.mean(axis=0)) / std, config.intensity_weight * intensity])
    # GazeX's eps is in standardised units; on a coarse grid 0.3 std of a single small blob can be
    # less than one cell, which would leave every pixel without neighbours. Keep eps >= min_eps_cells.
    eps = max(config.eps, config.min_eps_cells / float(std.min()))
    # A core pixel needs min_samples pixels within eps; never ask for more than half the grid cells
    # inside the eps disk, or a compact blob (small image, low pixels-per-degree) would be all noise.
    radius_cells = eps * float(std.min())
    min_samples = min(min_samples, max(config.min_samples_floor, round(0.5 * math.pi * radius_cells**2)))
    with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
        return DBSCAN(eps=eps, min_samples=min_samples).fit_predict(features)


def _clues_from_clusters(
    rows: np.ndarray,
    cols: np.ndarray,
    intensity: np.ndarray,
    labels: np.ndarray,
    points: _GazePoints,
    grid: _Grid,
    config: KeyframeConfig,
) -> list[Clue]:
    """Each cluster -> a Clue; gaze points go to the cluster of their nearest hot pixel (KD-tree)."""
    cluster_ids = [c for c in np.unique(labels) if c >= 0]
    if not cluster_ids:
        return []
    # Query the tree once per occupied grid cell, not per gaze sample (1000 Hz windows hold thousands).
    cell_of_point, cell_xy = _occupied_cells(points, grid)
    tree = cKDTree(np.column_stack([cols + 0.5, rows + 0.5]))
    dist, nearest = tree.query(cell_xy, k=1)
    max_dist = config.max_assign_sigmas * max(grid.sigma_cells)
    point_cluster = np.where(dist <= max_dist, labels[nearest], -1)[cell_of_point]
    clues = []
    for cid in cluster_ids:
        in_cluster = labels == cid
        assigned = point_cluster == cid
        w = points.w[assigned]
        if w.sum() <= 0:
            continue  # a cluster no gaze point is nearest to has no time: not a key frame
        cx, cy = grid.centroid_of(rows[in_cluster], cols[in_cluster], intensity[in_cluster])
        clues.append(
            Clue(
                box_px=grid.box_of(rows[in_cluster], cols[in_cluster]),
                cx=cx,
                cy=cy,
                dwell_ms=float(w.sum() * 1000.0),
                t_mean_s=float((points.t[assigned] * w).sum() / w.sum()),
                n_pixels=int(in_cluster.sum()),
            )
        )
    clues.sort(key=lambda c: c.t_mean_s)
    return clues


def _occupied_cells(points: _GazePoints, grid: _Grid) -> tuple[np.ndarray, np.ndarray]:
    """Index of each point's grid cell among the occupied cells, and those cells' centres."""
    col = np.clip((points.x * grid.scale).astype(np.int64), 0, grid.nx - 1)
    row = np.clip((points.y * grid.scale).astype(np.int64), 0, grid.ny - 1)
    cells, cell_of_point = np.unique(row * grid.nx + col, return_inverse=True)
    return cell_of_point, np.column_stack([cells % grid.nx + 0.5, cells // grid.nx + 0.5])


def _pair(value: tuple[float, float] | float) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return float(value), float(value)
    return float(value[0]), float(value[1])
