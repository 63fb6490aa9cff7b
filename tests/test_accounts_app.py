"""The app's sign-in gate over real HTTP (the real Gradio app in review-only mode, no model) on a real SQLite
file and a real PostgreSQL server: lockout messages, session expiry on pages and server functions with an
injectable clock, disable and password change from the admin handlers, logout, and monitoring refused."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest

from annotations_db.accounts import AccountPolicy
from db_support import BACKENDS, MovableClock
from conftest_app import free_port

ADMIN = ("chief", "chief-pass-1")
READER = ("reader1", "reader-pass-1")
POLICY = AccountPolicy(user_max_failures=3, client_max_failures=50, lockout=timedelta(minutes=10))


class Gate:
    def __init__(self, url: str, service, clock: MovableClock, demo) -> None:
        self.url, self.service, self.clock = url, service, clock
        self.workstation_id = _workstation_id(demo)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)

    def sign_in(self, user: tuple[str, str], client: httpx.Client | None = None) -> httpx.Client:
        client = client or self.client()
        response = client.post("/login", data={"username": user[0], "password": user[1]})
        assert response.status_code == 200, response.text
        return client

    def server_function(self, client: httpx.Client) -> httpx.Response:
        """A workstation server function call (refused by the handler for its empty data, if it gets that far)."""
        return client.post("/gradio_api/component_server/", json={
            "session_hash": "accounts-test", "component_id": self.workstation_id, "fn_name": "record_event",
            "data": [0, "view", {}, None]})


def _workstation_id(demo) -> int:
    from app.workstation import Workstation

    return next(i for i, block in demo.blocks.items() if isinstance(block, Workstation))


@pytest.fixture(scope="module", params=BACKENDS)
def gate(request, tmp_path_factory):
    import pgcluster

    from annotations_db import ReviewService
    from app.main import build_app, launch_app
    from app.runtime import build_context

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('accounts_app') / 'gazex.sqlite3'}"
    else:
        url = pgcluster.create_database(request.getfixturevalue("postgres_server_url"))
    clock = MovableClock()
    service = ReviewService.open(url, clock=clock)
    service.account_policy = POLICY
    service.create_reader(*ADMIN, "admin")
    service.create_reader(*READER, "reader", acting=ADMIN[0])
    context = build_context(service, None, review_only=True)
    demo = build_app(context)
    port = launch_on_a_free_port(lambda port: launch_app(demo, context, port=port, prevent_thread_lock=True,
                                                         quiet=True))
    try:
        yield Gate(f"http://127.0.0.1:{port}", service, clock, demo)
    finally:
        demo.close()
        service.close()
        if request.param != "sqlite":
            pgcluster.drop_database(url)


def launch_on_a_free_port(launch, attempts: int = 3) -> int:
    """Gradio gives a server 5 s to start; on a loaded machine that can pass: try again on a new port."""
    for attempt in range(attempts):
        port = free_port()
        try:
            launch(port)
            return port
        except OSError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def note(page: httpx.Response) -> str:
    found = re.findall(r'<p class="note">([^<]*)</p>', page.text)
    return found[0] if found else ""


def is_sign_in_page(page: httpx.Response) -> bool:
    return page.status_code == 200 and 'id="gx-login"' in page.text


def test_sign_in_page_wrong_password_and_lockout_message(gate):
    client = gate.client()
    assert is_sign_in_page(client.get("/"))
    assert client.get("/config").status_code == 401
    wrong = client.post("/login", data={"username": "locked1", "password": "wrong-pass"})
    assert wrong.status_code == 400 and wrong.json()["detail"] == "Incorrect username or password."
    gate.service.create_reader("locked1", "locked1-pass", "reader", acting=ADMIN[0])
    for _ in range(POLICY.user_max_failures - 1):
        client.post("/login", data={"username": "locked1", "password": "wrong-pass"})
    refused = client.post("/login", data={"username": "locked1", "password": "locked1-pass"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 500
    assert refused.json()["detail"] == "Too many failed sign-ins for this username: try again in 10 minutes."
    gate.clock.advance(minutes=10, seconds=1)
    gate.sign_in(("locked1", "locked1-pass"), client)
    assert client.get("/config").status_code == 200 and not is_sign_in_page(client.get("/"))


def test_idle_expiry_on_pages_and_server_functions(gate):
    client = gate.sign_in(READER)
    assert client.get("/config").status_code == 200
    working = gate.server_function(client)
    assert working.status_code == 200 and working.json()["ok"] is False  # reached the handler
    gate.clock.advance(minutes=29)
    assert gate.server_function(client).status_code == 200  # activity
    gate.clock.advance(minutes=29)
    assert client.get("/config").status_code == 200  # still alive; a GET of config is no activity
    gate.clock.advance(minutes=1, seconds=1)
    assert client.get("/config").status_code == 401
    assert gate.server_function(client).status_code == 401
    assert client.post("/gradio_api/queue/join", json={}).status_code == 401
    page = client.get("/")
    assert is_sign_in_page(page) and note(page) == "You were signed out after 30 minutes without activity. " \
                                                   "Please sign in again."


def test_absolute_expiry_even_while_active(gate):
    client = gate.sign_in(READER)
    for _ in range(24):  # active every 29 minutes, for 11 h 36 min
        gate.clock.advance(minutes=29)
        assert gate.server_function(client).status_code == 200
    gate.clock.advance(minutes=23)
    assert gate.server_function(client).status_code == 200
    gate.clock.advance(minutes=2)  # 12 h 01 min after sign-in, 25 min after the last activity
    assert gate.server_function(client).status_code == 401
    assert note(client.get("/")) == "Your session reached its 12 hours limit. Please sign in again."


def test_disable_and_password_change_from_the_admin_handlers_end_sessions(gate):
    from app import handlers

    gate.service.create_reader("temp1", "temp1-pass-1", "reader", acting=ADMIN[0])
    laptop, workstation = gate.sign_in(("temp1", "temp1-pass-1")), gate.sign_in(("temp1", "temp1-pass-1"))
    with pytest.raises(handlers.AccessDenied):
        handlers.set_reader_disabled(gate.service, READER[0], "temp1", True)
    assert "sessions have ended" in handlers.set_reader_disabled(gate.service, ADMIN[0], "temp1", True)
    for client in (laptop, workstation):
        assert client.get("/config").status_code == 401
    assert note(laptop.get("/")) == "This account has been disabled; ask an administrator."
    refused = gate.client().post("/login", data={"username": "temp1", "password": "temp1-pass-1"})
    assert refused.status_code == 403 and "disabled" in refused.json()["detail"]
    status = {row[1]: row[4] for row in handlers.readers_rows(gate.service, ADMIN[0])}
    assert status["temp1"] == "disabled"

    handlers.set_reader_disabled(gate.service, ADMIN[0], "temp1", False)
    laptop, workstation = gate.sign_in(("temp1", "temp1-pass-1")), gate.sign_in(("temp1", "temp1-pass-1"))
    handlers.set_reader_password(gate.service, ADMIN[0], "temp1", "temp1-new-pass")
    for client in (laptop, workstation):
        assert client.get("/config").status_code == 401
    assert note(laptop.get("/")) == "Your password was changed. Please sign in with the new password."
    old = gate.client().post("/login", data={"username": "temp1", "password": "temp1-pass-1"})
    assert old.status_code == 400
    gate.sign_in(("temp1", "temp1-new-pass"))


def test_logout_ends_the_session_for_good(gate):
    client = gate.sign_in(READER)
    token = dict(client.cookies)
    response = client.get("/logout", follow_redirects=False)
    assert response.status_code == 302
    replay = gate.client()
    replay.cookies.update(token)  # the old cookie, kept by an attacker
    assert replay.get("/config").status_code == 401 and is_sign_in_page(replay.get("/"))


def test_monitoring_is_off_for_readers_admins_and_strangers(gate):
    for client in (gate.sign_in(READER), gate.sign_in(ADMIN), gate.client()):
        for path in ("/monitoring", "/monitoring/summary", "/monitoring/some-key", "/monitoring/some-key/dashboard"):
            response = client.get(path)
            assert response.status_code == 403 and "monitoring" in response.text.lower()


@pytest.mark.browser
def test_in_the_browser_refusals_and_an_ended_session_are_said_plainly(gate):
    from playwright.sync_api import sync_playwright

    gate.service.create_reader("browser1", "browser1-pass", "reader", acting=ADMIN[0])
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(gate.url)
            page.fill("input[type=text]", "browser1")
            page.fill("input[type=password]", "wrong-password")
            page.keyboard.press("Enter")
            page.wait_for_function("document.querySelector('#gx-login-error').innerText.length > 0")
            assert page.inner_text("#gx-login-error") == "Incorrect username or password."
            page.fill("input[type=password]", "browser1-pass")
            page.keyboard.press("Enter")
            page.wait_for_function("(document.querySelector('#gx-header') || {}).innerText?.includes("
                                   "'signed in as browser1')", timeout=60_000)
            gate.clock.advance(minutes=31)
            page.click("#gx-refresh")  # any event after the idle limit
            page.wait_for_selector("#gx-session-ended", timeout=30_000)
            assert "Your session has ended" in page.inner_text("#gx-session-ended")
            page.click("#gx-session-ended button")
            page.wait_for_selector("#gx-login", timeout=30_000)
            assert page.inner_text(".note") == ("You were signed out after 30 minutes without activity. "
                                                "Please sign in again.")
        finally:
            browser.close()


@pytest.mark.browser
def test_in_the_browser_an_admin_disables_a_reader_and_sets_their_own_password(gate):
    from playwright.sync_api import sync_playwright

    gate.service.create_reader("admin2", "admin2-pass-1", "admin", acting=ADMIN[0])
    gate.service.create_reader("browser2", "browser2-pass", "reader", acting=ADMIN[0])
    victim = gate.sign_in(("browser2", "browser2-pass"))
    other_admin_session = gate.sign_in(("admin2", "admin2-pass-1"))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(gate.url)
            page.fill("input[type=text]", "admin2")
            page.fill("input[type=password]", "admin2-pass-1")
            page.keyboard.press("Enter")
            page.wait_for_function("(document.querySelector('#gx-header') || {}).innerText?.includes("
                                   "'signed in as admin2')", timeout=60_000)
            page.get_by_role("tab", name="Admin").click()
            page.locator("#gx-admin-account-username textarea").first.fill("browser2")
            page.click("#gx-admin-disable")
            page.wait_for_function("document.querySelector('#gx-admin-account-result').innerText.includes("
                                   "'Disabled browser2')", timeout=30_000)
            assert victim.get("/config").status_code == 401

            page.locator("#gx-admin-account-username textarea").first.fill("admin2")
            page.locator("#gx-admin-set-password input").first.fill("admin2-new-pass")
            page.click("#gx-admin-set-password-button")
            page.wait_for_function("document.querySelector('#gx-admin-account-result').innerText.includes("
                                   "'Password of admin2 set')", timeout=30_000)
            assert other_admin_session.get("/config").status_code == 401  # the admin's other session ended
            page.locator("#gx-admin-account-username textarea").first.fill("browser2")  # this session lives on
            page.click("#gx-admin-enable")
            page.wait_for_function("document.querySelector('#gx-admin-account-result').innerText.includes("
                                   "'Enabled browser2')", timeout=30_000)
            assert page.locator("#gx-session-ended").count() == 0
        finally:
            browser.close()
    gate.sign_in(("admin2", "admin2-new-pass"))
