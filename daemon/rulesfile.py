"""Reading the rules file: a regular file only, and at most ``MAX_BYTES``, with a clear message.

The rules path is the user's to choose, so it may be anything a path can name: a symlink to
``/dev/zero`` (an endless read that would fill memory), a FIFO (an ``open`` that blocks until some
writer comes, which would stall a command, or the hot-reload thread, for good), a directory, or a
huge file by mistake. Every reader of the rules file (``rules check``, ``run``, SIGHUP, hot reload)
goes through ``read_rules_file``, so each of them refuses these the same way.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from zerocontact.rules.errors import UserFacingError

# 8 MiB: a rules file for a few people is a few kilobytes, but the rules must scale to 10,000 people
# (~2 MB in the benchmark's shape, issue 12); the bound is for a mistaken path (a log, a disk image)
MAX_BYTES = 8 << 20


class RulesFileError(UserFacingError):
    """The rules path names something zerocontact will not read; the message says what and why."""


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _refuse(path: Path, mode: int) -> RulesFileError:
    shown = str(path)
    if path.is_symlink():
        shown += f" (a link to {os.path.realpath(path)})"
    return RulesFileError(f"{shown} is {_kind(mode)}: zerocontact reads its rules only from a regular file")


def read_rules_file(path: Path, limit: int = MAX_BYTES) -> bytes:
    """The file's bytes. ``FileNotFoundError`` (and ``NotADirectoryError``) when it is missing, so
    callers can say how to create it; ``RulesFileError`` for anything that is not a regular file
    of at most ``limit`` bytes; other ``OSError`` as they come (permission denied, I/O error)."""
    return read_with_stat(path, limit)[0]


def read_with_stat(path: Path, limit: int = MAX_BYTES) -> tuple[bytes, os.stat_result]:
    """``read_rules_file``, and the ``fstat`` of what was read (the watcher wants its mtime)."""
    # stat first: a device or FIFO is refused without even being opened (opening some devices acts)
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, st.st_mode)
    # O_NONBLOCK: if the name was swapped for a FIFO since the stat, the open still returns at once
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _refuse(path, st.st_mode)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:
            chunk = os.read(fd, min(1 << 16, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > limit:
        shown = f"{limit >> 20} MiB" if limit % (1 << 20) == 0 else f"{limit:,} bytes"
        raise RulesFileError(
            f"{path} is larger than {shown}: a rules file is a few kilobytes; is this the right file?"
        )
    return b"".join(chunks), st
