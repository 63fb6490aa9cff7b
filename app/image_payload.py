"""The study image for the workstation, read from the study's server-side file only, and served by URL.

``gazex_core.imaging.load_image`` (the project's one image reader) reads the file; the workstation's
``display_image`` gives the display-size stored values (16-bit) with the DICOM VOI window and function,
photometric and pixel spacing, so the browser's W/L, presets and "reset to the DICOM VOI" work across the whole
stored range. The pixels do not travel in the Gradio value: the value carries a ``StudyImage.reference`` (the
fields plus a URL naming the study key and the SHA-256 of the pixels), and the browser fetches the pixels from
the image route (app/image_route.py), which checks the sign-in and that the hash is the named study's image.
Built images are cached (LRU); opening a study warms the cache with the next study of the reader's worklist.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import quote

import numpy as np

log = logging.getLogger(__name__)

CACHE_SIZE = 32
WARM_NICE = 10  # niceness of the thread that builds the next study's image ahead of time
ROUTE_PREFIX = "/gazex/image"  # GET {ROUTE_PREFIX}/{study_key}/{sha256}: the pixels (app/image_route.py)
ENCODING = "u16le"  # row-major little-endian uint16 stored values, disp_width x disp_height
GZIP_LEVEL = 1  # fast: compressed once per image, then cached; the browser inflates off its main thread


@dataclass(frozen=True)
class StudyImage:
    """One study image at display size: the contract fields, the stored values, and the bytes the route serves."""

    fields: dict[str, Any]
    values: np.ndarray = field(repr=False)
    raw: bytes = field(repr=False)
    gzipped: bytes = field(repr=False)
    sha256: str

    @classmethod
    def build(cls, fields: dict[str, Any], values: np.ndarray) -> "StudyImage":
        little = values.astype("<u2", copy=False)
        raw = np.ascontiguousarray(little).tobytes()
        digest = hashlib.sha256(f"{values.shape[1]}x{values.shape[0]}:".encode() + raw).hexdigest()
        return cls(fields, values, raw, gzip.compress(raw, GZIP_LEVEL, mtime=0), digest)

    def reference(self, study_key: str) -> dict[str, Any]:
        """The value's ``image`` dict: the fields, the URL of the pixels (relative to the page) and their hash."""
        return {"url": image_url(study_key, self.sha256), "encoding": ENCODING, "sha256": self.sha256,
                "study_key": study_key, **self.fields}


def image_url(study_key: str, digest: str) -> str:
    return f"{ROUTE_PREFIX.lstrip('/')}/{quote(str(study_key), safe='')}/{digest}"


def load_study_image(path: str) -> StudyImage:
    """The display image of a server-side study file (raises ImageInputError, a ValueError, on a bad file)."""
    from gazex_core import imaging

    from .workstation import display_image

    return StudyImage.build(*display_image(imaging.load_image(path)))


class PayloadCache:
    """Small thread-safe LRU of built images keyed by image path (reopening a study is then instant)."""

    def __init__(self, loader: Callable[[str], Any], size: int = CACHE_SIZE):
        self._loader = loader
        self._size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._warming: set[str] = set()

    def __call__(self, image_path: str) -> Any:
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

    def __contains__(self, image_path: object) -> bool:
        with self._lock:
            return image_path in self._items

    def warm(self, image_path: str) -> None:
        """Builds the image in a background thread (at low CPU priority) unless cached or being built: the study the
        reader will probably open next then opens as fast as a reopen."""
        with self._lock:
            if image_path in self._items or image_path in self._warming:
                return
            self._warming.add(image_path)
        threading.Thread(target=self._warm, args=(image_path,), name="gazex-image-warm", daemon=True).start()

    def _warm(self, image_path: str) -> None:
        try:
            if hasattr(os, "setpriority"):  # this thread only (Linux): the open study's own work goes first
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_NICE)
            self(image_path)
        except Exception as exc:  # a bad file is reported when the study is opened; here it just stays cold
            log.info("warming the image %s failed: %s", image_path, exc)
        finally:
            with self._lock:
                self._warming.discard(image_path)


