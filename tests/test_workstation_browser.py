"""Browser tests of the workstation component on the standalone demo (Playwright + Debian chromium).

One demo server and one browser per module; every test opens a fresh page. Screenshots go to test-artifacts/.
"""

import os
import socket
import time
from pathlib import Path

import pytest

import playwright.sync_api as playwright_sync  # noqa: E402  (a missing install fails, never skips)

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
IDLE_MS = 2500

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_server():
    from workstation_demo import build_demo, study_value

    os.environ["GAZEX_TEST_HOOKS"] = "1"   # bundle the test getters (never set in production)
    try:
        demo, recorder = build_demo(idle_ms=IDLE_MS)
    finally:
        os.environ.pop("GAZEX_TEST_HOOKS", None)
    study_value(1)                                  # pre-build the studies the tests switch to (slow on a busy CPU)
    study_value(5, photometric="MONOCHROME1")
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, ssr_mode=False)
    yield f"http://127.0.0.1:{port}/", recorder
    demo.close()


@pytest.fixture(scope="module")
def browser():
    with playwright_sync.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture
def ws(browser, demo_server):
    """A fresh page with the demo painted; yields (page, recorder)."""
    url, recorder = demo_server
    recorder.clear()
    recorder.fail_next = recorder.refuse_next = 0
    page = browser.new_page(viewport={"width": 1440, "height": 920})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_function("window.gazexWorkstation && window.gazexWorkstation.painted", timeout=60000)
    yield page, recorder
    page.close()
    assert not errors, errors


def state(page, expr):
    return page.evaluate(f"window.gazexWorkstation.{expr}")


def shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ws_{name}.png"))


def wait_calls(recorder, name, n=1, timeout=30.0, **match):
    end = time.time() + timeout
    while time.time() < end:
        calls = [c for c in recorder.calls_of(name) if all(c.get(k) == v for k, v in match.items())]
        if len(calls) >= n:
            return calls
        time.sleep(0.05)
    raise AssertionError(f"no {name} call matching {match}; got {recorder.calls[-5:]}")


def canvas_center_pixels(page):
    """A few canvas pixels (CSS px) in the middle of the image."""
    return page.evaluate("""() => { const g = window.gazexWorkstation; const out = [];
        for (const [x, y] of [[0.3, 0.45], [0.5, 0.5], [0.55, 0.62], [0.7, 0.4]]) {
          const c = g.toClient(x, y); const r = document.querySelector('[data-testid=ws-canvas]').getBoundingClientRect();
          out.push(g.pixelAt(c.x - r.left, c.y - r.top)); }
        return out; }""")


def click_norm(page, nx, ny, **kw):
    p = page.evaluate(f"window.gazexWorkstation.toClient({nx}, {ny})")
    page.mouse.click(p["x"], p["y"], **kw)


def test_image_painted_window_invert_zoom(ws):
    page, rec = ws
    # the browser decoded the rgb16 PNG exactly: stored value at a display pixel equals the Python value
    from workstation_demo import _IMAGES
    import base64
    from app.workstation import unpack_rgb16_png

    payload = next(v for k, v in _IMAGES.items() if k == (0, "MONOCHROME2"))
    small = unpack_rgb16_png(base64.b64decode(payload["png_b64"]))
    for px, py in [(10, 10), (400, 500), (300, 700), (600, 300)]:
        assert state(page, f"storedValueAt({px}, {py})") == int(small[py, px])
    before = canvas_center_pixels(page)
    assert any(sum(p) > 30 for p in before), before               # not blank
    assert len({tuple(p) for p in before}) > 1                     # not flat
    shot(page, "open")
    # window/level by right-drag
    c = page.evaluate("window.gazexWorkstation.toClient(0.5, 0.5)")
    page.mouse.move(c["x"], c["y"])
    page.mouse.down(button="right")
    page.mouse.move(c["x"] - 120, c["y"] + 60, steps=4)
    page.mouse.up(button="right")
    v = state(page, "view")
    assert v["width"] < 4096 and v["center"] != 2048
    page.wait_for_timeout(100)
    after_wl = canvas_center_pixels(page)
    assert after_wl != before
    wait_calls(rec, "record_event", event_type="window")
    # invert
    page.keyboard.press("i")
    page.wait_for_timeout(100)
    assert state(page, "view.invert") is True
    inverted = canvas_center_pixels(page)
    assert all(abs(a[0] + b[0] - 255) <= 1 for a, b in zip(after_wl, inverted))
    # presets and VOI default
    page.keyboard.press("1")
    lung = state(page, "view")
    page.keyboard.press("3")
    assert state(page, "view.center") != lung["center"]
    page.keyboard.press("0")
    assert (state(page, "view.center"), state(page, "view.width")) == (2048, 4096)
    # wheel zoom at the cursor keeps the image point under the cursor
    scale0 = state(page, "view.scale")
    page.mouse.move(c["x"], c["y"])
    page.mouse.wheel(0, -400)
    page.wait_for_timeout(150)
    assert state(page, "view.scale") > scale0 * 1.2
    c2 = page.evaluate("window.gazexWorkstation.toClient(0.5, 0.5)")
    assert abs(c2["x"] - c["x"]) < 2 and abs(c2["y"] - c["y"]) < 2
    shot(page, "zoomed")
    page.keyboard.press("f")
    assert abs(state(page, "view.scale") - scale0) < 1e-6


def test_trajectory_playback_highlights_sentences(ws):
    page, rec = ws
    assert state(page, "frameCount") == 12                        # all findings sentences' points, in order
    page.select_option('[data-testid="ws-speed"]', "4")
    # record, inside the page on every frame, which sentence is active and whether its DOM node has `active`
    page.evaluate("""() => { window.__seen = []; const g = window.gazexWorkstation;
        const tick = () => { const a = g.activeSentence; const s = window.__seen;
          if (a && (!s.length || s[s.length - 1].id !== a)) {
            const el = document.querySelector('[data-testid="ws-sentence-' + a + '"]');
            s.push({ id: a, active: !!el && el.classList.contains('active'),
                     others: document.querySelectorAll('.gx-sent.active').length }); }
          if (s.length < 4) requestAnimationFrame(tick); };
        requestAnimationFrame(tick); }""")
    page.click('[data-testid="ws-play"]')
    page.wait_for_function("window.__seen.length >= 3", timeout=30000)
    seen = page.evaluate("window.__seen")
    assert [x["id"] for x in seen[:3]] == ["s1", "s2", "s3"], seen
    assert all(x["active"] and x["others"] == 1 for x in seen[:3]), seen
    assert state(page, "playing") is True
    shot(page, "playing")
    page.click('[data-testid="ws-pause"]')
    assert state(page, "playing") is False
    page.keyboard.press("p")
    assert state(page, "playing") is True
    page.keyboard.press("k")
    assert state(page, "playing") is False
    page.fill('[data-testid="ws-scrub"]', "5")
    f = state(page, "frame")
    assert f == 5
    page.keyboard.press(".")
    assert state(page, "frame") == f + 1
    page.keyboard.press(",")
    assert state(page, "frame") == f
    page.fill('[data-testid="ws-scrub"]', "11")
    assert state(page, "frame") == 11 and state(page, "activeSentence") == "s4"
    assert "active" in page.get_attribute('[data-testid="ws-sentence-s4"]', "class")
    wait_calls(rec, "record_event", event_type="play")
    wait_calls(rec, "record_event", event_type="pause")


def test_sentence_and_box_selection_link_both_ways(ws):
    page, rec = ws
    page.click('[data-testid="ws-sentence-s3"]')
    assert state(page, "selectedSentence") == "s3" and state(page, "selectedBox") == "s3"
    assert "selected" in page.get_attribute('[data-testid="ws-sentence-s3"]', "class")
    # click inside the pleural effusion box (not overlapping the heart box) -> its sentence is selected
    click_norm(page, 0.2, 0.78)
    assert state(page, "selectedBox") == "s2" and state(page, "selectedSentence") == "s2"
    assert "selected" in page.get_attribute('[data-testid="ws-sentence-s2"]', "class")
    assert "selected" not in page.get_attribute('[data-testid="ws-sentence-s3"]', "class")
    page.keyboard.press("ArrowDown")
    assert state(page, "selectedSentence") == "s3"
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    assert state(page, "selectedSentence") == "s1" and state(page, "selectedBox") is None
    shot(page, "selected")
    wait_calls(rec, "record_event", event_type="select")


def test_edit_accept_delete_add_reach_the_server(ws):
    page, rec = ws
    page.click('[data-testid="ws-edit-s2"]')
    page.fill('[data-testid="ws-edit-text"]', "Moderate right pleural effusion.")
    page.select_option('[data-testid="ws-edit-reason"]', "severity")
    page.select_option('[data-testid="ws-edit-significant"]', "yes")
    shot(page, "editing")
    page.click('[data-testid="ws-edit-save"]')
    call = wait_calls(rec, "decide_sentence", sentence_id="s2")[0]
    assert call["decision"] == "edited" and call["final_text"] == "Moderate right pleural effusion."
    assert call["error_category"] == "severity" and call["clinically_significant"] is True
    assert call["session_id"] == 100 and call["client_ts"] > 1.7e12 and call["duration_ms"] >= 0
    assert "edited" in page.inner_text('[data-testid="ws-status-s2"]').lower()
    page.click('[data-testid="ws-accept-s1"]')
    assert wait_calls(rec, "decide_sentence", sentence_id="s1")[0]["decision"] == "accepted"
    page.click('[data-testid="ws-delete-s4"]')
    assert wait_calls(rec, "decide_sentence", sentence_id="s4")[0]["decision"] == "deleted"
    # keyboard edit: e, type, ctrl+enter; shortcuts do not fire while typing
    page.click('[data-testid="ws-sentence-s3"]')
    page.keyboard.press("e")
    page.keyboard.press("Control+a")
    page.keyboard.type("Heart size is at the upper limit of normal. dpi")
    assert state(page, "view.invert") is False and state(page, "playing") is False
    page.keyboard.press("Control+Enter")
    assert wait_calls(rec, "decide_sentence", sentence_id="s3")[0]["final_text"].endswith("normal. dpi")
    # add a sentence after the selected one
    page.keyboard.press("n")
    page.keyboard.type("No pneumothorax.")
    page.keyboard.press("Control+Enter")
    add = wait_calls(rec, "add_sentence")[0]
    assert add["text"] == "No pneumothorax." and add["section"] == "findings" and add["after_sentence_id"] == "s3"
    page.wait_for_function("window.gazexWorkstation.sentences.some(s => s.id.startsWith('a') && s.status === 'added')")
    ack = page.inner_text('[data-testid="ws-status"]')
    assert "saved" in ack
    shot(page, "decided")


def test_box_accept_reject_move_draw_undo(ws):
    page, rec = ws
    page.click('[data-testid="ws-sentence-s3"]')
    page.click('[data-testid="ws-box-accept"]')
    assert wait_calls(rec, "decide_box", box_id="s3")[0]["decision"] == "accepted"
    page.click('[data-testid="ws-sentence-s4"]')
    page.keyboard.press("x")
    call = wait_calls(rec, "decide_box", box_id="s4")[0]
    assert call["decision"] == "rejected" and call["linked_sentence_id"] == "s4"
    assert next(b for b in state(page, "boxes") if b["id"] == "s4")["status"] == "rejected"
    # move the effusion box by dragging inside it (after selecting it)
    click_norm(page, 0.2, 0.78)
    a = page.evaluate("window.gazexWorkstation.toClient(0.2, 0.78)")
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move(a["x"] + 40, a["y"] - 30, steps=4)
    page.mouse.up()
    moved = wait_calls(rec, "decide_box", box_id="s2")[0]
    assert moved["decision"] == "moved" and moved["box"][0] > 0.14
    # resize by the bottom-right corner
    br = page.evaluate("(() => { const b = window.gazexWorkstation.boxes.find(b => b.id === 's2'); return window.gazexWorkstation.toClient(b.x_max, b.y_max); })()")
    page.mouse.move(br["x"], br["y"])
    page.mouse.down()
    page.mouse.move(br["x"] + 30, br["y"] + 20, steps=3)
    page.mouse.up()
    assert wait_calls(rec, "decide_box", 2, box_id="s2")[1]["decision"] == "resized"
    # undo the resize -> the moved coordinates come back
    page.keyboard.press("Control+z")
    undo = wait_calls(rec, "decide_box", 3, box_id="s2")[2]
    assert undo["decision"] == "moved" and undo["box"] == moved["box"]
    # draw a new box linked to the selected sentence (s2)
    page.click('[data-testid="ws-draw-box"]')
    assert state(page, "mode") == "draw"
    p0 = page.evaluate("window.gazexWorkstation.toClient(0.6, 0.2)")
    page.mouse.move(p0["x"], p0["y"])
    page.mouse.down()
    page.mouse.move(p0["x"] + 80, p0["y"] + 60, steps=4)
    page.mouse.up()
    added = wait_calls(rec, "decide_box", decision="added")[0]
    assert added["linked_sentence_id"] == "s2" and added["box"][0] == pytest.approx(0.6, abs=0.01)
    assert state(page, "mode") is None
    assert any(b["status"] == "added" for b in state(page, "boxes"))
    shot(page, "boxes")


def test_help_overlay_and_toggles(ws):
    page, rec = ws
    page.keyboard.press("?")
    assert page.is_visible('[data-testid="ws-help-overlay"]')
    text = page.inner_text('[data-testid="ws-help-overlay"]')
    for word in ("Window / level", "Invert", "Play / pause", "Accept sentence", "Reject box", "Draw a new box", "Undo"):
        assert word in text
    shot(page, "help")
    page.keyboard.press("Escape")
    assert not page.is_visible('[data-testid="ws-help-overlay"]')
    page.click('[data-testid="ws-help"]')
    assert state(page, "helpOpen") is True
    page.click('[data-testid="ws-help-close"]')
    # ruler: 0.1 of the 2000 px width at 0.15 mm/px = 30 mm
    page.keyboard.press("m")
    a = page.evaluate("window.gazexWorkstation.toClient(0.4, 0.3)")
    b = page.evaluate("window.gazexWorkstation.toClient(0.5, 0.3)")
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    page.mouse.move(b["x"], b["y"], steps=3)
    page.mouse.up()
    length = wait_calls(rec, "record_event", event_type="measure")[0]["payload"]["length"]
    assert length.endswith(" mm") and abs(float(length.split()[0]) - 30.0) < 1.0, length
    page.keyboard.press("Escape")
    assert state(page, "mode") is None
    for key, name in (("b", "boxes"), ("c", "clues"), ("t", "traj")):
        page.keyboard.press(key)
        assert state(page, f"show.{name}") is False
        page.keyboard.press(key)
        assert state(page, f"show.{name}") is True


def test_failed_call_is_retried_in_order_and_never_dropped(ws):
    page, rec = ws
    rec.fail_next = 2
    page.click('[data-testid="ws-accept-s1"]')
    page.click('[data-testid="ws-accept-s3"]')
    page.wait_for_function("document.querySelector('[data-testid=ws-status]').textContent.includes('retry')", timeout=20000)
    shot(page, "retrying")
    calls = wait_calls(rec, "decide_sentence", 2, timeout=40)
    assert [c["sentence_id"] for c in calls] == ["s1", "s3"]       # in order, after the retries
    page.wait_for_function("window.gazexWorkstation.pending === 0")
    # a refusal (ok: false, retry: false) is shown, not retried
    rec.refuse_next = 1
    page.click('[data-testid="ws-delete-s2"]')
    page.wait_for_function("document.querySelector('[data-testid=ws-status]').textContent.includes('refused')", timeout=20000)
    assert state(page, "failures")[0]["fn"] == "decide_sentence"
    page.click('[data-testid="ws-accept-i1"]')              # later acks keep the refusal visible
    wait_calls(rec, "decide_sentence", sentence_id="i1")
    page.wait_for_function("document.querySelector('[data-testid=ws-status]').textContent.includes('1 not saved')", timeout=20000)
    # accept-as-drafted after changes asks first (the reader probably meant "Sign modified")
    page.click('[data-testid="ws-signoff-accept"]')
    assert page.is_visible('[data-testid="ws-confirm"]')
    page.click('[data-testid="ws-confirm-cancel"]')
    assert not page.is_visible('[data-testid="ws-confirm"]') and state(page, "readonly") is False
    assert rec.calls_of("sign_off") == []


def test_restored_state_renders_exactly(ws):
    page, rec = ws
    page.click("#demo-reopen")
    page.wait_for_function("window.gazexWorkstation.sentences.some(s => s.id === 'a9')", timeout=60000)
    sents = {s["id"]: s for s in state(page, "sentences")}
    assert sents["s2"]["status"] == "edited" and sents["s2"]["final_text"] == "Moderate right pleural effusion."
    assert sents["s3"]["status"] == "accepted" and sents["s4"]["status"] == "deleted" and sents["a9"]["status"] == "added"
    assert page.inner_text('[data-testid="ws-sentence-text-s2"]') == "Moderate right pleural effusion."
    boxes = {b["id"]: b for b in state(page, "boxes")}
    assert boxes["s2"]["status"] == "resized" and boxes["s2"]["x_min"] == 0.1
    assert boxes["s4"]["status"] == "rejected" and boxes["b9"]["status"] == "added"
    shot(page, "restored")


def test_sign_off_reject_confirms_and_opens_next_case(ws):
    page, rec = ws
    page.click('[data-testid="ws-accept-s1"]')
    page.click('[data-testid="ws-signoff-reject"]')
    assert page.is_visible('[data-testid="ws-confirm"]')
    shot(page, "confirm")
    page.click('[data-testid="ws-confirm-ok"]')
    so = wait_calls(rec, "sign_off")[0]
    assert so["decision"] == "reject" and so["session_id"] == 100
    assert so["active_ms"] > 0 and so["idle_ms"] >= 0 and so["hidden_ms"] >= 0
    assert "FINDINGS:" in so["final_report"] and "IMPRESSION:" in so["final_report"]
    # the app's signed_off handler opens the next study
    page.wait_for_function("window.gazexWorkstation.studyKey === 'demo-001'", timeout=60000)
    assert state(page, "readonly") is False
    # painted means the new study's own image is on screen (never the previous one under the new report)
    page.wait_for_function("window.gazexWorkstation.painted && window.gazexWorkstation.imageStudyKey === 'demo-001'",
                           timeout=60000)


def test_idle_and_monochrome1(ws):
    page, rec = ws
    page.wait_for_timeout(IDLE_MS + 1500)
    t = state(page, "timing")
    assert t["state"] == "idle" and t["idle_ms"] > 0
    wait_calls(rec, "record_event", event_type="idle_start")
    page.mouse.move(300, 300)
    page.mouse.move(320, 310)
    wait_calls(rec, "record_event", event_type="idle_end")
    # hidden tab (visibilitychange) is counted apart from active and idle time
    page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
        document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_timeout(1300)
    page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
        document.dispatchEvent(new Event('visibilitychange')); }""")
    assert state(page, "timing.hidden_ms") >= 1000
    wait_calls(rec, "record_event", event_type="tab_hidden")
    wait_calls(rec, "record_event", event_type="tab_visible")
    # MONOCHROME1: stored values inverted, shown inverted after the VOI -> looks like the MONOCHROME2 study
    spine_m2, lung_m2 = page.evaluate("""() => { const g = window.gazexWorkstation; const r = document.querySelector('[data-testid=ws-canvas]').getBoundingClientRect();
        return [[0.5, 0.3], [0.3, 0.45]].map(([x, y]) => { const c = g.toClient(x, y); return g.pixelAt(c.x - r.left, c.y - r.top)[0]; }); }""")
    page.click("#demo-mono1")
    page.wait_for_function("window.gazexWorkstation.view.photometric === 'MONOCHROME1' && window.gazexWorkstation.painted", timeout=60000)
    page.wait_for_timeout(200)
    spine_m1, lung_m1 = page.evaluate("""() => { const g = window.gazexWorkstation; const r = document.querySelector('[data-testid=ws-canvas]').getBoundingClientRect();
        return [[0.5, 0.3], [0.3, 0.45]].map(([x, y]) => { const c = g.toClient(x, y); return g.pixelAt(c.x - r.left, c.y - r.top)[0]; }); }""")
    assert spine_m2 > lung_m2 + 60 and spine_m1 > lung_m1 + 60      # bone bright, lung dark in both
    shot(page, "monochrome1")


def test_one_box_per_finding_flags_highlight_ask_and_timing(ws):
    page, rec = ws
    # i2 restates s2: no box of its own; selecting it selects s2's box, and deciding that box decides both
    assert [b["id"] for b in state(page, "boxes") if b["id"] in ("s2", "i2")] == ["s2"]
    assert next(b for b in state(page, "boxes") if b["id"] == "s2")["also"] == ["i2"]
    assert page.is_visible('[data-testid="ws-evidence-i2"]')
    page.click('[data-testid="ws-sentence-text-i2"]')
    assert state(page, "selectedBox") == "s2"
    page.wait_for_timeout(700)
    page.click('[data-testid="ws-box-accept"]')
    both = wait_calls(rec, "decide_box", 2)
    assert [(c["box_id"], c["decision"], c["linked_sentence_id"]) for c in both] == [
        ("s2", "accepted", "s2"), ("i2", "accepted", "i2")]
    assert both[0]["duration_ms"] >= 500                     # from the selection, not from the click
    wait_calls(rec, "record_event", event_type="linked_box_decision")
    # one number per sentence: the finding probability (the chart's quantity), explained in the tooltip
    conf = page.locator('[data-testid="ws-conf-s2"]')
    assert conf.inner_text() == "0.91" and "chart" in conf.get_attribute("title")
    # a one-click accept is timed from when the study was shown
    page.wait_for_timeout(300)
    page.click('[data-testid="ws-accept-s1"]')
    assert wait_calls(rec, "decide_sentence", sentence_id="s1")[0]["duration_ms"] >= 300
    # a garbled or cut-off text is flagged in the panel
    page.click('[data-testid="ws-edit-s3"]')
    page.fill('[data-testid="ws-edit-text"]', "The catheter tip lies approximately 4.")
    page.click('[data-testid="ws-edit-save"]')
    assert "unfinished number" in page.inner_text('[data-testid="ws-flag-s3"]')
    page.click('[data-testid="ws-edit-s3"]')
    page.fill('[data-testid="ws-edit-text"]', "Right defibrillllllator pads.")
    page.click('[data-testid="ws-edit-save"]')
    assert "repeated character" in page.inner_text('[data-testid="ws-flag-s3"]')
    assert not page.is_visible('[data-testid="ws-flag-s1"]')
    # after playback only one sentence is highlighted
    page.select_option('[data-testid="ws-speed"]', "4")
    page.click('[data-testid="ws-play"]')
    page.wait_for_function("!window.gazexWorkstation.playing", timeout=30000)
    page.click('[data-testid="ws-sentence-text-s3"]')
    assert state(page, "highlighted") == ["s3"]
    # the ask box echoes the question; the same answer twice is visibly a new answer
    page.fill('[data-testid="ws-ask-input"]', "Is there an effusion?")
    page.click('[data-testid="ws-ask"]')
    page.wait_for_function("document.querySelector('[data-testid=ws-ask-answer]').textContent.startsWith('A1')")
    assert "Is there an effusion?" in page.inner_text('[data-testid="ws-ask-question"]')
    page.click('[data-testid="ws-ask"]')
    page.wait_for_function("document.querySelector('[data-testid=ws-ask-answer]').textContent.startsWith('A2')")
    # a new case starts with an empty ask box
    page.click("#demo-next")
    page.wait_for_function("window.gazexWorkstation.studyKey === 'demo-001'", timeout=60000)
    assert page.input_value('[data-testid="ws-ask-input"]') == ""
    assert page.inner_text('[data-testid="ws-ask-answer"]') == ""


def test_sign_off_with_pending_items_offers_accept_the_rest(ws):
    page, rec = ws
    page.click('[data-testid="ws-accept-s1"]')
    page.click('[data-testid="ws-signoff-modify"]')
    text = page.inner_text('[data-testid="ws-confirm"]')
    assert "5 sentences and 3 boxes are still pending" in text, text
    page.click('[data-testid="ws-confirm-accept-rest"]')
    so = wait_calls(rec, "sign_off")[0]
    decided = {c["sentence_id"]: c["decision"] for c in rec.calls_of("decide_sentence")}
    assert decided == {"s1": "accepted", **{s: "accepted_at_signoff" for s in ("s2", "s3", "s4", "i1", "i2")}}
    boxes = {c["box_id"]: c["decision"] for c in rec.calls_of("decide_box")}
    assert boxes == {b: "accepted_at_signoff" for b in ("s2", "i2", "s3", "s4")}
    assert so["decision"] == "modify"
