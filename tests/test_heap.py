"""The scheduler's heap gives large blocks back to the system once they are freed, so that its
resident memory follows what it holds, not the most it once held."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from scheduler import heap

# In a process of its own: the test's own heap is left as it is.
_HOLD_AND_FREE = textwrap.dedent(
    """
    import sys
    from scheduler.heap import return_large_blocks
    if sys.argv[1] == "return":
        assert return_large_blocks()
    def rss_mib():
        line = next(l for l in open("/proc/self/status") if l.startswith("VmRSS"))
        return int(line.split()[1]) // 1024
    first = bytes(1 << 20); del first  # glibc sizes its threshold by the largest block freed
    large, small = [], []
    for _ in range(200):
        large.append(bytearray(1 << 20))
        small.append(bytes(600))  # from malloc's heap too, and outliving the large blocks
    held = rss_mib()
    del large
    print(held - rss_mib())
    """
)


def mib_given_back(mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _HOLD_AND_FREE, mode], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


@pytest.mark.skipif(heap._LIBC is None, reason="glibc's heap only")
def test_large_blocks_freed_among_small_ones_go_back_to_the_system() -> None:
    assert mib_given_back("return") >= 190


@pytest.mark.skipif(heap._LIBC is None, reason="glibc's heap only")
def test_without_it_glibc_keeps_them_which_is_why_the_scheduler_asks() -> None:
    assert mib_given_back("keep") < 10
