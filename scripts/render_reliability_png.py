"""Renders the calibration reliability diagram of a `gazex calibrate evaluate` result as a PNG for the docs.

    python scripts/render_reliability_png.py docs/model_eval/calibration/calibration.json docs/img/calibration_reliability.png

A docs tool, not part of the product: it drives Debian's headless Chromium through Playwright (plotly.js inline,
nothing fetched from the network), since no static plotly image exporter is installed here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from training.calibration import reliability_figure

CHROMIUM = "/usr/bin/chromium"


def render_png(result_json: Path, png: Path) -> Path:
    fig = reliability_figure(json.loads(result_json.read_text()))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 780, "height": 620})
            page.set_content(fig.to_html(include_plotlyjs=True, full_html=True))
            page.wait_for_selector(".main-svg")
            page.locator(".plotly-graph-div").screenshot(path=str(png))
        finally:
            browser.close()
    return png


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python scripts/render_reliability_png.py RESULT.json OUT.png")
    print(render_png(Path(sys.argv[1]), Path(sys.argv[2])))
