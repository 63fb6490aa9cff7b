"""glibc's malloc tuning, for the processes that need it (the app server, the synthesis workers).

The one place that calls ``mallopt``; a no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes

# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def set_malloc_options(options: dict[int, int]) -> bool:
    """Set every mallopt ``{parameter: value}``; True when glibc accepted them all, False where one was refused or
    the C library has no mallopt (then nothing is set)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    accepted = [mallopt(parameter, value) == 1 for parameter, value in options.items()]  # each one tried
    return all(accepted)
