"""In Debian's Chromium: a reader sees exactly their arm's content for every case of a crossover experiment, and a
period still in its washout is refused with the date it opens.

Real parts: the app on a free port, a real SQLite file, synthetic studies drafted by the shipped GazeX model
(tests/conftest_app.py), the experiment created and its readers assigned through the ReviewService, Playwright
driving /usr/bin/chromium. Arms (docs/study_lead_guide.md): ``unaided`` shows the image and an empty report;
``draft`` the drafted sentences and observation boxes without the inspection trajectory (and so no clue boxes);
``draft_trajectory`` everything.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from conftest_app import ADMIN, world  # noqa: F401 - fixture
from test_app_e2e import WS, browser, login, open_from_worklist, page, server, shot  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ARMS = ["unaided", "draft", "draft_trajectory"]
READERS = [(f"arm_reader_{n}", f"arm-reader-pass-{n}") for n in range(3)]
WASHOUT_DAYS = 28


@pytest.fixture(scope="module")
def experiment(world):
    for username, password in READERS:
        world.service.create_reader(username, password, "reader", acting=ADMIN[0])
    return world.service.create_experiment(
        "arms in the browser", design="crossover", arms=ARMS, readers=[u for u, _ in READERS],
        study_ids=[study_id for study_id, _, _ in world.studies], washout_days=WASHOUT_DAYS, seed=5,
        acting=ADMIN[0])


def expected_frames(draft: dict) -> int:
    """The trajectory points the workstation plays: the findings sentences' (else every sentence's)."""
    findings = [s for s in draft["sentences"] if s["section"] == "findings" and s["trajectory"]]
    source = findings or [s for s in draft["sentences"] if s["trajectory"]]
    return sum(len(s["trajectory"]) for s in source)


def shown(page) -> dict:
    return page.evaluate(f"""() => ({{sentences: {WS}.sentences.map((s) => s.id), boxes: {WS}.boxes.length,
        frames: {WS}.frameCount, text: document.querySelector('[data-testid="ws-root"]').innerText,
        title: document.querySelector('#gx-study-title').innerText}})""")


def assert_arm_content(arm: str, draft: dict, seen: dict) -> None:
    draft_ids = [str(s["id"]) for s in draft["sentences"]]
    assert f"arm: {arm}" in seen["title"]
    if arm == "unaided":
        assert seen["sentences"] == [] and seen["boxes"] == 0 and seen["frames"] == 0
        assert not any(s["text"] in seen["text"] for s in draft["sentences"]), "the unaided arm shows draft text"
        return
    assert sorted(seen["sentences"]) == sorted(draft_ids)
    assert all(s["text"] in seen["text"] for s in draft["sentences"])
    assert (seen["boxes"] > 0) == any(s["observation_box"] for s in draft["sentences"])
    assert seen["frames"] == (0 if arm == "draft" else expected_frames(draft))


def test_each_arm_shows_exactly_its_content(world, experiment, server, browser):
    uids = {study_id: uid for study_id, uid, _ in world.studies}
    checked = {arm: 0 for arm in ARMS}
    with_trajectory = {"draft": 0, "draft_trajectory": 0}
    for user in READERS:
        items = sorted(world.service.worklist(user[0]), key=lambda item: item.position)
        assert sorted(item.arm for item in items) == sorted(ARMS)  # period 1: every arm once
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        reader_page = context.new_page()
        login(reader_page, server, user)
        for item in items:
            open_from_worklist(reader_page, uids[item.study.id])
            draft = world.service.get_draft(item.study.id)[1]
            assert_arm_content(item.arm, draft, shown(reader_page))
            checked[item.arm] += 1
            if item.arm in with_trajectory and expected_frames(draft):
                with_trajectory[item.arm] += 1
            shot(reader_page, f"arm_{user[0]}_{item.arm}")
        context.close()
    assert checked == {arm: len(READERS) for arm in ARMS}
    # the trajectory is hidden in ``draft`` and shown in ``draft_trajectory`` on drafts that have one
    assert with_trajectory["draft"] > 0 and with_trajectory["draft_trajectory"] > 0, with_trajectory


def test_a_period_in_washout_is_refused_with_its_opening_date(world, experiment, server, page):
    user = READERS[0]
    for item in world.service.worklist(user[0]):  # the reader finishes period 1
        state = world.service.open_session(user[0], item.study.id)
        world.service.sign_off(user[0], state.session_id, "accept", "Report.", active_ms=30_000, accept_rest=True)
    [progress] = [p for p in world.service.experiment_progress(experiment) if p["reader"] == user[0]]
    assert progress["state"] == "locked" and progress["next"]["period"] == 2
    opens_at = progress["opens_at"]
    ahead = opens_at.replace(tzinfo=opens_at.tzinfo or timezone.utc) - datetime.now(timezone.utc)
    assert timedelta(days=WASHOUT_DAYS - 1) < ahead <= timedelta(days=WASHOUT_DAYS)
    date = f"{opens_at:%Y-%m-%d %H:%M} UTC"

    login(page, server, user)
    page.wait_for_function("document.querySelector('#gx-worklist-summary').innerText.includes('washout')",
                           timeout=30_000)
    summary = page.locator("#gx-worklist-summary").inner_text()
    assert f"period 2 is in its washout; it opens on {date}" in summary
    rows = page.locator("#gx-worklist").inner_text()
    assert rows.count("signed") == len(ARMS) and "unread" not in rows  # only the finished period-1 reads
    page.click("#gx-open-next")
    page.wait_for_function("document.querySelector('#gx-message').innerText.includes('washout')", timeout=30_000)
    message = page.locator("#gx-message").inner_text()
    assert "No case is open now" in message and date in message and "All cases are signed" not in message
    shot(page, "arm_washout_refused")
