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
_BARE = frozenset("0123456789+-.eEtruefalsn")  # what a value outside quotes is written with


class JsonText:
    """One compact JSON document as text, to decode only around its mentions (``json_text``).

    A check finds a mention as the value at a path ``a.b.c`` of some object ``d``: the object holding
    it (key ``c``, written right before the value) is the innermost one around the mention, and
    ``d`` is two objects further out, reached through keys ``b`` and ``a`` written before each (or
    before the array holding it). So each mention's enclosing objects are found by walking back
    over the brackets outside strings (quote parity, escaped quotes counted), only as far out as
    some path can still match, and the outermost of those is decoded: every object the whole
    decode would hand the check that holds such a value is in one of them, in the same order. On a
    body that is not valid JSON the whole decode finds nothing; this may find the objects that did
    close (stricter, never laxer). One text answers several walks (``around``, then
    ``may_reach``): the brackets found are kept for the next."""

    __slots__ = (
        "_counted",
        "_decoded",
        "_inner",
        "_keys",
        "_lead",
        "_raw",
        "_up",
        "text",
    )

    def __init__(self, text: str, raw: bytes, lead: int) -> None:
        self.text, self._raw, self._lead = text, raw, lead
        self._decoded: dict[int, tuple[Any, int]] = {}  # objects decoded so far, by where they start
        # what the walks found, kept for the next walk over this text (``around`` then ``may_reach``,
        # and mentions side by side in one object, go out through the same brackets): per mention
        # the innermost open bracket around it and its key (``_member``), and per open bracket the
        # innermost one around that (-1: none)
        self._inner: dict[int, tuple[int, str | bool | None]] = {}
        self._up: dict[int, int] = {}
        self._keys: dict[int, str | None] = {}
        self._counted = [(0, 0)]  # (place, real quotes before it), ascending: counting goes on from one

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

    def whole(self) -> list[Any] | None:
        """What ``json_objects`` would find in the body (the document, as the one item of a list)
        if a walk has already decoded all of it, so that it is not decoded a second time; else None.
        The root starts the text, which holds nothing after it once decoded to its end."""
        got = self._decoded.get(0)
        return [got[0]] if got is not None and got[1] == len(self.text) else None

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
        # brackets walked for all mentions (~1 us each, decoding ~4 ns a character), and characters
        # decoded below the root (mentions nested in each other decode the same text again): past
        # either, decoding the whole body is cheaper (at worst this has cost about one such decode)
        steps = [32 + len(text) // 256, len(text) + 16_384]
        tops: set[int] = set()
        for at in places:
            top = self._outermost_needed(at, chains, steps)
            if top is _WHOLE:
                return None
            if top is not None:
                tops.add(top)
        return tops

    def _outermost_needed(self, at: int, chains: list[tuple[str, ...]], steps: list[int]) -> Any:
        """Where the outermost object around ``at`` that a path can start from begins (decoded into
        ``_decoded``), None if no path can reach ``at``, or ``_WHOLE``. ``steps``: brackets left to
        walk, characters left to decode."""
        text, decoded = self.text, self._decoded
        known = self._inner.get(at)
        if known is None:
            quotes = self._parity(at, steps)
            k = None if quotes is None else self._enclosing(at, quotes, steps)
            if k is None or quotes is None:
                return _WHOLE
            known = self._inner[at] = (k, self._member(at, k, quotes))
        k, member = known
        if member is False or (member is not None and not any(p[-1] == member for p in chains)):
            return None  # it sits in a key, or at a key no path ends in: no value a path reads
        found: list[int] = []  # the enclosing objects' starts, innermost first
        arrays = 0  # arrays opened between the last object found and the next
        alive: list[tuple[str, ...]] = []
        need = 0
        while k >= 0:
            if text[k] == "[":  # an array around it: its key is that of the objects in it
                arrays += 1
                if arrays == 1 and found and (key := self._key(k)) is not None:
                    alive = _under(alive, len(found) - 1, key)
                    need = max((len(p) - 1 for p in alive), default=0)
                    if len(found) - 1 >= need:
                        break  # no path reaches further out through this array
            else:
                level = len(found)
                if level == 0 and member is not None:
                    alive = [p for p in chains if p[-1] == member]  # (the top is decoded below)
                elif level == 0:
                    got = _decode_at(text, k, decoded, steps)
                    if got is None or not isinstance(got[0], dict) or steps[1] < 0:
                        return _WHOLE
                    alive = [p for p in chains if p[-1] in got[0]]
                    if not alive:
                        return None  # no path ends in a key of the object holding it
                elif arrays == 0 and (key := self._key(found[-1])) is not None:
                    alive = _under(alive, level - 1, key)  # (inside an array, its key was applied there)
                found.append(k)
                arrays = 0
                need = max((len(p) - 1 for p in alive), default=0)
                if level >= need:
                    break  # (no path left alive: need is 0, and nothing is returned)
            up = self._up.get(k)
            if up is None:
                # an open bracket outside strings has an even number of real quotes before it
                up = self._enclosing(k, 0, steps)
                if up is None:
                    return _WHOLE
                self._up[k] = up
            k = up
        # a path that would start above the outermost object cannot match (there is no object there)
        reach = max((len(p) - 1 for p in alive if len(p) <= len(found)), default=None)
        if reach is None:
            return None
        top = found[reach]
        return top if _decode_at(text, top, decoded, steps) is not None and steps[1] >= 0 else _WHOLE

    def _enclosing(self, i: int, quotes: int, steps: list[int]) -> int | None:
        """The innermost bracket opened before ``i`` and still open there, outside strings (-1:
        none); None when ``steps[0]`` runs out first. ``quotes``: real quotes before ``i`` (only
        its parity counts), so the quotes walked over tell which brackets sit inside strings."""
        text = self.text
        nearest = {ch: text.rfind(ch, 0, i) for ch in "{}[]"}
        depth = 0
        while (k := max(nearest.values())) >= 0:
            steps[0] -= 1
            ch = text[k]
            quotes -= self._real_quotes(k, i, steps)
            if steps[0] < 0:
                return None
            nearest[ch] = text.rfind(ch, 0, k)
            i = k
            if quotes % 2:
                continue  # inside a string
            if ch in "}]":
                depth += 1
            elif depth:
                depth -= 1
            else:
                return k
        return -1

    def _member(self, at: int, inner: int, quotes: int) -> str | bool | None:
        """The key whose value holds the mention ending at ``at``: a member of the object that opens
        at ``inner``, or, when ``inner`` opens an array holding it, the array's own key. False when
        the mention sits in a key (a path reads values, never keys); None when the text does not
        say plainly (an escaped key, an array inside an array): then every key of the object counts.
        ``quotes``: the real quotes before ``at``, odd inside a string."""
        text = self.text
        if quotes % 2:  # in a string: what stands before its opening quote
            j = _real_quote_before(text, at)
            if j < 0:
                return None
        else:  # a bare value (a number): what stands before it
            j = at
            while j >= 0 and text[j] in _BARE:
                j -= 1
            j += 1
        start = j
        j -= 1
        while j >= 0 and text[j] in _JSON_WS:
            j -= 1
        before = text[j] if j >= 0 else ""
        if text[inner] == "{":
            if before == ":":
                return self._key(start)
            if before in ",{" and quotes % 2:
                return False  # a string right after an object's "{" or ",": a key
            return None
        if before in ",[":
            return self._key(inner)  # (None when the array is itself an element)
        return None

    def _parity(self, at: int, steps: list[int]) -> int | None:
        """1 if ``at`` is inside a string, else 0, mostly told from the quotes nearest it.

        Of the string a quote belongs to, a closing quote is followed (past whitespace) by one of
        ``:,]}`` or the end, in any text ``json.loads`` accepts. So where the text just after the
        real quote before ``at`` is anything else, that quote opens a string and ``at`` is in it;
        where the text after the real quote past ``at`` is anything else, that one opens a string and
        ``at`` is between strings. Otherwise (``":4242,"`` could be either) the real quotes before
        ``at`` are counted (None if ``steps`` runs out). A text that is not valid JSON may be read
        wrong here: its whole decode finds nothing, and what a walk then decodes can only add to
        that."""
        text = self.text
        before = _real_quote_before(text, at)
        if before < 0:
            return 0
        after = text.find('"', at)
        while after >= 0 and _escaped(text, after):
            after = text.find('"', after + 1)
        if after < 0:
            return 0  # a string opened before ``at`` would have to close after it
        if _next_char(text, before + 1) not in _AFTER_STRING:
            return 1
        if _next_char(text, after + 1) not in _AFTER_STRING:
            return 0
        quotes = self._quotes_before(at, steps)
        return None if quotes is None else quotes % 2

    def _quotes_before(self, at: int, steps: list[int]) -> int | None:
        """The real (unescaped) quotes before ``at``, counted on from the nearest place counted;
        None if ``steps`` runs out on escaped ones."""
        counted = self._counted
        j = bisect.bisect_right(counted, (at, len(self.text) + 1)) - 1
        last, quotes = counted[j]
        quotes += self._real_quotes(last, at, steps)
        if steps[0] < 0:
            return None
        if last != at:
            counted.insert(j + 1, (at, quotes))
        return quotes

    def _real_quotes(self, start: int, end: int, steps: list[int]) -> int:
        """The quotes in ``text[start:end]`` that are not escaped. Each one after a backslash
        costs a step of ``steps[0]``, like a bracket: a string full of escaped quotes is walked
        only so far before the whole body is decoded instead."""
        text = self.text
        n = text.count('"', start, end)
        if n:
            i = text.find('\\"', max(start - 1, 0), end)
            while i >= 0:
                steps[0] -= 1
                n -= _escaped(text, i + 1)
                i = text.find('\\"', i + 2, end)
        return n

    def _key(self, start: int) -> str | None:
        """``_key_before``, once per place."""
        if start not in self._keys:
            self._keys[start] = _key_before(self.text, start)
        return self._keys[start]


_AFTER_STRING = frozenset(":,]}") | {""}  # what may follow a string, past whitespace ("": the end)


def _escaped(text: str, q: int) -> bool:
    """Whether the quote at ``q`` is escaped: after an odd run of backslashes (a string ending in
    ``\\\\`` closes with a real quote)."""
    j = q - 1
    while j >= 0 and text[j] == "\\":
        j -= 1
    return (q - 1 - j) % 2 == 1


def _real_quote_before(text: str, at: int) -> int:
    """Where the last quote before ``at`` that is not escaped stands; -1 if there is none."""
    q = text.rfind('"', 0, at)
    while q >= 0 and _escaped(text, q):
        q = text.rfind('"', 0, q)
    return q


def _next_char(text: str, i: int) -> str:
    """The first character at or after ``i`` that is not JSON whitespace; "" at the end."""
    while i < len(text) and text[i] in _JSON_WS:
        i += 1
    return text[i] if i < len(text) else ""


def _char_offsets(raw: bytes, places: list[int]) -> list[int]:
    """Ascending byte offsets of ASCII characters in UTF-8 ``raw`` as offsets in its text, in one pass."""
    out: list[int] = []
    byte = char = 0
    for at in places:
        char += len(raw[byte:at].decode("utf-8", "surrogatepass"))
        byte = at
        out.append(char)
    return out


def json_text(body: bytes, content_type: str) -> JsonText | None:
    """``body`` as one compact JSON document's text, or None when it is not one (an HTML page,
    several lines that may be several documents, not UTF-8, too large): then only ``json_objects``,
    decoding it whole, can say what it holds."""
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
    return JsonText(text, core, lead)


def json_around(
    body: bytes, content_type: str, offsets: Sequence[int], paths: Iterable[str]
) -> list[Any] | None:
    """``JsonText.around`` for a body at once; None where it is not one compact JSON document."""
    doc = json_text(body, content_type)
    return None if doc is None else doc.around(offsets, paths)


_WHOLE: Any = object()  # "decode the whole body instead"


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
