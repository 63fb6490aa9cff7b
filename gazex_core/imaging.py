"""Reading chest X-ray images for GazeX: DICOM, PNG/JPEG or a numpy array -> a float32 grey image in 0-1.

Everything that reads an image for the model (the app, the loaders, training) goes through
:func:`load_image`, so that a DICOM is windowed the same way everywhere:

* DICOM: modality LUT (rescale slope/intercept), then the VOI LUT or window centre/width when the
  file has one (first window), else a robust 0.5-99.5 percentile stretch of the stored bits
  (12/16-bit aware); MONOCHROME1 is inverted so that bone is bright; RGB is turned grey with a warning.
* PNG/JPEG (8 or 16-bit): read unchanged, RGB -> grey with a warning.
* numpy: 2-D (grey) or 3-D with 3/4 channels (RGB/RGBA -> grey with a warning); any dtype.

Bad input raises :class:`ImageInputError` with a one-line message (missing file, unreadable or
corrupt file, blank image, image too small). Images that read fine but do not look like a frontal
chest X-ray get a warning in ``LoadedImage.warnings`` instead (the bundle's low-confidence flag).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import numpy as np

MIN_SIDE_PX = 64  # smaller than this is not a radiograph we can read
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm"}

ImageSource = Union[str, Path, np.ndarray]


class ImageInputError(ValueError):
    """An input image that cannot be used (missing, corrupt, blank, tiny, wrong shape). The message is one line."""


@dataclass
class LoadedImage:
    """A grey image in 0-1 (float32, H x W) with its original size and anything worth flagging."""

    pixels: np.ndarray
    source: str
    warnings: list[str] = field(default_factory=list)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _stretch(arr: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    arr = arr.astype(np.float32, copy=False)
    if lo is None or hi is None:
        lo, hi = np.percentile(arr, [0.5, 99.5])
        if hi <= lo:  # very peaky histograms: fall back to the full range
            lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr, dtype=np.float32)
    return np.clip((arr - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def _rgb_to_grey(arr: np.ndarray, warns: list[str], what: str) -> np.ndarray:
    chans = arr.shape[-1]
    if chans == 4:
        arr = arr[..., :3]
    elif chans != 3:
        raise ImageInputError(f"{what}: expected 1, 3 or 4 channels, got {chans}")
    a = arr.astype(np.float32)
    if not (np.allclose(a[..., 0], a[..., 1]) and np.allclose(a[..., 1], a[..., 2])):
        warns.append("colour (RGB) image converted to grey; a chest X-ray is normally greyscale")
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _from_array(arr: np.ndarray, what: str, warns: list[str]) -> np.ndarray:
    """Any numeric 2-D/3-D array -> float32 grey 0-1 (uint8 /255, floats in 0-1 kept, else percentile stretch)."""
    arr = np.asarray(arr)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ImageInputError(f"{what}: array of dtype {arr.dtype} is not an image")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    is_u8 = arr.dtype == np.uint8
    if arr.ndim == 3:
        arr = _rgb_to_grey(arr, warns, what)
    if arr.ndim != 2:
        raise ImageInputError(f"{what}: expected a 2-D grey or 3-D colour image, got shape {tuple(arr.shape)}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise ImageInputError(f"{what}: image contains NaN or infinite values")
    if is_u8:
        return arr / 255.0
    if arr.min() >= 0 and arr.max() <= 1:
        return arr
    return _stretch(arr)


def read_dicom(path: Path) -> tuple[np.ndarray, list[str]]:
    """Pixels of a DICOM file as float32 0-1, windowed and MONOCHROME1-corrected."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    warns: list[str] = []
    try:
        ds = pydicom.dcmread(str(path))
        raw = ds.pixel_array
    except Exception as exc:  # pydicom raises many types for broken files
        raise ImageInputError(f"{path.name}: not a readable DICOM image ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})") from None
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if raw.ndim == 3 and int(getattr(ds, "SamplesPerPixel", 1)) == 1:
        raw = raw[0]  # multi-frame: first frame
        warns.append("multi-frame DICOM: only the first frame is read")
    if raw.ndim == 3:  # RGB / YBR
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            raw = convert_color_space(raw, photometric, "RGB")
        grey = _rgb_to_grey(raw, warns, path.name)
        if not any("colour" in w for w in warns):
            warns.append("colour (RGB) DICOM converted to grey")
        return _stretch(grey, 0.0, 255.0 if raw.dtype == np.uint8 else float(raw.max() or 1)), warns
    arr = apply_modality_lut(raw, ds).astype(np.float32)
    has_window = "WindowCenter" in ds and "WindowWidth" in ds
    has_voi = "VOILUTSequence" in ds
    if has_window or has_voi:
        try:
            windowed = apply_voi_lut(arr, ds, index=0).astype(np.float32)
            if has_voi:
                out = _stretch(windowed)
            else:
                wc = ds.WindowCenter
                ww = ds.WindowWidth
                wc = float(wc[0] if isinstance(wc, pydicom.multival.MultiValue) else wc)
                ww = float(ww[0] if isinstance(ww, pydicom.multival.MultiValue) else ww)
                out = _stretch(arr, wc - ww / 2.0, wc + ww / 2.0)
        except Exception:
            warns.append("DICOM window could not be applied; used a percentile stretch")
            out = _stretch(arr)
    else:
        out = _stretch(arr)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    return out, warns


def _read_raster(path: Path) -> tuple[np.ndarray, list[str]]:
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if img is None:
        raise ImageInputError(f"{path.name}: not a readable image file (corrupt or unsupported format)")
    warns: list[str] = []
    if img.ndim == 3:
        img = img[..., ::-1] if img.shape[-1] == 3 else img[..., [2, 1, 0, 3]]  # BGR(A) -> RGB(A)
        img = _rgb_to_grey(img, warns, path.name)
    top = 65535.0 if data.size and img.dtype == np.uint16 else 255.0
    if img.dtype == np.uint16:
        return _stretch(img), warns
    return np.clip(img.astype(np.float32) / top, 0, 1), warns


def chest_warnings(pixels: np.ndarray) -> list[str]:
    """Cheap checks that the image looks like a frontal chest X-ray; returns warnings (empty = looks fine)."""
    warns: list[str] = []
    h, w = pixels.shape
    aspect = w / h
    if not 0.6 <= aspect <= 1.6:
        warns.append(f"unusual aspect ratio {aspect:.2f} for a frontal chest X-ray")
    small = pixels[:: max(1, h // 128), :: max(1, w // 128)]
    if float(small.std()) < 0.06:
        warns.append("very low contrast image; it may not be a chest X-ray")
    # Frontal CXR: the mediastinum (central third) is brighter than the lung fields on both sides.
    hh, ww = small.shape
    mid = small[hh // 5 : 4 * hh // 5]
    thirds = [mid[:, int(ww * a) : int(ww * b)].mean() for a, b in ((0.12, 0.36), (0.4, 0.6), (0.64, 0.88))]
    if not (thirds[1] > thirds[0] + 0.02 and thirds[1] > thirds[2] + 0.02):
        warns.append("no bright central mediastinum between darker lungs; the image may not be a frontal chest X-ray")
    return warns


def load_image(src: ImageSource) -> LoadedImage:
    """Read a DICOM / PNG / JPEG path or a numpy array into a grey 0-1 image; raise ImageInputError on bad input."""
    if isinstance(src, LoadedImage):
        return src
    if isinstance(src, np.ndarray):
        warns: list[str] = []
        pixels, name = _from_array(src, "array", warns), "array"
    elif isinstance(src, (str, Path)):
        path = Path(src)
        if not path.exists():
            raise ImageInputError(f"{path}: no such file")
        if not path.is_file():
            raise ImageInputError(f"{path}: not a file")
        if path.stat().st_size == 0:
            raise ImageInputError(f"{path.name}: empty file")
        suffix = path.suffix.lower()
        if suffix in DICOM_SUFFIXES:
            pixels, warns = read_dicom(path)
        elif suffix in RASTER_SUFFIXES:
            pixels, warns = _read_raster(path)
        else:  # sniff: DICOM files carry 'DICM' at byte 128
            with open(path, "rb") as fh:
                head = fh.read(132)
            pixels, warns = read_dicom(path) if head[128:132] == b"DICM" else _read_raster(path)
        name = path.name
    else:
        raise ImageInputError(f"unsupported image input of type {type(src).__name__}; give a path or a numpy array")
    h, w = pixels.shape
    if min(h, w) < MIN_SIDE_PX:
        raise ImageInputError(f"{name}: image is {w}x{h} px, too small (need at least {MIN_SIDE_PX} px a side)")
    if float(pixels.max() - pixels.min()) < 1e-3 or float(pixels.std()) < 1e-3:
        raise ImageInputError(f"{name}: image is blank (constant pixel values)")
    warns = list(warns) + chest_warnings(pixels)
    return LoadedImage(pixels=np.ascontiguousarray(pixels, dtype=np.float32), source=name, warnings=warns)


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize (stretch, no padding) to size x size with area interpolation; boxes stay normalised to the original."""
    import cv2

    return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
