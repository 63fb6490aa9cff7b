"""The app process's resident memory while a reader reviews N studies in a real browser (issue 11: <= 1 GB after 50).

Usage: .venv/bin/python benchmarks/bench_app_memory.py [--studies 50] [--model DIR]

The app is the product's own process: ``python launch.py`` (fresh data dir, embedded SQLite, the shipped model,
a demo worklist of N synthetic studies drafted in the background) on a free port. This script waits until every
draft is in the database, then drives Debian's Chromium through Playwright and reviews each study as a reader
would: opened from the worklist (its own image painted), the first sentence accepted, signed as modified with
"accept the rest" (waiting for the server's acknowledgement). The app process's resident memory (VmRSS, from
/proc/PID/status) is read once the drafts are ready, after the first study and every 10; VmHWM (its peak) at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_app import CHROMIUM_ARGS, WS, free_port, login, machine, open_study  # noqa: E402

TARGET_MIB = 1024
PASSWORD = "bench-memory-123"


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status (Linux only)")


def start_app(data_dir: Path, port: int, studies: int, model: str | None) -> subprocess.Popen:
    env = dict(os.environ, GAZEX_ADMIN_PASSWORD=PASSWORD, GAZEX_DEMO_PASSWORD=PASSWORD, GAZEX_TEST_HOOKS="1")
    command = [sys.executable, str(REPO / "launch.py"), "--data-dir", str(data_dir), "--port", str(port),
               "--demo-n", str(studies)] + (["--model", model] if model else [])
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=open(data_dir / "app.log", "w"), stderr=subprocess.STDOUT)


def wait_for_drafts(app: subprocess.Popen, data_dir: Path, studies: int, timeout_s: float = 3600) -> list[str]:
    """The demo study UIDs once each has a draft in the database (the app drafts them in the background)."""
    from annotations_db.service import ReviewService

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if app.poll() is not None:
            raise SystemExit(f"launch.py exited with {app.returncode}; see {data_dir / 'app.log'}")
        if "drafts queued" in (data_dir / "app.log").read_text():  # accounts and studies are in the database
            try:
                service = ReviewService.open(None, data_dir=str(data_dir))
                items = service.worklist("demo")
                if len(items) >= studies and all(item.has_draft for item in items):
                    return [item.study.study_uid for item in sorted(items, key=lambda item: item.position)]
            except Exception:  # the app is still creating its database
                pass
        time.sleep(2)
    raise SystemExit(f"drafts not ready after {timeout_s:.0f} s")


def review(page, uid: str) -> None:
    """Open, accept the first sentence, sign as modified (accepting the rest when asked); returns once the server
    acknowledged the sign-off."""
    open_study(page, uid)
    first = page.evaluate(f"{WS}.sentences[0].id")
    page.click(f'[data-testid="ws-accept-{first}"]')
    page.click('[data-testid="ws-signoff-modify"]')
    page.wait_for_function(SIGNED_OR_ASKED_JS, timeout=60_000)
    rest = page.locator('[data-testid="ws-confirm-accept-rest"]')
    if rest.is_visible():  # items pending (the usual case): the workstation asks, the reader accepts the rest
        rest.click()
    page.wait_for_function(f"{WS}.signedOff && {WS}.signedOff.decision === 'modify' && !{WS}.pending", timeout=60_000)


SIGNED_OR_ASKED_JS = (f"({WS}.signedOff && {WS}.signedOff.decision === 'modify') || "
                      "!!document.querySelector('[data-testid=\"ws-confirm-accept-rest\"]')?.offsetParent")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--studies", type=int, default=50)
    parser.add_argument("--model", default=os.environ.get("GAZEX_MODEL"),
                        help="checkpoint directory (default: the shipped gazex_core/weights/gazex-tiny)")
    parser.add_argument("--every", type=int, default=10, help="read the app's memory every N reviewed studies")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"machine: {machine()}", flush=True)
    data_dir = Path(tempfile.mkdtemp(prefix="gazex_bench_memory_"))
    port = free_port()
    app = start_app(data_dir, port, args.studies, args.model)
    try:
        started = time.perf_counter()
        uids = wait_for_drafts(app, data_dir, args.studies)
        print(f"{len(uids)} demo studies drafted by the app in {time.perf_counter() - started:.0f} s", flush=True)
        rows = [("app started, model loaded, drafts made", 0, memory_mib(app.pid))]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            login(page, f"http://127.0.0.1:{port}", ("demo", PASSWORD))
            for n, uid in enumerate(uids, start=1):
                review(page, uid)
                if n == 1 or n % args.every == 0 or n == len(uids):
                    rows.append((f"after {n} reviewed studies", n, memory_mib(app.pid)))
                    print(f"{n} reviewed: {rows[-1][2]:.0f} MiB", flush=True)
            browser.close()
        peak = memory_mib(app.pid, "VmHWM")
    finally:
        app.terminate()
        app.wait(30)
    from annotations_db.service import ReviewService

    signed = sum(1 for item in ReviewService.open(None, data_dir=str(data_dir)).worklist("demo")
                 if item.status == "signed")
    print(f"\nbench_app_memory — {machine()}; load {os.getloadavg()[0]:.1f} at end; launch.py with {len(uids)} "
          f"demo studies, {signed} signed in the database")
    print("| point | studies reviewed | app resident MiB |")
    print("|---|---|---|")
    for label, n, mib in rows:
        print(f"| {label} | {n} | {mib:.0f} |")
    print(f"| peak (VmHWM) | {len(uids)} | {peak:.0f} |")
    final = rows[-1][2]
    print(f"target: <= {TARGET_MIB} MiB after {len(uids)} studies: {'met' if final <= TARGET_MIB else 'NOT met'} "
          f"({final:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
