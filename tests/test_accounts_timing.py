"""No user enumeration by timing: a sign-in with an unknown username takes as long as one with a known username
and a wrong password (both verify a hash of the same cost and record the same failure), on a real SQLite file
and a real PostgreSQL server, at the production hash cost.

Statistics, not a wall-clock threshold: 200 tries alternate between the two kinds (the order flips every pair,
so load drifts on a busy machine hit both alike) and a two-sided Mann-Whitney U test must find no difference at
alpha = 0.001. A control shows the same measurement does see a path that skips the hash (the leak this closes).
"""

from __future__ import annotations

import time

import pytest
from scipy.stats import mannwhitneyu

from annotations_db import passwords
from annotations_db.accounts import AccountPolicy, LoginRefused

pytestmark = pytest.mark.slow

TRIES = 200
ALPHA = 0.001
KNOWN, UNKNOWN = "alice", "alica"  # same length; the unknown one never exists
CLIENT = "192.0.2.10"
NO_LOCKOUT = AccountPolicy(user_max_failures=1_000_000, client_max_failures=1_000_000)


def refused_in(service, username: str) -> float:
    started = time.perf_counter()
    with pytest.raises(LoginRefused):
        service.sign_in(username, "wrong-password-1", client=CLIENT)
    return time.perf_counter() - started


def alternating(service, first: str, second: str, tries: int) -> tuple[list[float], list[float]]:
    times: dict[str, list[float]] = {first: [], second: []}
    for pair in range(tries // 2):
        for username in ((first, second) if pair % 2 == 0 else (second, first)):
            times[username].append(refused_in(service, username))
    return times[first], times[second]


def test_unknown_and_known_usernames_are_indistinguishable_by_time(service):
    service.account_policy = NO_LOCKOUT  # failures are still recorded, so both paths write the same rows
    service.create_reader(KNOWN, "alice-pass-1", "admin")
    passwords.dummy_hash()
    alternating(service, KNOWN, UNKNOWN, 4)  # warm-up: connections, statement caches, the dummy hash
    known, unknown = alternating(service, KNOWN, UNKNOWN, TRIES)
    p_value = mannwhitneyu(known, unknown, alternative="two-sided").pvalue
    print(f"Mann-Whitney p={p_value:.3f}; median {_median(known) * 1e3:.1f} ms known vs "
          f"{_median(unknown) * 1e3:.1f} ms unknown over {len(known)} + {len(unknown)} tries")
    assert p_value > ALPHA, (f"sign-in time tells known from unknown usernames: p={p_value:.2e}, median "
                             f"{_median(known) * 1e3:.1f} ms known vs {_median(unknown) * 1e3:.1f} ms unknown")


def test_the_measurement_sees_a_path_that_skips_the_hash(service):
    """Control: a locked username is refused before any hashing; 20 tries of each must differ clearly."""
    service.account_policy = AccountPolicy(user_max_failures=1, client_max_failures=0)
    service.create_reader(KNOWN, "alice-pass-1", "admin")
    refused_in(service, UNKNOWN)  # one failure locks the unknown username (for 15 minutes)
    service.account_policy = AccountPolicy(user_max_failures=1_000_000, client_max_failures=0)
    hashed, skipped = alternating(service, KNOWN, UNKNOWN, 40)
    p_value = mannwhitneyu(hashed, skipped, alternative="two-sided").pvalue
    print(f"control: p={p_value:.2e}; median {_median(hashed) * 1e3:.1f} ms hashed vs "
          f"{_median(skipped) * 1e3:.1f} ms locked")
    assert p_value < ALPHA and _median(skipped) < _median(hashed)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]
