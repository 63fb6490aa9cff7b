"""gazex_core.malloc: the one mallopt caller reaches glibc from both of its users (the app server and the synthesis
workers), and says False, setting nothing, under a C library without mallopt. Run in a child: the options outlive
the call."""

import platform
import subprocess
import sys

CHILD = """
from gazex_core.malloc import M_ARENA_MAX, M_MMAP_THRESHOLD, set_malloc_options
from app.runtime import limit_malloc_arenas
from training.synth.generator import keep_freed_memory
print(set_malloc_options({M_ARENA_MAX: 2, M_MMAP_THRESHOLD: 32 << 20}), limit_malloc_arenas(), keep_freed_memory())
"""


def test_the_options_are_set_exactly_where_the_c_library_is_glibc():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout.split()
    expected = str(platform.libc_ver()[0] == "glibc")
    assert out == [expected] * 3
