"""Test scaffolding: the workstation component alone, two sample studies with synthetic X-rays, in-memory server
functions (no database, no model).

Run: ``.venv/bin/python tests/workstation_demo.py [--port 7870]``. Used by tests/test_workstation_browser.py and
benchmarks/bench_workstation.py (``build_demo()`` returns (blocks, recorder)).
"""

from __future__ import annotations

import argparse
import threading
import time
from datetime import datetime, timezone
from typing import Any

import numpy as np

import gradio as gr

from app.workstation.component import Workstation, image_payload, workstation_value


def synthetic_cxr(width: int = 2000, height: int = 2400, seed: int = 0, bits: int = 12) -> np.ndarray:
    """A PA chest radiograph look-alike (uint16 stored values, MONOCHROME2: dense = bright)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height
    img = np.full((height, width), 0.05, np.float32)
    body = ((u - 0.5) / 0.46) ** 2 + ((v - 0.55) / 0.52) ** 2 < 1
    img[body] = 0.55
    for cx in (0.31, 0.69):  # lungs
        lung = ((u - cx) / 0.17) ** 2 + ((v - 0.47) / 0.3) ** 2 < 1
        img[lung] = 0.22 + 0.05 * np.sin(v[lung] * 60) ** 8  # ribs
    heart = ((u - 0.55) / 0.17) ** 2 + ((v - 0.62) / 0.13) ** 2 < 1
    img[heart] = 0.68
    spine = (np.abs(u - 0.5) < 0.045) & (v > 0.1)
    img[spine] = np.maximum(img[spine], 0.75)
    effusion = (u > 0.15) & (u < 0.43) & (v > 0.68) & (v < 0.8) & (((u - 0.31) / 0.17) ** 2 + ((v - 0.47) / 0.3) ** 2 < 1.1)
    img[effusion] = 0.5
    line = (np.abs(u - (0.36 + 0.1 * v)) < 0.004) & (v > 0.05) & (v < 0.42)
    img[line] = 0.95
    img = img + rng.normal(0, 0.015, img.shape).astype(np.float32)
    import cv2

    img = cv2.GaussianBlur(img, (0, 0), 3)
    top = (1 << bits) - 1
    return np.clip(np.rint(img * top), 0, top).astype(np.uint16)


def _traj(points: list[tuple[float, float, float]], clue: float = 0.05) -> list[dict[str, Any]]:
    return [{"x": x, "y": y, "dwell_ms": d,
             "clue_box": {"x_min": max(0, x - clue), "y_min": max(0, y - clue), "x_max": min(1, x + clue), "y_max": min(1, y + clue)}}
            for x, y, d in points]


def sample_bundle(variant: int = 0) -> dict[str, Any]:
    """An EvidenceBundle dict (gazex.evidence/1) for the synthetic image."""
    sentences = [
        {"id": "s1", "section": "findings", "region": "airway", "label": "No Finding",
         "text": "The trachea is midline.", "confidence": 0.97, "observation_box": None,
         "trajectory": _traj([(0.5, 0.12, 350), (0.5, 0.22, 420)])},
        {"id": "s2", "section": "findings", "region": "breathing", "label": "Pleural Effusion",
         "text": "Small right pleural effusion with blunting of the costophrenic angle.", "confidence": 0.91,
         "observation_box": {"x_min": 0.14, "y_min": 0.64, "x_max": 0.44, "y_max": 0.82},
         "trajectory": _traj([(0.3, 0.4, 300), (0.24, 0.66, 650), (0.3, 0.74, 900), (0.38, 0.78, 500)])},
        {"id": "s3", "section": "findings", "region": "cardiac", "label": "Cardiomegaly",
         "text": "The cardiac silhouette is enlarged.", "confidence": 0.84,
         "observation_box": {"x_min": 0.38, "y_min": 0.49, "x_max": 0.73, "y_max": 0.76},
         "trajectory": _traj([(0.45, 0.55, 400), (0.62, 0.62, 700), (0.55, 0.72, 350)], 0.08)},
        {"id": "s4", "section": "findings", "region": "foreign_bodies", "label": "Support Devices",
         "text": "Right internal jugular central venous catheter with the tip in the SVC.", "confidence": 0.42,
         "observation_box": {"x_min": 0.33, "y_min": 0.04, "x_max": 0.43, "y_max": 0.43},
         "trajectory": _traj([(0.37, 0.1, 300), (0.39, 0.3, 450), (0.4, 0.41, 600)], 0.04)},
        {"id": "i1", "section": "impression", "region": None, "label": "Cardiomegaly",
         "text": "Cardiomegaly with a small right pleural effusion.", "confidence": 0.88,
         "observation_box": None, "trajectory": []},
        {"id": "i2", "section": "impression", "region": None, "label": "Pleural Effusion",   # restates s2: one box
         "text": "Small right pleural effusion.", "confidence": 0.79,
         "observation_box": {"x_min": 0.145, "y_min": 0.64, "x_max": 0.44, "y_max": 0.815}, "trajectory": []},
    ]
    if variant:
        sentences = [s for s in sentences if s["id"] != "s4"]
    return {"schema": "gazex.evidence/1", "model": {"name": "gazex-demo", "version": "0"},
            "image": {"width": 2000, "height": 2400}, "sentences": sentences,
            "findings": [{"label": "Pleural Effusion", "probability": 0.91}, {"label": "Cardiomegaly", "probability": 0.84}],
            "timing_ms": {}, "warnings": [] if not variant else ["low image contrast"]}


class Recorder:
    """In-memory 'database': every server-function call with its arguments, in order; optional failure injection."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.fail_next = 0          # raise on the next n calls (the browser must retry)
        self.refuse_next = 0        # answer {"ok": False, "retry": False} on the next n calls
        self.delay_s = 0.0
        self._lock = threading.Lock()
        self._seq = 0

    def calls_of(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [a for n, a in self.calls if n == name]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    def _record(self, name: str, data: Any) -> dict[str, Any]:
        if self.delay_s:
            time.sleep(self.delay_s)
        with self._lock:
            if self.fail_next > 0:
                self.fail_next -= 1
                raise RuntimeError("injected failure")
            if self.refuse_next > 0:
                self.refuse_next -= 1
                return {"ok": False, "error": "refused (demo)", "retry": False}
            self._seq += 1
            self.calls.append((name, dict(data) if isinstance(data, dict) else {"_": data}))
            ack = {"ok": True, "seq": self._seq, "server_ts": datetime.now(timezone.utc).isoformat(timespec="milliseconds")}
        if name == "add_sentence":
            ack["sentence_id"] = f"a{self._seq}"
        if name == "decide_box" and isinstance(data, dict) and data.get("decision") == "added":
            ack["box_id"] = f"b{self._seq}"
        return ack

    def server_functions(self) -> list:
        rec = self

        def record_event(data):
            return rec._record("record_event", data)

        def decide_sentence(data):
            return rec._record("decide_sentence", data)

        def add_sentence(data):
            return rec._record("add_sentence", data)

        def decide_box(data):
            return rec._record("decide_box", data)

        def sign_off(data):
            return rec._record("sign_off", data)

        def ask(data):
            rec._record("ask", data)
            return {"ok": True, "answer": "Yes — a small right pleural effusion (demo answer).",
                    "box": {"x_min": 0.14, "y_min": 0.64, "x_max": 0.44, "y_max": 0.82}}

        return [record_event, decide_sentence, add_sentence, decide_box, ask, sign_off]


_IMAGES: dict[int, dict[str, Any]] = {}


def study_value(index: int, *, idle_ms: int | None = None, photometric: str = "MONOCHROME2", **state: Any) -> dict[str, Any]:
    key = (index, photometric)
    if key not in _IMAGES:
        raw = synthetic_cxr(seed=index)
        if photometric == "MONOCHROME1":
            raw = (4095 - raw).astype(np.uint16)
        _IMAGES[key] = image_payload(raw, photometric=photometric, window=(2048.0, 4096.0), pixel_spacing_mm=(0.15, 0.15))
    return workstation_value(sample_bundle(index % 2), _IMAGES[key], session_id=100 + index, study_key=f"demo-{index:03d}",
                             options={"idle_ms": idle_ms} if idle_ms else None, **state)


def build_demo(idle_ms: int | None = None) -> tuple[gr.Blocks, Recorder]:
    recorder = Recorder()
    with gr.Blocks(title="GazeX workstation demo", fill_width=True) as demo:
        index = gr.State(0)
        gr.Markdown("#### GazeX Review — workstation demo (synthetic study, in-memory recording)")
        ws = Workstation(study_value(0, idle_ms=idle_ms), server_functions=recorder.server_functions(), elem_id="gx-workstation")
        with gr.Row():
            nxt = gr.Button("Open next study", size="sm", elem_id="demo-next")
            reopen = gr.Button("Reopen study 0 with a saved state", size="sm", elem_id="demo-reopen")
            mono1 = gr.Button("Open a MONOCHROME1 study", size="sm", elem_id="demo-mono1")
        info = gr.Markdown("", elem_id="demo-info")

        def next_study(i):
            return study_value(i + 1, idle_ms=idle_ms), i + 1

        def signed(i, evt: gr.EventData):
            data = getattr(evt, "_data", None) or {}
            value, i2 = next_study(i)
            return value, i2, f"signed off {data.get('study_key')} ({data.get('decision')}); opened the next study"

        def reopen_saved():
            return study_value(
                0, idle_ms=idle_ms,
                sentence_state={"s2": {"status": "edited", "final_text": "Moderate right pleural effusion."},
                                "s3": {"status": "accepted"}, "s4": {"status": "deleted"}},
                box_state={"s2": {"status": "resized", "x_min": 0.1, "y_min": 0.6, "x_max": 0.46, "y_max": 0.86},
                           "s4": {"status": "rejected"}},
                added_sentences=[{"id": "a9", "text": "No pneumothorax.", "section": "findings"}],
                added_boxes=[{"id": "b9", "sentence_id": "a9", "label": None, "x_min": 0.6, "y_min": 0.1,
                              "x_max": 0.8, "y_max": 0.3}]), 0

        nxt.click(next_study, index, [ws, index])
        reopen.click(reopen_saved, None, [ws, index])
        mono1.click(lambda: (study_value(5, idle_ms=idle_ms, photometric="MONOCHROME1"), 5), None, [ws, index])
        ws.signed_off(signed, index, [ws, index, info])
    return demo, recorder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=7870)
    args = parser.parse_args()
    demo, _ = build_demo()
    demo.launch(server_port=args.port, ssr_mode=False)


if __name__ == "__main__":
    main()
