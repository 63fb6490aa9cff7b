"""In Debian's Chromium: the admin uploads a folder; a reader reviews the imported real film (pydicom-data's RG1,
a PA chest CR, MONOCHROME1, 15-bit) with window/level beyond its DICOM window.

Real parts: the app on a free port with the shipped model drafting in its InferenceWorker, a real SQLite file,
the upload through Gradio's folder input, interop's importer, Playwright driving /usr/bin/chromium.
"""

from __future__ import annotations

import os

import shutil

import pytest
from pydicom.data import get_testdata_file

from annotations_db import ReviewService
from conftest_app import ADMIN, READER, free_port
from test_app_e2e import CHROMIUM, CHROMIUM_ARGS, WS, login, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

DICOM_WINDOW = (15000.0, 30000.0)  # RG1_UNCR's WindowCenter / WindowWidth
DICOM_TOP = DICOM_WINDOW[0] + DICOM_WINDOW[1] / 2  # 30000: the window's upper end
POINTS = [(0.3, 0.45), (0.5, 0.5), (0.7, 0.4), (0.5, 0.8), (0.25, 0.7)]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from app.main import build_app, launch_app
    from app.runtime import build_context

    data_dir = tmp_path_factory.mktemp("interop_browser")
    service = ReviewService.open(None, data_dir=str(data_dir))
    service.create_reader(*ADMIN, "admin")
    service.create_reader(*READER, "reader", acting=ADMIN[0])
    # the real film fails the input check (unlike the synthetic training films): this site drafts it anyway
    context = build_context(service, None, draft_out_of_scope=True)
    context.data_dir = data_dir
    os.environ["GAZEX_TEST_HOOKS"] = "1"  # bundle the workstation's test getters (never set in production)
    try:
        demo = build_app(context)
    finally:
        os.environ.pop("GAZEX_TEST_HOOKS", None)
    port = free_port()
    launch_app(demo, context, port=port, prevent_thread_lock=True, quiet=True)
    yield f"http://127.0.0.1:{port}", context, data_dir
    demo.close()
    if context.worker is not None:
        context.worker.stop()
    service.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _expected_grey(stored: float, center: float, width: float) -> float:
    """The workstation's LINEAR VOI (PS3.3 C.11.2.1.2) to 0-255, then MONOCHROME1 inverted."""
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    return 255 - min(max((stored - lo) / (hi - lo) * 255, 0), 255)


def _painted_vs_expected(page) -> list[tuple[float, float]]:
    """(painted grey, grey expected from the stored value and the current window) at each of POINTS."""
    view = page.evaluate(f"{WS}.view")
    out = []
    for nx, ny in POINTS:
        px, py = int(nx * view["dispWidth"]), int(ny * view["dispHeight"])
        stored = page.evaluate(f"{WS}.storedValueAt({px}, {py})")
        painted = page.evaluate(f"""([nx, ny]) => {{
            const r = document.querySelector('[data-testid="ws-canvas"]').getBoundingClientRect();
            const p = {WS}.toClient(nx, ny); return {WS}.pixelAt(p.x - r.left, p.y - r.top); }}""",
                                [(px + 0.5) / view["dispWidth"], (py + 0.5) / view["dispHeight"]])
        out.append((painted[0], _expected_grey(stored, view["center"], view["width"])))
    return out


def _right_drag(page, dx: float, dy: float) -> None:
    c = page.evaluate(f"{WS}.toClient(0.5, 0.5)")
    page.mouse.move(c["x"], c["y"])
    page.mouse.down(button="right")
    page.mouse.move(c["x"] + dx, c["y"] + dy, steps=6)
    page.mouse.up(button="right")
    page.wait_for_timeout(150)


def test_admin_uploads_a_folder_and_a_reader_windows_the_real_film_beyond_its_dicom_window(site, browser, tmp_path):
    url, context, data_dir = site
    folder = tmp_path / "DOE_JOHN_MRN1234"
    folder.mkdir()
    shutil.copy(get_testdata_file("RG1_UNCR.dcm"), folder / "RG1_UNCR.dcm")
    (folder / "readme.txt").write_text("films of John Doe")

    admin = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    login(admin, url, ADMIN)
    admin.get_by_role("tab", name="Admin").click()
    admin.locator("#gx-admin-import").get_by_text("Import and export").first.click()
    admin.locator("#gx-admin-import-folder input[type=file]").set_input_files(str(folder))
    admin.wait_for_function("!!document.querySelector('#gx-admin-import-folder') && "
                            "document.querySelector('#gx-admin-import-folder').innerText.includes('RG1_UNCR')",
                            timeout=60_000)
    admin.click("#gx-admin-import-button")
    admin.wait_for_function("document.querySelector('#gx-admin-import-result').innerText.includes('imported')",
                            timeout=120_000)
    result = admin.locator("#gx-admin-import-result").inner_text()
    assert "imported 1, skipped 1" in result and "readme.txt" in result, result
    assert "DOE_JOHN" not in admin.content()
    shot(admin, "interop_admin_import")
    admin.context.close()

    (study,) = context.service.study_set_studies("imported")
    assert "DOE_JOHN" not in study.image_path and study.image_path.startswith(str(data_dir))
    assert context.worker.wait_idle(600) and context.service.get_draft(study.id) is not None
    assert all(s["out_of_scope"] for s in context.service.get_draft(study.id)[1]["sentences"])

    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    login(page, url, READER)
    page.get_by_role("tab", name="Worklist").click()
    page.locator("#gx-worklist span.text", has_text=study.study_uid).first.click()
    page.wait_for_function(f"{WS} && {WS}.painted && {WS}.studyKey === '{study.study_uid}'", timeout=60_000)
    assert page.evaluate(f"{WS}.sentences").__len__() > 0  # the model's draft of the real film is there to review
    for key in "bct":  # boxes, clue boxes and trajectory off: the points below sample the film, not the overlays
        page.keyboard.press(key)
    assert page.evaluate(f"{WS}.show") == {"boxes": False, "clues": False, "traj": False}
    view = page.evaluate(f"{WS}.view")
    assert (view["center"], view["width"], view["photometric"]) == (*DICOM_WINDOW, "MONOCHROME1")
    for painted, expected in _painted_vs_expected(page):
        assert abs(painted - expected) <= 12, (painted, expected)

    _right_drag(page, 300, 0)  # wider than the DICOM window: both ends beyond 0 and 30000
    wide = page.evaluate(f"{WS}.view")
    assert wide["center"] - wide["width"] / 2 < 0 and wide["center"] + wide["width"] / 2 > DICOM_TOP
    for painted, expected in _painted_vs_expected(page):
        assert abs(painted - expected) <= 12, (painted, expected)

    page.keyboard.press("0")  # back to the DICOM VOI
    _right_drag(page, -285, 340)  # narrow and high: the top of the window beyond the DICOM window's 30000
    narrow = page.evaluate(f"{WS}.view")
    assert narrow["width"] < 8000 and narrow["center"] + narrow["width"] / 2 > DICOM_TOP
    pairs = _painted_vs_expected(page)
    for painted, expected in pairs:
        assert abs(painted - expected) <= 12, (painted, expected)
    shot(page, "interop_real_film_narrow_window")
    page.keyboard.press("0")
    assert (page.evaluate(f"{WS}.view.center"), page.evaluate(f"{WS}.view.width")) == DICOM_WINDOW
    page.context.close()
