"""The one image pipeline: DICOM, PNG, JPEG (path or bytes) or a numpy array -> :class:`LoadedImage`.

Everything that reads a study image goes through :func:`load_image` — the model (``LoadedImage.pixels``),
the workstation payload (``LoadedImage.grey16()``: stored values + the VOI, so the browser windows across
the whole stored range), training, the synthesizer's checks and the importer. A ``LoadedImage`` carries:

* ``stored``: the decoded values as stored (grey: rows x cols; colour: rows x cols x 3 RGB — pydicom 3
  already converts YBR to RGB while decoding, so it is never converted twice; PALETTE COLOR goes through
  its LUT to RGB), ``rescale_slope`` / ``rescale_intercept`` and ``values`` (after the modality LUT);
* ``voi``: the VOI transform (:class:`Voi`): the first window with its VOI LUT function (LINEAR,
  LINEAR_EXACT, SIGMOID) or the first VOI LUT, else an automatic window (0.5-99.5 percentiles);
* header facts: photometric interpretation, pixel spacing (mm), modality, body part, view position, the
  burned-in-annotation flag, the transfer syntax; and ``warnings``.

Refusals raise :class:`ImageInputError` with one line naming the input and the reason: missing, empty,
truncated or non-image files, no pixel data, a decoder failure (the decoder's own reason, not cut),
multi-frame DICOM (GazeX reads single radiographs; the first-frame shortcut is not taken because a
multi-frame object is a cine, a volume or a series, never one chest film), sizes beyond
:class:`ImageLimits` (checked from the header, before decoding), blank or tiny images.

Drafting scope from the header is :func:`drafting_scope` (modality refused, body part / view warned).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np

MIN_SIDE_PX = 64  # smaller than this is not a radiograph we can read
DICOM_SUFFIXES = {".dcm", ".dicom", ".dic"}
RASTER_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm"}
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")
MAX_REASON_CHARS = 600  # a decoder's reason is kept whole up to here (pydicom's plugin errors run ~300)

ImageSource = Union[str, Path, bytes, np.ndarray, "LoadedImage"]


class ImageInputError(ValueError):
    """An input image that cannot be used (missing, corrupt, undecodable, too large, blank). One-line message."""


class OutOfScopeError(ImageInputError):
    """A readable image the model must not draft for (e.g. a CT slice). One-line message."""


# --------------------------------------------------------------------------- limits


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass(frozen=True)
class ImageLimits:
    """Refuse absurd inputs before decoding. Defaults from GAZEX_MAX_IMAGE_SIDE / _PIXELS / _FILE_MB."""

    max_side: int = 16384
    max_pixels: int = 100_000_000
    max_file_bytes: int = 1024 * 2**20
    min_side: int = MIN_SIDE_PX

    @classmethod
    def from_env(cls) -> "ImageLimits":
        d = cls()
        return cls(max_side=_env_int("GAZEX_MAX_IMAGE_SIDE", d.max_side),
                   max_pixels=_env_int("GAZEX_MAX_IMAGE_PIXELS", d.max_pixels),
                   max_file_bytes=_env_int("GAZEX_MAX_IMAGE_FILE_MB", d.max_file_bytes // 2**20) * 2**20)

    def check(self, name: str, rows: int, cols: int, frames: int = 1, samples: int = 1) -> None:
        if rows <= 0 or cols <= 0:
            raise ImageInputError(f"{name}: image size {cols}x{rows} in the header is not positive")
        if max(rows, cols) > self.max_side:
            raise ImageInputError(f"{name}: image is {cols}x{rows} px, larger than the limit of {self.max_side} px a side")
        if rows * cols * frames * samples > self.max_pixels:
            raise ImageInputError(f"{name}: image has {rows * cols * frames * samples:,} samples, more than the limit "
                                  f"of {self.max_pixels:,}")


DEFAULT_LIMITS = ImageLimits.from_env()


# --------------------------------------------------------------------------- VOI


@dataclass(frozen=True)
class Voi:
    """A VOI transform in modality-value units. ``kind``: "window" (from the header), "lut" (a VOI LUT from the
    header: ``lut`` holds its output for inputs ``lut_first`` .. ``lut_first + len(lut) - 1``) or "auto" (no VOI
    in the header: a percentile window). ``apply`` maps values to display 0-1 (before MONOCHROME1 inversion)."""

    kind: str
    center: float
    width: float
    function: str = "LINEAR"
    lut: np.ndarray | None = field(default=None, repr=False, compare=False)
    lut_first: int = 0
    explanation: str | None = None

    def apply(self, values: np.ndarray) -> np.ndarray:
        x = np.asarray(values, dtype=np.float64)
        if self.kind == "lut" and self.lut is not None:
            lut = self.lut.astype(np.float64)
            idx = np.clip(np.rint(x) - self.lut_first, 0, lut.size - 1).astype(np.int64)
            lo, hi = float(lut.min()), float(lut.max())
            out = (lut[idx] - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        else:
            out = window_function(x, self.center, self.width, self.function)
        return out.astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "center": self.center, "width": self.width, "function": self.function,
                "explanation": self.explanation}


def window_function(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 VOI LUT functions, output 0-1."""
    c, w = float(center), float(width)
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if function == "LINEAR_EXACT":
        return np.clip((x - c) / w + 0.5, 0.0, 1.0)
    if w <= 1:  # LINEAR with width 1 is a threshold at the centre
        return (x > c - 0.5).astype(np.float64)
    return np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)


def auto_window(values: np.ndarray, lo: float | None = None, hi: float | None = None) -> Voi:
    """A LINEAR_EXACT window from lo to hi (default: the 0.5-99.5 percentiles, else the full range)."""
    if lo is None or hi is None:
        sample = values[:: max(1, values.shape[0] // 512), :: max(1, values.shape[1] // 512)]
        lo, hi = (float(v) for v in np.percentile(sample, [0.5, 99.5]))
        if hi <= lo:  # very peaky histograms: the full range
            lo, hi = float(values.min()), float(values.max())
    width = max(float(hi) - float(lo), 1e-6)
    return Voi(kind="auto", center=(float(lo) + float(hi)) / 2.0, width=width, function="LINEAR_EXACT")


# --------------------------------------------------------------------------- the object


@dataclass(frozen=True)
class Grey16:
    """A grey image as 16-bit values with the VOI window in those units (what the workstation receives)."""

    values: np.ndarray  # uint16, rows x cols
    center: float
    width: float
    function: str
    photometric: str  # MONOCHROME1 or MONOCHROME2
    voi_kind: str


@dataclass
class LoadedImage:
    """One study image as read (see the module docstring). ``pixels`` is the model's input: grey float32 0-1,
    the VOI applied and MONOCHROME1 inverted so that bone is bright."""

    source: str
    kind: str  # "dicom", "raster" or "array"
    stored: np.ndarray
    values: np.ndarray  # grey values after the modality LUT (colour: luma of the RGB), float32
    voi: Voi
    photometric: str = "MONOCHROME2"
    bits_stored: int | None = None
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    pixel_spacing_mm: tuple[float, float] | None = None
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    burned_in_annotation: bool | None = None
    transfer_syntax: str | None = None
    warnings: list[str] = field(default_factory=list)
    _pixels: np.ndarray | None = field(default=None, repr=False)

    @property
    def height(self) -> int:
        return int(self.values.shape[0])

    @property
    def width(self) -> int:
        return int(self.values.shape[1])

    @property
    def is_colour(self) -> bool:
        return self.stored.ndim == 3

    @property
    def pixels(self) -> np.ndarray:
        if self._pixels is None:
            out = self.voi.apply(self.values)
            if self.photometric == "MONOCHROME1":
                out = 1.0 - out
            self._pixels = np.ascontiguousarray(out, dtype=np.float32)
        return self._pixels

    def header(self) -> dict[str, Any]:
        """The header facts as plain JSON values (None when the input has no such header)."""
        return {"modality": self.modality, "body_part": self.body_part, "view_position": self.view_position,
                "photometric": self.photometric, "pixel_spacing_mm": list(self.pixel_spacing_mm) if self.pixel_spacing_mm else None,
                "burned_in_annotation": self.burned_in_annotation, "transfer_syntax": self.transfer_syntax,
                "bits_stored": self.bits_stored}

    def grey16(self) -> Grey16:
        """The grey values as uint16 with the VOI window in the same units.

        Integer values that span at most 65 535 are kept exactly (shifted up when negative, e.g. CT); other
        values (floats, wider ranges, colour luma) are scaled linearly onto 0-65 535 and the window with them.
        A VOI LUT is sent as the linear window over the LUT's input range (the browser windows linearly).
        """
        v = self.values.astype(np.float64)
        lo, hi = float(v.min()), float(v.max())
        integral = (not self.is_colour) and bool(np.all(v == np.rint(v)))
        if integral and hi - lo <= 65535:
            offset, scale = (-lo if lo < 0 or hi > 65535 else 0.0), 1.0
        else:
            offset, scale = -lo, 65535.0 / max(hi - lo, 1e-12)
        values = np.clip(np.rint((v + offset) * scale), 0, 65535).astype(np.uint16)
        photometric = "MONOCHROME1" if self.photometric == "MONOCHROME1" else "MONOCHROME2"
        function = self.voi.function if self.voi.kind != "lut" else "LINEAR"
        return Grey16(values=values, center=(self.voi.center + offset) * scale, width=self.voi.width * scale,
                      function=function, photometric=photometric, voi_kind=self.voi.kind)


# --------------------------------------------------------------------------- helpers


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "no detail"
    text = f"{type(exc).__name__}: {text}"
    return text if len(text) <= MAX_REASON_CHARS else text[: MAX_REASON_CHARS - 1] + "…"


def _luma(rgb: np.ndarray) -> np.ndarray:
    a = rgb.astype(np.float32)
    return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114


def _is_grey_rgb(rgb: np.ndarray) -> bool:
    return bool(np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def _first_number(value: Any) -> float | None:
    """First value of a (possibly multi-valued) DICOM number; None when absent or not a number."""
    if value is not None and not isinstance(value, (str, bytes, int, float)):
        try:
            value = value[0]
        except (TypeError, IndexError, KeyError):
            return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(ds: Any, keyword: str) -> str | None:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed element reads as absent
        return None
    if value is None:
        return None
    text = str(value).strip().upper()
    return text or None


# --------------------------------------------------------------------------- DICOM


def _looks_like_dicom(head: bytes) -> bool:
    return len(head) >= 132 and head[128:132] == b"DICM"


def _read_dataset(data: bytes, name: str):
    import pydicom

    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken files
        raise ImageInputError(f"{name}: not a readable DICOM file ({_one_line(exc)})") from None
    if "PixelData" not in ds:
        what = _text(ds, "Modality")
        extra = f" (Modality {what})" if what else ""
        if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
            raise ImageInputError(f"{name}: float pixel data{extra} is not a radiograph")
        raise ImageInputError(f"{name}: no pixel data{extra}; not an image, or not a DICOM/PNG/JPEG file")
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        _infer_transfer_syntax(ds)
    return ds


def _infer_transfer_syntax(ds: Any) -> None:
    """A file without a meta header (a raw dataset): its encoding as read is its transfer syntax."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    implicit, little = getattr(ds, "original_encoding", (None, None))
    if implicit is None:
        return
    if ds.get("file_meta") is None:
        ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                                      ExplicitVRLittleEndian if little else ExplicitVRBigEndian)


def _header_int(ds: Any, keyword: str, name: str, default: int | None = None) -> int:
    raw = ds.get(keyword, default)
    if raw is None:
        raise ImageInputError(f"{name}: no {keyword} in the DICOM header")
    try:
        return int(raw)
    except (TypeError, ValueError):
        raise ImageInputError(f"{name}: {keyword} is {str(raw)!r}, not a whole number") from None


def _check_dicom_header(ds: Any, name: str, limits: ImageLimits) -> None:
    rows, cols = _header_int(ds, "Rows", name), _header_int(ds, "Columns", name)
    frames = _header_int(ds, "NumberOfFrames", name, 1)
    samples = _header_int(ds, "SamplesPerPixel", name, 1)
    _header_int(ds, "BitsAllocated", name)
    if frames > 1:
        raise ImageInputError(f"{name}: multi-frame DICOM ({frames} frames); GazeX reads single-frame radiographs, "
                              f"not cine, volumes or series")
    limits.check(name, rows, cols, frames, samples)


def _decode(ds: Any, name: str) -> np.ndarray:
    from pydicom.pixels import pixel_array

    try:
        return pixel_array(ds, as_rgb=True)  # YBR -> RGB once, here, by pydicom
    except Exception as exc:  # noqa: BLE001 - decoders raise many types
        ts = ds.file_meta.get("TransferSyntaxUID") if ds.get("file_meta") is not None else None
        where = f" [{ts.name}]" if ts is not None and hasattr(ts, "name") else ""
        raise ImageInputError(f"{name}: pixel data could not be decoded{where} ({_one_line(exc)})") from None


def _dicom_voi(ds: Any, values: np.ndarray, warns: list[str]) -> Voi:
    """The first VOI LUT (preferred, as pydicom does) or window of the header; else an automatic window."""
    seq = ds.get("VOILUTSequence")
    if seq:
        try:
            return _voi_lut(seq[0], ds, values)
        except Exception as exc:  # noqa: BLE001 - a broken VOI LUT falls back to the window / auto
            warns.append(f"VOI LUT could not be applied ({_one_line(exc)}); used the window instead")
    center, width = _first_number(ds.get("WindowCenter")), _first_number(ds.get("WindowWidth"))
    if center is not None and width is not None:
        function = _text(ds, "VOILUTFunction") or "LINEAR"
        if function not in VOI_FUNCTIONS:
            warns.append(f"VOI LUT function {function} is unknown; applied LINEAR")
            function = "LINEAR"
        if width >= 1.0 if function == "LINEAR" else width > 0.0:
            explanation = ds.get("WindowCenterWidthExplanation")
            return Voi(kind="window", center=center, width=width, function=function,
                       explanation=_first_text(explanation))
        warns.append(f"window width {width:g} is invalid for {function}; used an automatic window")
    return auto_window(values)


def _first_text(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) and hasattr(value, "__getitem__"):
        value = value[0] if len(value) else None
    return str(value) if value else None


def _voi_lut(item: Any, ds: Any, values: np.ndarray) -> Voi:
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_voi

    n, first = int(item.LUTDescriptor[0]) or 65536, int(item.LUTDescriptor[1])
    if first >= 2**15 and ds.get("PixelRepresentation", 0) == 1:
        first -= 2**16  # the descriptor's first value is US even when the pixels are signed
    probe = Dataset()
    probe.VOILUTSequence = [item]
    probe.BitsStored = ds.get("BitsStored", 16)
    probe.PixelRepresentation = ds.get("PixelRepresentation", 0)
    lut = apply_voi(np.arange(first, first + n, dtype=np.int64), probe, index=0)
    return Voi(kind="lut", center=first + n / 2.0, width=float(n), function="LINEAR",
               lut=np.asarray(lut, dtype=np.float64), lut_first=first,
               explanation=_first_text(item.get("LUTExplanation")))


def _read_dicom(data: bytes, name: str, limits: ImageLimits) -> LoadedImage:
    from pydicom.pixels import apply_color_lut, apply_modality_lut

    ds = _read_dataset(data, name)
    _check_dicom_header(ds, name, limits)
    photometric = _text(ds, "PhotometricInterpretation") or "MONOCHROME2"
    warns: list[str] = []
    stored = _decode(ds, name)
    slope = _first_number(ds.get("RescaleSlope")) or 1.0
    intercept = _first_number(ds.get("RescaleIntercept")) or 0.0
    if photometric == "PALETTE COLOR":
        try:
            stored = apply_color_lut(stored, ds)
        except Exception as exc:  # noqa: BLE001
            raise ImageInputError(f"{name}: PALETTE COLOR lookup table could not be applied ({_one_line(exc)})") from None
    if stored.ndim == 3:
        values, voi = _colour_values(stored, ds, name, photometric, warns)
    elif stored.ndim == 2:
        try:
            values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
        except Exception as exc:  # noqa: BLE001
            raise ImageInputError(f"{name}: modality LUT could not be applied ({_one_line(exc)})") from None
        voi = _dicom_voi(ds, values, warns)
    else:
        raise ImageInputError(f"{name}: decoded pixels have shape {tuple(stored.shape)}, not a single image")
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    burned = _text(ds, "BurnedInAnnotation")
    ts = ds.file_meta.get("TransferSyntaxUID") if ds.get("file_meta") is not None else None
    return LoadedImage(
        source=name, kind="dicom", stored=stored, values=values, voi=voi, photometric=photometric,
        bits_stored=_safe_int(ds.get("BitsStored")), rescale_slope=float(slope), rescale_intercept=float(intercept),
        pixel_spacing_mm=_spacing(spacing), modality=_text(ds, "Modality"), body_part=_text(ds, "BodyPartExamined"),
        view_position=_text(ds, "ViewPosition"), burned_in_annotation=None if burned is None else burned == "YES",
        transfer_syntax=getattr(ts, "name", None) if ts is not None else None, warnings=warns)


def _colour_values(rgb: np.ndarray, ds: Any, name: str, photometric: str, warns: list[str]) -> tuple[np.ndarray, Voi]:
    if rgb.shape[-1] != 3:
        raise ImageInputError(f"{name}: {rgb.shape[-1]} samples per pixel; expected 1 (grey) or 3 (colour)")
    if not _is_grey_rgb(rgb):
        what = "palette colour" if photometric == "PALETTE COLOR" else f"colour ({photometric})"
        warns.append(f"{what} image converted to grey; a chest X-ray is normally greyscale")
    if photometric == "PALETTE COLOR" or not np.issubdtype(rgb.dtype, np.integer):
        top = float(rgb.max() or 1)  # LUT entries use their 16 bits inconsistently (v or v << 8): window what is there
    else:
        top = float(2 ** (_safe_int(ds.get("BitsStored")) or rgb.dtype.itemsize * 8) - 1)
    values = _luma(rgb)
    return values, auto_window(values, 0.0, top)


def _safe_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _spacing(value: Any) -> tuple[float, float] | None:
    try:
        row, col = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError):
        return None
    return (row, col) if row > 0 and col > 0 else None


# --------------------------------------------------------------------------- PNG / JPEG / arrays


def _read_raster(data: bytes, name: str, limits: ImageLimits) -> LoadedImage:
    """PNG / JPEG (8 or 16-bit, grey or colour) through PIL: the size from the header first, then the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            cols, rows = image.size
            limits.check(name, rows, cols)
            image.load()  # a truncated or corrupt file raises here (PIL never prints; cv2 would)
            stored = _raster_array(image)
    except ImageInputError:
        raise
    except UnidentifiedImageError:
        raise ImageInputError(f"{name}: not a readable DICOM, PNG or JPEG image (unrecognised image data)") from None
    except Exception as exc:  # noqa: BLE001 - PIL raises many types (OSError, DecompressionBombError, ...)
        raise ImageInputError(f"{name}: image file is corrupt or truncated ({_one_line(exc)})") from None
    warns: list[str] = []
    if stored.ndim == 3:
        if not _is_grey_rgb(stored):
            warns.append("colour (RGB) image converted to grey; a chest X-ray is normally greyscale")
        values = _luma(stored)
        return LoadedImage(source=name, kind="raster", stored=stored, values=values, voi=auto_window(values, 0.0, 255.0),
                           photometric="RGB", bits_stored=8, warnings=warns)
    values = stored.astype(np.float32)
    voi = auto_window(values, 0.0, 255.0) if stored.dtype == np.uint8 else auto_window(values)
    return LoadedImage(source=name, kind="raster", stored=stored, values=values, voi=voi, photometric="MONOCHROME2",
                       bits_stored=stored.dtype.itemsize * 8, warnings=warns)


def _raster_array(image) -> np.ndarray:
    """Grey modes keep their values (8-bit, 16-bit, 32-bit int, float); everything else becomes 8-bit RGB."""
    if image.mode in ("L", "I;16", "I;16L", "I;16B", "I", "F"):
        arr = np.array(image)
        return arr.astype(np.uint16) if image.mode.startswith("I;16") else arr
    if image.mode in ("1", "LA", "La"):
        return np.array(image.convert("L"))
    return np.array(image.convert("RGB"))


def _from_array(arr: np.ndarray, name: str = "array") -> LoadedImage:
    """Any numeric 2-D / 3-D array: uint8 over 0-255, floats in 0-1 over 0-1, anything else a percentile window."""
    arr = np.asarray(arr)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ImageInputError(f"{name}: array of dtype {arr.dtype} is not an image")
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    warns: list[str] = []
    if arr.ndim == 3:
        if arr.shape[-1] not in (3, 4):
            raise ImageInputError(f"{name}: expected 1, 3 or 4 channels, got {arr.shape[-1]}")
        arr = arr[..., :3]
        if not np.allclose(arr[..., 0], arr[..., 1]) or not np.allclose(arr[..., 1], arr[..., 2]):
            warns.append("colour (RGB) image converted to grey; a chest X-ray is normally greyscale")
        values = _luma(arr)
    elif arr.ndim == 2:
        values = arr.astype(np.float32)
    else:
        raise ImageInputError(f"{name}: expected a 2-D grey or 3-D colour image, got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(values)):
        raise ImageInputError(f"{name}: image contains NaN or infinite values")
    if arr.dtype == np.uint8:
        voi = auto_window(values, 0.0, 255.0)
    elif values.size and values.min() >= 0 and values.max() <= 1:
        voi = auto_window(values, 0.0, 1.0)
    else:
        voi = auto_window(values)
    return LoadedImage(source=name, kind="array", stored=arr, values=values, voi=voi, warnings=warns)


# --------------------------------------------------------------------------- the one entry point


def _read_bytes_of(path: Path, limits: ImageLimits) -> bytes:
    if not path.exists():
        raise ImageInputError(f"{path}: no such file")
    if not path.is_file():
        raise ImageInputError(f"{path}: not a file")
    size = path.stat().st_size
    if size == 0:
        raise ImageInputError(f"{path.name}: empty file")
    if size > limits.max_file_bytes:
        raise ImageInputError(f"{path.name}: file is {size / 2**20:.0f} MiB, larger than the limit of "
                              f"{limits.max_file_bytes / 2**20:.0f} MiB")
    return path.read_bytes()


def _decode_any(data: bytes, name: str, suffix: str, limits: ImageLimits) -> LoadedImage:
    if not data:
        raise ImageInputError(f"{name}: empty file")
    if len(data) > limits.max_file_bytes:
        raise ImageInputError(f"{name}: input is {len(data) / 2**20:.0f} MiB, larger than the limit of "
                              f"{limits.max_file_bytes / 2**20:.0f} MiB")
    if _looks_like_dicom(data[:132]):
        return _read_dicom(data, name, limits)
    if data.startswith((b"\x89PNG", b"\xff\xd8\xff")) or suffix in RASTER_SUFFIXES:
        return _read_raster(data, name, limits)
    return _read_dicom(data, name, limits)  # DICOM without a preamble (or not an image: refused there)


def load_image(src: ImageSource, *, name: str | None = None, limits: ImageLimits | None = None) -> LoadedImage:
    """Read a DICOM / PNG / JPEG (path or bytes) or a numpy array; raise ImageInputError (one line) on bad input.

    ``name`` replaces the file name in messages (callers that must not show the original path pass their own).
    """
    if isinstance(src, LoadedImage):
        return src
    limits = limits or DEFAULT_LIMITS
    if isinstance(src, np.ndarray):
        image = _from_array(src, name or "array")
    elif isinstance(src, (bytes, bytearray, memoryview)):
        label = name or "image bytes"
        image = _decode_any(bytes(src), label, Path(label).suffix.lower(), limits)
    elif isinstance(src, (str, Path)):
        path = Path(src)
        data = _read_bytes_of(path, limits)
        image = _decode_any(data, name or path.name, path.suffix.lower(), limits)
    else:
        raise ImageInputError(f"unsupported image input of type {type(src).__name__}; give a path, bytes or a numpy array")
    return _validated(image, limits)


def _validated(image: LoadedImage, limits: ImageLimits) -> LoadedImage:
    h, w = image.values.shape
    if min(h, w) < limits.min_side:
        raise ImageInputError(f"{image.source}: image is {w}x{h} px, too small (need at least {limits.min_side} px a side)")
    pixels = image.pixels
    if float(pixels.max() - pixels.min()) < 1e-3 or float(pixels.std()) < 1e-3:
        raise ImageInputError(f"{image.source}: image is blank (constant pixel values after the VOI window)")
    image.warnings = list(image.warnings) + chest_warnings(pixels)
    return image


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


# --------------------------------------------------------------------------- drafting scope (header checks)

DRAFTING_MODALITIES = ("CR", "DX")
CHEST_ONLY_MODALITIES = ("DR", "OT")  # accepted only when the body part says chest
CHEST_BODY_PARTS = ("CHEST", "THORAX")
FRONTAL_VIEWS = ("PA", "AP")


def drafting_scope(image: LoadedImage) -> list[str]:
    """Header checks before drafting: refuse (OutOfScopeError) a modality GazeX does not draft for; return
    warnings for a body part or view position that is not chest / PA / AP. Inputs without a DICOM header
    (PNG, JPEG, arrays) have nothing to check here."""
    if image.kind != "dicom":
        return []
    refusal = modality_refusal(image)
    if refusal:
        raise OutOfScopeError(f"{image.source}: {refusal}")
    return scope_warnings(image)


def modality_refusal(image: LoadedImage) -> str | None:
    """Why the DICOM's modality is out of scope for drafting (None when it is in scope or there is no header)."""
    if image.kind != "dicom":
        return None
    modality, body = image.modality, image.body_part
    if modality in DRAFTING_MODALITIES or (modality in CHEST_ONLY_MODALITIES and body in CHEST_BODY_PARTS):
        return None
    why = "Modality missing" if modality is None else f"Modality {modality}"
    if modality in CHEST_ONLY_MODALITIES:
        why += f" with BodyPartExamined {body or 'missing'}"
    return f"{why} is out of scope for drafting; GazeX drafts chest radiographs (CR or DX, or DR/OT with BodyPartExamined CHEST)"


def header_reasons(image: LoadedImage) -> list[str]:
    """Every header reason against drafting, without raising: the modality refusal, then the scope warnings."""
    if image.kind != "dicom":
        return []
    refusal = modality_refusal(image)
    return ([refusal] if refusal else []) + scope_warnings(image)


def scope_warnings(image: LoadedImage) -> list[str]:
    body = image.body_part
    chest = body in CHEST_BODY_PARTS
    warns = []
    if not chest:
        warns.append(f"BodyPartExamined is {body}, not CHEST: the draft assumes a chest radiograph" if body else
                     "BodyPartExamined is missing: check that this is a chest radiograph")
    view = image.view_position
    if view not in FRONTAL_VIEWS:
        warns.append(f"ViewPosition is {view}, not PA or AP: GazeX was trained on frontal chest films" if view else
                     "ViewPosition is missing: check that this is a frontal (PA or AP) film")
    return warns


def resize_square(pixels: np.ndarray, size: int) -> np.ndarray:
    """Resize (stretch, no padding) to size x size with area interpolation; boxes stay normalised to the original."""
    import cv2

    return cv2.resize(pixels, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)


__all__ = ["ImageInputError", "OutOfScopeError", "ImageLimits", "DEFAULT_LIMITS", "Voi", "Grey16", "LoadedImage",
           "load_image", "drafting_scope", "modality_refusal", "header_reasons", "scope_warnings", "window_function", "auto_window", "chest_warnings", "resize_square"]
