"""Accounts: sign-in with throttling and lockout, login sessions with idle and absolute expiry, disabling
readers and changing passwords. Everything lives in the database (migration 0004), so every process serving
the same database sees the same locks and sessions, and they survive restarts.

Sign-in (``sign_in``) refuses while the username or the client address is locked; otherwise it verifies the
password against the reader's hash, or against a dummy hash of the same cost when the username is unknown, and
records a failure for both the username and the client whether the username exists or not: an unknown and a
known username take the same time and lock out the same way. A successful sign-in clears the username's
failures and re-hashes a hash made at an older cost. A disabled reader is told so only after the right password.

Login sessions are keyed by the SHA-256 of the cookie token. ``check_login_session`` is called on every request:
it ends a session that has been idle for ``idle_timeout`` or open for ``absolute_timeout``, or whose reader is
disabled, and says why. Disabling a reader or setting a password ends the reader's sessions (except the
acting admin's own current one when they change their own password).
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Mapping

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from . import passwords
from .models import AccountEvent, LoginSession, LoginThrottle, Reader
from .provenance import USERNAME_MAX, check_text
from .records import AccessDenied, InvalidInput, InvalidTransition, ReaderInfo

LOCAL_ADMIN = "<command line>"  # acting for `gazex db` (direct database access); never a valid username
END_REASONS = ("logout", "idle", "expired", "disabled", "password")
KEY_MAX = 255


class LoginRefused(AccessDenied):
    """A refused sign-in; ``reason`` is 'credentials', 'locked' or 'disabled'; ``retry_after_s`` when locked."""

    def __init__(self, message: str, reason: str, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class AccountPolicy:
    """Lockout and session limits. A max_failures of 0 switches that lockout off."""

    user_max_failures: int = 5
    client_max_failures: int = 20
    failure_window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)
    idle_timeout: timedelta = timedelta(minutes=30)
    absolute_timeout: timedelta = timedelta(hours=12)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "AccountPolicy":
        """GAZEX_LOGIN_MAX_FAILURES, GAZEX_LOGIN_MAX_FAILURES_PER_CLIENT, GAZEX_LOGIN_WINDOW_MIN,
        GAZEX_LOGIN_LOCKOUT_MIN, GAZEX_SESSION_IDLE_MIN, GAZEX_SESSION_MAX_HOURS (defaults as above)."""
        default = cls()

        def number(name: str, fallback: float, *, zero_ok: bool = False) -> float:
            raw = environ.get(name)
            if raw is None or raw.strip() == "":
                return fallback
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None
            if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
                raise ValueError(f"{name}={raw!r} must be a {'non-negative' if zero_ok else 'positive'} number")
            return value

        return cls(
            user_max_failures=int(number("GAZEX_LOGIN_MAX_FAILURES", default.user_max_failures, zero_ok=True)),
            client_max_failures=int(number("GAZEX_LOGIN_MAX_FAILURES_PER_CLIENT", default.client_max_failures,
                                           zero_ok=True)),
            failure_window=timedelta(minutes=number("GAZEX_LOGIN_WINDOW_MIN", 15)),
            lockout=timedelta(minutes=number("GAZEX_LOGIN_LOCKOUT_MIN", 15)),
            idle_timeout=timedelta(minutes=number("GAZEX_SESSION_IDLE_MIN", 30)),
            absolute_timeout=timedelta(hours=number("GAZEX_SESSION_MAX_HOURS", 12)),
        )

    @property
    def touch_interval(self) -> timedelta:
        """Last activity is written at most this often (so sessions may end up to this much early, never late)."""
        return min(timedelta(minutes=1), self.idle_timeout / 10)


@dataclass(frozen=True)
class SessionCheck:
    """``username`` while the session is valid; otherwise ``ended`` says why (None: no such session)."""

    username: str | None
    ended: str | None = None


@dataclass(frozen=True)
class AccountState:
    username: str
    disabled: bool
    locked_until: datetime | None
    last_sign_in: datetime | None
    open_sessions: int


class AccountsMixin:
    """Account methods of ReviewService (uses its _write/_read/_now)."""

    @property
    def account_policy(self) -> AccountPolicy:
        if getattr(self, "_account_policy", None) is None:
            self._account_policy = AccountPolicy.from_env()
        return self._account_policy

    @account_policy.setter
    def account_policy(self, policy: AccountPolicy) -> None:
        self._account_policy = policy

    # --- sign-in ----------------------------------------------------------------------------------
    def sign_in(self, username: str, password: str, *, client: str | None = None) -> ReaderInfo:
        """The reader, or LoginRefused with a one-line message (see module docstring)."""
        if not _plain_text(username, USERNAME_MAX) or not _plain_text(password, 1024):  # no NUL, surrogate, ...
            raise LoginRefused("Enter a username and a password.", "credentials")
        user_key, client_key = username[:KEY_MAX], (client or "")[:KEY_MAX] or None
        now = self._now()
        self._refuse_if_locked(user_key, client_key, now)
        with self._read() as session:
            reader = session.scalar(select(Reader).where(Reader.username == username))
        stored = reader.password_hash if reader is not None else passwords.dummy_hash()
        if not passwords.verify_password(password, stored) or reader is None:
            self._record_failure(user_key, client_key, now)
        return self._signed_in(reader.id, password, stored)

    def authenticate(self, username: str, password: str, *, client: str | None = None) -> ReaderInfo | None:
        """sign_in, with None for any refusal."""
        try:
            return self.sign_in(username, password, client=client)
        except LoginRefused:
            return None

    def _refuse_if_locked(self, user_key: str, client_key: str | None, now: datetime) -> None:
        keys = [("user", user_key)] + ([("client", client_key)] if client_key else [])
        with self._read() as session:
            for scope, key in keys:
                row = session.get(LoginThrottle, (scope, key))
                if row is not None and row.locked_until is not None and row.locked_until > now:
                    raise _locked(scope, row.locked_until - now)

    def _record_failure(self, user_key: str, client_key: str | None, now: datetime) -> None:
        policy = self.account_policy
        locks = []
        with self._write() as session:
            for scope, key, limit in (("user", user_key, policy.user_max_failures),
                                      ("client", client_key, policy.client_max_failures)):
                if key and limit:
                    locked_until = _count_failure(session, scope, key, limit, now, policy)
                    if locked_until is not None:
                        locks.append((scope, locked_until))
            session.execute(delete(LoginThrottle).where(
                LoginThrottle.window_started_at < now - policy.failure_window,
                or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until < now)))
        if locks:
            scope, until = locks[0]
            raise _locked(scope, until - now, prefix="Incorrect username or password. ")
        raise LoginRefused("Incorrect username or password.", "credentials")

    def _signed_in(self, reader_id: int, password: str, stored: str) -> ReaderInfo:
        with self._write() as session:
            reader = session.get(Reader, reader_id)
            if _is_disabled(session, reader_id):
                raise LoginRefused("This account is disabled; ask an administrator.", "disabled")
            session.execute(delete(LoginThrottle).where(LoginThrottle.scope == "user",
                                                        LoginThrottle.key == reader.username[:KEY_MAX]))
            if reader.password_hash == stored and passwords.needs_rehash(stored):
                reader.password_hash = passwords.hash_password(password)
            return _info(reader)

    # --- login sessions ---------------------------------------------------------------------------
    def start_login_session(self, username: str, token: str, *, client: str | None = None) -> None:
        """Registers a signed-in browser's cookie token (stored as its SHA-256)."""
        if not isinstance(token, str) or len(token) < 16:
            raise InvalidInput("a login session token must be at least 16 characters")
        now = self._now()
        with self._write() as session:
            reader = _reader(session, username)
            if _is_disabled(session, reader.id):
                raise LoginRefused("This account is disabled; ask an administrator.", "disabled")
            session.add(LoginSession(token_hash=_token_hash(token), reader_id=reader.id,
                                     client=(client or "")[:KEY_MAX] or None, created_at=now, last_seen_at=now))

    def check_login_session(self, token: str | None, *, activity: bool = True) -> SessionCheck:
        """Valid session -> its username (activity=True counts the request as activity); else why it ended."""
        if not isinstance(token, str) or not token:
            return SessionCheck(None)
        now, policy = self._now(), self.account_policy
        with self._read() as session:
            row = session.execute(select(LoginSession, Reader.username).join(Reader, Reader.id == LoginSession.reader_id)
                                  .where(LoginSession.token_hash == _token_hash(token))).first()
            disabled = row is not None and _is_disabled(session, row[0].reader_id)
        if row is None:
            return SessionCheck(None)
        login, username = row
        if login.ended_at is not None:
            return SessionCheck(None, login.end_reason)
        reason = _expiry_reason(login, now, policy) or ("disabled" if disabled else None)
        if reason is not None:
            self._end_sessions(LoginSession.id == login.id, reason, now)
            return SessionCheck(None, reason)
        if activity and now - login.last_seen_at >= policy.touch_interval:
            with self._write() as session:
                session.execute(update(LoginSession).where(LoginSession.id == login.id,
                                                           LoginSession.ended_at.is_(None))
                                .values(last_seen_at=now))
        return SessionCheck(username)

    def end_login_session(self, token: str, reason: str = "logout") -> None:
        if isinstance(token, str) and token:
            self._end_sessions(LoginSession.token_hash == _token_hash(token), reason, self._now())

    def _end_sessions(self, condition, reason: str, now: datetime) -> int:
        if reason not in END_REASONS:
            raise InvalidInput(f"unknown session end reason {reason!r}")
        with self._write() as session:
            return session.execute(update(LoginSession).where(condition, LoginSession.ended_at.is_(None))
                                   .values(ended_at=now, end_reason=reason)).rowcount

    # --- administration ---------------------------------------------------------------------------
    def set_reader_disabled(self, username: str, disabled: bool, *, acting: str) -> None:
        """Disable (ends every session of the reader) or enable (also lifts a lock) a reader; admins only.
        Nobody disables their own account or the last enabled admin."""
        now = self._now()
        with self._write() as session:
            actor = _require_admin(session, acting)
            reader = _reader(session, username)
            if disabled == _is_disabled(session, reader.id):
                raise InvalidTransition(f"reader {username!r} is already {'disabled' if disabled else 'enabled'}")
            if disabled and actor is not None and actor.id == reader.id:
                raise InvalidTransition("you cannot disable your own account")
            if disabled and reader.role == "admin" and _enabled_admins(session) <= 1:
                raise InvalidTransition(f"{username!r} is the last enabled admin")
            session.add(_event(reader, "disabled" if disabled else "enabled", actor, acting, now))
            if disabled:
                _end_reader_sessions(session, reader.id, "disabled", now)
            else:
                _clear_lock(session, reader.username)

    def set_password(self, username: str, new_password: str, *, acting: str, current_password: str | None = None,
                     keep_token: str | None = None) -> None:
        """An admin sets anyone's password; a reader changes their own with ``current_password``. Ends the
        reader's other sessions (all but ``keep_token``) and lifts a lock."""
        if not isinstance(new_password, str) or len(new_password) < passwords.MIN_LENGTH:
            raise InvalidInput(f"password must be at least {passwords.MIN_LENGTH} characters")
        new_hash = passwords.hash_password(new_password)
        now = self._now()
        with self._write() as session:
            actor = self._password_actor(session, username, acting, current_password)
            reader = _reader(session, username)
            reader.password_hash = new_hash
            session.add(_event(reader, "password", actor, acting, now))
            _end_reader_sessions(session, reader.id, "password", now, keep_token=keep_token)
            _clear_lock(session, reader.username)

    def _password_actor(self, session: Session, username: str, acting: str,
                        current_password: str | None) -> Reader | None:
        if acting == username and current_password is not None:
            me = _reader(session, username)
            if not passwords.verify_password(current_password, me.password_hash):
                raise AccessDenied("the current password is wrong")
            return me
        return _require_admin(session, acting)

    def account_states(self) -> dict[str, AccountState]:
        """Per username: disabled, locked until (None when not locked now), last sign-in, open sessions."""
        now, policy = self._now(), self.account_policy
        with self._read() as session:
            readers = session.execute(select(Reader.id, Reader.username).order_by(Reader.id)).all()
            disabled = _disabled_ids(session)
            locks = dict(session.execute(select(LoginThrottle.key, LoginThrottle.locked_until).where(
                LoginThrottle.scope == "user", LoginThrottle.locked_until > now)).all())
            last = dict(session.execute(select(LoginSession.reader_id, func.max(LoginSession.created_at))
                                        .group_by(LoginSession.reader_id)).all())
            open_now = dict(session.execute(
                select(LoginSession.reader_id, func.count(LoginSession.id))
                .where(LoginSession.ended_at.is_(None), LoginSession.last_seen_at > now - policy.idle_timeout,
                       LoginSession.created_at > now - policy.absolute_timeout)
                .group_by(LoginSession.reader_id)).all())
        return {username: AccountState(username, reader_id in disabled, locks.get(username[:KEY_MAX]),
                                       _aware(last.get(reader_id)), open_now.get(reader_id, 0))
                for reader_id, username in readers}


# --- helpers (take an open ORM session) --------------------------------------------------------------


def _locked(scope: str, remaining: timedelta, prefix: str = "") -> LoginRefused:
    seconds = max(1, math.ceil(remaining.total_seconds()))
    minutes = math.ceil(seconds / 60)
    who = "this username" if scope == "user" else "this computer"
    return LoginRefused(f"{prefix}Too many failed sign-ins for {who}: try again in {minutes} minute"
                        f"{'s' if minutes != 1 else ''}.", "locked", seconds)


def _count_failure(session: Session, scope: str, key: str, limit: int, now: datetime,
                   policy: AccountPolicy) -> datetime | None:
    """Adds one failure to (scope, key); returns the lock's end when this failure locks it."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(LoginThrottle).values(scope=scope, key=key, failures=0, window_started_at=now)
                    .on_conflict_do_nothing())
    row = session.scalars(select(LoginThrottle).where(LoginThrottle.scope == scope, LoginThrottle.key == key)
                          .with_for_update()).one()
    lock_over = row.locked_until is not None and row.locked_until <= now
    if lock_over or row.window_started_at <= now - policy.failure_window:
        row.failures, row.window_started_at, row.locked_until = 0, now, None
    row.failures += 1
    if row.failures >= limit and row.locked_until is None:
        row.locked_until = now + policy.lockout
        return row.locked_until
    return None


def _clear_lock(session: Session, username: str) -> None:
    session.execute(delete(LoginThrottle).where(LoginThrottle.scope == "user", LoginThrottle.key == username[:KEY_MAX]))


def _expiry_reason(login: LoginSession, now: datetime, policy: AccountPolicy) -> str | None:
    if now - login.created_at >= policy.absolute_timeout:
        return "expired"
    if now - login.last_seen_at >= policy.idle_timeout:
        return "idle"
    return None


def _end_reader_sessions(session: Session, reader_id: int, reason: str, now: datetime,
                         keep_token: str | None = None) -> None:
    condition = [LoginSession.reader_id == reader_id, LoginSession.ended_at.is_(None)]
    if keep_token:
        condition.append(LoginSession.token_hash != _token_hash(keep_token))
    session.execute(update(LoginSession).where(*condition).values(ended_at=now, end_reason=reason))


def _disabled_ids(session: Session) -> set[int]:
    latest: dict[int, str] = {}
    for reader_id, action in session.execute(
            select(AccountEvent.reader_id, AccountEvent.action)
            .where(AccountEvent.action.in_(("disabled", "enabled"))).order_by(AccountEvent.id)):
        latest[reader_id] = action
    return {reader_id for reader_id, action in latest.items() if action == "disabled"}


def _is_disabled(session: Session, reader_id: int) -> bool:
    action = session.scalar(select(AccountEvent.action)
                            .where(AccountEvent.reader_id == reader_id, AccountEvent.action.in_(("disabled", "enabled")))
                            .order_by(AccountEvent.id.desc()).limit(1))
    return action == "disabled"


def _enabled_admins(session: Session) -> int:
    disabled = _disabled_ids(session)
    return sum(1 for reader_id in session.scalars(select(Reader.id).where(Reader.role == "admin"))
               if reader_id not in disabled)


def _require_admin(session: Session, acting: str) -> Reader | None:
    """The acting admin's row (None for the command line); AccessDenied for anyone else."""
    if acting == LOCAL_ADMIN:
        return None
    actor = session.scalar(select(Reader).where(Reader.username == acting)) if isinstance(acting, str) else None
    if actor is None or actor.role != "admin" or _is_disabled(session, actor.id):
        raise AccessDenied(f"{acting!r} is not an enabled admin")
    return actor


def _reader(session: Session, username: str) -> Reader:
    reader = session.scalar(select(Reader).where(Reader.username == username)) if isinstance(username, str) else None
    if reader is None:
        raise InvalidInput(f"unknown reader {username!r}")
    return reader


def _event(reader: Reader, action: str, actor: Reader | None, acting: str, now: datetime) -> AccountEvent:
    return AccountEvent(reader_id=reader.id, action=action, acting_reader_id=actor.id if actor else None,
                        acting=acting[:64], at=now)


def _info(reader: Reader) -> ReaderInfo:
    return ReaderInfo(id=reader.id, username=reader.username, role=reader.role, display_name=reader.display_name)


def _aware(value: datetime | None) -> datetime | None:
    """func.max() bypasses the UTC column type: make its naive UTC value aware."""
    return value.replace(tzinfo=timezone.utc) if value is not None and value.tzinfo is None else value


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def _plain_text(value: object, limit: int) -> bool:
    """Non-empty text the databases store alike (the service's text rule, provenance.check_text)."""
    try:
        check_text(value, "text", limit=limit, single_line=True)
    except InvalidInput:
        return False
    return True
