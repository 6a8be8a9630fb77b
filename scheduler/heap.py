"""glibc's heap, told to give memory back to the system: a pod's memory limit counts what the
process holds, not what it uses. Elsewhere (musl, macOS) these do nothing."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

# mallopt's parameter number for the size from which a block is mapped on its own (malloc.h).
_M_MMAP_THRESHOLD = -3
# Blocks this large are mapped on their own, and unmapped when freed.
LARGE_BLOCK_BYTES = 256 * 1024


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        return libc if libc is not None and hasattr(libc, "mallopt") else None
    except OSError:
        return None


_LIBC = _libc()


def return_large_blocks() -> bool:
    """From now on, a block of LARGE_BLOCK_BYTES or more goes back to the system once freed.
    glibc would otherwise raise that size to the largest block freed so far (up to 32 MiB) and
    keep such blocks in its heap, where the small ones that outlive them pin it: with 10,000
    jobs, the list's and the watch's buffers of some megabytes each left about 10 MiB there.
    True when it took effect."""
    return _LIBC is not None and _LIBC.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES) == 1


def give_back_memory() -> None:
    """Returns the heap's free pages to the system. glibc keeps what large bodies were parsed
    into for the next ones (150 MiB after twenty 10 MiB POSTs), which a pod's memory limit
    counts; giving it back costs about a millisecond, after each large body."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)
