"""Workstation benchmark in the real browser (Debian chromium, headless) on the standalone demo.

Measures
  * open-to-painted: page navigation start -> image + overlays painted on the canvas (fresh page load), and
    study switch (click "Open next study" -> the new image painted);
  * per-decision acknowledgement latency (click -> server function ack shown), sequential and in a burst;
  * the VOI windowing cost per window change (853x1024 display image, lookup table);
  * animation smoothness while input happens: requestAnimationFrame frames per second and the longest gap
    between frames during trajectory playback, idle vs. during a burst of clicks, key presses and wheel zooms.

Run: ``nice -n 10 .venv/bin/python benchmarks/bench_workstation.py [--loads 5] [--decisions 40] [--json out.json]``
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # the workstation demo is test scaffolding

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

FRAME_PROBE = """() => { window.__gxProbe = { n: 0, maxGap: 0, last: performance.now(), gaps: [] };
  const tick = (t) => { const p = window.__gxProbe; if (!p) return; const g = t - p.last; p.last = t; p.n += 1;
    p.gaps.push(g); if (g > p.maxGap) p.maxGap = g; if (!p.stop) requestAnimationFrame(tick); };
  requestAnimationFrame(tick); }"""


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": round(pct(values, 0.5), 1), "p95": round(pct(values, 0.95), 1),
            "max": round(max(values), 1) if values else float("nan")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def frame_window(page, seconds: float, action=None) -> dict[str, float]:
    page.evaluate(FRAME_PROBE)
    t_end = time.time() + seconds
    actions = 0
    while time.time() < t_end:
        if action:
            action(actions)
            actions += 1
        else:
            time.sleep(0.05)
    probe = page.evaluate("(() => { const p = window.__gxProbe; p.stop = true; return {n: p.n, maxGap: p.maxGap, gaps: p.gaps}; })()")
    gaps = probe["gaps"][1:]
    return {"fps": round(probe["n"] / seconds, 1), "max_gap_ms": round(probe["maxGap"], 1),
            "p95_gap_ms": round(pct(gaps, 0.95), 1), "actions": actions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=40)
    parser.add_argument("--json", type=str, default=None)
    args = parser.parse_args()

    import os

    from playwright.sync_api import sync_playwright

    os.environ["GAZEX_TEST_HOOKS"] = "1"  # the workstation's probes for this run only (never in production)
    from workstation_demo import build_demo

    from workstation_demo import study_value, synthetic_cxr
    from app.workstation import image_payload

    demo, recorder = build_demo()
    # server side, reported separately: building one image payload (2000x2400 12-bit -> 853x1024 rgb16 PNG)
    raw = synthetic_cxr(seed=99)
    enc = []
    for _ in range(3):
        t = time.perf_counter()
        payload = image_payload(raw, window=(2048.0, 4096.0))
        enc.append((time.perf_counter() - t) * 1000)
    results_pre = {"server_payload_build_ms": summary(enc), "png_b64_kib": round(len(payload["png_b64"]) / 1024, 1)}
    for i in range(1, args.loads + 1):   # pre-build the studies the switch test opens (measures the browser side)
        study_value(i)
    port = free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, ssr_mode=False)
    url = f"http://127.0.0.1:{port}/"
    results: dict[str, object] = dict(results_pre)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 920})
            # --- open to painted (fresh page loads) ---
            nav_to_paint, value_to_paint = [], []
            for _ in range(args.loads):
                page.goto(url)
                page.wait_for_function("window.gazexWorkstation && window.gazexWorkstation.painted", timeout=60000)
                nav_to_paint.append(page.evaluate("window.gazexWorkstation.paintedAt"))   # since navigation start
                value_to_paint.append(page.evaluate("window.gazexWorkstation.openToPaintMs"))
            results["page_load_to_painted_ms"] = summary(nav_to_paint)
            results["value_to_painted_ms"] = summary(value_to_paint)
            # --- study switch: click -> new image painted ---
            switch = []
            for i in range(args.loads):
                key = page.evaluate("window.gazexWorkstation.studyKey")
                t0 = page.evaluate("performance.now()")
                page.click("#demo-next")
                # painted = the new study's own image on screen (the old one is cleared when the value arrives)
                page.wait_for_function(f"window.gazexWorkstation.studyKey !== {json.dumps(key)} && window.gazexWorkstation.painted"
                                       " && window.gazexWorkstation.imageStudyKey === window.gazexWorkstation.studyKey", timeout=60000)
                switch.append(page.evaluate("window.gazexWorkstation.paintedAt") - t0)
            results["study_switch_click_to_painted_ms"] = summary(switch)
            page.goto(url)
            page.wait_for_function("window.gazexWorkstation && window.gazexWorkstation.painted", timeout=60000)
            # --- windowing cost ---
            wl = []
            c = page.evaluate("window.gazexWorkstation.toClient(0.5, 0.5)")
            for k in range(15):
                page.keyboard.press("123"[k % 3])
                page.wait_for_timeout(40)
                wl.append(page.evaluate("window.gazexWorkstation.lastWindowMs"))
            results["voi_window_rebuild_ms"] = summary(wl)
            # --- sequential decisions: click -> ack ---
            sids = ["s1", "s2", "s3", "s4", "i1"]
            seq_lat = []
            for k in range(args.decisions):
                sid = sids[k % len(sids)]
                act = "accept" if k % 2 == 0 else "delete"
                n0 = page.evaluate("window.gazexWorkstation.acks.length")
                t0 = page.evaluate("performance.now()")
                page.click(f'[data-testid="ws-{act}-{sid}"]')
                page.wait_for_function(f"window.gazexWorkstation.acks.slice({n0}).some(a => a.fn === 'decide_sentence')", timeout=30000)
                acks = page.evaluate(f"window.gazexWorkstation.acks.slice({n0})")
                seq_lat.append(next(a["latency_ms"] for a in acks if a["fn"] == "decide_sentence"))
                del t0
            results["decision_ack_sequential_ms"] = summary(seq_lat)
            # --- burst: many decisions as fast as the mouse goes; latency includes queueing (in order) ---
            n0 = page.evaluate("window.gazexWorkstation.acks.length")
            for k in range(args.decisions):
                page.click(f'[data-testid="ws-accept-{sids[k % len(sids)]}"]')
            page.wait_for_function("window.gazexWorkstation.pending === 0", timeout=60000)
            burst = [a["latency_ms"] for a in page.evaluate(f"window.gazexWorkstation.acks.slice({n0})") if a["fn"] == "decide_sentence"]
            results["decision_ack_burst_ms"] = summary(burst)
            # --- animation frames during input ---
            page.select_option('[data-testid="ws-speed"]', "0.5")
            page.click('[data-testid="ws-play"]')
            page.evaluate("window.gazexWorkstation.drawTimes.length")
            n_draw = page.evaluate("window.gazexWorkstation.drawTimes.length")
            results["raf_idle_playing"] = frame_window(page, 3.0)
            results["draw_ms_per_frame_playing"] = summary(page.evaluate(f"window.gazexWorkstation.drawTimes.slice({n_draw})"))
            if not page.evaluate("window.gazexWorkstation.playing"):
                page.click('[data-testid="ws-play"]')

            def burst_input(k: int) -> None:
                if k % 3 == 0:
                    page.click(f'[data-testid="ws-sentence-{sids[k % len(sids)]}"]')
                elif k % 3 == 1:
                    page.keyboard.press("ArrowDown" if k % 2 else "ArrowUp")
                else:
                    page.mouse.move(c["x"], c["y"])
                    page.mouse.wheel(0, -60 if k % 2 else 60)

            results["raf_playing_during_input_burst"] = frame_window(page, 3.0, burst_input)
            results["playing_after_burst"] = page.evaluate("window.gazexWorkstation.playing")
            results["chromium"] = browser.version
            browser.close()
    finally:
        demo.close()
    results["calls_recorded"] = len(recorder.calls)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
