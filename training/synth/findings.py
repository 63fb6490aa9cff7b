"""Findings: what is sampled for a study, and how each one changes the image.

Every finding is drawn into the density layers and gets one ground-truth box, measured from
what was drawn (tight around the visible abnormality), in image pixels.
Sides are the patient's: ``right`` is image-left (side index 0).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np

from gazex_core.vocab import SYNTH_FINDING_LABEL

from .anatomy import Anatomy, Layers, blur_sparse, grid, heart_mask, hilum_points, mediastinum_mask, smooth_step
from .resources import nih_box_centres

SIDES = ("right", "left")  # patient side for side index 0 (image-left) and 1 (image-right)
ZONES = ("upper", "mid", "lower")
KIND_WEIGHTS = {
    "cardiomegaly": 0.13,
    "enlarged_cardiomediastinum": 0.07,
    "pleural_effusion": 0.15,
    "pneumothorax": 0.09,
    "consolidation": 0.13,
    "atelectasis": 0.09,
    "nodule": 0.08,
    "mass": 0.05,
    "edema": 0.08,
    "support_device": 0.13,
}
NORMAL_FRACTION = 0.38
FINDING_COUNT_WEIGHTS = (0.55, 0.33, 0.12)  # 1, 2, 3 findings in an abnormal study
DEVICES = ("endotracheal_tube", "central_line", "pacemaker")
NIH_PRIOR = {"consolidation": "Pneumonia", "nodule": "Nodule", "mass": "Mass"}


@dataclass
class SynthFinding:
    kind: str  # key of SYNTH_FINDING_LABEL
    laterality: str | None = None
    location: str | None = None
    severity: str | None = None
    device: str | None = None  # for support_device
    params: dict = field(default_factory=dict)
    texture_seed: int = 0
    box: tuple[float, float, float, float] | None = None  # x_min, y_min, x_max, y_max px, set when drawn

    @property
    def label(self) -> str:
        return SYNTH_FINDING_LABEL[self.kind]

    @property
    def side_index(self) -> int | None:
        return SIDES.index(self.laterality) if self.laterality in SIDES else None


# ---------------------------------------------------------------- sampling


def sample_findings(rng: np.random.Generator, anatomy: Anatomy) -> list[SynthFinding]:
    if rng.random() < NORMAL_FRACTION:
        return []
    count = 1 + int(rng.choice(len(FINDING_COUNT_WEIGHTS), p=FINDING_COUNT_WEIGHTS))
    kinds, weights = list(KIND_WEIGHTS), np.array(list(KIND_WEIGHTS.values()))
    taken: set = set()
    findings: list[SynthFinding] = []
    for _ in range(20):
        if len(findings) == count:
            break
        kind = kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]
        finding = SAMPLERS[kind](rng, anatomy)
        slots = occupied_slots(finding)
        if slots & taken:
            continue
        taken |= slots
        finding.texture_seed = int(rng.integers(2**31))
        findings.append(finding)
    return findings


def occupied_slots(f: SynthFinding) -> set:
    """Parts of the chest a finding takes, so that two findings never hide each other."""
    side = f.laterality
    if f.kind in ("cardiomegaly", "enlarged_cardiomediastinum"):
        return {f.kind}
    if f.kind in ("nodule", "mass"):
        return {"lesion", (side, f.params["zone"])}
    if f.kind == "support_device":
        return {f.device}
    if f.kind == "edema":
        return {(s, z) for s in SIDES for z in ("mid",)} | {"edema"}
    if f.kind == "pleural_effusion":
        return {(side, "lower")} | ({(side, "mid")} if f.severity != "small" else set())
    if f.kind == "pneumothorax":
        return {(side, "upper"), (side, "pneumothorax")} | ({(side, "mid")} if f.location == "lateral" else set())
    if f.kind == "atelectasis":
        return {(side, "lower")}
    return {(side, f.params["zone"])}


def _severity(rng) -> str:
    return ("small", "moderate", "large")[int(rng.choice(3, p=(0.4, 0.4, 0.2)))]


def _side(rng) -> str:
    return SIDES[int(rng.integers(2))]


def sample_cardiomegaly(rng, anatomy) -> SynthFinding:
    severity = _severity(rng)
    lo, hi = {"small": (0.54, 0.57), "moderate": (0.58, 0.63), "large": (0.64, 0.70)}[severity]
    return SynthFinding("cardiomegaly", severity=severity, location="cardiac silhouette", params={"ctr": float(rng.uniform(lo, hi))})


def sample_mediastinum(rng, anatomy) -> SynthFinding:
    half = anatomy.width * float(rng.uniform(0.105, 0.135))
    return SynthFinding("enlarged_cardiomediastinum", laterality="midline", location="upper mediastinum", params={"half_width": half})


def sample_effusion(rng, anatomy) -> SynthFinding:
    return SynthFinding("pleural_effusion", laterality=_side(rng), location="base", severity=_severity(rng))


def sample_pneumothorax(rng, anatomy) -> SynthFinding:
    location = "apical" if rng.random() < 0.5 else "lateral"
    return SynthFinding("pneumothorax", laterality=_side(rng), location=location, severity=_severity(rng))


def _lung_point(rng, anatomy: Anatomy, kind: str, side: int, margin_px: float) -> tuple[float, float]:
    """A point well inside one lung, from the NIH box prior for the finding where one fits, else uniform."""
    inside = anatomy.lung_depth(side)
    x0, y0, x1, y1 = anatomy.lung_box
    prior = nih_box_centres().get(NIH_PRIOR.get(kind, ""), np.empty((0, 2)))
    for attempt in range(30):
        if attempt < 15 and len(prior):
            u, v = prior[int(rng.integers(len(prior)))] + rng.normal(0, 0.02, 2)
            # NIH images frame the lungs at roughly x 0.1-0.9, y 0.1-0.8 of the 1024 px square
            x = x0 + (u - 0.1) / 0.8 * (x1 - x0)
            y = y0 + (v - 0.1) / 0.7 * (y1 - y0)
        else:
            x, y = rng.uniform(x0, x1), rng.uniform(y0, y1)
        xi, yi = int(np.clip(x, 0, anatomy.width - 1)), int(np.clip(y, 0, anatomy.height - 1))
        if inside[yi, xi] > margin_px and not _over_heart(anatomy, x, y, margin_px):
            return float(x), float(y)
    ys, xs = np.nonzero(inside > max(margin_px * 0.5, 1))
    i = int(rng.integers(len(xs)))
    return float(xs[i]), float(ys[i])


def _over_heart(anatomy: Anatomy, x: float, y: float, margin: float) -> bool:
    hx0, hy0, hx1, hy1 = anatomy.heart_box()
    return hx0 - margin < x < hx1 + margin and y > hy0 - margin


def zone_of(anatomy: Anatomy, y: float) -> str:
    x0, y0, x1, y1 = anatomy.lung_box
    return ZONES[min(2, int(3 * (y - y0) / (y1 - y0)))]


def _placed(kind: str, rng, anatomy: Anatomy, radius_px: float, **extra) -> SynthFinding:
    side = int(rng.integers(2))
    x, y = _lung_point(rng, anatomy, kind, side, radius_px * 0.9)
    side = 0 if x < anatomy.midline else 1
    zone = zone_of(anatomy, y)
    return SynthFinding(kind, laterality=SIDES[side], location=f"{zone} zone", params={"x": x, "y": y, "r": radius_px, "zone": zone, **extra})


def sample_consolidation(rng, anatomy) -> SynthFinding:
    radius = anatomy.height * float(rng.uniform(0.055, 0.085))
    return _placed("consolidation", rng, anatomy, radius, bronchograms=bool(rng.random() < 0.5))


def sample_nodule(rng, anatomy) -> SynthFinding:
    diameter_mm = float(rng.uniform(16, 28))
    f = _placed("nodule", rng, anatomy, diameter_mm / 2 / anatomy.pixel_spacing_mm, diameter_mm=diameter_mm)
    f.severity = "small"
    return f


def sample_mass(rng, anatomy) -> SynthFinding:
    diameter_mm = float(rng.uniform(35, 60))
    f = _placed("mass", rng, anatomy, diameter_mm / 2 / anatomy.pixel_spacing_mm, diameter_mm=diameter_mm)
    f.severity = "large"
    return f


def sample_atelectasis(rng, anatomy) -> SynthFinding:
    return SynthFinding("atelectasis", laterality=_side(rng), location="base", params={"zone": "lower", "tilt": float(rng.uniform(-12, 12))})


def sample_edema(rng, anatomy) -> SynthFinding:
    return SynthFinding("edema", laterality="bilateral", location="perihilar", severity=("small", "moderate", "large")[int(rng.integers(3))])


def sample_device(rng, anatomy) -> SynthFinding:
    device = DEVICES[int(rng.choice(3, p=(0.3, 0.4, 0.3)))]
    if device == "endotracheal_tube":
        return SynthFinding("support_device", laterality="midline", location="trachea", device=device,
                            params={"tip_mm": float(rng.uniform(30, 60))})
    if device == "central_line":
        route = "right internal jugular" if rng.random() < 0.6 else "left subclavian"
        side = "right" if route.startswith("right") else "left"
        return SynthFinding("support_device", laterality=side, location=route, device=device)
    return SynthFinding("support_device", laterality="left", location="left chest wall", device=device)


SAMPLERS = {
    "cardiomegaly": sample_cardiomegaly,
    "enlarged_cardiomediastinum": sample_mediastinum,
    "pleural_effusion": sample_effusion,
    "pneumothorax": sample_pneumothorax,
    "consolidation": sample_consolidation,
    "atelectasis": sample_atelectasis,
    "nodule": sample_nodule,
    "mass": sample_mass,
    "edema": sample_edema,
    "support_device": sample_device,
}


# ---------------------------------------------------------------- drawing


def adjust_anatomy(anatomy: Anatomy, findings: list[SynthFinding]) -> Anatomy:
    """Findings that change the normal geometry (heart size, mediastinal width) act before rendering."""
    changes = {}
    for f in findings:
        if f.kind == "cardiomegaly":
            changes["heart_ctr"] = f.params["ctr"]
        elif f.kind == "enlarged_cardiomediastinum":
            changes["mediastinum_half_width"] = f.params["half_width"]
    return dataclasses.replace(anatomy, **changes) if changes else anatomy


def draw_findings(layers: Layers, anatomy: Anatomy, findings: list[SynthFinding]) -> None:
    """Draw every finding into ``layers`` (in place) and set each one's box."""
    xs, ys = grid(anatomy)
    for f in findings:
        rng = np.random.default_rng(f.texture_seed)
        mask = DRAWERS[f.kind](f, layers, anatomy, rng, xs, ys)
        f.box = box_of(mask) if mask is not None else None


def box_of(mask: np.ndarray, threshold: float = 0.3) -> tuple[float, float, float, float] | None:
    above = mask > threshold
    rows, cols = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
    if rows.size == 0:
        return None
    return float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)


def _opacify(layers: Layers, opacity: np.ndarray, where: tuple[slice, slice] = (slice(None), slice(None))) -> None:
    layers.air[where] *= 1 - np.clip(opacity, 0, 1)


def _in_frame(anatomy: Anatomy, values: np.ndarray, where: tuple[slice, slice]) -> np.ndarray:
    """A full-frame mask: ``values`` at ``where``, 0 elsewhere."""
    out = np.zeros((anatomy.height, anatomy.width), values.dtype)
    out[where] = values
    return out


def draw_cardiomegaly(f, layers, anatomy, rng, xs, ys):
    return heart_mask(anatomy, xs, ys) * (ys > anatomy.heart_top + anatomy.heart_half_height * 0.3) * (ys < anatomy.heart_bottom)


def draw_mediastinum(f, layers, anatomy, rng, xs, ys):
    upper = ys < anatomy.heart_top + anatomy.heart_half_height * 0.3
    return mediastinum_mask(anatomy, xs, ys) * upper * (ys > anatomy.lung_box[1])


def draw_effusion(f, layers, anatomy, rng, xs, ys):
    side = f.side_index
    where = anatomy.side_regions[side]  # the fluid is drawn inside this lung's mask, which is 0 elsewhere
    lung, xs, ys = anatomy.lungs[side][where], xs[where], ys[where]
    x0, y0, x1, y1 = anatomy.side_box(side)
    height = y1 - y0
    frac = {"small": 0.18, "moderate": 0.3, "large": 0.48}[f.severity] * rng.uniform(0.9, 1.1)
    lateral, medial = (x0, x1) if side == 0 else (x1, x0)
    u = np.clip((xs - medial) / (lateral - medial), 0, 1)
    top = y1 - frac * height - 0.14 * height * u**2  # meniscus climbs the lateral chest wall
    fluid = smooth_step(ys - top, anatomy.height * 0.012) * (lung > 0.05)
    _opacify(layers, 0.97 * fluid, where)
    layers.extra[where] += 0.03 * fluid * lung
    return _in_frame(anatomy, fluid * lung, where)


def draw_pneumothorax(f, layers, anatomy, rng, xs, ys):
    side = f.side_index
    # everything below lies inside the lung (mask > 0.5) or within a blur's reach (12 px) of it
    where = anatomy.around_lung(side, 32)
    lung_bin = (anatomy.lungs[side][where] > 0.5).astype(np.uint8)
    depth_to_edge = anatomy.lung_depth(side)[where]
    xs, ys = xs[where], ys[where]
    x0, y0, x1, y1 = anatomy.side_box(side)
    depth = anatomy.width * {"small": 0.04, "moderate": 0.06, "large": 0.09}[f.severity]
    if f.location == "apical":
        taper = 1 - smooth_step(ys - (y0 + 0.35 * (y1 - y0)), (y1 - y0) * 0.08)
    else:
        lateral_x = x0 if side == 0 else x1
        lateralness = np.clip(1 - np.abs(xs - lateral_x) / ((x1 - x0) * 0.7), 0, 1)
        taper = (1 - smooth_step(ys - (y0 + 0.7 * (y1 - y0)), (y1 - y0) * 0.08)) * smooth_step(lateralness - 0.3, 0.15)
    local_depth = depth * taper
    gap = (depth_to_edge < local_depth) & (lung_bin > 0) & (local_depth > 3)
    line_width = max(1.5, anatomy.height / 500)
    line = (np.abs(depth_to_edge - local_depth) < line_width) & (local_depth > 3) & (lung_bin > 0)
    gap_f = blur_sparse(gap.astype(np.float32), 1.0)
    layers.markings[where] *= 1 - gap_f  # no lung markings lateral to the pleural line
    layers.extra[where] -= 0.1 * gap_f
    layers.extra[where] += 0.16 * blur_sparse(line.astype(np.float32), 0.8)
    _opacify(layers, 0.12 * (lung_bin > 0) * (1 - gap_f), where)  # the collapsed lung is a little denser
    return _in_frame(anatomy, np.maximum(gap_f, line.astype(np.float32)), where)


def _blob(anatomy, rng, xs, ys, x, y, r, roughness: float, edge: float = 0.12) -> np.ndarray:
    """An irregular round shape (0-1) of radius ~r at (x, y).

    Computed only inside the square it can reach (the wobble adds at most 3 x roughness to the
    radius, the soft edge ``edge``); outside it is exactly 0.
    """
    reach = r * (1 + 3 * roughness) * (1 + edge) + 2
    y0, y1 = max(0, int(y - reach)), min(xs.shape[0], int(y + reach) + 2)
    x0, x1 = max(0, int(x - reach)), min(xs.shape[1], int(x + reach) + 2)
    out = np.zeros(xs.shape, np.float32)
    sx, sy = xs[y0:y1, x0:x1], ys[y0:y1, x0:x1]
    angle = np.arctan2(sy - y, sx - x)
    wobble = sum(rng.uniform(0, roughness) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    if y0 < y1 and x0 < x1:
        dist = np.hypot(sx - x, sy - y) / (r * (1 + wobble))
        out[y0:y1, x0:x1] = smooth_step(1 - dist, edge)
    return out


def draw_consolidation(f, layers, anatomy, rng, xs, ys):
    p = f.params
    side = f.side_index
    small = rng.normal(0, 1, (32, 32)).astype(np.float32)
    noise = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.5), (anatomy.width, anatomy.height), interpolation=cv2.INTER_CUBIC)
    shape = _blob(anatomy, rng, xs, ys, p["x"], p["y"], p["r"], 0.2, edge=0.3)
    opacity = np.clip(shape * (0.8 + 0.3 * noise), 0, 0.92) * anatomy.lungs[side]
    if p.get("bronchograms"):
        opacity *= 1 - 0.55 * _bronchograms(anatomy, rng, p, shape)
    _opacify(layers, opacity)
    return opacity / 0.92


def _bronchograms(anatomy, rng, p, shape) -> np.ndarray:
    canvas = np.zeros((anatomy.height, anatomy.width), np.float32)
    for _ in range(4):
        angle = rng.uniform(0, 2 * np.pi)
        start = np.array([p["x"], p["y"]]) + rng.normal(0, p["r"] * 0.2, 2)
        end = start + p["r"] * 0.7 * np.array([np.cos(angle), np.sin(angle)])
        cv2.line(canvas, tuple(int(v) for v in start), tuple(int(v) for v in end), 1.0, max(2, int(anatomy.height / 300)), cv2.LINE_AA)
    return blur_sparse(canvas, 1.0) * (shape > 0.6)


def draw_atelectasis(f, layers, anatomy, rng, xs, ys):
    side = f.side_index
    where = anatomy.side_regions[side]  # the band is cut to this lung's mask, which is 0 elsewhere
    xs, ys = xs[where], ys[where]
    x0, y0, x1, y1 = anatomy.side_box(side)
    cx = (x0 + x1) / 2 + rng.uniform(-0.08, 0.08) * (x1 - x0)
    cy = anatomy.lung_bottom_at(side, cx) - (y1 - y0) * rng.uniform(0.10, 0.14)
    length, thickness = (x1 - x0) * rng.uniform(0.30, 0.40), anatomy.height * rng.uniform(0.018, 0.026)
    angle = np.deg2rad(f.params["tilt"])
    u = (xs - cx) * np.cos(angle) + (ys - cy) * np.sin(angle)
    v = -(xs - cx) * np.sin(angle) + (ys - cy) * np.cos(angle)
    band = smooth_step(1 - np.hypot(u / length, v / thickness), 0.15) * anatomy.lungs[side][where]
    _opacify(layers, 0.95 * band, where)
    return _in_frame(anatomy, band, where)


def draw_lesion(f, layers, anatomy, rng, xs, ys):
    p = f.params
    roughness = 0.02 if f.kind == "nodule" else 0.08
    shape = _blob(anatomy, rng, xs, ys, p["x"], p["y"], p["r"], roughness)
    _opacify(layers, 0.92 * shape)
    return shape


def draw_edema(f, layers, anatomy, rng, xs, ys):
    strength = {"small": 0.6, "moderate": 0.7, "large": 0.8}[f.severity]
    small = rng.normal(0, 1, (24, 24)).astype(np.float32)
    noise = cv2.resize(cv2.GaussianBlur(small, (0, 0), 1.2), (anatomy.width, anatomy.height), interpolation=cv2.INTER_CUBIC)
    where = anatomy.lung_region  # the haze is cut to the lung masks, which are 0 elsewhere
    xs, ys, noise = xs[where], ys[where], noise[where]
    haze = np.zeros_like(xs)
    for hx, hy in hilum_points(anatomy):
        sx, sy = anatomy.thoracic_width * 0.17, anatomy.height * 0.14
        haze = np.maximum(haze, np.exp(-0.5 * (((xs - hx) / sx) ** 2 + ((ys - hy) / sy) ** 2)))
    lungs = np.maximum(anatomy.lungs[0][where], anatomy.lungs[1][where])
    opacity = np.clip(strength * haze * (1 + 0.2 * noise), 0, 0.9) * lungs
    _opacify(layers, opacity, where)
    return _in_frame(anatomy, opacity / strength, where)


def draw_device(f, layers, anatomy, rng, xs, ys):
    canvas = np.zeros((anatomy.height, anatomy.width), np.float32)
    DEVICE_DRAWERS[f.device](canvas, f, anatomy, rng)
    canvas = blur_sparse(canvas, 0.7)
    extra = layers.extra
    extra += canvas
    return canvas / max(canvas.max(), 1e-6)


def _curve(points: list[tuple[float, float]], n: int = 40) -> np.ndarray:
    """A smooth quadratic-spline-ish path through ``points``."""
    pts = np.asarray(points, float)
    t = np.linspace(0, 1, len(pts))
    tt = np.linspace(0, 1, n)
    return np.stack([np.interp(tt, t, pts[:, 0]), np.interp(tt, t, pts[:, 1])], 1)


def _draw_path(canvas, path: np.ndarray, value: float, thickness: float) -> None:
    path = cv2.GaussianBlur(path.reshape(-1, 1, 2).astype(np.float32), (1, 9), 0).reshape(-1, 2) if len(path) > 9 else path
    pts = np.round(path * 4).astype(np.int32)
    cv2.polylines(canvas, [pts], False, value, max(1, int(round(thickness))), cv2.LINE_AA, shift=2)


def draw_ett(canvas, f, anatomy, rng):
    cx, cy = anatomy.carina
    tip_y = cy - f.params["tip_mm"] / anatomy.pixel_spacing_mm
    path = _curve([(anatomy.midline + anatomy.width * 0.01, 0), (cx, tip_y)], 20)
    _draw_path(canvas, path, 0.22, anatomy.trachea_half_width * 1.1)
    _draw_path(canvas, path + [anatomy.trachea_half_width * 0.35, 0], 0.45, max(2, anatomy.height / 350))


def draw_central_line(canvas, f, anatomy, rng):
    cx, cy = anatomy.carina
    mid, w, h = anatomy.midline, anatomy.width, anatomy.height
    tip = (mid - w * 0.04, cy + h * rng.uniform(0.01, 0.05))
    if f.location == "right internal jugular":
        points = [(mid - w * 0.11, 0), (mid - w * 0.08, anatomy.lung_box[1]), (mid - w * 0.05, cy - h * 0.08), tip]
    else:
        y = anatomy.lung_box[1] + h * 0.05
        points = [(mid + w * 0.38, y - h * 0.02), (mid + w * 0.15, y + h * 0.01), (mid + w * 0.02, y + h * 0.04), tip]
    _draw_path(canvas, _curve(points, 60), 0.5, max(2, h / 300))


def draw_pacemaker(canvas, f, anatomy, rng):
    mid, w, h = anatomy.midline, anatomy.width, anatomy.height
    gx, gy = mid + w * rng.uniform(0.24, 0.30), anatomy.lung_box[1] + h * rng.uniform(0.04, 0.08)
    gw, gh = 50 / anatomy.pixel_spacing_mm / 2, 42 / anatomy.pixel_spacing_mm / 2
    cv2.ellipse(canvas, (int(gx), int(gy)), (int(gw), int(gh)), float(rng.uniform(-20, 20)), 0, 360, 0.9, -1, cv2.LINE_AA)
    ra = (mid - w * 0.04, anatomy.heart_top + anatomy.heart_half_height * 0.9)
    x_right, x_left = anatomy.heart_extent
    rv = (x_right + (x_left - x_right) * 0.55, anatomy.heart_bottom - h * 0.04)
    svc = (mid - w * 0.03, anatomy.carina[1])
    for end in (ra, rv):
        path = _curve([(gx - gw * 0.6, gy), (mid + w * 0.05, gy + h * 0.03), svc, end], 60)
        _draw_path(canvas, path, 0.55, max(2, h / 320))


DEVICE_DRAWERS = {"endotracheal_tube": draw_ett, "central_line": draw_central_line, "pacemaker": draw_pacemaker}
DRAWERS = {
    "cardiomegaly": draw_cardiomegaly,
    "enlarged_cardiomediastinum": draw_mediastinum,
    "pleural_effusion": draw_effusion,
    "pneumothorax": draw_pneumothorax,
    "consolidation": draw_consolidation,
    "atelectasis": draw_atelectasis,
    "nodule": draw_lesion,
    "mass": draw_lesion,
    "edema": draw_edema,
    "support_device": draw_device,
}
