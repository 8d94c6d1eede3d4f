"""Pull JSON out of a response body (JSON itself, or the JSON islands inside an HTML page).

Pure; the proxy calls it on responses from targeted hosts to learn ids and find a content's owner.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script>", re.DOTALL | re.IGNORECASE)
# `window.__DATA__ = {...};`, `var ytInitialData = {...};` and the like (code may follow the object)
_ASSIGN = re.compile(rb"^\s*(?:(?:var|let|const)\s+)?(?:window\.)?[\w.$\[\]\"']+\s*=\s*(?=\{)")
MAX_BODY = 8 * 1024 * 1024


def json_objects(body: bytes, content_type: str) -> list[Any]:
    """Every JSON document a response carries; empty when it carries none or is too large to inspect."""
    if not body or len(body) > MAX_BODY:
        return []
    ct = content_type.lower()
    stripped = body.lstrip()
    if stripped.startswith(b"for (;;);"):  # Meta's anti-hijacking prefix
        stripped = stripped[len(b"for (;;);") :]
    if "json" in ct or "javascript" in ct or stripped[:1] in (b"{", b"["):
        out = _loads(stripped)
        if out is not None:
            return [out]
        # newline-delimited JSON (Meta streams several documents in one response)
        docs = [d for line in stripped.splitlines() if (d := _loads(line)) is not None]
        if docs:
            return docs
    if "html" in ct or stripped[:1] == b"<":
        found = []
        for attrs, inner in _SCRIPT.findall(body):
            inner = inner.strip()
            if not inner:
                continue
            doc = _loads(inner)
            if doc is None and b"json" not in attrs.lower():
                m = _ASSIGN.match(inner)
                doc = _raw_decode(inner[m.end() :]) if m else None
            if doc is not None:
                found.append(doc)
        return found
    return []


def _raw_decode(data: bytes) -> Any:
    try:
        return json.JSONDecoder().raw_decode(data.decode("utf-8"))[0]
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _loads(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


_DECODER = json.JSONDecoder()
_JSON_WS = " \t\n\r"


class JsonText:
    """One compact JSON document as text, to decode only around its mentions (``json_text``).

    A check finds a mention as the value at a path ``a.b.c`` of some object ``d``: the object holding
    it (key ``c``) is the innermost one around the mention, and ``d`` is two objects further out,
    reached through keys ``b`` and ``a`` written before each (or before the array holding it). So
    each mention's enclosing objects are found by walking back over the brackets outside strings
    (quote parity, escaped quotes counted), only as far out as some path can still match, and the
    outermost of those is decoded: every object the whole decode would hand the check that holds
    such a value is in one of them, in the same order. On a body that is not valid JSON the whole
    decode finds nothing; this may find the objects that did close (stricter, never laxer)."""

    __slots__ = ("_decoded", "_escaped", "_lead", "_quotes", "_raw", "text")

    def __init__(self, text: str, raw: bytes, lead: int, quotes: Sequence[int] | None = None) -> None:
        self.text, self._raw, self._lead = text, raw, lead
        self._quotes = quotes
        self._escaped: list[int] | bool | None = False  # False: not yet known
        self._decoded: dict[int, tuple[Any, int]] = {}  # objects decoded so far, by where they start

    def around(self, offsets: Sequence[int], paths: Iterable[str]) -> list[Any] | None:
        """The objects in which a dotted key of ``paths`` can reach a mention at one of ``offsets``
        (places in the body, from ``Prefilter.offsets``), decoded alone, in document order; None when
        only decoding the whole body can say (too many escaped quotes, or no cheaper)."""
        tops = self._walk(offsets, paths)
        if tops is None:
            return None
        out: list[Any] = []
        reach = -1
        for start in sorted(tops):
            obj, end = self._decoded[start]
            if start >= reach:  # not inside one already kept (whose walk meets its objects)
                out.append(obj)
                reach = end
        return out

    def may_reach(self, offsets: Sequence[int], paths: Iterable[str]) -> bool | None:
        """Whether some object could hold a mention at one of ``offsets`` at a path of ``paths``;
        None if it cannot tell. False is certain: then no entry of a list a path names is owned by
        anyone the body mentions (and stripping it would take nothing out)."""
        tops = self._walk(offsets, paths)
        return None if tops is None else bool(tops)

    def _walk(self, offsets: Sequence[int], paths: Iterable[str]) -> set[int] | None:
        """Where the outermost needed object around each mention starts (decoded by then)."""
        text, core, lead = self.text, self._raw, self._lead
        ascii_ = len(text) == len(core)
        places = sorted({at for off in offsets if 0 <= (at := off - lead) < len(core)})
        if not ascii_:
            places = _char_offsets(core, places)
        chains = [tuple(p.split(".")) for p in paths if p]
        if not places or not chains:
            return set()
        if self._escaped is False:
            self._escaped = self._escaped_quotes()
        escaped = self._escaped
        if not isinstance(escaped, list):
            return None
        # brackets walked for all mentions (~1 us each, decoding ~4 ns a character), and characters
        # decoded below the root (mentions nested in each other decode the same text again): past
        # either, decoding the whole body is cheaper (at worst this has cost about one such decode)
        steps = [32 + len(text) // 256, len(text) + 16_384]
        tops: set[int] = set()
        quotes, last = 0, 0
        for at in places:
            quotes += text.count('"', last, at) - (
                bisect.bisect_left(escaped, at) - bisect.bisect_left(escaped, last)
            )
            last = at
            top = _outermost_needed(text, at, quotes, chains, escaped, self._decoded, steps)
            if top is _WHOLE:
                return None
            if top is not None:
                tops.add(top)
        return tops

    def _escaped_quotes(self) -> list[int] | None:
        """Where the escaped quotes are in ``text``: of the places where a quote follows a backslash,
        those after an odd run of backslashes (a string ending in ``\\\\`` closes with a real quote)."""
        core = self._raw
        quotes, lead = (backslash_quotes(core), 0) if self._quotes is None else (self._quotes, self._lead)
        out: list[int] = []
        for q in quotes:
            at = q - lead
            if not 0 < at < len(core):
                continue
            j = at - 1
            while j >= 0 and core[j] == 0x5C:  # backslash
                j -= 1
            if (at - 1 - j) % 2:
                out.append(at)
                if len(out) > MAX_ESCAPED_QUOTES:
                    return None
        return out if len(self.text) == len(core) else _char_offsets(core, out)


def _char_offsets(raw: bytes, places: list[int]) -> list[int]:
    """Ascending byte offsets of ASCII characters in UTF-8 ``raw`` as offsets in its text, in one pass."""
    out: list[int] = []
    byte = char = 0
    for at in places:
        char += len(raw[byte:at].decode("utf-8", "surrogatepass"))
        byte = at
        out.append(char)
    return out


def json_text(body: bytes, content_type: str, quotes: Sequence[int] | None = None) -> JsonText | None:
    """``body`` as one compact JSON document's text, or None when it is not one (an HTML page,
    several lines that may be several documents, not UTF-8, too large): then only ``json_objects``,
    decoding it whole, can say what it holds. ``quotes``: where a ``"`` follows a backslash in
    ``body`` (``Prefilter.places`` finds them in its pass), else they are looked for here."""
    if not body or len(body) > MAX_BODY or "html" in content_type.lower():
        return None
    lead = len(body) - len(stripped := body.lstrip())
    if stripped.startswith(b"for (;;);"):  # Meta's anti-hijacking prefix
        lead += len(b"for (;;);")
        stripped = stripped[len(b"for (;;);") :]
    core = stripped.rstrip()
    # several lines may be several documents (json_objects reads them line by line)
    if core[:1] not in (b"{", b"[") or b"\n" in core or b"\r" in core:
        return None
    try:
        text = core.decode("utf-8", "surrogatepass")  # as json.loads decodes bytes
    except UnicodeDecodeError:
        return None
    return JsonText(text, core, lead, quotes)


def json_around(
    body: bytes, content_type: str, offsets: Sequence[int], paths: Iterable[str]
) -> list[Any] | None:
    """``JsonText.around`` for a body at once; None where it is not one compact JSON document."""
    doc = json_text(body, content_type)
    return None if doc is None else doc.around(offsets, paths)


_WHOLE: Any = object()  # "decode the whole body instead"
MAX_ESCAPED_QUOTES = 4096


def backslash_quotes(data: bytes) -> list[int]:
    """Ascending places in ``data`` of each ``"`` that follows a backslash (escaped or not: the
    parity of the backslash run before it decides, in ``JsonText``)."""
    out: list[int] = []
    i = data.find(b'\\"')
    while i >= 0:
        out.append(i + 1)
        i = data.find(b'\\"', i + 2)
    return out


def _decode_at(
    text: str, start: int, decoded: dict[int, tuple[Any, int]], steps: list[int]
) -> tuple[Any, int] | None:
    """The object starting at ``start``, decoded once; its characters are counted against
    ``steps[1]`` (the root's are not: decoding it is decoding the whole body, once)."""
    got = decoded.get(start)
    if got is None:
        try:
            got = decoded[start] = _DECODER.raw_decode(text, start)
        except (ValueError, RecursionError):
            return None
        if start:
            steps[1] -= got[1] - start
    return got


def _outermost_needed(
    text: str,
    at: int,
    quotes: int,
    chains: list[tuple[str, ...]],
    escaped: list[int],
    decoded: dict[int, tuple[Any, int]],
    steps: list[int],
) -> Any:
    """Where the outermost object around ``at`` that a path can start from begins (decoded into
    ``decoded``), None if no path can reach ``at``, or ``_WHOLE``. ``quotes``: real quotes before
    ``at``; ``steps``: brackets left to walk, characters left to decode."""
    nearest = {ch: text.rfind(ch, 0, at) for ch in "{}[]"}
    found: list[int] = []  # the enclosing objects' starts, innermost first
    arrays = 0  # arrays opened between the last object found and the next
    alive: list[tuple[str, ...]] = []
    need, depth, i = 0, 0, at
    while (k := max(nearest.values())) >= 0:
        steps[0] -= 1
        if steps[0] < 0:
            return _WHOLE
        ch = text[k]
        quotes -= text.count('"', k, i) - (bisect.bisect_left(escaped, i) - bisect.bisect_left(escaped, k))
        nearest[ch] = text.rfind(ch, 0, k)
        i = k
        if quotes % 2:
            continue  # inside a string
        if ch in "}]":
            depth += 1
            continue
        if depth:
            depth -= 1
            continue
        if ch == "[":  # an array around it: its key is that of the objects in it
            arrays += 1
            if arrays == 1 and found and (key := _key_before(text, k)) is not None:
                alive = _under(alive, len(found) - 1, key)
                need = max((len(p) - 1 for p in alive), default=0)
                if len(found) - 1 >= need:
                    break  # no path reaches further out through this array
            continue
        level = len(found)
        if level == 0:
            got = _decode_at(text, k, decoded, steps)
            if got is None or not isinstance(got[0], dict) or steps[1] < 0:
                return _WHOLE
            alive = [p for p in chains if p[-1] in got[0]]
            if not alive:
                return None  # no path ends in a key of the object holding it
        elif arrays == 0 and (key := _key_before(text, found[-1])) is not None:
            alive = _under(alive, level - 1, key)  # (inside an array, its key was applied there)
        found.append(k)
        arrays = 0
        need = max((len(p) - 1 for p in alive), default=0)
        if level >= need:
            break  # (no path left alive: need is 0, and nothing is returned)
    # a path that would start above the outermost object cannot match (there is no object there)
    reach = max((len(p) - 1 for p in alive if len(p) <= len(found)), default=None)
    if reach is None:
        return None
    top = found[reach]
    return top if _decode_at(text, top, decoded, steps) is not None and steps[1] >= 0 else _WHOLE


def _under(alive: list[tuple[str, ...]], level: int, key: str) -> list[tuple[str, ...]]:
    """The paths that still can match once the object at ``level`` (0: the innermost around the
    mention) is known to sit under ``key``: a path ``a.b.c`` needs ``b`` at level 0, ``a`` at 1."""
    return [p for p in alive if len(p) - 2 - level < 0 or p[len(p) - 2 - level] == key]


def _key_before(text: str, start: int) -> str | None:
    """The key an object starting at ``start`` is the value of, if written plainly right before it
    (``"user":{``); None when it is an array's element or the key holds an escape (either: any key)."""
    k = start - 1
    while k >= 0 and text[k] in _JSON_WS:
        k -= 1
    if k < 0 or text[k] != ":":
        return None
    k -= 1
    while k >= 0 and text[k] in _JSON_WS:
        k -= 1
    if k < 1 or text[k] != '"':
        return None
    q = text.rfind('"', 0, k)
    if q < 0 or "\\" in text[q:k] or (q > 0 and text[q - 1] == "\\"):
        return None
    return text[q + 1 : k]
