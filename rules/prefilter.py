"""Does a response body mention any targeted identifier at all? A byte-level answer, before decoding.

Learning ids, finding a content's owner and stripping a person's entries all look identifiers up
exactly (``Matcher.lookup``: lower-cased, ``@`` and outer whitespace dropped), so a body that
nowhere contains one of them, in any spelling JSON allows, cannot matter and is passed on without
being decoded. ``Prefilter.mentions`` is False only when that is certain; a True costs a decode.

Certain means: case-insensitively (``str.lower``, as the matcher compares), and whatever escapes the
JSON uses. A body whose JSON escapes (``\\u0073``, ``\\u002E``, ``\\/`` …) spell a character an
identifier is made of, or that holds the Kelvin sign (which lower-cases to ``k``), is unescaped and
searched as text; so is every body when an identifier is not ASCII. Searching is ``bytes.lower``
plus one ``in`` per identifier: ~0.3 ms for 200 KB with two identifiers, ~3 ms for 2 MB. Above
``MAX_IDENTIFIERS`` per platform searching would cost more than the decode it saves (one ``in`` is
~0.06 ms per 200 KB, decoding and walking that body ~4 ms), so such a prefilter lets every body
through to be inspected, exactly as before it existed. Pure: no I/O.

Where the compiled searcher Hyperscan is installed (a dependency on x86-64 Linux, where its wheels
exist) the same question is one pass over the raw bytes instead: every ASCII identifier and a coarse
escape check as one caseless pattern set (~0.1-0.3 ns per byte, against ~1.5 for the passes above),
and a second, exact pass only for a body that escapes some printable ASCII character; exactly the
same answers. Elsewhere the pure path above runs.

Not covered, on purpose: a JSON *number* written in exponent or long-fraction form (``1.234567e6``)
that the matcher would read as the id ``1234567``. No platform writes ids as floats (ids above 2**53
would not survive it), and finding such numbers would cost ten times the search itself.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterable
from typing import Any

try:
    import hyperscan
except ImportError:  # not on this platform: the pure path answers alone
    hyperscan = None  # type: ignore[assignment]

# Beyond this many identifiers on one platform, searching costs about what decoding does (benchmarks/
# prefilter.py: one ``in`` ~0.06 ms per 200 KB, a decode and walk ~4 ms; sre alternations and tries of
# diverse ids were slower still, 6-20 ms): then every body is inspected, as without a prefilter.
MAX_IDENTIFIERS = 48
# Beyond this many places (a short handle inside many words) decoding around each costs about what
# decoding the whole body does: ``offsets`` then says None.
MAX_OFFSETS = 64
_KELVIN = "\u212a"  # the one non-ASCII character whose lower case is a single ASCII letter ("k")
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "\b": "b", "\f": "f", "\n": "n", "\r": "r", "\t": "t"}
_LEADING_WS = re.compile(rb"[ \t\n\r\x0b\x0c]*")
_PAIR = r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})"
_UNESCAPE = re.compile(_PAIR + r"|\\u([0-9a-fA-F]{4})|\\(.)", re.DOTALL)
_SIMPLE_DECODED = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class Prefilter:
    """Compiled from targeted identifiers; ``mentions(body)`` rejects bodies that name none of them.

    ``groups`` are sets of identifiers compiled (and cached) separately, so that adding a learned id
    recompiles only the small learned group, not every handle the rules name."""

    def __init__(self, *groups: Iterable[str]) -> None:
        self._parts = tuple(
            _compiled(g) for g in (frozenset(i.lower() for i in group if i) for group in groups) if g
        )
        self._lower = any(p.letters for p in self._parts)
        self.exhaustive = sum(p.size for p in self._parts) <= MAX_IDENTIFIERS  # else: everything passes
        self._text = any(p.non_ascii for p in self._parts)  # some identifier is not ASCII
        # applied to the lower-cased bytes when those are made anyway (hex digits then need no re.I)
        chars = frozenset().union(*(p.chars for p in self._parts))
        self._danger = _danger_pattern(chars, not self._lower)
        self._scanner = (
            _scanner(tuple(sorted(b for p in self._parts for b in p.needles)), chars)
            if hyperscan is not None and self.exhaustive and not self._text
            else None
        )

    def __bool__(self) -> bool:
        return bool(self._parts)

    def mentions(self, body: bytes) -> bool:
        """False only if no identifier can be in ``body`` as a JSON value, however it is written."""
        if not self._parts or not body:
            return False
        if not self.exhaustive:
            return True
        start = _LEADING_WS.match(body)
        head = body[start.end() if start else 0 :][:4]
        if json.detect_encoding(head) not in ("utf-8", "utf-8-sig"):
            return True  # UTF-16/32 JSON (json.loads accepts it): bytes cannot be searched as UTF-8
        if self._scanner is not None:
            found = self._scanner.scan(body)
            if found is not None:  # else it failed: the pure path answers
                return found == _IDENTIFIER or (found == _ESCAPE and self._text_mentions(body))
        low = body.lower() if self._lower else body
        if any(p.found(low) for p in self._parts):
            return True
        if self._text or (self._danger is not None and self._danger.search(low)):
            return self._text_mentions(body)
        return False

    def offsets(self, body: bytes) -> list[int] | None:
        """Where the identifiers are written in ``body``: the offset of each occurrence's last byte,
        ascending, when the bytes show every mention as written (UTF-8, ASCII identifiers, no escape
        that could spell one of their characters, at most ``MAX_OFFSETS`` of them). None otherwise:
        then only decoding the whole body can tell where they are."""
        if not self._parts or not body or not self.exhaustive or self._text:
            return None
        start = _LEADING_WS.match(body)
        head = body[start.end() if start else 0 :][:4]
        if json.detect_encoding(head) != "utf-8":
            return None
        if self._scanner is not None:
            return self._scanner.offsets(body)
        low = body.lower() if self._lower else body
        if self._danger is not None and self._danger.search(low):
            return None
        found: set[int] = set()
        for part in self._parts:
            for n in part.needles:
                i = low.find(n)
                while i >= 0:
                    found.add(i + len(n) - 1)  # its last byte, as the compiled scan reports it
                    if len(found) > MAX_OFFSETS:
                        return None
                    i = low.find(n, i + 1)
        return sorted(found)

    def _text_mentions(self, body: bytes) -> bool:
        """The exact, slower path: the body as text, JSON escapes undone, lower-cased like the matcher."""
        text = body.decode("utf-8", "replace")
        if "\\" in text:
            text = _UNESCAPE.sub(_unescape, text)
        text = text.lower()
        return any(p.found_text(text) for p in self._parts)


class _Part:
    """One group of identifiers: byte needles (ASCII) and text needles (all), searched as fits."""

    def __init__(self, idents: frozenset[str]) -> None:
        ascii_ids = sorted(i for i in idents if i.isascii())
        self.non_ascii = len(ascii_ids) != len(idents)
        self.letters = any(c.isalpha() for i in ascii_ids for c in i)
        self.chars = frozenset(c for i in idents for c in i)
        self.size = len(idents)
        self._bytes = tuple(i.encode() for i in ascii_ids)
        self.needles = self._bytes
        self._texts = tuple(sorted(idents))

    def found(self, low: bytes) -> bool:
        return any(n in low for n in self._bytes)

    def found_text(self, text: str) -> bool:
        return any(n in text for n in self._texts)


@functools.lru_cache(maxsize=64)
def _compiled(idents: frozenset[str]) -> _Part:
    return _Part(idents)


_IDENTIFIER, _ESCAPE, _NEAR, _NOTHING = 0, 1, 2, -1  # a scan's answer (the first three are pattern ids)
# Every ``\\u00XX`` escape of a printable ASCII character, as one class: Hyperscan finds it with one
# literal search for ``\\u00`` and a check of two bytes, where the exact set of an identifier's
# escapes (a dozen literals, all starting ``\\u00``) makes it confirm every non-ASCII escape of a
# Meta body (``\\u00e9``: ~3,700 in 2 MB): 0.86 ms against 0.39 ms per 2 MB (1.2 against 0.87 ms on
# a slower VM, 2026-12-03, where the identifiers alone took 0.3 ms).
_NEAR_ESCAPE = rb"\\u00[2-7][0-9a-f]"


class _Scanner:
    """Hyperscan databases over the raw body, caseless, each scan stopping at its first match.

    The first holds each identifier (``_IDENTIFIER``), the escapes that could spell one which are
    not ``\\u00XX`` (``_ESCAPE``: the Kelvin sign, ``\\/`` …), and any escape of a printable ASCII
    character (``_NEAR``). Most bodies (Meta's JSON escapes only non-ASCII characters and ``/``)
    are answered by it alone. After a ``_NEAR`` match the second answers exactly: the identifiers
    and the exact escapes of their characters, compiled the first time a body needs it. Compiling
    takes ~0.5 ms for a few identifiers and ~3 ms at ``MAX_IDENTIFIERS``, once per identifier set."""

    def __init__(self, first: Any, exact: tuple[list[bytes], list[int]]) -> None:
        self._first = first
        self._exact_patterns = exact
        self._exact: Any = None
        self._locate: Any = None  # every identifier's place: for decoding only around them
        self._lock = threading.Lock()  # compiling a database once
        # a scan needs scratch space of its own: one per thread and database, so the loop's scans
        # never wait for a long one in the inspection thread (Hyperscan lets go of the GIL)
        self._local = threading.local()

    def scan(self, body: bytes) -> int | None:
        """What the body holds (``_IDENTIFIER``, ``_ESCAPE``), ``_NOTHING``, or None if a scan
        failed (the pure path answers instead)."""
        found = self._scan(self._first, body)
        if found != _NEAR:
            return found
        with self._lock:
            if self._exact is None:
                self._exact = _compile(*self._exact_patterns)
        return None if self._exact is None else self._scan(self._exact, body)

    def offsets(self, body: bytes) -> list[int] | None:
        """Every identifier's place in ``body``, in one pass; None if an escape could spell one of
        their characters, or the scan failed (``Prefilter.offsets``)."""
        with self._lock:
            if self._locate is None:
                self._locate = _compile(*self._exact_patterns, single=False) or False
        if self._locate is False:
            return None
        found: set[int] = set()
        escaped: list[bool] = []

        def on_match(ident: int, start: int, end: int, flags: int, context: Any) -> bool:
            if ident != _IDENTIFIER:
                escaped.append(True)
                return True  # an escape: the bytes do not show every mention, stop
            found.add(end - 1)
            return len(found) > MAX_OFFSETS

        try:
            self._locate.scan(body, match_event_handler=on_match, scratch=self._scratch(self._locate))
        except hyperscan.ScanTerminated:
            pass
        except hyperscan.HyperscanError:
            return None
        if escaped or len(found) > MAX_OFFSETS:
            return None
        return sorted(found)

    def _scan(self, db: Any, body: bytes) -> int | None:
        hit: list[int] = []

        def on_match(ident: int, start: int, end: int, flags: int, context: Any) -> bool:
            hit.append(ident)
            return True  # stop: one match decides

        try:
            db.scan(body, match_event_handler=on_match, scratch=self._scratch(db))
        except hyperscan.ScanTerminated:
            pass
        except hyperscan.HyperscanError:
            return None
        return hit[0] if hit else _NOTHING

    def _scratch(self, db: Any) -> Any:
        """This thread's scratch space for ``db`` (one of this scanner's, which live as long as it)."""
        spaces: dict[int, Any] = self._local.__dict__.setdefault("spaces", {})
        space = spaces.get(id(db))
        if space is None:
            space = spaces[id(db)] = hyperscan.Scratch(db)
        return space


def _compile(patterns: list[bytes], ids: list[int], single: bool = True) -> Any:
    """One caseless block-mode database, or None if Hyperscan refuses a pattern. ``single``: each
    pattern reports its first match only (enough to answer whether); else every match's end."""
    flags = hyperscan.HS_FLAG_CASELESS | (hyperscan.HS_FLAG_SINGLEMATCH if single else 0)
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        db.compile(expressions=patterns, ids=ids, elements=len(patterns), flags=[flags] * len(patterns))
    except hyperscan.HyperscanError:
        return None
    return db


@functools.lru_cache(maxsize=64)
def _scanner(needles: tuple[bytes, ...], chars: frozenset[str]) -> _Scanner | None:
    """Compiled once per set of identifiers (a learned id makes a new set); None without Hyperscan
    or if it refuses a pattern (then the pure path runs, with the same answers)."""
    if hyperscan is None or not needles:
        return None
    # one expression per identifier (compiling them as one alternation took 3x as long: 8 ms at
    # MAX_IDENTIFIERS, and a rebuild after a learned id runs in the response hook)
    patterns = [b"".join(b"\\x%02x" % c for c in n) for n in needles]
    ids = [_IDENTIFIER] * len(patterns)
    danger = _danger_pattern(chars, False)  # caseless in Hyperscan: hex digits in either case
    exact = (
        patterns + ([danger.pattern] if danger is not None else []),
        ids + [_ESCAPE] * (danger is not None),
    )
    first_patterns, first_ids = list(patterns), list(ids)
    if danger is not None:
        near, other = _split_danger(chars)
        if near:
            first_patterns.append(_NEAR_ESCAPE)
            first_ids.append(_NEAR)
        if other is not None:
            first_patterns.append(other)
            first_ids.append(_ESCAPE)
    first = _compile(first_patterns, first_ids)
    return None if first is None else _Scanner(first, exact)


def _danger_parts(chars: frozenset[str]) -> tuple[list[str], list[str]]:
    """The escapes that could spell a character of an identifier: the four hex digits of each
    ``\\uXXXX`` form, and the other spellings (regex source: the Kelvin sign, ``\\/`` …)."""
    alts: list[str] = []
    codes: set[int] = set()
    for c in chars:
        for v in {c, c.upper(), c.lower(), c.title()}:
            if len(v) == 1:
                codes.add(ord(v))
        if c == "k":
            codes.add(ord(_KELVIN))
            alts.append(_KELVIN.encode().decode("latin-1"))  # its UTF-8 bytes, as written
        if c in _SIMPLE_ESCAPES:
            alts.append(re.escape("\\" + _SIMPLE_ESCAPES[c]))
    # a character outside the BMP is escaped as a surrogate pair: its high half is enough to flag it
    hexes = sorted(f"{x:04x}" if x < 0x10000 else f"{0xD800 + ((x - 0x10000) >> 10):04x}" for x in codes)
    return hexes, alts


@functools.lru_cache(maxsize=64)
def _danger_pattern(chars: frozenset[str], any_case: bool) -> re.Pattern[bytes] | None:
    """Escapes that could spell a character of an identifier: if none is in a body, the bytes show
    every identifier as it is written (only lower-casing stands between them)."""
    hexes, alts = _danger_parts(chars)
    if hexes:
        alts = [*alts, r"\\u" + _trie(hexes)]
    if not alts:
        return None
    return re.compile("|".join(alts).encode("latin-1"), re.IGNORECASE if any_case else 0)


def _split_danger(chars: frozenset[str]) -> tuple[bool, bytes | None]:
    """For the first compiled pass: whether some ``\\u00XX`` escape of printable ASCII could spell an
    identifier's character (``_NEAR_ESCAPE`` then stands for all of them), and a pattern for every
    other escape that could (exact already: none of them starts ``\\u00``)."""
    hexes, alts = _danger_parts(chars)
    near = [h for h in hexes if "0020" <= h <= "007f"]
    far = [h for h in hexes if h not in near]
    if far:
        alts = [*alts, r"\\u" + _trie(far)]
    return bool(near), "|".join(alts).encode("latin-1") if alts else None


def _unescape(m: re.Match[str]) -> str:
    hi, lo, code, simple = m.groups()
    if hi is not None:
        return chr(0x10000 + ((int(hi, 16) - 0xD800) << 10) + (int(lo, 16) - 0xDC00))
    if code is not None:
        return chr(int(code, 16))
    return _SIMPLE_DECODED.get(simple, simple)


def _trie(words: Iterable[str]) -> str:
    """One regex for many literals with shared prefixes factored out (``00(?:2e|3(?:2|4))``), so sre
    tries a handful of branches per position instead of every literal. A word that another one starts
    with is enough on its own: finding it is finding either."""
    root: dict[str, Any] = {}
    for w in sorted(words, key=len):
        node = root
        for ch in w:
            if "" in node:
                break  # a shorter identifier is a prefix of this one
            node = node.setdefault(ch, {})
        else:
            node.clear()
            node[""] = {}

    def emit(node: dict[str, Any]) -> str:
        if "" in node:
            return ""
        alts = [re.escape(ch) + emit(sub) for ch, sub in sorted(node.items())]
        return alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"

    return emit(root)
