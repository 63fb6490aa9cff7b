"""gazex_core.malloc: the one mallopt caller reaches glibc from both of its users (the app server and the synthesis
workers). Run in a child: the options outlive the call."""

import subprocess
import sys

import pytest

CHILD = """
from gazex_core.malloc import M_ARENA_MAX, M_MMAP_THRESHOLD, set_malloc_options
print(set_malloc_options({M_ARENA_MAX: 2, M_MMAP_THRESHOLD: 32 << 20}))
from app.runtime import limit_malloc_arenas
from training.synth.generator import keep_freed_memory
limit_malloc_arenas(); keep_freed_memory()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_glibc_accepts_the_options_from_both_users():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True"]
