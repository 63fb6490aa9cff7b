"""The workstation's image payload: the study's stored values, downsampled, packed losslessly into a PNG.

The 16-bit stored value is packed as R = high byte, G = low byte (docs/workstation_contract.md), so the
browser applies the VOI window, presets and MONOCHROME1 inversion itself without another round trip.
Pixels are read by ``gazex_core.imaging`` from the study's server-side file only.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from typing import Any, Callable

import cv2
import numpy as np

DISPLAY_MAX = 1024  # longest side sent to the browser, in pixels
CACHE_SIZE = 32


def pack_rgb16_png(stored: np.ndarray) -> bytes:
    """uint16 H x W -> PNG bytes with R = high byte, G = low byte, B = 0."""
    values = np.ascontiguousarray(stored, dtype=np.uint16)
    rgb = np.zeros(values.shape + (3,), dtype=np.uint8)
    rgb[..., 0] = values >> 8
    rgb[..., 1] = values & 0xFF
    ok, png = cv2.imencode(".png", rgb[..., ::-1], [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise ValueError("PNG encoding failed")
    return png.tobytes()


def unpack_rgb16_png(png: bytes) -> np.ndarray:
    """Inverse of pack_rgb16_png (used by tests)."""
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    return (bgr[..., 2].astype(np.uint16) << 8) | bgr[..., 1].astype(np.uint16)


def display_size(width: int, height: int, longest: int = DISPLAY_MAX) -> tuple[int, int]:
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def window_presets(stored: np.ndarray) -> dict[str, list[float]]:
    """Lung / mediastinum / bone windows in stored-value units, from the image's own histogram.

    Radiographs have no Hounsfield scale, so the presets are percentile windows: lung spans the
    central range, mediastinum a narrower window on the dense half, bone a wide window near the top.
    """
    p1, p25, p50, p75, p90, p99 = np.percentile(stored[::4, ::4], [1, 25, 50, 75, 90, 99]).tolist()
    span = max(p99 - p1, 1.0)
    return {
        "lung": [round(p50, 1), round(span, 1)],
        "mediastinum": [round(p75, 1), round(max(span / 2, 1.0), 1)],
        "bone": [round(p90, 1), round(span * 1.3, 1)],
    }


def build_payload(stored: np.ndarray, *, photometric: str = "MONOCHROME2", window: tuple[float, float] | None = None,
                  pixel_spacing_mm: tuple[float, float] | None = None,
                  original_size: tuple[int, int] | None = None) -> dict[str, Any]:
    """Builds the contract's ``image`` dict from the full-resolution 16-bit values."""
    if stored.ndim != 2:
        raise ValueError(f"expected a 2-D greyscale image, got shape {stored.shape}")
    height, width = stored.shape
    if original_size is not None:
        width, height = original_size
    disp_w, disp_h = display_size(width, height)
    small = stored
    if (disp_w, disp_h) != (stored.shape[1], stored.shape[0]):
        small = cv2.resize(stored.astype(np.float32), (disp_w, disp_h), interpolation=cv2.INTER_AREA)
    small = np.clip(np.rint(small), 0, 65535).astype(np.uint16)
    presets = window_presets(small)
    center, width_w = window if window else presets["lung"]
    return {
        "png_b64": base64.b64encode(pack_rgb16_png(small)).decode("ascii"),
        "encoding": "rgb16",
        "width": int(width), "height": int(height),
        "disp_width": int(disp_w), "disp_height": int(disp_h),
        "photometric": photometric,
        "window": {"center": float(center), "width": float(width_w)},
        "presets": presets,
        "pixel_spacing_mm": list(pixel_spacing_mm) if pixel_spacing_mm else None,
    }


def dicom_pixel_spacing(path: str) -> list[float] | None:
    """PixelSpacing (or ImagerPixelSpacing) from a DICOM header, without reading the pixels."""
    if not str(path).lower().endswith((".dcm", ".dicom", ".dic")):
        return None
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - a header we cannot read only loses the ruler
        return None
    spacing = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    return [float(spacing[0]), float(spacing[1])] if spacing else None


class PayloadCache:
    """Small LRU of built payloads keyed by image path (reopening a study is then instant)."""

    def __init__(self, loader: Callable[[str], dict[str, Any]], size: int = CACHE_SIZE):
        self._loader = loader
        self._size = size
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, image_path: str) -> dict[str, Any]:
        with self._lock:
            if image_path in self._items:
                self._items.move_to_end(image_path)
                return self._items[image_path]
        payload = self._loader(image_path)
        with self._lock:
            self._items[image_path] = payload
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return payload
