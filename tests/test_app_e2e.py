"""End to end in Debian's Chromium: log in, review a study, sign off; the database holds exactly that.

Real parts: the app (app.main.build_app) on a free port, a real SQLite file, synthetic studies drafted
by the real GazeX model through the app's InferenceWorker, Playwright driving /usr/bin/chromium.
Screenshots go to test-artifacts/app_e2e/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest_app import OTHER, READER, REPO, free_port, world  # noqa: F401 - fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO / "test-artifacts" / "app_e2e"
WS = "window.gazexWorkstation"


def start_app(world, port: int):
    """The real app on `port`, its workstation bundled with the test hooks (GAZEX_TEST_HOOKS; never in production)."""
    from app.main import build_app, launch_app

    os.environ["GAZEX_TEST_HOOKS"] = "1"
    try:
        demo = build_app(world.context)
    finally:
        os.environ.pop("GAZEX_TEST_HOOKS", None)
    launch_app(demo, world.context, port=port, prevent_thread_lock=True, quiet=True)
    return demo


@pytest.fixture(scope="module")
def server(world):
    port = free_port()
    demo = start_app(world, port)
    yield f"http://127.0.0.1:{port}"
    demo.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors
    yield page
    context.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page, url: str, user: tuple[str, str]) -> None:
    page.goto(url)
    page.fill("input[type=text]", user[0])
    page.fill("input[type=password]", user[1])
    page.keyboard.press("Enter")
    page.wait_for_function(f"(document.querySelector('#gx-header') || {{}}).innerText?.includes('signed in as {user[0]}')",
                           timeout=60_000)


def open_from_worklist(page, study_uid: str) -> None:
    page.get_by_role("tab", name="Worklist").click()
    page.locator("#gx-worklist span.text", has_text=study_uid).first.click()
    page.wait_for_function(f"{WS} && {WS}.painted && {WS}.studyKey === {json.dumps(study_uid)}", timeout=30_000)


def wait_saved(page) -> None:
    page.wait_for_function(f"{WS}.pending === 0", timeout=15_000)
    assert page.evaluate(f"{WS}.failures") == []


def pick_study(world) -> tuple[int, dict]:
    """A study whose draft has >= 2 findings sentences with trajectories and >= 1 observation box."""
    for index, (study_id, _, _) in enumerate(world.studies):
        draft = world.service.get_draft(study_id)[1]
        with_traj = [s for s in draft["sentences"] if s["section"] == "findings" and s["trajectory"]]
        if len(with_traj) >= 2 and any(s["observation_box"] for s in draft["sentences"]):
            return index, draft
    pytest.fail("no drafted study has two findings sentences with trajectories and a box: the model's drafts "
                f"are {[world.service.get_draft(s[0])[1]['sentences'] for s in world.studies]}")


def canvas_pixel(page, nx: float, ny: float) -> list[int]:
    return page.evaluate(f"""([nx, ny]) => {{
        const c = document.querySelector('[data-testid="ws-canvas"]').getBoundingClientRect();
        const p = {WS}.toClient(nx, ny);
        return {WS}.pixelAt(p.x - c.left, p.y - c.top); }}""", [nx, ny])


def drag_on_canvas(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    a = page.evaluate(f"([x, y]) => {WS}.toClient(x, y)", list(start))
    b = page.evaluate(f"([x, y]) => {WS}.toClient(x, y)", list(end))
    page.mouse.move(a["x"], a["y"])
    page.mouse.down()
    for k in range(1, 9):
        page.mouse.move(a["x"] + (b["x"] - a["x"]) * k / 8, a["y"] + (b["y"] - a["y"]) * k / 8)
    page.mouse.up()


def test_every_page_needs_a_login(server):
    with pytest.raises(urllib.error.HTTPError) as refused:
        request = urllib.request.Request(server + "/gradio_api/component_server/", method="POST",
                                         data=json.dumps({"session_hash": "x", "component_id": 1,
                                                          "fn_name": "decide_sentence", "data": {}}).encode(),
                                         headers={"Content-Type": "application/json"})
        urllib.request.urlopen(request)
    assert refused.value.code == 401
    with pytest.raises(urllib.error.HTTPError) as config:
        urllib.request.urlopen(server + "/config")
    assert config.value.code == 401


def test_review_a_study_end_to_end(world, server, page):
    index, draft = pick_study(world)
    study_id, study_uid, _ = world.studies[index]
    login(page, server, READER)
    shot(page, "01_worklist")
    open_from_worklist(page, study_uid)
    session_id = page.evaluate(f"{WS}.sessionId")
    shot(page, "02_opened")

    # play the trajectory: the highlighted sentence changes, and the DOM marks it active
    findings = [s for s in draft["sentences"] if s["section"] == "findings" and s["trajectory"]]
    page.select_option('[data-testid="ws-speed"]', "4")
    page.click('[data-testid="ws-play"]')
    page.wait_for_function(f"{WS}.playing && {WS}.activeSentence === {json.dumps(findings[0]['id'])}")
    page.wait_for_function(f"{WS}.activeSentence === {json.dumps(findings[1]['id'])}", timeout=30_000)
    assert page.locator(f'[data-testid="ws-sentence-{findings[1]["id"]}"]').get_attribute("class").split().count(
        "active") == 1
    assert "active" not in page.locator(f'[data-testid="ws-sentence-{findings[0]["id"]}"]').get_attribute("class")
    shot(page, "03_playing")
    page.click('[data-testid="ws-pause"]')
    assert page.evaluate(f"{WS}.playing") is False

    # click a sentence with a box: it is selected and its box is highlighted (white corner handles).
    # The last box is drawn last, so no other box is painted over its handles.
    from app.workstation.component import evidence_links

    links = evidence_links(draft["sentences"])
    boxed = [s for s in draft["sentences"] if s["observation_box"] and s["id"] not in links][-1]
    box = boxed["observation_box"]
    corners = [(box[x], box[y]) for x in ("x_min", "x_max") for y in ("y_min", "y_max")]
    for overlay in ("clues", "traj"):  # clue boxes and the path are drawn over the boxes: hide them to look
        page.click(f'[data-testid="ws-toggle-{overlay}"]')
    page.wait_for_timeout(150)
    before = [canvas_pixel(page, *corner) for corner in corners]
    page.click(f'[data-testid="ws-sentence-text-{boxed["id"]}"]')
    page.wait_for_function(f"{WS}.selectedSentence === {json.dumps(boxed['id'])}")
    assert page.evaluate(f"{WS}.selectedBox") == boxed["id"]
    assert "selected" in page.locator(f'[data-testid="ws-sentence-{boxed["id"]}"]').get_attribute("class")
    page.wait_for_timeout(150)
    after = [canvas_pixel(page, *corner) for corner in corners]
    shot(page, "04_sentence_selected")
    handles = [a for a, b in zip(after, before) if min(a) >= 235 and a != b]
    assert len(handles) >= 3, (before, after)  # white resize handles on the box corners (one may sit under a label)
    for overlay in ("clues", "traj"):
        page.click(f'[data-testid="ws-toggle-{overlay}"]')

    # edit a sentence (with an error category)
    edited = findings[0]["id"] if findings[0]["id"] != boxed["id"] else findings[1]["id"]
    page.click(f'[data-testid="ws-edit-{edited}"]')
    page.fill('[data-testid="ws-edit-text"]', "Edited in the e2e test.")
    page.select_option('[data-testid="ws-edit-reason"]', "severity")
    page.click('[data-testid="ws-edit-save"]')
    wait_saved(page)

    # reject the selected sentence's box, then draw a new box linked to that sentence
    page.click(f'[data-testid="ws-sentence-text-{boxed["id"]}"]')
    page.wait_for_function(f"{WS}.selectedBox === {json.dumps(boxed['id'])}")
    page.click('[data-testid="ws-box-reject"]')
    wait_saved(page)
    page.click('[data-testid="ws-draw-box"]')
    drag_on_canvas(page, (0.55, 0.2), (0.8, 0.4))
    wait_saved(page)
    accepted = next(s["id"] for s in draft["sentences"] if s["id"] not in (edited, boxed["id"]))
    page.click(f'[data-testid="ws-accept-{accepted}"]')
    wait_saved(page)
    shot(page, "05_decided")
    assert page.evaluate("document.querySelector('[data-testid=\"ws-status\"]').textContent").startswith("✓")

    # sign off as modified: the rest is pending, so the workstation asks; "accept the rest" signs
    page.click('[data-testid="ws-signoff-modify"]')
    assert page.locator('[data-testid="ws-confirm"]').is_visible()
    page.click('[data-testid="ws-confirm-accept-rest"]')
    page.wait_for_function(f"{WS}.signedOff && {WS}.signedOff.decision === 'modify'")
    page.wait_for_function(f"{WS}.studyKey !== {json.dumps(study_uid)} && {WS}.painted", timeout=30_000)
    shot(page, "06_next_case")

    # the database holds exactly those decisions, with durations
    state = world.service.session_state(READER[0], session_id)
    assert state.status == "signed" and state.study.id == study_id
    sentences = {d.sentence_id: d for d in state.sentences}
    assert set(sentences) == {s["id"] for s in draft["sentences"]}
    rest = {k for k, d in sentences.items() if d.decision == "accepted_at_signoff"}
    assert rest == {s["id"] for s in draft["sentences"]} - {edited, accepted}
    assert sentences[edited].decision == "edited" and sentences[edited].final_text == "Edited in the e2e test."
    assert sentences[edited].error_category == "severity"
    assert sentences[accepted].decision == "accepted"
    boxes = {d.box_id: d for d in state.boxes}
    drawn = [b for b, d in boxes.items() if d.decision == "added"]
    assert len(drawn) == 1
    assert boxes[boxed["id"]].decision == "rejected"
    for impression, finding in links.items():   # one box per finding: its restating impression sentence shares it
        assert boxes[impression].decision == boxes[finding].decision, (impression, finding)
    others = {s["id"] for s in draft["sentences"] if s["observation_box"]} - {boxed["id"]} - {
        i for i, f in links.items() if f == boxed["id"]}
    assert {b for b in others if boxes[b].decision == "accepted_at_signoff"} == others
    new = boxes[drawn[0]]
    assert new.decision == "added" and new.linked_sentence_id == boxed["id"]
    assert (new.x_min, new.y_min, new.x_max, new.y_max) == pytest.approx((0.55, 0.2, 0.8, 0.4), abs=0.01)
    for decision in [*state.sentences, *state.boxes]:
        assert decision.duration_ms is not None and decision.duration_ms >= 0, decision
    # a one-click accept is timed from when the sentence was first on screen, not from the click (1 ms)
    assert sentences[accepted].duration_ms > 100
    # spans with a real interaction in them: edit opened -> saved, sentence selected -> its box rejected
    assert sentences[edited].duration_ms > 0 and boxes[boxed["id"]].duration_ms > 0
    assert state.signoff["decision"] == "modify" and "Edited in the e2e test." in state.signoff["final_report"]
    assert state.signoff["active_ms"] > 0
    assert state.last_seq >= 8  # play, pause, selects and the decisions are all in the event log
    assert page.errors == []


def test_reopening_restores_the_exact_state_read_only(world, server, page):
    index, draft = pick_study(world)
    study_uid = world.studies[index][1]
    login(page, server, READER)
    rows = page.locator("#gx-worklist").inner_text()
    assert "signed" in rows
    open_from_worklist(page, study_uid)
    assert page.evaluate(f"{WS}.readonly") is True
    state = world.service.session_state(READER[0], page.evaluate(f"{WS}.sessionId"))
    shown = {s["id"]: s for s in page.evaluate(f"{WS}.sentences")}
    for decision in state.sentences:
        assert shown[decision.sentence_id]["status"] == decision.decision
        assert shown[decision.sentence_id]["final_text"] == decision.final_text
    shown_boxes = {b["id"]: b for b in page.evaluate(f"{WS}.boxes")}
    for decision in state.boxes:
        if decision.box_id in shown_boxes:
            assert shown_boxes[decision.box_id]["status"] == decision.decision
        else:  # an impression sentence's box that restates a finding is drawn once, as the finding's box
            assert [b for b in shown_boxes.values() if decision.box_id in b["also"]], decision
    assert page.locator('[data-testid="ws-readonly"]').is_visible()
    shot(page, "07_reopened_readonly")


def test_another_reader_sees_only_their_own_work(world, server, page):
    index, _ = pick_study(world)
    login(page, server, OTHER)
    assert "signed" not in page.locator("#gx-worklist").inner_text()
    open_from_worklist(page, world.studies[index][1])
    assert page.evaluate(f"{WS}.readonly") is False
    assert {s["status"] for s in page.evaluate(f"{WS}.sentences")} == {"pending"}
    assert page.get_by_role("tab", name="Admin").count() == 0


def test_ask_answers_in_the_workstation(world, server, page):
    login(page, server, OTHER)
    open_from_worklist(page, world.studies[-1][1])
    page.fill('[data-testid="ws-ask-input"]', "Is there a pleural effusion?")
    page.click('[data-testid="ws-ask"]')
    page.wait_for_function("(() => { const t = document.querySelector('[data-testid=\"ws-ask-answer\"]').textContent;"
                           " return t && t !== 'Asking…'; })()", timeout=90_000)
    answer = page.locator('[data-testid="ws-ask-answer"]').inner_text()
    assert not answer.startswith("✗"), answer
    shot(page, "08_ask")


def test_admin_adds_a_reader_who_can_then_log_in(world, server, browser, page):
    from conftest_app import ADMIN

    login(page, server, ADMIN)
    page.get_by_role("tab", name="Admin").click()
    page.wait_for_selector("#gx-admin-readers span.text")
    assert "reader1" in page.locator("#gx-admin-readers").inner_text()
    assert "active" in page.locator("#gx-admin-models").inner_text()
    page.locator("#gx-admin-new-username input, #gx-admin-new-username textarea").first.fill("newbie")
    page.locator("#gx-admin-new-password input").first.fill("newbie-pass-1")
    page.click("#gx-admin-add-reader")
    page.wait_for_function("document.querySelector('#gx-admin-add-result').innerText.includes('newbie')")
    assert page.locator("#gx-admin-readers").get_by_text("newbie").count() >= 1
    shot(page, "09_admin")
    fresh = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    login(fresh, server, ("newbie", "newbie-pass-1"))
    assert "newbie" in fresh.locator("#gx-header").inner_text()
    fresh.context.close()


# --- issue 9: image identity, sign-off with pending items, refusals, replay after a restart -----------------------


def new_reader(world, name: str) -> tuple[str, str]:
    from conftest_app import ADMIN

    user = (name, f"{name}-pass-123")
    world.service.create_reader(*user, "reader", acting=ADMIN[0])
    return user


CANVAS_STEP = 6
DELAY_MS = 20_000  # the image is held back this long (test hook): long enough to look at a loaded machine's canvas


def canvas_sample(page) -> dict:
    return page.evaluate(f"{WS}.canvasSample({CANVAS_STEP})")


def shown_from_previous(before: dict, now: dict) -> int:
    """Canvas positions that show a non-background pixel of the previous study's canvas."""
    assert (before["width"], before["height"]) == (now["width"], now["height"])
    return sum(1 for a, b in zip(before["values"], now["values"]) if a > 0 and a == b)


def test_a_new_study_never_shows_the_previous_image(world, server, page):
    """The image payload is held back (test hook): meanwhile the canvas holds nothing of the previous study and the
    header says loading; then the new study's own pixels are drawn."""
    login(page, server, new_reader(world, "viewer_identity"))
    (_, first_uid, _), (_, second_uid, second_path) = world.studies[0], world.studies[1]
    open_from_worklist(page, first_uid)
    page.wait_for_timeout(200)
    before = canvas_sample(page)
    assert sum(1 for v in before["values"] if v > 0) > len(before["values"]) // 4  # an X-ray, not a blank canvas
    page.evaluate(f"{WS}.setImageDelay({DELAY_MS})")
    page.get_by_role("tab", name="Worklist").click()
    page.locator("#gx-worklist span.text", has_text=second_uid).first.click()
    page.wait_for_function(f"{WS}.studyKey === {json.dumps(second_uid)}", timeout=30_000)
    page.locator('[data-testid="ws-canvas"]').wait_for(state="visible", timeout=5_000)  # the Review tab is up
    samples = []
    for _ in range(2):  # twice during the delay
        samples.append(canvas_sample(page))
        header = page.locator('[data-testid="ws-study"]').inner_text()
        placeholder = page.locator('[data-testid="ws-image-state"]')
        assert second_uid in header and "loading" in header, header
        assert placeholder.is_visible() and second_uid in placeholder.inner_text()
        assert page.evaluate(f"{WS}.painted") is False and page.evaluate(f"{WS}.openToPaintMs") is None
        page.wait_for_timeout(500)
    shot(page, "10_loading_placeholder")
    for during in samples:
        assert shown_from_previous(before, during) == 0
        assert max(during["values"]) == 0, "the canvas must be empty while the new image loads"
    page.wait_for_function(f"{WS}.painted && {WS}.imageStudyKey === {json.dumps(second_uid)}",
                           timeout=DELAY_MS + 30_000)
    assert page.evaluate(f"{WS}.openToPaintMs") >= DELAY_MS  # painted means the right image, after the delay
    expected = world.context.image_payload(second_path).values
    h, w = expected.shape
    for px, py in [(w // 4, h // 3), (w // 2, h // 2), (3 * w // 4, 2 * h // 3), (10, 10)]:
        assert page.evaluate(f"{WS}.storedValueAt({px}, {py})") == int(expected[py, px])
    page.wait_for_timeout(200)
    after = canvas_sample(page)
    assert sum(1 for v in after["values"] if v > 0) > len(after["values"]) // 4
    assert "loading" not in page.locator('[data-testid="ws-study"]').inner_text()
    shot(page, "11_new_image")
    assert page.errors == []


def shows_stored_values_of(page, world, image_path: str) -> bool:
    expected = world.context.image_payload(image_path).values
    h, w = expected.shape
    return all(page.evaluate(f"{WS}.storedValueAt({px}, {py})") == int(expected[py, px])
               for px, py in [(w // 4, h // 3), (w // 2, h // 2), (3 * w // 4, 2 * h // 3), (10, 10)])


def test_the_pixels_fetched_at_the_click_are_shown_only_under_their_own_study(world, server, page):
    """A click on a worklist row starts fetching that study's pixels before the open event answers; the workstation
    uses them for that study (same study key and image hash as the value), never for another study."""
    from app import handlers

    reader = new_reader(world, "prefetcher")
    login(page, server, reader)
    first_id, first_uid, first_path = world.studies[0]
    open_from_worklist(page, first_uid)
    assert page.evaluate(f"{WS}.prefetchUsed") is True  # the row click fetched them
    assert shows_stored_values_of(page, world, first_path)
    next_id = handlers.next_study_id(world.service, reader[0], first_id)
    _, next_uid, next_path = next(s for s in world.studies if s[0] == next_id)
    _, other_uid, other_path = next(s for s in world.studies if s[0] not in (first_id, next_id))
    page.evaluate(f"window.gazexPrefetch.start({json.dumps(other_uid)})")  # for another study than the one that opens
    page.get_by_role("button", name="Next case").click()
    page.wait_for_function(f"{WS}.painted && {WS}.studyKey === {json.dumps(next_uid)}", timeout=30_000)
    assert page.evaluate(f"{WS}.imageStudyKey") == next_uid
    assert page.evaluate(f"{WS}.prefetchUsed") is False
    assert shows_stored_values_of(page, world, next_path) and not shows_stored_values_of(page, world, other_path)
    assert page.errors == []


def window_listeners(page, kind: str) -> int:
    cdp = page.context.new_cdp_session(page)
    window = cdp.send("Runtime.evaluate", {"expression": "window"})["result"]["objectId"]
    listeners = cdp.send("DOMDebugger.getEventListeners", {"objectId": window})["listeners"]
    cdp.detach()
    return sum(1 for listener in listeners if listener["type"] == kind)


def wait_new_findings_chart(page) -> None:
    """Waits until the findings chart of the study just opened is drawn (a chart element not seen before)."""
    page.wait_for_function("""() => { const el = document.querySelector('#gx-findings-plot .js-plotly-plot');
        if (!el || el.dataset.seen) return false; el.dataset.seen = '1'; return true; }""", timeout=30_000)


def test_replaced_findings_charts_are_released(world, server, page):
    """Every open draws a new findings chart; the one it replaces must not stay alive in the page (Gradio mounts a
    responsive Plotly plot per figure, whose window resize listener kept each old chart: a leak per open)."""
    login(page, server, new_reader(world, "chart_leak"))
    uids = [uid for _, uid, _ in world.studies[:3]]
    open_from_worklist(page, uids[0])
    wait_new_findings_chart(page)
    after_first = window_listeners(page, "resize")
    for uid in uids[1:] + uids[:1]:
        open_from_worklist(page, uid)
        wait_new_findings_chart(page)
    assert page.locator("#gx-findings-plot .js-plotly-plot").count() == 1
    assert window_listeners(page, "resize") == after_first
    assert page.errors == []


STORED_IN_BROWSER_JS = """() => [localStorage, sessionStorage].flatMap(store =>
    Object.keys(store).map(key => [key, store.getItem(key)]))"""


def test_the_browser_keeps_no_copy_of_the_reports(world, server, page):
    """Gradio's run history would keep every call's inputs and outputs (the drafted report, the study ID) in the
    browser's storage, where they outlive the session; it is off. The workstation's own store of unacknowledged
    decisions is emptied by their acknowledgement."""
    login(page, server, new_reader(world, "no_history"))
    for _, uid, _ in world.studies[:2]:
        open_from_worklist(page, uid)
    first = page.evaluate(f"{WS}.sentences")[0]
    page.click(f'[data-testid="ws-accept-{first["id"]}"]')
    wait_saved(page)
    stored = page.evaluate(STORED_IN_BROWSER_JS)
    assert [key for key, _ in stored if key.startswith("gradio:run-history")] == []
    assert [key for key, value in stored if first["text"] in value or world.studies[1][1] in value] == []


def pending_counts(page) -> tuple[int, int]:
    sentences = [s for s in page.evaluate(f"{WS}.sentences") if s["status"] == "pending"]
    return len(sentences), len([b for b in page.evaluate(f"{WS}.boxes") if b["status"] == "pending"])


def test_sign_off_with_pending_items_asks_and_records_accepted_at_signoff(world, server, page):
    user = new_reader(world, "viewer_pending")
    login(page, server, user)
    study_id, study_uid, _ = world.studies[1]
    open_from_worklist(page, study_uid)
    session_id = page.evaluate(f"{WS}.sessionId")
    draft = world.service.get_draft(study_id)[1]
    first = draft["sentences"][0]["id"]
    page.click(f'[data-testid="ws-accept-{first}"]')
    wait_saved(page)
    n_sentences, n_boxes = pending_counts(page)
    assert n_sentences == len(draft["sentences"]) - 1 and n_boxes >= 1
    page.click('[data-testid="ws-signoff-modify"]')
    dialog = page.locator('[data-testid="ws-confirm"]')
    assert dialog.is_visible()
    text = dialog.inner_text()
    box_word = "box" if n_boxes == 1 else "boxes"
    assert f"{n_sentences} sentences and {n_boxes} {box_word} are still pending" in text, text
    assert page.locator('[data-testid="ws-confirm-accept-rest"]').is_visible()
    assert not page.locator('[data-testid="ws-confirm-ok"]').is_visible()   # no plain "sign" with items pending
    shot(page, "12_pending_dialog")
    page.click('[data-testid="ws-confirm-cancel"]')                          # go back: nothing is signed
    assert page.evaluate(f"{WS}.readonly") is False
    assert world.service.session_state(user[0], session_id).status == "open"
    page.click('[data-testid="ws-signoff-modify"]')
    page.click('[data-testid="ws-confirm-accept-rest"]')
    page.wait_for_function(f"{WS}.signedOff && {WS}.signedOff.decision === 'modify'", timeout=30_000)
    state = world.service.session_state(user[0], session_id)
    assert state.status == "signed" and state.signoff["decision"] == "modify"
    decided = {d.sentence_id: d.decision for d in state.sentences}
    assert decided == {s["id"]: ("accepted" if s["id"] == first else "accepted_at_signoff") for s in draft["sentences"]}
    boxed = {s["id"] for s in draft["sentences"] if s["observation_box"]}
    assert {d.box_id: d.decision for d in state.boxes} == {b: "accepted_at_signoff" for b in boxed}
    events = [e["event_type"] for e in world.service.session_events(user[0], session_id)]
    assert "signoff_pending_dialog" in events and "accept_rest" in events
    assert page.errors == []


def test_a_refused_item_is_shown_and_the_rest_flows_to_sign_off(world, server, page):
    user = new_reader(world, "viewer_refused")
    login(page, server, user)
    study_id, study_uid, _ = world.studies[2]
    open_from_worklist(page, study_uid)
    session_id = page.evaluate(f"{WS}.sessionId")
    ids = [s["id"] for s in world.service.get_draft(study_id)[1]["sentences"]]
    refused, later = ids[0], ids[1:3]
    page.click(f'[data-testid="ws-edit-{refused}"]')
    page.fill('[data-testid="ws-edit-text"]', "x" * 30_000)   # over every text limit: the server refuses it
    page.click('[data-testid="ws-edit-save"]')
    page.click(f'[data-testid="ws-accept-{later[0]}"]')
    page.click(f'[data-testid="ws-delete-{later[1]}"]')
    page.wait_for_function(f"{WS}.pending === 0", timeout=30_000)
    failures = page.evaluate(f"{WS}.failures")
    assert [(f["fn"], f["args"]["sentence_id"]) for f in failures] == [("decide_sentence", refused)]
    assert page.locator(f'[data-testid="ws-refused-{refused}"]').is_visible()
    assert "not saved" in page.locator('[data-testid="ws-status"]').inner_text()
    # the refused edit was never recorded, so the sentence shows what it was: pending, drafted text
    status = {s["id"]: s["status"] for s in page.evaluate(f"{WS}.sentences")}
    assert status[refused] == "pending" and status[later[0]] == "accepted" and status[later[1]] == "deleted"
    acked = [a["args"].get("sentence_id") for a in page.evaluate(f"{WS}.acks") if a["fn"] == "decide_sentence"]
    assert acked == later                                                   # later items acknowledged, in order
    shot(page, "13_refused")
    page.click('[data-testid="ws-signoff-modify"]')
    page.click('[data-testid="ws-confirm-accept-rest"]')
    page.wait_for_function(f"{WS}.signedOff && {WS}.signedOff.decision === 'modify'", timeout=30_000)
    state = world.service.session_state(user[0], session_id)
    decided = {d.sentence_id: d.decision for d in state.sentences}
    assert state.status == "signed"
    assert decided[later[0]] == "accepted" and decided[later[1]] == "deleted"
    assert decided[refused] == "accepted_at_signoff"
    assert "x" * 100 not in state.signoff["final_report"]
    assert len(page.evaluate(f"{WS}.failures")) == 1                          # the refusal was never retried
    assert page.errors == []


def test_unacknowledged_decisions_are_replayed_after_a_server_restart(world, browser):
    """Decisions made while the server is down wait in the browser (localStorage); the tab closes, the server
    comes back on the same address, the reader logs in again: they are sent and recorded exactly once."""
    user = new_reader(world, "viewer_replay")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    demo = start_app(world, port)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        page = context.new_page()
        login(page, url, user)
        study_id, study_uid, _ = world.studies[0]
        open_from_worklist(page, study_uid)
        session_id = page.evaluate(f"{WS}.sessionId")
        draft = world.service.get_draft(study_id)[1]
        ids = [s["id"] for s in draft["sentences"]][:3]
        page.click(f'[data-testid="ws-accept-{ids[0]}"]')
        wait_saved(page)
        demo.close()                                                        # the server goes away
        page.click(f'[data-testid="ws-accept-{ids[1]}"]')
        page.click(f'[data-testid="ws-delete-{ids[2]}"]')
        page.wait_for_function(f"{WS}.lastError !== null", timeout=30_000)
        saved = page.evaluate("""() => Object.keys(localStorage).filter(k => k.startsWith('gazex.unacked.'))
            .flatMap(k => JSON.parse(localStorage.getItem(k)).items)""")
        assert [(i["fn"], i["args"]["sentence_id"]) for i in saved] == [("decide_sentence", ids[1]),
                                                                       ("decide_sentence", ids[2])]
        page.close()                                                        # the tab closes with them unsent
        assert {d.sentence_id for d in world.service.session_state(user[0], session_id).sentences} == {ids[0]}
        demo = start_app(world, port)                                       # the server comes back
        page = context.new_page()
        login(page, url, user)
        open_from_worklist(page, study_uid)   # the workstation comes back and sends what this browser kept
        deadline = time.time() + 60
        while time.time() < deadline:
            decided = {d.sentence_id: d.decision for d in world.service.session_state(user[0], session_id).sentences}
            if len(decided) == 3:
                break
            time.sleep(0.25)
        assert decided == {ids[0]: "accepted", ids[1]: "accepted", ids[2]: "deleted"}
        shown = {x["id"]: x["status"] for x in page.evaluate(f"{WS}.sentences")}
        assert [shown[i] for i in ids] == ["accepted", "accepted", "deleted"]   # and shows them as decided
        page.wait_for_function("""() => !Object.keys(localStorage).some(k => k.startsWith('gazex.unacked.'))""",
                               timeout=30_000)
        # a second reload sends nothing again, and nothing was recorded twice
        page.reload()   # still signed in (same server)
        page.wait_for_function(f"(document.querySelector('#gx-header') || {{}}).innerText?.includes('{user[0]}')",
                               timeout=60_000)
        open_from_worklist(page, study_uid)
        page.wait_for_timeout(1500)
        from sqlalchemy import select

        from annotations_db.models import SentenceDecisionRow

        with world.service.engine.connect() as connection:
            rows = connection.execute(select(SentenceDecisionRow.sentence_id).where(
                SentenceDecisionRow.session_id == session_id)).scalars().all()
        assert sorted(rows) == sorted(ids)
    finally:
        context.close()
        demo.close()
