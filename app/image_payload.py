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
from concurrent.futures import Future
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
    """One study image at display size: the contract fields, and the bytes the route serves (gzip of the stored
    values). Only the compressed bytes are kept (1.3 MB for 850 x 1024, against 4.8 MB with the array and the
    raw bytes as well): the cache holds up to CACHE_SIZE of them in the app process."""

    fields: dict[str, Any]
    shape: tuple[int, int]  # (rows, columns) of the stored values
    gzipped: bytes = field(repr=False)
    sha256: str

    @classmethod
    def build(cls, fields: dict[str, Any], values: np.ndarray) -> "StudyImage":
        raw = np.ascontiguousarray(values.astype("<u2", copy=False)).tobytes()
        digest = hashlib.sha256(f"{values.shape[1]}x{values.shape[0]}:".encode() + raw).hexdigest()
        return cls(fields, values.shape, gzip.compress(raw, GZIP_LEVEL, mtime=0), digest)

    @property
    def raw(self) -> bytes:
        """The stored values as row-major little-endian uint16 bytes (for a client that does not take gzip)."""
        return gzip.decompress(self.gzipped)

    @property
    def values(self) -> np.ndarray:
        return np.frombuffer(self.raw, dtype="<u2").reshape(self.shape)

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
    """Small thread-safe LRU of built images keyed by image path (reopening a study is then instant).

    An image is built once even when several callers want it at the same time (the open handler and the image route
    answering the fetch the browser started at the click): a later caller waits for the build that is running and
    gets its result (or its error). A build by the warm-up runs at low priority, so a caller does not wait for that
    one but builds the image itself (the first result is kept)."""

    def __init__(self, loader: Callable[[str], Any], size: int = CACHE_SIZE):
        self._loader = loader
        self._size = size
        self._items: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._building: dict[str, Future] = {}

    def __call__(self, image_path: str) -> Any:
        return self._get(image_path, background=False)

    def _get(self, image_path: str, background: bool) -> Any:
        with self._lock:
            if image_path in self._items:
                self._items.move_to_end(image_path)
                return self._items[image_path]
            running = self._building.get(image_path)
            if running is not None and (background or not running.background):
                wait_for = running
            else:
                wait_for, running = None, Future()
                running.background = background
                if image_path not in self._building or not background:
                    self._building[image_path] = running
        if wait_for is not None:
            return wait_for.result()
        try:
            payload = self._loader(image_path)
        except BaseException as exc:
            self._done(image_path, running)
            running.set_exception(exc)
            raise
        with self._lock:
            payload = self._items.setdefault(image_path, payload)  # a parallel foreground build may have won
            self._items.move_to_end(image_path)
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        self._done(image_path, running)
        running.set_result(payload)
        return payload

    def _done(self, image_path: str, build: Future) -> None:
        with self._lock:
            if self._building.get(image_path) is build:
                del self._building[image_path]

    def __contains__(self, image_path: object) -> bool:
        with self._lock:
            return image_path in self._items

    def warm(self, image_path: str) -> None:
        """Builds the image in a background thread (at low CPU priority) unless cached or being built: the study the
        reader will probably open next then opens as fast as a reopen."""
        with self._lock:
            if image_path in self._items or image_path in self._building:
                return
        threading.Thread(target=self._warm, args=(image_path,), name="gazex-image-warm", daemon=True).start()

    def _warm(self, image_path: str) -> None:
        try:
            if hasattr(os, "setpriority"):  # this thread only (Linux): the open study's own work goes first
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WARM_NICE)
            self._get(image_path, background=True)
        except Exception as exc:  # a bad file is reported when the study is opened; here it just stays cold
            log.info("warming the image %s failed: %s", image_path, exc)
