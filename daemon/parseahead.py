"""Parsing a big rules file's TOML in a forked child while ``zerocontact run`` imports the daemon.

A start imports mitmproxy (~0.4 s) and then reads the rules; with 10,000 people the TOML parse
alone is ~0.1-0.3 s of that read (issue 12: a start under 1 s). Both are CPU work under one GIL, so
a thread would not overlap them, but a second process does: the child parses the very bytes the
daemon will use and hands the document back (``marshal``, ~0.03 s for 10,000 people; ``pickle``
when the document holds dates, which ``marshal`` cannot carry). The parent then only validates.

Only a file of at least ``AHEAD_BYTES`` is parsed ahead, only on Linux (where ``fork`` without
``exec`` is what this was measured and tested on; macOS warns against it once system frameworks
are loaded), and only while the process has one thread. Everything else, and any failure here,
takes the ordinary path: the file is read and parsed in process, which reports every problem with
its file, line and key exactly as before. The child never reports errors itself.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import pickle
import sys
import threading
from pathlib import Path
from typing import Any

import tomli

from .rulesfile import read_rules_file

# ~1,300 people in the benchmark's shape, whose parse takes ~20-35 ms: below this a fork, the
# document's trip through a pipe and the wait cost more than they could save
AHEAD_BYTES = 256 << 10


class ParseAhead:
    """The bytes of one rules file, and its TOML document as a child process is parsing it.

    ``close`` (or leaving a ``with`` block) reaps the child even if ``document`` was never asked
    for, when the start failed on something else first; ``run`` hands ``close`` to click."""

    def __init__(self, path: Path, data: bytes, pid: int, fd: int) -> None:
        """Use ``start``; ``pid`` is the child's, ``fd`` the read end of the pipe it writes into."""
        self.path = path
        self.data = data
        self.pid = pid
        self._fd = fd
        self._done = False

    @classmethod
    def start(cls, path: Path) -> ParseAhead | None:
        """Read ``path`` and fork a child that parses it; None when not worth it or not possible."""
        if not sys.platform.startswith("linux") or threading.active_count() != 1:
            return None
        try:
            if os.stat(path).st_size < AHEAD_BYTES:
                return None
            data = read_rules_file(path)
        except OSError:  # RulesFileError too: the ordinary read says what is wrong, in its words
            return None
        try:
            r, w = os.pipe()
        except OSError:  # out of file descriptors: not this start's concern
            return None
        try:
            pid = os.fork()
        except OSError:  # EAGAIN at the process limit, EPERM under a seccomp filter: parse here
            os.close(r)
            os.close(w)
            return None
        if pid == 0:  # the child: parse, write, and leave without running anything of the parent's
            code = 1
            try:
                os.close(r)
                payload = _document_bytes(data)
                with open(w, "wb") as out:
                    out.write(payload)
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        return cls(path, data, pid, r)

    def document(self) -> dict[str, Any] | None:
        """The parsed document, or None when the child could not give one (a TOML error among
        them: parsing in process then reports it, located)."""
        if self._done:
            return None
        self._done = True
        try:
            with open(self._fd, "rb") as f:
                payload = f.read()
        except OSError:
            payload = b""
        status = 0
        # ChildProcessError: this process was started with SIGCHLD ignored, so the child was reaped
        # already; then only its payload tells, and a cut-short one does not decode (below)
        with contextlib.suppress(ChildProcessError):
            status = os.waitpid(self.pid, 0)[1]
        if status != 0 or not payload:
            return None
        kind, body = payload[:1], payload[1:]
        try:
            doc = marshal.loads(body) if kind == b"m" else pickle.loads(body)
        except Exception:  # a child cut short, say: whatever it left, parsing in process is always right
            return None
        return doc if isinstance(doc, dict) else None

    def close(self) -> None:
        """Reap the child if its document was never read: it may be blocked writing to the pipe."""
        if self._done:
            return
        self._done = True
        os.close(self._fd)  # its write now fails (EPIPE) and it exits
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def __enter__(self) -> ParseAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _document_bytes(data: bytes) -> bytes:
    """The child's answer: a tag and the serialised document, or nothing if it does not parse."""
    try:
        doc = tomli.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomli.TOMLDecodeError):
        return b""
    try:
        return b"m" + marshal.dumps(doc)
    except ValueError:  # a TOML date or time: marshal carries only the plain types
        return b"p" + pickle.dumps(doc, pickle.HIGHEST_PROTOCOL)
