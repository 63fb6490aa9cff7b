"""End to end in Debian's Chromium: log in, review a study, sign off; the database holds exactly that.

Real parts: the app (app.main.build_app) on a free port, a real SQLite file, synthetic studies drafted
by the real GazeX model through the app's InferenceWorker, Playwright driving /usr/bin/chromium.
Screenshots go to test-artifacts/app_e2e/ (git-ignored).
"""

from __future__ import annotations

import json
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


@pytest.fixture(scope="module")
def server(world):
    from app.main import build_app, launch_app

    demo = build_app(world.context)
    port = free_port()
    launch_app(demo, world.context, port=port, prevent_thread_lock=True, quiet=True)
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
    boxed = [s for s in draft["sentences"] if s["observation_box"]][-1]
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

    # sign off as modified: the next case opens
    page.click('[data-testid="ws-signoff-modify"]')
    page.wait_for_function(f"{WS}.signedOff && {WS}.signedOff.decision === 'modify'")
    page.wait_for_function(f"{WS}.studyKey !== {json.dumps(study_uid)} && {WS}.painted", timeout=30_000)
    shot(page, "06_next_case")

    # the database holds exactly those decisions, with durations
    state = world.service.session_state(READER[0], session_id)
    assert state.status == "signed" and state.study.id == study_id
    sentences = {d.sentence_id: d for d in state.sentences}
    assert set(sentences) == {edited, accepted}
    assert sentences[edited].decision == "edited" and sentences[edited].final_text == "Edited in the e2e test."
    assert sentences[edited].error_category == "severity"
    assert sentences[accepted].decision == "accepted"
    boxes = {d.box_id: d for d in state.boxes}
    drawn = [b for b in boxes if b != boxed["id"]]
    assert set(boxes) == {boxed["id"], *drawn} and len(drawn) == 1
    assert boxes[boxed["id"]].decision == "rejected"
    new = boxes[drawn[0]]
    assert new.decision == "added" and new.linked_sentence_id == boxed["id"]
    assert (new.x_min, new.y_min, new.x_max, new.y_max) == pytest.approx((0.55, 0.2, 0.8, 0.4), abs=0.01)
    for decision in [*state.sentences, *state.boxes]:
        assert decision.duration_ms is not None and decision.duration_ms >= 0, decision
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
        assert shown_boxes[decision.box_id]["status"] == decision.decision
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
