"""Map key paths of a TOML text to their line and column, so every error can point at its place.

tomli gives positions only for syntax errors; for semantic errors we re-scan the (already valid)
text. Arrays of tables are indexed from 1 (``person[1]`` is the first person), as people count.
"""

from __future__ import annotations

import bisect
import re

_BARE = re.compile(r"[A-Za-z0-9_-]+")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.s = text
        self.i = 0
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        self.out: dict[str, tuple[int, int]] = {}
        self.counts: dict[str, int] = {}

    def pos(self, i: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, i)
        return line, i - self.starts[line - 1] + 1

    def ws(self, newlines: bool = False) -> None:
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c in " \t\r" or (newlines and c == "\n"):
                self.i += 1
            elif c == "#":
                while self.i < len(s) and s[self.i] != "\n":
                    self.i += 1
            else:
                return

    def key(self) -> list[tuple[str, int]]:
        parts = []
        while True:
            self.ws()
            start = self.i
            c = self.s[self.i]
            if c in "\"'":
                parts.append((self.string(), start))
            else:
                m = _BARE.match(self.s, self.i)
                if not m:
                    raise ValueError("bad key")
                self.i = m.end()
                parts.append((m.group(), start))
            self.ws()
            if self.i < len(self.s) and self.s[self.i] == ".":
                self.i += 1
                continue
            return parts

    def string(self) -> str:
        s, q = self.s, self.s[self.i]
        if s.startswith(q * 3, self.i):
            end = s.index(q * 3, self.i + 3)
            while s.startswith(q, end + 3):
                end += 1
            val = s[self.i + 3 : end]
            self.i = end + 3
            return val
        j = self.i + 1
        while s[j] != q:
            j += 2 if (q == '"' and s[j] == "\\") else 1
        val = s[self.i + 1 : j]
        self.i = j + 1
        return val

    def value(self, path: str) -> None:
        s = self.s
        c = s[self.i]
        if c in "\"'":
            self.string()
        elif c == "[":
            self.i += 1
            n = 0
            while True:
                self.ws(True)
                if s[self.i] == "]":
                    self.i += 1
                    return
                self.out.setdefault(f"{path}[{n + 1}]", self.pos(self.i))
                self.value(f"{path}[{n + 1}]")
                n += 1
                self.ws(True)
                if s[self.i] == ",":
                    self.i += 1
        elif c == "{":
            self.i += 1
            while True:
                self.ws(True)
                if s[self.i] == "}":
                    self.i += 1
                    return
                sub = self.assign(path)
                del sub
                self.ws(True)
                if s[self.i] == ",":
                    self.i += 1
        else:
            m = re.compile(r"[^,\]\}\n#]*").match(s, self.i)
            assert m is not None  # the pattern matches the empty string
            self.i = m.end()

    def assign(self, table: str) -> str:
        parts = self.key()
        path = table
        for name, start in parts:
            path = f"{path}.{name}" if path else name
            self.out.setdefault(path, self.pos(start))
        self.ws()
        self.i += 1  # "="
        self.ws()
        self.value(path)
        return path

    def header(self) -> str:
        array = self.s.startswith("[[", self.i)
        start = self.i
        self.i += 2 if array else 1
        parts = self.key()
        self.i += 2 if array else 1
        path = ""
        for n, (name, _) in enumerate(parts):
            path = f"{path}.{name}" if path else name
            last = n == len(parts) - 1
            if last and array:
                self.counts[path] = self.counts.get(path, 0) + 1
                path = f"{path}[{self.counts[path]}]"
            elif path in self.counts:
                path = f"{path}[{self.counts[path]}]"
        self.out.setdefault(path, self.pos(start))
        return path

    def run(self) -> dict[str, tuple[int, int]]:
        table = ""
        while True:
            self.ws(True)
            if self.i >= len(self.s):
                return self.out
            if self.s[self.i] == "[":
                table = self.header()
            else:
                self.assign(table)


def locate(text: str) -> dict[str, tuple[int, int]]:
    """Key path → (line, column), best effort; an empty map if the text is not valid TOML."""
    try:
        return _Scanner(text).run()
    except (ValueError, IndexError):
        return {}
