"""Password hashing with hashlib.scrypt at OWASP's current cost and a per-password random salt (stdlib only).

Cost N=2^17, r=8, p=1 (OWASP Password Storage Cheat Sheet): 128 MiB and about 0.3-0.7 s per hash. Stored as
``scrypt$N$r$p$salt$digest``; ``needs_rehash`` tells the service to re-hash an older, cheaper hash after the
next successful sign-in. ``dummy_hash`` has the same cost, so checking a password of an unknown username takes
as long as a known one's. At most ``CONCURRENT_HASHES`` hashes run at once (memory stays bounded when many
sign-ins arrive together).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
import threading

N, R, P = 2**17, 8, 1
MIN_LENGTH = 8
SCHEME = "scrypt"
MAXMEM = 256 * 1024 * 1024  # N=2^17, r=8 needs 128 MiB; anything costlier in the database is refused
CONCURRENT_HASHES = max(2, os.cpu_count() or 2)
_slots = threading.BoundedSemaphore(CONCURRENT_HASHES)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, N, R, P)
    return f"{SCHEME}${N}${R}${P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        n, r, p, salt, expected = _parse(stored)
        digest = _scrypt(password, salt, n, r, p)
    except ValueError:
        return False
    return hmac.compare_digest(digest, expected)


def needs_rehash(stored: str) -> bool:
    """True for a hash made with other parameters than today's (e.g. the former N=2^14)."""
    try:
        n, r, p, _, _ = _parse(stored)
    except ValueError:
        return True
    return (n, r, p) != (N, R, P)


@functools.cache
def dummy_hash() -> str:
    """A hash of a random password at today's cost: verified against when the username is unknown."""
    return hash_password(secrets.token_urlsafe(16))


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    scheme, n, r, p, salt_hex, digest_hex = stored.split("$")
    if scheme != SCHEME:
        raise ValueError(f"unknown password scheme {scheme!r}")
    return int(n), int(r), int(p), bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    with _slots:
        return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                              maxmem=MAXMEM, dklen=32)
