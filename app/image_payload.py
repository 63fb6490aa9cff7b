"""The study image for the workstation, read from the study's server-side file only.

Pixels are decoded by ``gazex_core.imaging`` (the project's one image reader: DICOM modality/VOI LUT,
MONOCHROME1 inversion, PNG/JPEG), then packed by the workstation's ``image_payload`` into the contract's
16-bit ``rgb16`` PNG so the browser can still re-window finely. Built payloads are cached (LRU).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable

import numpy as np

CACHE_SIZE = 32
DISPLAY_LEVELS = 1023  # 10-bit grey levels across the VOI window: 4x finer than the 8-bit screen, a smaller PNG
DICOM_SUFFIXES = (".dcm", ".dicom", ".dic")


def dicom_pixel_spacing(path: str) -> list[float] | None:
    """PixelSpacing (or ImagerPixelSpacing) from a DICOM header, without decoding the pixels."""
    if not str(path).lower().endswith(DICOM_SUFFIXES):
        return None
    import pydicom

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # noqa: BLE001 - a header we cannot read only loses the ruler
        return None
    spacing = getattr(ds, "PixelSpacing", None) or getattr(ds, "ImagerPixelSpacing", None)
    return [float(spacing[0]), float(spacing[1])] if spacing else None


def load_study_image(path: str) -> dict[str, Any]:
    """The contract's ``image`` dict for a server-side study file (raises ImageInputError on a bad file)."""
    from gazex_core import imaging

    from .workstation import image_payload

    image = imaging.load_image(path)
    values = np.rint(np.clip(image.pixels, 0.0, 1.0) * DISPLAY_LEVELS).astype(np.uint16)
    # gazex_core.imaging already applied the VOI window and MONOCHROME1 inversion: 0-1 is the full window.
    return image_payload(values, photometric="MONOCHROME2", window=(DISPLAY_LEVELS / 2, DISPLAY_LEVELS),
                         pixel_spacing_mm=dicom_pixel_spacing(path))


class PayloadCache:
    """Small thread-safe LRU of built payloads keyed by image path (reopening a study is then instant)."""

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
