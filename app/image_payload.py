"""The study image for the workstation, read from the study's server-side file only.

``gazex_core.imaging.load_image`` (the project's one image reader) reads the file; the workstation's
``image_payload`` packs its stored values (16-bit, the contract's ``rgb16`` PNG) with the DICOM VOI window
and function, photometric and pixel spacing, so the browser's W/L, presets and "reset to the DICOM VOI"
work across the whole stored range. Built payloads are cached (LRU).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable

CACHE_SIZE = 32


def load_study_image(path: str) -> dict[str, Any]:
    """The contract's ``image`` dict for a server-side study file (raises ImageInputError on a bad file)."""
    from gazex_core import imaging

    from .workstation import image_payload

    return image_payload(imaging.load_image(path))


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
