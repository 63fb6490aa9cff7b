"""The review workstation: one ``gr.HTML`` custom component with bundled JavaScript and CSS.

The viewer (canvas: 16-bit image, VOI window, zoom/pan, boxes, animated trajectory) and the report panel
(per-sentence / per-box decisions, sign-off) run in the browser; every decision goes to Python through the
gr.HTML ``server_functions`` mechanism (``server.<name>(payload)`` in JS; the Python function receives the
payload dict as its single positional argument and may declare ``request: gr.Request``). See
docs/workstation_contract.md and docs/workstation.md.

Python side here: ``Workstation`` (the component) and ``workstation_value`` / ``image_payload`` (the value).
"""

from __future__ import annotations

import base64
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np

import gradio as gr

ASSET_DIR = Path(__file__).resolve().parent
DISPLAY_MAX = 1024  # longest side sent to the browser
SERVER_FUNCTION_NAMES = ("record_event", "decide_sentence", "add_sentence", "decide_box", "ask", "sign_off")
SIGNED_OFF_EVENT = "signed_off"  # trigger() event fired after a successful sign_off ack (payload: session_id, study_key, decision)

HTML_TEMPLATE = '<div class="gx-ws-host" data-testid="ws-host"></div>'

# The component injects its own stylesheet (a <style id="gx-ws-style"> in <head>) so it needs no launch(css=...);
# these stay empty for apps that pass them to launch() anyway.
CSS = ""
HEAD = ""


TEST_HOOKS_ENV = "GAZEX_TEST_HOOKS"  # "1": bundle the test getters and levers (tests and benchmarks only)
TEST_HOOKS_MARKER = "/*@GX_TEST_HOOKS@*/"
CONCERNS_MARKER = "/*@GX_CONCERNS@*/"
# The client by concern, in bundle order (each a part of workstation.js's one closure; see docs/workstation.md).
SHELL_JS = "workstation.js"
CONCERN_JS = ("transport.js", "viewer.js", "overlays.js", "report.js", "keyboard.js", "timing.js")
TEST_HOOKS_JS = "test_hooks.js"


def _read(name: str) -> str:
    return (ASSET_DIR / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _assets() -> tuple[str, str, str]:
    """(the shell with the concern files put in at its marker, the stylesheet, the test hooks)."""
    shell = _read(SHELL_JS)
    if shell.count(CONCERNS_MARKER) != 1 or shell.count(TEST_HOOKS_MARKER) != 1:
        raise ValueError(f"{SHELL_JS}: expected {CONCERNS_MARKER} and {TEST_HOOKS_MARKER} once each")
    concerns = "\n".join(_read(name) for name in CONCERN_JS)
    return shell.replace(CONCERNS_MARKER, concerns.strip()), _read("workstation.css"), _read(TEST_HOOKS_JS)


def test_hooks_enabled() -> bool:
    return os.environ.get(TEST_HOOKS_ENV, "").strip().lower() in ("1", "true", "yes")


def bundled_js(test_hooks: bool | None = None) -> str:
    """The js_on_load body: the stylesheet as a JS string constant, then workstation.js (the shell) with the concern
    files (CONCERN_JS) inside its closure; the test hooks (test_hooks.js) go in only when asked for or when
    GAZEX_TEST_HOOKS is set. Everything is read from this package: nothing loads from a CDN."""
    js, css, hooks = _assets()
    if test_hooks is None:
        test_hooks = test_hooks_enabled()
    return f"const GX_CSS = {json.dumps(css)};\n" + js.replace(TEST_HOOKS_MARKER, hooks if test_hooks else "")


def bundled_css() -> str:
    return _assets()[1]


class Workstation(gr.HTML):
    """The workstation component. ``server_functions``: the contract's Python callables (any subset; missing
    ones make the browser show "server function missing" on that action instead of silently dropping it).

    ``test_hooks``: bundle the test getters and levers (app/workstation/test_hooks.js); default: GAZEX_TEST_HOOKS.

    Events: ``.signed_off(fn, inputs, outputs)`` fires after the sign_off ack; ``gr.EventData._data`` carries
    ``{"session_id", "study_key", "decision"}`` so the app can open the next case.
    """

    def __init__(self, value: dict[str, Any] | None = None, *, server_functions: Iterable[Callable] | None = None,
                 test_hooks: bool | None = None, **kwargs: Any):
        fns = list(server_functions or [])
        names = [getattr(f, "__name__", "") for f in fns]
        unknown = [n for n in names if n not in SERVER_FUNCTION_NAMES]
        if unknown:
            raise ValueError(f"unknown workstation server functions {unknown}; expected names from {SERVER_FUNCTION_NAMES}")
        kwargs.setdefault("padding", False)
        kwargs.setdefault("apply_default_css", False)
        kwargs.setdefault("container", False)
        super().__init__(value=value, html_template=HTML_TEMPLATE, js_on_load=bundled_js(test_hooks),
                         server_functions=fns or None, **kwargs)

    def api_info(self) -> dict[str, Any]:  # the value is a JSON object, not an HTML string
        return {"type": "object"}


# --------------------------------------------------------------------------- value builder


def pack_rgb16_png(stored: np.ndarray, compression: int = 3) -> bytes:
    """uint16 H x W -> lossless PNG: R = high byte, G = low byte, B = 0 (the contract's ``rgb16`` encoding)."""
    values = np.ascontiguousarray(stored, dtype=np.uint16)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {values.shape}")
    bgr = np.zeros(values.shape + (3,), dtype=np.uint8)
    bgr[..., 2] = values >> 8      # R (cv2 writes BGR)
    bgr[..., 1] = values & 0xFF    # G
    ok, png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise ValueError("PNG encoding failed")
    return png.tobytes()


def unpack_rgb16_png(png: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("not a PNG")
    return (bgr[..., 2].astype(np.uint16) << 8) | bgr[..., 1].astype(np.uint16)


def display_size(width: int, height: int, longest: int = DISPLAY_MAX) -> tuple[int, int]:
    scale = min(1.0, longest / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def window_presets(stored: np.ndarray) -> dict[str, list[float]]:
    """Lung / mediastinum / bone windows (stored-value units) from the image's own histogram.

    Radiographs have no Hounsfield scale, so the presets are percentile windows: lung spans the central
    range (detail in the aerated lung), mediastinum a narrower window on the dense half, bone a wide window
    centred high. Background (exact min/max) is excluded so collimation does not widen the windows.
    """
    sample = stored[::2, ::2].ravel()
    lo, hi = int(sample.min()), int(sample.max())
    inner = sample[(sample > lo) & (sample < hi)]
    if inner.size < 16:
        inner = sample
    p1, p50, p70, p90, p99 = np.percentile(inner, [1, 50, 70, 90, 99]).tolist()
    span = max(p99 - p1, 1.0)
    return {
        "lung": [round(p50, 1), round(span, 1)],
        "mediastinum": [round(p70, 1), round(max(span * 0.5, 1.0), 1)],
        "bone": [round(p90, 1), round(max(span * 0.8, 1.0), 1)],
    }


def _to_stored(image: np.ndarray) -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr[..., :3].astype(np.float32), cv2.COLOR_RGB2GRAY) if arr.shape[-1] >= 3 else arr[..., 0]
    if arr.dtype == np.uint16:
        return arr
    if arr.dtype == np.uint8:
        return arr.astype(np.uint16) << 8 | arr.astype(np.uint16)   # 0-255 -> 0-65535 exactly (x * 257)
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and float(np.nanmax(arr)) <= 1.0 and float(np.nanmin(arr)) >= 0.0:
            return np.rint(np.nan_to_num(arr) * 65535.0).astype(np.uint16)
    return np.clip(np.rint(arr.astype(np.float64)), 0, 65535).astype(np.uint16)


def display_image(image: Any, *, photometric: str | None = None,
                  window: tuple[float, float] | None = None, pixel_spacing_mm: Iterable[float] | None = None,
                  original_size: tuple[int, int] | None = None, longest: int = DISPLAY_MAX,
                  voi_function: str | None = None) -> tuple[dict[str, Any], np.ndarray]:
    """(the contract's ``image`` fields except the pixels, the display-size stored values as uint16 H x W).

    ``image``: a ``gazex_core.imaging.LoadedImage``, a file path (read by ``gazex_core.imaging.load_image``,
    the project's one image reader), or a 2-D array (uint16 stored values, uint8, or float 0-1). A read image
    keeps its stored values, VOI window and function, photometric and pixel spacing.
    The long side is downscaled to ``longest`` for display (INTER_AREA); ``width``/``height`` stay the original
    size (boxes are normalised to it). ``window`` defaults to the image's VOI, else the lung preset.
    """
    info: dict[str, Any] = {}
    if isinstance(image, (str, Path)):
        from gazex_core.imaging import load_image

        image = load_image(image)
    if hasattr(image, "grey16"):  # a gazex_core LoadedImage
        grey = image.grey16()
        stored = grey.values
        header_voi = grey.voi_kind != "auto"  # no VOI in the file: open at the lung preset, as for arrays
        info = {"window": (grey.center, grey.width) if header_voi else None, "photometric": grey.photometric,
                "function": grey.function if header_voi else "LINEAR",
                "pixel_spacing_mm": list(image.pixel_spacing_mm) if image.pixel_spacing_mm else None}
    else:
        stored = _to_stored(image)
    if stored.ndim != 2:
        raise ValueError(f"expected a greyscale image, got shape {stored.shape}")
    h, w = stored.shape
    width, height = original_size if original_size else (w, h)
    dw, dh = display_size(w, h, longest)
    small = stored
    if (dw, dh) != (w, h):
        small = np.clip(np.rint(cv2.resize(stored.astype(np.float32), (dw, dh), interpolation=cv2.INTER_AREA)),
                        0, 65535).astype(np.uint16)
    presets = window_presets(small)
    win = window or info.get("window")
    if win is None:
        win = tuple(presets["lung"])
    photometric = photometric or info.get("photometric") or "MONOCHROME2"
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        photometric = "MONOCHROME2"
    spacing = list(pixel_spacing_mm) if pixel_spacing_mm is not None else info.get("pixel_spacing_mm")
    if spacing is not None and (width, height) != (w, h):
        # spacing is per original pixel of the array we were given; rescale to the declared original size
        spacing = [float(spacing[0]) * h / height, float(spacing[1]) * w / width]
    function = voi_function or info.get("function") or "LINEAR"
    fields = {
        "width": int(width), "height": int(height),
        "disp_width": int(dw), "disp_height": int(dh),
        "photometric": photometric,
        "window": {"center": float(win[0]), "width": float(win[1])},
        "voi_function": function,  # LINEAR / LINEAR_EXACT / SIGMOID (DICOM VOI LUT Function), for every window
        "presets": presets,
        "pixel_spacing_mm": [float(s) for s in spacing] if spacing else None,
    }
    return fields, np.ascontiguousarray(small, dtype=np.uint16)


def image_payload(image: Any, **kwargs: Any) -> dict[str, Any]:
    """The contract's ``image`` dict with the pixels inline (``png_b64``, the ``rgb16`` encoding); ``image`` and
    ``kwargs`` as for ``display_image``. (The app sends a URL to its image route instead: app/image_payload.py.)"""
    fields, small = display_image(image, **kwargs)
    return {"png_b64": base64.b64encode(pack_rgb16_png(small)).decode("ascii"), "encoding": "rgb16", **fields}


def _iou(a: dict[str, float], b: dict[str, float]) -> float:
    w = min(a["x_max"], b["x_max"]) - max(a["x_min"], b["x_min"])
    h = min(a["y_max"], b["y_max"]) - max(a["y_min"], b["y_min"])
    inter = max(w, 0.0) * max(h, 0.0)
    area = lambda r: (r["x_max"] - r["x_min"]) * (r["y_max"] - r["y_min"])  # noqa: E731
    union = area(a) + area(b) - inter
    return inter / union if union > 0 else 0.0


def evidence_links(sentences: Iterable[dict[str, Any]], min_iou: float = 0.5) -> dict[str, str]:
    """{impression sentence id: findings sentence id} for impression sentences that restate a findings sentence:
    same finding label and their boxes overlapping (IoU >= min_iou). Such a finding has one box, not two."""
    sentences = list(sentences)
    findings = [s for s in sentences if s.get("section", "findings") == "findings" and s.get("observation_box")]
    links: dict[str, str] = {}
    for s in sentences:
        if s.get("section") != "impression" or not s.get("observation_box") or not s.get("label"):
            continue
        same = [(f, _iou(f["observation_box"], s["observation_box"])) for f in findings if f.get("label") == s["label"]]
        same = [(f, iou) for f, iou in same if iou >= min_iou]
        if same:
            links[str(s["id"])] = str(max(same, key=lambda pair: pair[1])[0]["id"])
    return links


def workstation_value(bundle: dict[str, Any], image: dict[str, Any] | np.ndarray | str | Path, *,
                      session_id: int | None = None, study_key: str | None = None, readonly: bool = False,
                      sentence_state: dict[str, dict[str, Any]] | None = None,
                      box_state: dict[str, dict[str, Any]] | None = None,
                      added_sentences: Iterable[dict[str, Any]] = (), added_boxes: Iterable[dict[str, Any]] = (),
                      options: dict[str, Any] | None = None, **image_kwargs: Any) -> dict[str, Any]:
    """The component value (docs/workstation_contract.md) from an EvidenceBundle dict and an image.

    ``image``: a ready ``image`` dict (from ``image_payload``) or anything ``image_payload`` takes.
    ``sentence_state``: {sentence_id: {"status", "final_text"}} restored from the database;
    ``box_state``: {box_id: {"status", "x_min".."y_max"}} likewise; ``added_*``: reader-added items.
    ``options``: {"idle_ms": ...} (tests shorten the 60 s idle threshold).
    """
    img = image if isinstance(image, dict) else image_payload(image, **image_kwargs)
    if not isinstance(image, dict) and bundle.get("image"):
        bw, bh = bundle["image"].get("width"), bundle["image"].get("height")
        if bw and bh and (int(bw), int(bh)) != (img["width"], img["height"]):
            img = dict(img, width=int(bw), height=int(bh))
    if study_key is not None:
        img = dict(img, study_key=study_key)  # the browser shows an image only under the study it names
    sentence_state = sentence_state or {}
    box_state = box_state or {}
    draft = bundle.get("sentences", [])
    restates = evidence_links(draft)
    sentences, boxes = [], []
    box_of: dict[str, dict[str, Any]] = {}
    for s in draft:
        st = sentence_state.get(s["id"], {})
        sentences.append({
            "id": s["id"], "section": s.get("section", "findings"), "region": s.get("region"), "label": s.get("label"),
            "text": s.get("text", ""), "confidence": s.get("confidence"), "observation_box": s.get("observation_box"),
            "trajectory": s.get("trajectory", []), "status": st.get("status", "pending"),
            "final_text": st.get("final_text") if st.get("final_text") is not None else s.get("text", ""),
            "evidence_of": restates.get(s["id"]),
        })
        if s["id"] in restates:
            continue  # drawn once, as its findings sentence's box
        if s.get("observation_box"):
            bs = box_state.get(s["id"], {})
            coords = {k: (bs[k] if bs.get(k) is not None else s["observation_box"][k])
                      for k in ("x_min", "y_min", "x_max", "y_max")}
            box_of[s["id"]] = {"id": s["id"], "sentence_id": s["id"], "label": s.get("label"), **coords,
                               "status": bs.get("status", "pending"), "also": []}
            boxes.append(box_of[s["id"]])
    for impression_id, findings_id in restates.items():
        box_of[findings_id]["also"].append(impression_id)
    for a in added_sentences:
        sentences.append({"id": str(a["id"]), "section": a.get("section", "findings"), "region": None, "label": a.get("label"),
                          "text": a.get("text", ""), "confidence": None, "observation_box": None, "trajectory": [],
                          "status": "added", "final_text": a.get("final_text", a.get("text", ""))})
    for b in added_boxes:
        boxes.append({"id": str(b["id"]), "sentence_id": b.get("sentence_id"), "label": b.get("label"),
                      "x_min": b["x_min"], "y_min": b["y_min"], "x_max": b["x_max"], "y_max": b["y_max"],
                      "status": b.get("status", "added")})
    value = {
        "session_id": session_id, "study_key": study_key, "readonly": bool(readonly), "image": img,
        "sentences": sentences, "boxes": boxes, "findings": list(bundle.get("findings", [])),
        "warnings": list(bundle.get("scope_warnings", [])) + list(bundle.get("warnings", [])),
        "model": bundle.get("model"),
        "confidence_calibrated": bool((bundle.get("confidence") or {}).get("calibrated")),  # evidence schema 4 on
    }
    if options:
        value["options"] = dict(options)
    return value
