"""Freed memory goes back to the system: a real process fragments its heap the way a day of bodies
does, and ``give_back`` makes its resident size follow what it still holds."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zerocontact.daemon import memory

# 160 MB in 20 KB blocks (below glibc's mmap threshold: they come from the heap, as bodies' pieces
# do), one block in 64 kept: the heap cannot shrink from its top, only give back pages inside it
FRAGMENT = """
import json, psutil, sys
from zerocontact.daemon import memory
blocks = [bytearray(20_000) for _ in range(8_000)]
kept = blocks[::64]
del blocks
before = psutil.Process().memory_info().rss
returned = memory.give_back()
after = psutil.Process().memory_info().rss
print(json.dumps({"before": before, "after": after, "returned": returned, "kept": len(kept)}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="malloc_trim is glibc's")
def test_a_fragmented_heap_is_given_back() -> None:
    assert memory.available()
    out = subprocess.run(
        [sys.executable, "-c", FRAGMENT], capture_output=True, text=True, timeout=60, check=True
    )
    got = json.loads(out.stdout)
    assert got["returned"] is True
    mb = 1 << 20
    assert got["before"] > 140 * mb, got  # the freed blocks were still resident
    assert got["after"] < got["before"] - 100 * mb, got  # and went back
