"""Giving freed memory back to the system, so the daemon's size follows what it holds now.

The proxy holds whole bodies for a moment each (2 MB feeds, 500 KB pages, decoded off the loop in
their own thread), and glibc keeps the freed heap resident, per thread arena: after a day of
browsing a daemon that holds a few MB could keep hundreds resident. ``give_back`` asks the C
library to return every free page (``malloc_trim``, which also releases pages inside the heap), and
the daemon calls it at each 30 s reconcile, in a thread. Elsewhere (macOS, Windows, musl) there is
no such call and it does nothing.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None).malloc_trim  # the C library this process already runs on
    except (OSError, AttributeError):  # not glibc
        return None
    fn.argtypes = [ctypes.c_size_t]
    fn.restype = ctypes.c_int
    return fn


def available() -> bool:
    """Can this process give freed memory back (glibc)?"""
    return _malloc_trim() is not None


def give_back() -> bool:
    """Return the free heap pages to the system; True if any were returned."""
    fn = _malloc_trim()
    return bool(fn is not None and fn(0))
