"""Accounts in the database, on a real SQLite file and a real PostgreSQL server: lockout per username and per
client (and unlock after the window), re-hashing of old hashes, disable / enable, password changes, login
sessions with idle and absolute expiry (an injectable clock, no sleeps), and the `gazex db` account commands."""

from __future__ import annotations

import hashlib
import io
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from annotations_db import AccessDenied, InvalidInput, InvalidTransition, ReviewService, passwords
from annotations_db.accounts import LOCAL_ADMIN, AccountPolicy, LoginRefused
from db_support import gazex_db

ADMIN = ("chief", "chief-pass-1")
ALICE = ("alice", "alice-pass-1")
BOB = ("bob", "bob-pass-12")
POLICY = AccountPolicy(user_max_failures=3, client_max_failures=6, failure_window=timedelta(minutes=15),
                       lockout=timedelta(minutes=10), idle_timeout=timedelta(minutes=30),
                       absolute_timeout=timedelta(hours=12))


@pytest.fixture
def accounts(service):
    service.account_policy = POLICY
    service.create_reader(*ADMIN, "admin")
    for username, password in (ALICE, BOB):
        service.create_reader(username, password, "reader", acting=ADMIN[0])
    return service


def refusal(service, username, password, client=None) -> LoginRefused:
    with pytest.raises(LoginRefused) as refused:
        service.sign_in(username, password, client=client)
    return refused.value


def token() -> str:
    return secrets.token_urlsafe(32)


# --- throttling and lockout ---------------------------------------------------------------------


def test_lockout_after_failures_refuses_even_the_right_password_until_the_lock_lifts(accounts, clock, db_url):
    for _ in range(POLICY.user_max_failures - 1):
        assert refusal(accounts, ALICE[0], "wrong-password").reason == "credentials"
    locking = refusal(accounts, ALICE[0], "wrong-password")
    assert locking.reason == "locked" and locking.retry_after_s == 600
    assert str(locking) == ("Incorrect username or password. Too many failed sign-ins for this username: "
                            "try again in 10 minutes.")
    locked = refusal(accounts, *ALICE)
    assert locked.reason == "locked" and "try again in 10 minutes" in str(locked)
    assert accounts.account_states()[ALICE[0]].locked_until is not None

    other_process = ReviewService.open(db_url, clock=clock)  # the lock lives in the database
    try:
        other_process.account_policy = POLICY
        assert refusal(other_process, *ALICE).reason == "locked"
    finally:
        other_process.close()
    assert accounts.sign_in(*BOB).username == BOB[0]  # other accounts are untouched

    clock.advance(minutes=9)  # the clock also runs for real: margins of a minute, never a second
    assert refusal(accounts, *ALICE).reason == "locked"
    clock.advance(minutes=1, seconds=1)
    assert accounts.sign_in(*ALICE).username == ALICE[0]
    assert accounts.account_states()[ALICE[0]].locked_until is None


def test_unknown_usernames_lock_out_exactly_like_known_ones(accounts):
    messages = {}
    for username in ("nobody", ALICE[0]):
        messages[username] = [str(refusal(accounts, username, "wrong-password"))
                              for _ in range(POLICY.user_max_failures + 1)]
    assert messages["nobody"] == messages[ALICE[0]]
    assert "Too many failed sign-ins" in messages["nobody"][-1]


def test_failures_outside_the_window_do_not_add_up_and_success_clears_them(accounts, clock):
    for _ in range(POLICY.user_max_failures - 1):
        refusal(accounts, ALICE[0], "wrong-password")
    clock.advance(minutes=15, seconds=1)
    for _ in range(POLICY.user_max_failures - 1):
        assert refusal(accounts, ALICE[0], "wrong-password").reason == "credentials"
    assert accounts.sign_in(*ALICE)
    for _ in range(POLICY.user_max_failures - 1):
        assert refusal(accounts, ALICE[0], "wrong-password").reason == "credentials"
    assert accounts.sign_in(*ALICE)


def test_one_client_guessing_many_usernames_is_locked_out_and_others_are_not(accounts, clock):
    attacker, colleague = "203.0.113.7", "198.51.100.2"
    for i in range(POLICY.client_max_failures - 1):
        assert refusal(accounts, f"user{i}", "guess-1234", client=attacker).reason == "credentials"
    last = refusal(accounts, "someone", "guess-1234", client=attacker)
    assert last.reason == "locked" and "for this computer" in str(last)
    assert refusal(accounts, *BOB, client=attacker).reason == "locked"
    assert accounts.sign_in(*BOB, client=colleague).username == BOB[0]
    clock.advance(minutes=10, seconds=1)
    assert accounts.sign_in(*BOB, client=attacker).username == BOB[0]


def test_empty_or_non_text_credentials_are_refused_in_one_line(accounts):
    for username, password in (("", "x"), (ALICE[0], ""), (None, "x"), (ALICE[0], 5)):
        assert str(refusal(accounts, username, password)) == "Enter a username and a password."
    assert accounts.authenticate(ALICE[0], "wrong-password") is None
    assert accounts.authenticate(*ALICE).username == ALICE[0]


# --- password hashes --------------------------------------------------------------------------------


def test_hashes_use_owasp_cost_and_old_hashes_are_rehashed_on_sign_in(accounts):
    assert _stored_hash(accounts, ALICE[0]).startswith("scrypt$131072$8$1$")
    salt = b"0123456789abcdef"
    legacy = hashlib.scrypt(ALICE[1].encode(), salt=salt, n=2**14, r=8, p=1, maxmem=64 * 2**20, dklen=32)
    with accounts.engine.begin() as connection:
        connection.execute(text("UPDATE readers SET password_hash = :h WHERE username = :u"),
                           {"h": f"scrypt$16384$8$1${salt.hex()}${legacy.hex()}", "u": ALICE[0]})
    assert passwords.needs_rehash(_stored_hash(accounts, ALICE[0]))
    refusal(accounts, ALICE[0], "wrong-password")
    assert _stored_hash(accounts, ALICE[0]).startswith("scrypt$16384$")  # only a right password re-hashes
    assert accounts.sign_in(*ALICE)
    rehashed = _stored_hash(accounts, ALICE[0])
    assert rehashed.startswith("scrypt$131072$8$1$") and not passwords.needs_rehash(rehashed)
    assert accounts.sign_in(*ALICE)
    assert refusal(accounts, ALICE[0], "wrong-password").reason == "credentials"


def test_unknown_hash_formats_never_verify():
    for stored in ("", "plain", "bcrypt$x$y$z$aa$bb", "scrypt$16384$8$1$zz$zz", f"scrypt${2**22}$8$1$00$00"):
        assert passwords.verify_password("anything", stored) is False
        assert passwords.needs_rehash(stored)
    assert passwords.verify_password("secret-pw", passwords.hash_password("secret-pw"))


def _stored_hash(service, username: str) -> str:
    with service.engine.connect() as connection:
        return connection.execute(text("SELECT password_hash FROM readers WHERE username = :u"),
                                  {"u": username}).scalar_one()


# --- disable / enable -------------------------------------------------------------------------------


def test_a_disabled_reader_cannot_sign_in_and_their_sessions_end(accounts):
    first, second, bobs = token(), token(), token()
    accounts.start_login_session(ALICE[0], first)
    accounts.start_login_session(ALICE[0], second)
    accounts.start_login_session(BOB[0], bobs)
    assert accounts.check_login_session(first).username == ALICE[0]

    with pytest.raises(AccessDenied):
        accounts.set_reader_disabled(ALICE[0], True, acting=BOB[0])  # readers cannot
    accounts.set_reader_disabled(ALICE[0], True, acting=ADMIN[0])
    for session_token in (first, second):
        check = accounts.check_login_session(session_token)
        assert check.username is None and check.ended == "disabled"
    assert accounts.check_login_session(bobs).username == BOB[0]
    disabled = refusal(accounts, *ALICE)
    assert disabled.reason == "disabled" and str(disabled) == "This account is disabled; ask an administrator."
    assert refusal(accounts, ALICE[0], "wrong-password").reason == "credentials"  # says nothing without the password
    with pytest.raises(LoginRefused):
        accounts.start_login_session(ALICE[0], token())
    assert accounts.account_states()[ALICE[0]].disabled
    with pytest.raises(InvalidTransition):
        accounts.set_reader_disabled(ALICE[0], True, acting=ADMIN[0])

    accounts.set_reader_disabled(ALICE[0], False, acting=ADMIN[0])
    assert accounts.sign_in(*ALICE).username == ALICE[0]
    assert accounts.check_login_session(first).ended == "disabled"  # an ended session never comes back


def test_admins_cannot_lock_out_administration(accounts):
    with pytest.raises(InvalidTransition, match="your own account"):
        accounts.set_reader_disabled(ADMIN[0], True, acting=ADMIN[0])
    with pytest.raises(InvalidTransition, match="last enabled admin"):
        accounts.set_reader_disabled(ADMIN[0], True, acting=LOCAL_ADMIN)
    accounts.create_reader("deputy", "deputy-pass-1", "admin", acting=ADMIN[0])
    accounts.set_reader_disabled(ADMIN[0], True, acting="deputy")
    with pytest.raises(AccessDenied):  # a disabled admin no longer acts as one
        accounts.set_reader_disabled(ALICE[0], True, acting=ADMIN[0])
    with pytest.raises(InvalidInput, match="unknown reader"):
        accounts.set_reader_disabled("nobody", True, acting="deputy")


def test_account_events_are_an_append_only_audit_log(accounts):
    accounts.set_reader_disabled(ALICE[0], True, acting=ADMIN[0])
    accounts.set_password(BOB[0], "bob-new-pass-1", acting=LOCAL_ADMIN)
    with accounts.engine.connect() as connection:
        rows = connection.execute(text("SELECT action, acting FROM account_events ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("disabled", ADMIN[0]), ("password", LOCAL_ADMIN)]
    for statement in ("UPDATE account_events SET action = 'enabled'", "DELETE FROM account_events"):
        with pytest.raises(DBAPIError):
            with accounts.engine.begin() as connection:
                connection.execute(text(statement))


# --- password changes --------------------------------------------------------------------------------


def test_admin_sets_a_password_old_one_fails_new_one_works_and_sessions_end(accounts):
    sessions = [token(), token()]
    for session_token in sessions:
        accounts.start_login_session(ALICE[0], session_token)
    with pytest.raises(AccessDenied):
        accounts.set_password(ALICE[0], "stolen-pass-1", acting=BOB[0])
    with pytest.raises(InvalidInput, match="at least 8"):
        accounts.set_password(ALICE[0], "short", acting=ADMIN[0])
    accounts.set_password(ALICE[0], "alice-new-pass", acting=ADMIN[0])
    assert [accounts.check_login_session(t).ended for t in sessions] == ["password", "password"]
    assert refusal(accounts, *ALICE).reason == "credentials"
    assert accounts.sign_in(ALICE[0], "alice-new-pass").username == ALICE[0]


def test_changing_your_own_password_keeps_this_session_and_ends_the_others(accounts):
    here, elsewhere = token(), token()
    accounts.start_login_session(ADMIN[0], here)
    accounts.start_login_session(ADMIN[0], elsewhere)
    accounts.set_password(ADMIN[0], "chief-new-pass", acting=ADMIN[0], keep_token=here)
    assert accounts.check_login_session(here).username == ADMIN[0]
    assert accounts.check_login_session(elsewhere).ended == "password"

    mine = token()
    accounts.start_login_session(BOB[0], mine)
    with pytest.raises(AccessDenied):  # a reader needs their current password
        accounts.set_password(BOB[0], "bob-new-pass-1", acting=BOB[0])
    with pytest.raises(AccessDenied, match="current password is wrong"):
        accounts.set_password(BOB[0], "bob-new-pass-1", acting=BOB[0], current_password="not-it-1")
    accounts.set_password(BOB[0], "bob-new-pass-1", acting=BOB[0], current_password=BOB[1], keep_token=mine)
    assert accounts.check_login_session(mine).username == BOB[0]
    assert accounts.sign_in(BOB[0], "bob-new-pass-1")


def test_a_new_password_lifts_a_lockout(accounts):
    for _ in range(POLICY.user_max_failures):
        refusal(accounts, ALICE[0], "wrong-password")
    assert refusal(accounts, *ALICE).reason == "locked"
    accounts.set_password(ALICE[0], "alice-new-pass", acting=ADMIN[0])
    assert accounts.sign_in(ALICE[0], "alice-new-pass")


# --- session expiry -------------------------------------------------------------------------------------


def test_idle_sessions_end_after_the_idle_timeout(accounts, clock):
    session_token = token()
    accounts.start_login_session(ALICE[0], session_token)
    for _ in range(3):  # activity every 29 minutes keeps it alive
        clock.advance(minutes=29)
        assert accounts.check_login_session(session_token).username == ALICE[0]
    clock.advance(minutes=29)
    assert accounts.check_login_session(session_token, activity=False).username == ALICE[0]
    clock.advance(minutes=1, seconds=1)  # 30 min since the last activity (a check without activity does not count)
    assert accounts.check_login_session(session_token).ended == "idle"
    clock.advance(seconds=1)
    assert accounts.check_login_session(session_token).ended == "idle"  # stays ended
    assert accounts.account_states()[ALICE[0]].open_sessions == 0


def test_active_sessions_end_at_the_absolute_limit(accounts, clock):
    session_token = token()
    accounts.start_login_session(ALICE[0], session_token)
    for _ in range(12 * 3 - 1):  # active every 20 minutes for 11 h 40 min
        clock.advance(minutes=20)
        assert accounts.check_login_session(session_token).username == ALICE[0]
    clock.advance(minutes=19)
    assert accounts.check_login_session(session_token).username == ALICE[0]
    clock.advance(minutes=1)
    assert accounts.check_login_session(session_token).ended == "expired"


def test_logout_and_unknown_tokens(accounts):
    session_token = token()
    accounts.start_login_session(ALICE[0], session_token)
    assert accounts.account_states()[ALICE[0]].open_sessions == 1
    accounts.end_login_session(session_token)
    assert accounts.check_login_session(session_token).ended == "logout"
    assert accounts.check_login_session(token()).username is None
    assert accounts.check_login_session(None).username is None
    with pytest.raises(InvalidInput):
        accounts.start_login_session(ALICE[0], "short")


def test_policy_from_the_environment():
    policy = AccountPolicy.from_env({"GAZEX_LOGIN_MAX_FAILURES": "8", "GAZEX_LOGIN_MAX_FAILURES_PER_CLIENT": "0",
                                     "GAZEX_SESSION_IDLE_MIN": "20", "GAZEX_SESSION_MAX_HOURS": "8"})
    assert (policy.user_max_failures, policy.client_max_failures) == (8, 0)
    assert policy.idle_timeout == timedelta(minutes=20) and policy.absolute_timeout == timedelta(hours=8)
    assert policy.lockout == timedelta(minutes=15) and policy.touch_interval == timedelta(minutes=1)
    with pytest.raises(ValueError, match="GAZEX_SESSION_IDLE_MIN='0' must be a positive number"):
        AccountPolicy.from_env({"GAZEX_SESSION_IDLE_MIN": "0"})
    with pytest.raises(ValueError, match="GAZEX_LOGIN_LOCKOUT_MIN='soon' is not a number"):
        AccountPolicy.from_env({"GAZEX_LOGIN_LOCKOUT_MIN": "soon"})


# --- gazex db -------------------------------------------------------------------------------------------


def test_gazex_db_disables_enables_and_sets_passwords_from_stdin(accounts, db_url, monkeypatch, capsys):
    session_token = token()
    accounts.start_login_session(ALICE[0], session_token)
    assert gazex_db(["db", "disable-reader", ALICE[0], "--url", db_url]) == 0
    assert accounts.check_login_session(session_token).ended == "disabled"
    assert gazex_db(["db", "readers", "--url", db_url]) == 0
    assert f"{ALICE[0]}\treader\t\tdisabled" in capsys.readouterr().out
    assert gazex_db(["db", "enable-reader", ALICE[0], "--url", db_url]) == 0

    monkeypatch.delenv("GAZEX_READER_PASSWORD", raising=False)
    monkeypatch.setattr("sys.stdin", io.StringIO("alice-from-stdin\n"))
    assert gazex_db(["db", "set-password", ALICE[0], "--url", db_url]) == 0
    assert refusal(accounts, *ALICE).reason == "credentials"
    assert accounts.sign_in(ALICE[0], "alice-from-stdin")
    with pytest.raises(SystemExit):  # a password on the command line is refused (it would end up in `ps`)
        gazex_db(["db", "set-password", ALICE[0], "alice-on-argv", "--url", db_url])


# --- first launch ---------------------------------------------------------------------------------------


def test_first_launch_prints_and_saves_only_generated_passwords(service, tmp_path, monkeypatch, capsys):
    from conftest_app import REPO  # noqa: F401 - puts launch.py on sys.path
    import launch

    monkeypatch.setenv("GAZEX_ADMIN_PASSWORD", "admin-from-env-1")
    monkeypatch.delenv("GAZEX_DEMO_PASSWORD", raising=False)
    created = launch.ensure_accounts(service, tmp_path)
    assert [(role, user) for role, user, _ in created] == [("admin", "admin"), ("reader", "demo")]
    assert created[0][2] is None and len(created[1][2]) >= 16
    saved = (tmp_path / "credentials.txt").read_text()
    assert saved == f"reader\tdemo\t{created[1][2]}\n" and "admin-from-env-1" not in saved
    assert (tmp_path / "credentials.txt").stat().st_mode & 0o777 == 0o600
    assert service.sign_in("admin", "admin-from-env-1") and service.sign_in("demo", created[1][2])
    assert launch.ensure_accounts(service, tmp_path) == []  # never again
