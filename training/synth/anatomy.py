"""Normal chest anatomy on a frontal PA radiograph, as a density map (0 = air, higher = whiter).

Geometry is sampled once per study (``sample_anatomy``) and rendered as separate layers
(``render_layers``) so that findings can change the geometry (a bigger heart, a wider
mediastinum) or the lung aeration before the layers are combined. Image-left is the
patient's right (radiological convention).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import cv2
import numpy as np

from .resources import lung_masks

THORAX_HEIGHT_MM = 400.0  # the field of view of a PA film is ~35-43 cm
ASPECT = 0.83  # width / height of a MIMIC-CXR PA DICOM (2544 / 3056)


def image_shape(size: int) -> tuple[int, int]:
    """(height, width) of an image whose long (vertical) side is ``size``."""
    return size, int(round(size * ASPECT / 2) * 2)


@dataclass
class Anatomy:
    height: int
    width: int
    mask_index: int
    lung_box: tuple[float, float, float, float]  # x0, y0, x1, y1 of both lungs
    midline: float
    heart_ctr: float  # cardiothoracic ratio
    heart_bottom: float
    heart_half_height: float
    mediastinum_half_width: float  # upper mediastinum, px
    carina: tuple[float, float]
    trachea_half_width: float
    rib_spacing: float
    rib_phase: float
    has_breasts: bool
    lungs: np.ndarray = field(repr=False, default=None)  # (2, H, W) float32 soft masks, [image-left, image-right]
    lung_region: tuple[slice, slice] = field(repr=False, default=(slice(None), slice(None)))  # the masks are 0 outside
    side_regions: tuple = field(repr=False, default=((slice(None), slice(None)),) * 2)  # each lung's mask is 0 outside
    # side_box and lung_depth results; shared by dataclasses.replace copies, which keep the same lungs
    _side_boxes: dict = field(repr=False, compare=False, default_factory=dict)

    @property
    def pixel_spacing_mm(self) -> float:
        return THORAX_HEIGHT_MM / self.height

    @property
    def thoracic_width(self) -> float:
        return self.lung_box[2] - self.lung_box[0]

    @property
    def heart_width(self) -> float:
        return self.heart_ctr * self.thoracic_width

    @property
    def heart_extent(self) -> tuple[float, float]:
        """Image-x of the heart's right (image-left) and left (image-right) borders: 1/3 right of midline, 2/3 left."""
        return self.midline - 0.35 * self.heart_width, self.midline + 0.65 * self.heart_width

    @property
    def heart_top(self) -> float:
        return self.heart_bottom - 2 * self.heart_half_height

    def heart_box(self) -> tuple[float, float, float, float]:
        x0, x1 = self.heart_extent
        return x0, self.heart_top + 0.25 * self.heart_half_height, x1, self.heart_bottom

    def side_box(self, side: int) -> tuple[float, float, float, float]:
        """Bounding box of one lung (0 = image-left = patient right)."""
        if side not in self._side_boxes:
            inside = self.lungs[side] > 0.5
            rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
            self._side_boxes[side] = float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)
        return self._side_boxes[side]

    def lung_depth(self, side: int) -> np.ndarray:
        """OpenCV's 5x5 chamfer distance (px) from each pixel of one lung (mask > 0.5) to its edge; 0 outside."""
        key = ("depth", side)
        if key not in self._side_boxes:
            x0, y0, x1, y1 = (int(v) for v in self.side_box(side))
            # zeros all round (a 5x5 chamfer step spans 2 px): inside, the distances are those of the whole frame
            margin = 3
            where = slice(max(0, y0 - margin), y1 + margin), slice(max(0, x0 - margin), x1 + margin)
            depth = np.zeros((self.height, self.width), np.float32)
            depth[where] = cv2.distanceTransform((self.lungs[side][where] > 0.5).astype(np.uint8), cv2.DIST_L2, 5)
            self._side_boxes[key] = depth
        return self._side_boxes[key]

    def around_lung(self, side: int, margin: int) -> tuple[slice, slice]:
        """One lung's bounding box (mask > 0.5) grown by ``margin`` px, within the frame."""
        x0, y0, x1, y1 = (int(v) for v in self.side_box(side))
        return slice(max(0, y0 - margin), y1 + margin), slice(max(0, x0 - margin), x1 + margin)

    def lung_bottom_at(self, side: int, x: float) -> float:
        column = self.lungs[side][:, int(np.clip(x, 0, self.width - 1))]
        rows = np.nonzero(column > 0.5)[0]
        return float(rows.max()) if rows.size else self.lung_box[3]


def sample_anatomy(rng: np.random.Generator, size: int) -> Anatomy:
    height, width = image_shape(size)
    masks = lung_masks()
    index = int(rng.integers(len(masks)))
    x0 = width * rng.uniform(0.09, 0.13)
    x1 = width * rng.uniform(0.87, 0.91)
    y0 = height * rng.uniform(0.08, 0.13)
    y1 = height * rng.uniform(0.70, 0.78)
    lungs, lung_region, side_regions = _place_lungs(masks[index], (x0, y0, x1, y1), rng, height, width)
    midline = _midline(lungs, (x0 + x1) / 2)
    lung_h = y1 - y0
    return Anatomy(
        height=height,
        width=width,
        mask_index=index,
        lung_box=(x0, y0, x1, y1),
        midline=midline,
        heart_ctr=float(rng.uniform(0.40, 0.47)),
        heart_bottom=y1 - lung_h * rng.uniform(0.06, 0.10),
        heart_half_height=lung_h * rng.uniform(0.19, 0.23),
        mediastinum_half_width=width * rng.uniform(0.055, 0.07),
        carina=(midline + width * rng.uniform(-0.005, 0.005), y0 + lung_h * rng.uniform(0.33, 0.40)),
        trachea_half_width=width * rng.uniform(0.017, 0.022),
        rib_spacing=lung_h * rng.uniform(0.085, 0.10),
        rib_phase=float(rng.uniform(0, 1)),
        has_breasts=bool(rng.random() < 0.45),
        lungs=lungs,
        lung_region=lung_region,
        side_regions=side_regions,
    )


def _place_lungs(mask: np.ndarray, box, rng, height: int, width: int) -> tuple[np.ndarray, tuple[slice, slice], tuple]:
    """Warp one real lung mask (2, 256, 256) into ``box`` with a small random rotation and shear.

    Returns the (2, H, W) masks, the part of the frame outside which both are 0 and the same for each."""
    x0, y0, x1, y1 = box
    src_h, src_w = mask.shape[1:]
    angle = np.deg2rad(rng.uniform(-2.5, 2.5))
    shear = rng.uniform(-0.04, 0.04)
    sx, sy = (x1 - x0) / src_w, (y1 - y0) / src_h
    linear = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ np.array(
        [[sx, shear * sx], [0, sy]]
    )
    centre_src = np.array([src_w / 2, src_h / 2])
    centre_dst = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    affine = np.hstack([linear, (centre_dst - linear @ centre_src)[:, None]]).astype(np.float32)
    blur = max(1.0, height / 200)
    # Warp and blur only the part of the frame the mask can reach (its transformed corners, plus
    # twice the blur kernel's radius); the rest stays 0.
    corners = np.array([[0, 0], [src_w, 0], [0, src_h], [src_w, src_h]], np.float64)
    reached = corners @ affine[:, :2].T.astype(np.float64) + affine[:, 2].astype(np.float64)
    pad = int(np.ceil(8 * blur)) + 4
    rx0, ry0 = (max(0, int(np.floor(v)) - pad) for v in reached.min(axis=0))
    rx1, ry1 = min(width, int(np.ceil(reached[:, 0].max())) + pad), min(height, int(np.ceil(reached[:, 1].max())) + pad)
    shifted = affine.copy()
    shifted[:, 2] -= np.array([rx0, ry0], np.float32)
    out = np.zeros((2, height, width), np.float32)
    side_regions = []
    for side in range(2):
        warped = cv2.warpAffine(mask[side].astype(np.float32) / 255, shifted, (rx1 - rx0, ry1 - ry0), flags=cv2.INTER_LINEAR)
        reach = blur_reach(warped, blur)  # each lung covers about half the region
        if reach is None:
            side_regions.append((slice(0, 0), slice(0, 0)))
            continue
        (y0, y1), (x0, x1) = reach
        out[side, ry0 + y0 : ry0 + y1, rx0 + x0 : rx0 + x1] = cv2.GaussianBlur(np.ascontiguousarray(warped[y0:y1, x0:x1]), (0, 0), blur)
        side_regions.append((slice(ry0 + y0, ry0 + y1), slice(rx0 + x0, rx0 + x1)))
    return out, (slice(ry0, ry1), slice(rx0, rx1)), tuple(side_regions)


def blur_sparse(canvas: np.ndarray, sigma: float) -> np.ndarray:
    """``cv2.GaussianBlur(canvas, (0, 0), sigma)`` computed only around the canvas' nonzero pixels
    (a drawn line or device covers a small part of the frame; the blur of zeros is zero)."""
    out = np.zeros_like(canvas)
    reach = blur_reach(canvas, sigma)
    if reach is not None:
        (y0, y1), (x0, x1) = reach
        out[y0:y1, x0:x1] = cv2.GaussianBlur(np.ascontiguousarray(canvas[y0:y1, x0:x1]), (0, 0), sigma)
    return out


def blur_reach(canvas: np.ndarray, sigma: float) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """((y0, y1), (x0, x1)): the canvas' nonzero pixels' bounding box grown by twice OpenCV's kernel
    radius (4 sigma for float images), within the canvas; None when the canvas is all 0."""
    rows, cols = np.flatnonzero(canvas.any(axis=1)), np.flatnonzero(canvas.any(axis=0))
    if rows.size == 0:
        return None
    pad = int(np.ceil(8 * sigma)) + 4
    return ((max(0, rows[0] - pad), min(canvas.shape[0], rows[-1] + 1 + pad)),
            (max(0, cols[0] - pad), min(canvas.shape[1], cols[-1] + 1 + pad)))


def _midline(lungs: np.ndarray, fallback: float) -> float:
    """Halfway between the two lungs' medial edges."""
    right_cols = np.nonzero(lungs[0].max(axis=0) > 0.5)[0]
    left_cols = np.nonzero(lungs[1].max(axis=0) > 0.5)[0]
    if right_cols.size == 0 or left_cols.size == 0:
        return fallback
    return float((right_cols.max() + left_cols.min()) / 2)


# ---------------------------------------------------------------- rendering


@dataclass
class Layers:
    """Density layers of one image; ``combine`` turns them into the final density map."""

    tissue: np.ndarray  # soft tissue thickness, incl. heart and mediastinum
    air: np.ndarray  # how much aerated lung is seen (0-1)
    markings: np.ndarray  # lung vessel pattern, seen only where there is air
    bone: np.ndarray
    air_region: tuple[slice, slice] = (slice(None), slice(None))  # ``air`` is 0 outside
    _extra: np.ndarray | None = field(default=None, repr=False)

    @property
    def extra(self) -> np.ndarray:
        """Finding/device density added last; allocated when a finding first draws into it (0 until then)."""
        if self._extra is None:
            self._extra = np.zeros_like(self.tissue)
        return self._extra

    def combine(self) -> np.ndarray:
        """tissue + bone + extra - 0.42 air + 0.12 markings air, the air terms only where there is air."""
        density = self.tissue + self.bone
        if self._extra is not None:  # adding 0 would change nothing
            density += self._extra
        where = self.air_region
        air, lungs = self.air[where], density[where]
        term = np.multiply(air, np.float32(0.42))
        lungs -= term
        np.multiply(self.markings[where], np.float32(0.12), out=term)
        term *= air
        lungs += term
        return density


def grid(anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    return _grid(anatomy.height, anatomy.width)


@functools.lru_cache(maxsize=4)
def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


def smooth_step(x: np.ndarray, edge: float) -> np.ndarray:
    """0 below -edge, 1 above +edge, smooth in between."""
    t = x + edge  # in place from here on: same arithmetic, fewer full-frame temporaries
    t /= 2 * edge
    np.clip(t, 0, 1, out=t)
    shape = 3 - 2 * t
    t2 = t * t
    t2 *= shape
    return t2


def ellipse_patch(xs, ys, cx, cy, rx, ry, edge_px: float) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """A soft-edged ellipse inside its bounding box: (where, values); None when off the frame (it is 0 outside)."""
    reach = 1 + 2 * edge_px / min(rx, ry)
    x0, x1 = max(0, int(cx - rx * reach) - 1), min(xs.shape[1], int(cx + rx * reach) + 2)
    y0, y1 = max(0, int(cy - ry * reach) - 1), min(xs.shape[0], int(cy + ry * reach) + 2)
    if x0 >= x1 or y0 >= y1:
        return None
    sx, sy = xs[y0:y1, x0:x1], ys[y0:y1, x0:x1]
    r = np.sqrt(((sx - cx) / rx) ** 2 + ((sy - cy) / ry) ** 2)
    return (slice(y0, y1), slice(x0, x1)), smooth_step((1 - r) * min(rx, ry), edge_px)


def ellipse_mask(xs, ys, cx, cy, rx, ry, edge_px: float) -> np.ndarray:
    """Soft-edged ellipse; computed only inside its bounding box (it is exactly 0 outside)."""
    out = np.zeros(xs.shape, np.float32)
    add_ellipse(out, 1.0, xs, ys, cx, cy, rx, ry, edge_px)
    return out


def add_ellipse(out: np.ndarray, weight: float, xs, ys, cx, cy, rx, ry, edge_px: float) -> None:
    """``out += weight * ellipse_mask(...)``, touching only the ellipse's bounding box."""
    patch = ellipse_patch(xs, ys, cx, cy, rx, ry, edge_px)
    if patch is not None:
        where, values = patch
        out[where] += np.float32(weight) * values


def render_layers(anatomy: Anatomy, rng: np.random.Generator) -> Layers:
    xs, ys = grid(anatomy)
    heart = heart_mask(anatomy, xs, ys)
    mediastinum = mediastinum_mask(anatomy, xs, ys)
    where = anatomy.lung_region  # aerated lung only where the lung masks are
    lung_air = np.maximum(anatomy.lungs[0][where], anatomy.lungs[1][where])
    covered = np.maximum(heart[where], mediastinum[where])
    np.subtract(1, covered, out=covered)
    lung_air *= covered
    lung_air *= aeration_profile(anatomy, xs[where], ys[where])
    air = np.zeros((anatomy.height, anatomy.width), np.float32)
    air[where] = lung_air
    # the heart is seen only where it hides lung: over the spine it is as dense as the mediastinum
    tissue = body_tissue(anatomy, xs, ys).astype(np.float32, copy=False)
    add_gastric_bubble(tissue, anatomy, xs, ys)
    in_reach, trachea = trachea_patch(anatomy)  # the air column, 0 outside ``in_reach``
    tissue[in_reach] -= 0.22 * trachea
    if anatomy.has_breasts:
        add_breast_shadows(tissue, anatomy, xs, ys)
    return Layers(
        tissue=tissue,
        air=air,
        markings=lung_markings(anatomy, rng, xs, ys),
        bone=bones(anatomy, rng, xs, ys),
        air_region=where,
    )


def aeration_profile(anatomy: Anatomy, xs, ys) -> np.ndarray:
    """Lungs look darkest mid-zone and centrally; apices (overlying tissue) and periphery are greyer."""
    x0, y0, x1, y1 = anatomy.lung_box
    v = (ys[:, :1] - y0) / (y1 - y0)  # depends on y only: a column, broadcast below
    u = np.abs(xs[:1] - anatomy.midline) / ((x1 - x0) / 2)  # x only: a row
    return np.clip((0.72 + 0.35 * np.sin(np.pi * np.clip(v * 1.1, 0, 1))) - 0.15 * u**4, 0.55, 1).astype(np.float32)


def heart_mask(anatomy: Anatomy, xs, ys) -> np.ndarray:
    """Cardiac silhouette: narrow at the great vessels, widest low down, running into the diaphragm."""
    x_right, x_left = anatomy.heart_extent
    top, bottom = anatomy.heart_top, anatomy.heart_bottom
    ys = ys[:, :1]  # the row profile depends on y only; broadcast against xs below
    t = (ys - top) / (bottom - top)
    profile = np.sqrt(np.clip(1 - ((t - 0.68) / 0.68) ** 2, 0, 1))
    profile = np.where(t > 0.68, np.maximum(profile, 0.9), profile)  # stays wide down to the diaphragm
    waist = anatomy.mediastinum_half_width * 0.8
    right_half = np.maximum((anatomy.midline - x_right) * profile, waist)
    left_half = np.maximum((x_left - anatomy.midline) * profile, waist)
    rows = smooth_step(ys - top, anatomy.height * 0.01) * (1 - smooth_step(ys - (bottom + anatomy.height * 0.04), anatomy.height * 0.01))
    # The mask is exactly 0 outside the rows where ``rows`` > 0 and beyond the widest half-width
    # plus the edge: compute it only in that box.
    edge = anatomy.height * 0.004
    r0, r1 = _nonzero_span(rows[:, 0])
    out = np.zeros((anatomy.height, anatomy.width), np.float32)
    if r0 == r1:
        return out
    reach = float(max(right_half[r0:r1].max(), left_half[r0:r1].max())) + edge + 2
    c0, c1 = max(0, int(anatomy.midline - reach)), min(anatomy.width, int(anatomy.midline + reach) + 2)
    row = xs[:1, c0:c1]  # x only
    half = np.where(row < anatomy.midline, right_half[r0:r1], left_half[r0:r1])
    inside = smooth_step(half - np.abs(row - anatomy.midline), edge)
    np.multiply(inside, rows[r0:r1], out=out[r0:r1, c0:c1])
    return out


def _nonzero_span(values: np.ndarray) -> tuple[int, int]:
    """[first, last + 1) of the nonzero entries of a 1-D array; (0, 0) when there are none."""
    nonzero = np.flatnonzero(values)
    return (int(nonzero[0]), int(nonzero[-1]) + 1) if nonzero.size else (0, 0)


def mediastinum_mask(anatomy: Anatomy, xs, ys) -> np.ndarray:
    half = anatomy.mediastinum_half_width
    edge = anatomy.height * 0.004
    column = ys[:, :1]  # the width depends on y only
    top_width = half * (0.75 + 0.25 * np.clip((column - anatomy.lung_box[1]) / (anatomy.heart_top - anatomy.lung_box[1]), 0, 1))
    # a vertical band around the midline: exactly 0 further out than its widest half-width plus the edge
    reach = float(top_width.max()) + edge + 2
    c0, c1 = max(0, int(anatomy.midline - reach)), min(anatomy.width, int(anatomy.midline + reach) + 2)
    band = np.zeros((anatomy.height, anatomy.width), np.float32)
    strip = smooth_step(top_width - np.abs(xs[:1, c0:c1] - anatomy.midline), edge)
    strip *= column < anatomy.heart_top + anatomy.heart_half_height
    band[:, c0:c1] = strip
    knob_y = anatomy.heart_top - anatomy.heart_half_height * 0.15
    knob = ellipse_patch(xs, ys, anatomy.midline + half * 1.05, knob_y, half * 0.45, half * 0.4, edge)
    if knob is not None:
        where, values = knob
        np.maximum(band[where], values, out=band[where])
    return band


def trachea_patch(anatomy: Anatomy) -> tuple[tuple[slice, slice], np.ndarray]:
    """The trachea and main bronchi (air column, 0-1) inside the part of the frame it reaches: (where, values)."""
    cx, cy = anatomy.carina
    hw = anatomy.trachea_half_width
    top = (int(anatomy.midline), 0)
    carina = (int(cx), int(cy))
    length = anatomy.height * 0.07
    bronchi = [(int(cx + side * length * np.sin(angle)), int(cy + length * np.cos(angle)))
               for angle, side in ((np.deg2rad(35), -1), (np.deg2rad(50), 1))]  # right main bronchus is steeper
    # Drawn on the part of the frame the lines can reach (from the frame's top row, which cuts the
    # trachea as before): the same pixels as on a full frame, shifted.
    sigma = hw * 0.3
    margin = int(2 * hw) + int(np.ceil(8 * sigma)) + 8
    xs_reached = [top[0], carina[0]] + [x for x, _ in bronchi]
    x0 = max(0, min(xs_reached) - margin)
    x1 = min(anatomy.width, max(xs_reached) + margin)
    y1 = min(anatomy.height, max(carina[1], *(y for _, y in bronchi)) + margin)
    canvas = np.zeros((y1, x1 - x0), np.float32)
    shift = lambda point: (point[0] - x0, point[1])  # noqa: E731
    cv2.line(canvas, shift(top), shift(carina), 1.0, int(2 * hw), cv2.LINE_AA)
    for end in bronchi:
        cv2.line(canvas, shift(carina), shift(end), 0.8, int(1.3 * hw), cv2.LINE_AA)
    (r0, r1), (c0, c1) = blur_reach(canvas, sigma)  # what blur_sparse blurs; the lines make it nonempty
    patch = cv2.GaussianBlur(np.ascontiguousarray(canvas[r0:r1, c0:c1]), (0, 0), sigma)
    return (slice(r0, r1), slice(x0 + c0, x0 + c1)), patch


def body_tissue(anatomy: Anatomy, xs, ys) -> np.ndarray:
    w, h, mid = anatomy.width, anatomy.height, anatomy.midline
    column, row = ys[:, :1], xs[:1]  # the body's width depends on y only
    shoulder = np.clip(column / (0.12 * h), 0, 1)
    waist = np.clip((column - anatomy.lung_box[3]) / (0.25 * h), 0, 1)
    half_width = w * (0.17 + 0.33 * np.sqrt(shoulder) - 0.05 * waist)
    # between the shoulders and the lung bases the width is constant: compute each distinct row once
    widths, row_of = np.unique(half_width[:, 0], return_inverse=True)
    widths = widths[:, None]
    inside = smooth_step(widths - np.abs(row - mid), w * 0.015)
    thickness = np.sqrt(np.clip(1 - ((row - mid) / (widths + 1)) ** 2, 0, 1))
    return ((0.30 + 0.34 * thickness) * inside)[row_of]


def add_gastric_bubble(tissue: np.ndarray, anatomy: Anatomy, xs, ys) -> None:
    x = anatomy.midline + anatomy.thoracic_width * 0.22
    y = anatomy.lung_bottom_at(1, x) + anatomy.height * 0.045
    r = anatomy.width * 0.045
    add_ellipse(tissue, -0.12, xs, ys, x, y, r, r * 0.7, anatomy.height * 0.006)


def add_breast_shadows(tissue: np.ndarray, anatomy: Anatomy, xs, ys) -> None:
    y = anatomy.lung_box[3] - anatomy.height * 0.07
    ellipses = [(0.08, anatomy.midline + side * anatomy.thoracic_width * 0.3, y, anatomy.width * 0.2, anatomy.height * 0.12,
                 anatomy.height * 0.01) for side in (-1, 1)]
    add_ellipse_sum(tissue, ellipses, xs, ys)


def lung_markings(anatomy: Anatomy, rng: np.random.Generator, xs, ys) -> np.ndarray:
    """Branching vessels radiating from each hilum, fading towards the periphery."""
    scale = 0.5
    shape = (int(anatomy.height * scale), int(anatomy.width * scale))
    hila = hilum_points(anatomy)
    starts, wobbles = [], []
    for side, (hx, hy) in enumerate(hila):
        for _ in range(40):
            angle = rng.uniform(-np.pi * 0.55, np.pi * 0.7)  # 0 = lateral, negative = upwards
            starts.append((hx * scale, hy * scale, angle, -1 if side == 0 else 1))
            wobbles.append(rng.standard_normal(BRANCH_DRAWS))  # all of the branch's normal draws at once
    segments = branch_segments(np.array(starts), np.array(wobbles), anatomy.width * scale * 0.22, 5.0 * anatomy.height / 1024)
    # On a float canvas OpenCV draws LINE_AA as LINE_8 at the value 1.0, so the vessels are a 0/1
    # drawing: drawn here as uint8 LINE_8 (the same pixels), in any order.
    drawn = np.zeros(shape, np.uint8)
    for thickness, ends in segments.items():
        cv2.polylines(drawn, list(ends), False, 1, thickness, cv2.LINE_8)
    # The fade and the blur are smooth: apply them at the drawing's half scale, then upsample once.
    # 1.0 x fade is fade, so the fade is needed only where a vessel is drawn.
    on = np.flatnonzero(drawn)
    full_x, full_y = (grid.ravel()[on] for grid in _half_scale_grid(*shape))
    fade = np.zeros(on.size, np.float32)
    for hx, hy in hila:
        d = np.hypot(full_x - hx, (full_y - hy) * 0.8) / anatomy.thoracic_width
        fade = np.maximum(fade, np.clip(1.15 - 2.0 * d, 0.15, 1))
    canvas = np.zeros(shape, np.float32)
    canvas.ravel()[on] = fade
    canvas = cv2.GaussianBlur(canvas, (0, 0), max(0.8, anatomy.height / 500) * scale)
    canvas = cv2.resize(canvas, (anatomy.width, anatomy.height), interpolation=cv2.INTER_LINEAR)
    for hx, hy in hila:
        add_ellipse(canvas, 1.3, xs, ys, hx, hy, anatomy.width * 0.04, anatomy.height * 0.06, anatomy.height * 0.02)
    return np.clip(canvas, 0, 2, out=canvas)


@functools.lru_cache(maxsize=4)
def _half_scale_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Full-frame x and y of each pixel of a half-scale canvas (INTER_LINEAR's pixel centres)."""
    small_x, small_y = _grid(height, width)
    full_x, full_y = (small_x + 0.5) / 0.5 - 0.5, (small_y + 0.5) / 0.5 - 0.5
    full_x.flags.writeable = False
    full_y.flags.writeable = False
    return full_x, full_y


BRANCH_STEPS = 4
# A branch is 7 segments of 4 steps: a trunk, 2 children, 4 grandchildren. Each segment as
# (index of its first step's draw, parent segment, spread from the parent's direction). The
# draws are in depth-first order: a child's spread draw comes just before its steps' draws.
BRANCH_TREE = ((0, None, 0.0), (5, 0, -0.35), (10, 1, -0.35), (15, 1, 0.35), (20, 0, 0.35), (25, 4, -0.35), (30, 4, 0.35))
BRANCH_DRAWS = 34  # normal draws per branch: 7 x 4 steps, plus one spread per child


def branch_segments(starts: np.ndarray, wobbles: np.ndarray, length: float, thickness: float) -> dict[int, np.ndarray]:
    """End points of all branches' segments as int32 (n, 2, 2) arrays [[x0, y0], [x1, y1]] by line
    thickness. ``starts``: (branches, 4) x, y, angle, direction (-1 / 1); ``wobbles``: (branches, 34)
    standard normal draws. Each step turns by 0.25 x a draw and moves length / 4 (plus a slight drop);
    a child starts where its parent ends, turned by its spread + 0.1 x a draw, 0.6 x as long.
    The float arithmetic is the scalar recursion's, step by step (cumsum adds in order)."""
    direction = starts[:, 3:4]
    state = {}  # segment -> (x, y, angle) at its end, each (branches, 1), and its length and thickness
    segments: dict[int, list[np.ndarray]] = {}
    for node, (first, parent, spread) in enumerate(BRANCH_TREE):
        if parent is None:
            x, y, angle, seg_length, seg_thickness = starts[:, 0:1], starts[:, 1:2], starts[:, 2:3], length, thickness
        else:
            x, y, angle, seg_length, seg_thickness = state[parent]
            angle = angle + spread + 0.1 * wobbles[:, first - 1 : first]
            seg_length = seg_length * 0.6
        angles = np.cumsum(np.hstack([angle, 0.25 * wobbles[:, first : first + BRANCH_STEPS]]), axis=1)[:, 1:]
        step_x = direction * np.cos(angles) * seg_length / BRANCH_STEPS
        path_x = np.cumsum(np.hstack([x, step_x]), axis=1)  # x, then x after each step
        drop = np.full_like(step_x, seg_length / BRANCH_STEPS * 0.25)
        step_y = np.stack([np.sin(angles) * seg_length / BRANCH_STEPS, drop], axis=2).reshape(len(starts), -1)
        path_y = np.cumsum(np.hstack([y, step_y]), axis=1)[:, ::2]  # y + sin term + drop, in that order
        points = np.stack([path_x, path_y], axis=2).astype(np.int32)  # (branches, 5, 2); int(): towards zero
        for step in range(BRANCH_STEPS):
            segments.setdefault(max(1, int(round(seg_thickness))), []).append(points[:, step : step + 2])
            seg_thickness *= 0.85
        state[node] = (path_x[:, -1:], path_y[:, -1:], angles[:, -1:], seg_length, seg_thickness)
    return {key: np.concatenate(parts) for key, parts in segments.items()}


def hilum_points(anatomy: Anatomy) -> list[tuple[float, float]]:
    """(x, y) of the image-left (patient right) and image-right hila."""
    y = anatomy.carina[1] + anatomy.height * 0.06
    off = anatomy.mediastinum_half_width + anatomy.width * 0.035
    return [(anatomy.midline - off, y + anatomy.height * 0.01), (anatomy.midline + off, y - anatomy.height * 0.01)]


# Ribs and clavicles overwrite each other, each with one density (on a float canvas OpenCV draws
# LINE_AA as LINE_8): they are drawn as uint8 labels with LINE_8, the same pixels, then looked up.
POSTERIOR_RIB, ANTERIOR_RIB, CLAVICLE = 1, 2, 3
BONE_DENSITY = np.zeros(256, np.float32)
BONE_DENSITY[[POSTERIOR_RIB, ANTERIOR_RIB, CLAVICLE]] = 0.075, 0.035, 0.12


def bones(anatomy: Anatomy, rng: np.random.Generator, xs, ys) -> np.ndarray:
    drawn = np.zeros((anatomy.height, anatomy.width), np.uint8)
    draw_ribs(drawn, anatomy, rng)
    draw_clavicles(drawn, anatomy)
    canvas = np.zeros((anatomy.height, anatomy.width), np.float32)
    sigma = max(1.0, anatomy.height / 350)
    reach = blur_reach(drawn, sigma)  # what blur_sparse would blur
    if reach is not None:
        (y0, y1), (x0, x1) = reach
        canvas[y0:y1, x0:x1] = cv2.GaussianBlur(cv2.LUT(drawn[y0:y1, x0:x1], BONE_DENSITY), (0, 0), sigma)
    chest = 1 - smooth_step(ys[:, :1] - (anatomy.lung_box[3] + anatomy.height * 0.02), anatomy.height * 0.03)  # y only
    below = int(np.argmax(chest[:, 0] != 1)) if (chest != 1).any() else anatomy.height  # above it, x 1 is a no-op
    canvas[below:] *= chest[below:]
    band = spine_band(anatomy)  # the spine is 0 outside it; adding 0 is a no-op
    canvas[:, band] += spine(anatomy, xs[:, band], ys)
    add_shoulders(canvas, anatomy, xs, ys)
    return canvas


def add_shoulders(canvas: np.ndarray, anatomy: Anatomy, xs, ys) -> None:
    """Humeral heads and the lateral scapular borders at the top corners."""
    r = anatomy.width * 0.075
    ellipses = []
    for side in (-1, 1):
        x = anatomy.midline + side * anatomy.width * 0.47
        y = anatomy.lung_box[1] + anatomy.height * 0.01
        ellipses.append((0.16, x, y, r, r * 1.1, anatomy.height * 0.006))
        sx = anatomy.midline + side * anatomy.width * 0.36
        ellipses.append((0.05, sx, y + anatomy.height * 0.12, anatomy.width * 0.05, anatomy.height * 0.14, anatomy.height * 0.01))
    add_ellipse_sum(canvas, ellipses, xs, ys)


def add_ellipse_sum(canvas: np.ndarray, ellipses, xs, ys) -> None:
    """``canvas += sum of weight * ellipse_mask(...)`` for (weight, cx, cy, rx, ry, edge_px) in
    ``ellipses``: the sum is formed first (in order), only in the box the ellipses reach."""
    patches = [(weight, ellipse_patch(xs, ys, *shape)) for weight, *shape in ellipses]
    patches = [(weight, patch) for weight, patch in patches if patch is not None]
    if not patches:
        return
    y0, x0 = (min(patch[0][axis].start for _, patch in patches) for axis in (0, 1))
    y1, x1 = (max(patch[0][axis].stop for _, patch in patches) for axis in (0, 1))
    total = np.zeros((y1 - y0, x1 - x0), np.float32)
    for weight, ((rows, cols), values) in patches:
        total[rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0] += np.float32(weight) * values
    canvas[y0:y1, x0:x1] += total


def _polyline(canvas, points, label: int, thickness) -> None:
    pts = np.round(np.asarray(points) * 4).astype(np.int32)  # 2 fractional bits
    cv2.polylines(canvas, [pts], False, label, max(1, int(round(thickness))), cv2.LINE_8, shift=2)


def draw_ribs(canvas: np.ndarray, anatomy: Anatomy, rng) -> None:
    x0, y0, x1, y1 = anatomy.lung_box
    half = (x1 - x0) / 2 * 1.04
    thick = anatomy.height * 0.016
    t = np.linspace(0, 1, 40)
    for k in range(11):
        y_spine = y0 - anatomy.height * 0.045 + (k + anatomy.rib_phase * 0.3) * anatomy.rib_spacing
        for side in (-1, 1):
            # posterior rib: from the spine laterally, arching up then down at the chest wall
            px = anatomy.midline + side * (anatomy.width * 0.03 + t * half)
            py = y_spine - anatomy.height * 0.035 * np.sin(np.pi * t * 0.8) + anatomy.height * 0.06 * t**3
            _polyline(canvas, np.stack([px, py], 1), POSTERIOR_RIB, thick)
            # anterior rib: from the lateral end, sloping down towards the sternum, fainter
            ax = anatomy.midline + side * (half - t * half * 0.7)
            ay = py[-1] + anatomy.height * 0.11 * t - anatomy.height * 0.02 * np.sin(np.pi * t)
            _polyline(canvas, np.stack([ax, ay], 1), ANTERIOR_RIB, thick * 0.9)


def draw_clavicles(canvas: np.ndarray, anatomy: Anatomy) -> None:
    t = np.linspace(0, 1, 40)
    y_medial = anatomy.lung_box[1] + anatomy.height * 0.04
    for side in (-1, 1):
        x = anatomy.midline + side * (anatomy.width * 0.045 + t * anatomy.width * 0.34)
        y = y_medial - anatomy.height * 0.07 * t + anatomy.height * 0.012 * np.sin(2 * np.pi * t)
        _polyline(canvas, np.stack([x, y], 1), CLAVICLE, anatomy.height * 0.022)


def spine_band(anatomy: Anatomy) -> slice:
    """The columns the spine (half-width 4% of the image, soft edge 0.6%) can reach."""
    reach = anatomy.width * (0.04 + 0.006) + 2
    return slice(max(0, int(anatomy.midline - reach)), min(anatomy.width, int(anatomy.midline + reach) + 2))


def spine(anatomy: Anatomy, xs, ys) -> np.ndarray:
    half = anatomy.width * 0.04
    column = smooth_step(half - np.abs(xs[:1] - anatomy.midline), anatomy.width * 0.006)  # x only
    endplates = 0.5 + 0.5 * np.cos(2 * np.pi * ys[:, :1] / (anatomy.height * 0.038))  # y only
    return (column * (0.035 + 0.02 * endplates)).astype(np.float32)


def finish(density: np.ndarray, rng: np.random.Generator, height: int) -> np.ndarray:
    """Exposure, detector blur and quantum noise; returns intensities in 0-1 (1 = white).
    ``density`` is used as scratch space."""
    gain = rng.uniform(0.95, 1.2)
    bias = rng.uniform(-0.06, 0.04)
    gamma = rng.uniform(0.85, 1.15)
    image = density
    image *= np.float32(gain)
    image += np.float32(bias)
    np.clip(image, 0, 1, out=image)
    cv2.pow(image, gamma, dst=image)  # a quarter of np.power's time; differs from it only in the last bits
    image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.5, 1.3) * height / 1024)
    sigma = np.float32(rng.uniform(0.008, 0.02))
    noise = rng.standard_normal(size=image.shape, dtype=np.float32)  # float32 draws: half the time of float64
    noise *= sigma
    shading = np.clip(image, 0.05, 1)
    np.sqrt(shading, out=shading)
    shading *= cv2.GaussianBlur(noise, (0, 0), 0.7)
    image += shading
    return np.clip(image, 0, 1, out=image)
