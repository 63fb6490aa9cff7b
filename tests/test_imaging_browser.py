"""The image pipeline's payload in the real workstation (Playwright + Debian chromium): the real film RG1 arrives
as its 15-bit stored values with the DICOM VOI, W/L moves the window far from it, the header scope warning is
in the banner, and a SIGMOID VOI LUT function is applied by the browser.
"""

import socket
from pathlib import Path

import numpy as np
import pydicom
import pytest

import playwright.sync_api as playwright_sync  # noqa: E402  (a missing install fails, never skips)
from test_imaging_pipeline import _dicom, corpus_file

from gazex_core.imaging import drafting_scope, load_image

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
BANDS = (1500, 1900, 2000, 2100, 2500)  # stored values of the SIGMOID test image, one vertical band each

pytestmark = pytest.mark.browser


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _values(tmp: Path) -> dict[str, dict]:
    from app.workstation import image_payload, workstation_value
    from workstation_demo import sample_bundle

    lateral = tmp / "rg1_ll.dcm"  # the real film, its header saying a lateral view
    ds = pydicom.dcmread(corpus_file("RG1_J2KR.dcm"))
    ds.ViewPosition = "LL"
    ds.save_as(str(lateral))
    film = load_image(lateral)
    bundle = dict(sample_bundle(0), scope_warnings=drafting_scope(film))
    bands = np.repeat(np.array(BANDS, dtype=np.uint16), 128)[None, :].repeat(256, axis=0)
    sigmoid = load_image(_dicom(tmp / "sigmoid.dcm", bands, Modality="DX", WindowCenter=2000, WindowWidth=400,
                                VOILUTFunction="SIGMOID"))
    return {"film": workstation_value(bundle, image_payload(film), session_id=1, study_key="rg1"),
            "sigmoid": workstation_value(dict(sample_bundle(1), sentences=[]), image_payload(sigmoid), session_id=2,
                                         study_key="sigmoid")}  # no sentences: no boxes or trajectory over the bands


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import gradio as gr

    from app.workstation import Workstation

    values = _values(tmp_path_factory.mktemp("imaging-browser"))
    with gr.Blocks() as demo:
        ws = Workstation(values["film"], elem_id="gx-workstation", test_hooks=True)
        gr.Button("sigmoid", elem_id="open-sigmoid").click(lambda: values["sigmoid"], outputs=ws)
    port = _free_port()
    demo.launch(prevent_thread_lock=True, server_port=port, quiet=True, ssr_mode=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture
def page(server):
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 920})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(server)
        page.wait_for_function("window.gazexWorkstation && window.gazexWorkstation.painted", timeout=90000)
        yield page
        browser.close()
        assert not errors, errors


def _drawn(page):
    """Two animation frames: whatever changed has been drawn."""
    page.evaluate("() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")


def _grey_at(page, nx, ny):
    return page.evaluate(f"""() => {{ const g = window.gazexWorkstation;
        const r = document.querySelector('[data-testid=ws-canvas]').getBoundingClientRect();
        const c = g.toClient({nx}, {ny}); return g.pixelAt(c.x - r.left, c.y - r.top)[0]; }}""")


def test_real_film_stored_values_voi_wl_and_scope_banner(page):
    view = page.evaluate("window.gazexWorkstation.view")
    assert (view["center"], view["width"], view["photometric"]) == (15000, 30000, "MONOCHROME1")
    stored = page.evaluate("""() => { const g = window.gazexWorkstation; let mx = 0, mn = 65535;
        for (let y = 0; y < 1024; y += 7) for (let x = 0; x < 963; x += 7) {
            const v = g.storedValueAt(x, y); if (v > mx) mx = v; if (v < mn) mn = v; }
        return [mn, mx]; }""")
    assert stored[0] < 2000 and stored[1] > 24000  # the 15-bit stored range, not 10-bit display levels
    banner = page.inner_text("[data-testid=ws-warnings]")
    assert "ViewPosition is LL, not PA or AP" in banner
    before = _grey_at(page, 0.3, 0.45)
    box = page.query_selector("[data-testid=ws-canvas]").bounding_box()
    x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
    page.mouse.move(x, y)
    page.mouse.down(button="right")
    page.mouse.move(x - 340, y + 250, steps=12)  # narrower window, higher level: far from the DICOM 15000 / 30000
    page.mouse.up(button="right")
    _drawn(page)
    after = page.evaluate("window.gazexWorkstation.view")
    assert after["width"] < 5000 and after["center"] > 20000
    assert abs(_grey_at(page, 0.3, 0.45) - before) > 20
    page.keyboard.press("0")  # back to the DICOM VOI
    _drawn(page)
    reset = page.evaluate("window.gazexWorkstation.view")
    assert (reset["center"], reset["width"]) == (15000, 30000)


def test_sigmoid_voi_function_is_applied_by_the_browser(page):
    page.click("#open-sigmoid")
    # the new image is in place (display width 640) and two animation frames later it has been drawn
    page.wait_for_function("window.gazexWorkstation.studyKey === 'sigmoid' && window.gazexWorkstation.view.dispWidth === 640",
                           timeout=90000)
    _drawn(page)
    greys = [_grey_at(page, (i + 0.5) / len(BANDS), 0.5) for i in range(len(BANDS))]
    expected = [round(255 / (1 + np.exp(-4 * (v - 2000) / 400))) for v in BANDS]  # 5, 69, 128, 186, 250
    assert all(abs(g - e) <= 2 for g, e in zip(greys, expected)), (greys, expected)
    linear = [min(255, max(0, round(((v - 1999.5) / 399 + 0.5) * 255))) for v in BANDS]
    assert any(abs(g - lin) > 3 for g, lin in zip(greys, linear))  # and not the LINEAR function
