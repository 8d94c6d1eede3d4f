"""Platform presets: data files (``rules/platforms/*.toml``) compiled into matchable patterns.

A preset says which hosts belong to a platform, what its identifiers look like, where a person's
identifier sits in page URLs and API calls, which surface each place reveals, and what the platform
hides. Code never names a platform; adding one is adding a file.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import tomli

from .schema import SURFACES, Ruleset, Site

SPECIAL_KINDS = ("any", "url", "query", "user")
PATTERN_KINDS = ("page", "api", "socket")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# Wrappers whose grammar is known, written before a template: "base64:app_collection:{id}:*" is a value
# that is base64 of "app_collection:<id>:…"; "pb:80226972.2:{id}" is the string at protobuf field
# 80226972 → 2 of a (decoded) message. Values are unwrapped only this way, never searched for substrings.
_DECODER = re.compile(r"^(base64:|pb:[0-9]+(?:\.[0-9]+)*:)")
_B64 = re.compile(r"[A-Za-z0-9+/_-]{4,}={0,2}")


class PresetError(ValueError):
    """A preset file is malformed: a bug in the package data, reported with the file and key."""


def unbase64(value: str) -> bytes | None:
    """Standard or URL-safe base64, padded or not (and %3D-escaped padding); None if it is not base64."""
    value = value.strip().replace("%3D", "=").replace("%3d", "=")
    if not _B64.fullmatch(value):
        return None
    value = value.rstrip("=").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        b = data[i]
        result |= (b & 0x7F) << shift
        i += 1
        if not b & 0x80:
            return result, i
        shift += 7


def pb_fields(data: bytes, number: int) -> list[bytes]:
    """Every length-delimited field ``number`` of one protobuf message (wire format; [] if malformed)."""
    out: list[bytes] = []
    i = 0
    try:
        while i < len(data):
            key, i = _varint(data, i)
            wire = key & 7
            if wire == 0:
                _, i = _varint(data, i)
            elif wire == 1:
                i += 8
            elif wire == 5:
                i += 4
            elif wire == 2:
                size, i = _varint(data, i)
                if i + size > len(data):
                    return []
                if key >> 3 == number:
                    out.append(data[i : i + size])
                i += size
            else:
                return []
    except ValueError:
        return []
    return out


def _unwrap(value: str, steps: tuple[str, ...]) -> list[str]:
    """Apply a template's decoders: the candidate texts inside ``value`` (none if it is not that wrapper)."""
    items: list[str | bytes] = [value]
    for step in steps:
        nxt: list[str | bytes] = []
        for item in items:
            if step == "base64":
                raw = unbase64(item) if isinstance(item, str) else None
                if raw is not None:
                    nxt.append(raw)
            else:  # pb:<n>.<m>…
                parts = [item] if isinstance(item, bytes) else []
                for number in step[3:].split("."):
                    parts = [f for part in parts for f in pb_fields(part, int(number))]
                nxt.extend(parts)
        items = nxt
    out = []
    for item in items:
        if isinstance(item, bytes):
            try:
                item = item.decode("utf-8")
            except UnicodeDecodeError:
                continue
        out.append(item)
    return out


@dataclass(frozen=True, slots=True)
class Template:
    """``prefix{kind}suffix`` compiled to a full-match regex capturing the identifier as ``v``."""

    text: str
    kind: str | None  # None: a literal (or glob) with no identifier in it
    regex: re.Pattern[str]
    # For "*{id}*": every token-bounded identifier inside the value (lists like "[1234,5678]").
    scan: re.Pattern[str] | None = None
    decode: tuple[str, ...] = ()  # known wrappers to take off first ("base64", "pb:2"), outermost first

    def captures(self, value: str) -> list[str]:
        out: list[str] = []
        for text in _unwrap(value, self.decode) if self.decode else (value,):
            if self.scan is not None:
                out.extend(m.group("v") for m in self.scan.finditer(text))
            else:
                got = self._capture(text)
                if got is not None and (got or not self.kind):
                    out.append(got)
        return out

    def capture(self, value: str) -> str | None:
        if self.decode:
            got = self.captures(value)
            return got[0] if got else None
        return self._capture(value)

    def _capture(self, value: str) -> str | None:
        m = self.regex.fullmatch(value)
        if not m and value.startswith("@") and self.kind:
            m = self.regex.fullmatch(value[1:])  # people (and share sheets) write @handle anywhere
        if not m:
            return None
        return m.group("v") if self.kind else ""


@dataclass(frozen=True, slots=True)
class Pattern:
    platform: str
    index: int
    surface: str
    kind: str
    path: tuple[Template, ...] | None
    exact: bool
    hosts: tuple[str, ...]
    method: str
    query: tuple[tuple[str, Template], ...]
    form: tuple[tuple[str, Template], ...]
    json: tuple[tuple[str, Template], ...]
    variables: tuple[tuple[str, Template], ...]
    operation: frozenset[str]
    # Keys that must be there with a value of this form (any request field): what narrows a shared
    # endpoint to one view, e.g. a channel's Videos tab among all browse calls naming the channel.
    require: tuple[tuple[str, Template], ...]
    split: str
    owner: str  # "request": the identifier is in the request; "response": only the response shows it
    note: str
    text: str

    @property
    def has_sources(self) -> bool:
        return bool(
            (self.path and any(t.kind for t in self.path))
            or self.query
            or self.form
            or self.json
            or self.variables
        )

    @property
    def label(self) -> str:
        return f"{self.platform}#{self.index} {self.text}"


@dataclass(frozen=True, slots=True)
class Learn:
    """Ids found beside a target's handle in one JSON object; with ``forms``, only what those wrap."""

    handle: tuple[str, ...]
    ids: tuple[str, ...]
    forms: tuple[Template, ...] = ()
    handle_forms: tuple[Template, ...] = ()  # the handle inside a value (a channel URL ending in /@name)


@dataclass(frozen=True, slots=True)
class FrameRule:
    """A websocket message whose JSON ``key`` (anywhere) matches ``template`` reveals a person."""

    surface: str
    key: str
    template: Template


@dataclass(frozen=True, slots=True)
class StripRule:
    """A mixed list inside a response from which the person's entries are removed (``rules.feed``).

    It applies to responses whose request path starts with ``path`` (every path when empty) and, when
    ``operation`` is given, whose request names one of those GraphQL operations. ``lists`` are dotted
    key paths to the lists (a list met on the way is walked into, element by element); an entry is
    theirs when a value at one of its ``items`` key paths (``""``: the entry itself, for lists of
    plain handles) is, read through ``template`` when one is given, one of their identifiers."""

    surface: str
    path: str
    lists: tuple[tuple[str, ...], ...]
    items: tuple[str, ...]
    template: Template | None = None
    operation: frozenset[str] = frozenset()
    hosts: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class Platform:
    name: str
    title: str
    hosts: tuple[str, ...]
    ids: tuple[tuple[str, re.Pattern[str]], ...]
    patterns: tuple[Pattern, ...]
    accounts_from: tuple[str, ...] = ()
    limits: tuple[str, ...] = ()
    learn: tuple[Learn, ...] = ()
    owner_keys: tuple[str, ...] = ()
    frames: tuple[FrameRule, ...] = ()
    strips: tuple[StripRule, ...] = ()
    examples: dict[str, str] = field(default_factory=dict)
    # Search-operator tokens that name a person inside a longer query ("from:{query}", "@{query}").
    search_operators: tuple[Template, ...] = ()
    # Literal first path segments of this platform's own routes (/stories, /p, /api …): a handle
    # captured from the first segment can never be one of these, so a person called "stories" does
    # not turn everyone's /stories/<x>/ into their profile.
    reserved: frozenset[str] = frozenset()
    # the identifier kinds (``ids``' keys), asked for every account the loader reads
    kinds: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kinds", frozenset(k for k, _ in self.ids))

    def classify(self, value: str) -> str | None:
        """Which identifier kind a value written in the rules file is, or None if it is none."""
        for kind, rx in self.ids:
            if rx.fullmatch(value):
                return kind
        return None

    def covers(self, host: str) -> bool:
        return any(host == h or host.endswith("." + h) for h in self.hosts)


def compile_template(text: str, ids: dict[str, str], where: str) -> Template:
    full, decode = text, []
    while m := _DECODER.match(text):
        decode.append(m.group(1).rstrip(":"))
        text = text[m.end() :]
    if decode and decode[0] != "base64":
        raise PresetError(f"{where}: a pb: wrapper must follow base64: in {full!r}")
    kinds = _PLACEHOLDER.findall(text)
    if len(kinds) > 1:
        raise PresetError(f"{where}: at most one placeholder per value: {text!r}")
    parts = _PLACEHOLDER.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(".*".join(re.escape(p) for p in part.split("*")))
        else:
            kind = part
            if kind in ("any", "url", "query"):
                rx = ".+"
            elif kind == "user":
                rx = "|".join(f"(?:{r})" for r in ids.values())
            elif kind in ids:
                rx = ids[kind]
            else:
                raise PresetError(f"{where}: unknown placeholder {{{kind}}} in {text!r}")
            out.append(f"(?P<v>{rx})")
    scan = None
    if kinds and text.startswith("*") and text.endswith("*") and len(parts) == 3:
        scan = re.compile(rf"(?<![\w.-]){out[1]}(?![\w.-])", re.IGNORECASE)
    return Template(
        full,
        kinds[0] if kinds else None,
        re.compile("".join(out), re.IGNORECASE | re.DOTALL),
        scan,
        tuple(decode),
    )


def _pairs(data: Any, ids: dict[str, str], where: str) -> tuple[tuple[str, Template], ...]:
    """``key = "template"`` or ``key = ["template", …]`` (alternatives); a key may hold ``*`` globs."""
    if not data:
        return ()
    if not isinstance(data, dict):
        raise PresetError(f"{where}: expected a table")
    out = []
    for k, v in data.items():
        for text in v if isinstance(v, list) else [v]:
            if not isinstance(text, str):
                raise PresetError(f"{where}.{k}: expected a string or a list of strings")
            out.append((k, compile_template(text, ids, f"{where}.{k}")))
    return tuple(out)


_PATTERN_KEYS = {
    "surface",
    "kind",
    "path",
    "exact",
    "hosts",
    "method",
    "query",
    "form",
    "json",
    "variables",
    "operation",
    "require",
    "split",
    "owner",
    "note",
}


def _table_surface(raw: dict[str, Any], keys: set[str], where: str) -> str:
    """A preset table's surface, after refusing keys it does not know (a typo is an error)."""
    unknown = set(raw) - keys
    if unknown:
        raise PresetError(f"{where}: unknown keys {sorted(unknown)}")
    surface = raw.get("surface", "")
    if surface not in SURFACES:
        raise PresetError(f"{where}: surface {surface!r} is not one of {SURFACES}")
    return str(surface)


def compile_pattern(platform: str, i: int, raw: dict[str, Any], ids: dict[str, str]) -> Pattern:
    where = f"{platform}.pattern[{i}]"
    surface = _table_surface(raw, _PATTERN_KEYS, where)
    kind = raw.get("kind", "page")
    if kind not in PATTERN_KINDS:
        raise PresetError(f"{where}: kind {kind!r}")
    owner = raw.get("owner", "request")
    if owner not in ("request", "response"):
        raise PresetError(f"{where}: owner {owner!r}")
    path = None
    if "path" in raw:
        segs = [s for s in raw["path"].split("/") if s]
        path = tuple(compile_template(s, ids, f"{where}.path") for s in segs)
    ops = raw.get("operation", [])
    pat = Pattern(
        platform=platform,
        index=i,
        surface=surface,
        kind=kind,
        path=path,
        exact=bool(raw.get("exact", False)),
        hosts=tuple(h.lower() for h in raw.get("hosts", [])),
        method=raw.get("method", "").upper(),
        query=_pairs(raw.get("query"), ids, f"{where}.query"),
        form=_pairs(raw.get("form"), ids, f"{where}.form"),
        json=_pairs(raw.get("json"), ids, f"{where}.json"),
        variables=_pairs(raw.get("variables"), ids, f"{where}.variables"),
        operation=frozenset([ops] if isinstance(ops, str) else ops),
        require=_pairs(raw.get("require"), ids, f"{where}.require"),
        split=raw.get("split", ""),
        owner=owner,
        note=raw.get("note", ""),
        text=raw.get("path", "") or _ops_text(ops) or "(any path)",
    )
    if owner == "request" and not pat.has_sources and surface != "client":
        raise PresetError(f"{where}: a request-owned pattern needs a placeholder (or surface client)")
    return pat


_STRIP_KEYS = {"surface", "path", "operation", "hosts", "list", "item", "template", "note"}


def _strings(value: Any, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
        raise PresetError(f"{where}: expected a string or a list of strings")
    return list(items)


def compile_strip(raw: dict[str, Any], ids: dict[str, str], where: str) -> StripRule:
    """One ``[[strip]]`` table: where a mixed list is and how its entries name their owner."""
    surface = _table_surface(raw, _STRIP_KEYS, where)
    lists = tuple(
        tuple(p for p in text.split(".") if p) for text in _strings(raw.get("list", []), f"{where}.list")
    )
    items = tuple(_strings(raw.get("item", []), f"{where}.item"))
    path = raw.get("path", "")
    ops = frozenset(_strings(raw.get("operation", []), f"{where}.operation"))
    if not lists or not all(lists) or not items:
        raise PresetError(f"{where}: needs 'list' (where the list is) and 'item' (its owner's key)")
    if not isinstance(path, str) or not (path or ops):
        raise PresetError(f"{where}: needs a 'path' prefix or an 'operation' to say which responses")
    template = raw.get("template")
    return StripRule(
        surface=surface,
        path=path,
        lists=lists,
        items=items,
        template=compile_template(template, ids, f"{where}.template") if template else None,
        operation=ops,
        hosts=tuple(h.lower() for h in _strings(raw.get("hosts", []), f"{where}.hosts")),
        note=raw.get("note", ""),
    )


_TOP_KEYS = {
    "name",
    "title",
    "hosts",
    "ids",
    "pattern",
    "accounts_from",
    "limits",
    "learn",
    "owner_keys",
    "frame",
    "strip",
    "examples",
    "search_operators",
}


def compile_platform(raw: dict[str, Any], origin: str) -> Platform:
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise PresetError(f"{origin}: unknown keys {sorted(unknown)}")
    for i, spec in enumerate(raw.get("learn", [])):
        if not {"handle", "id"} <= set(spec) <= {"handle", "id", "forms", "handle_forms"}:
            raise PresetError(
                f"{origin}: learn[{i}] needs 'handle' and 'id' (and maybe 'forms'; keys after a "
                "[[table]] belong to it: put top-level keys before the first table)"
            )
    try:
        name = raw["name"]
        ids = dict(raw["ids"])
        for kind in ids:
            if kind in SPECIAL_KINDS:
                raise PresetError(f"{origin}: identifier kind {kind!r} is reserved")
        patterns = tuple(compile_pattern(name, i, p, ids) for i, p in enumerate(raw.get("pattern", [])))
        return Platform(
            name=name,
            title=raw.get("title", name),
            hosts=tuple(h.lower() for h in raw["hosts"]),
            ids=tuple((k, re.compile(v, re.IGNORECASE)) for k, v in ids.items()),
            patterns=patterns,
            accounts_from=tuple(raw.get("accounts_from", [])),
            limits=tuple(raw.get("limits", [])),
            learn=tuple(
                Learn(
                    tuple(x["handle"]),
                    tuple(x["id"]),
                    tuple(compile_template(f, ids, f"{origin}.learn") for f in x.get("forms", [])),
                    tuple(compile_template(f, ids, f"{origin}.learn") for f in x.get("handle_forms", [])),
                )
                for x in raw.get("learn", [])
            ),
            search_operators=tuple(
                compile_template(t, ids, f"{origin}.search_operators")
                for t in raw.get("search_operators", [])
            ),
            owner_keys=tuple(raw.get("owner_keys", [])),
            frames=tuple(
                FrameRule(f["surface"], f["key"], compile_template(f["template"], ids, f"{origin}.frame"))
                for f in raw.get("frame", [])
            ),
            strips=tuple(
                compile_strip(s, ids, f"{origin}.strip[{i}]") for i, s in enumerate(raw.get("strip", []))
            ),
            examples=dict(raw.get("examples", {})),
            reserved=frozenset(
                p.path[0].text.lower()
                for p in patterns
                if p.path and p.path[0].kind is None and "*" not in p.path[0].text
            ),
        )
    except (KeyError, TypeError, re.error) as e:
        raise PresetError(f"{origin}: {type(e).__name__}: {e}") from e


class Presets(Mapping[str, Platform]):
    """The built-in presets by name. Every file is read at once (~10 ms), but each platform is
    compiled (its patterns are ~400 regular expressions in all, ~50 ms) when first asked for, so a
    start compiles the platforms its rules target, not all of them. Names, membership and
    ``accounts_from`` are answered from the files without compiling anything."""

    def __init__(self, raw: dict[str, tuple[dict[str, Any], str]]) -> None:
        self._raw = raw  # name → (the file's table, where it came from)
        self._compiled: dict[str, Platform] = {}

    def __getitem__(self, name: str) -> Platform:
        p = self._compiled.get(name)
        if p is None:
            raw, origin = self._raw[name]
            # two threads asking at once may both compile it: both get the one stored first
            p = self._compiled.setdefault(name, compile_platform(raw, origin))
        return p

    def get(self, name: str, default: Platform | None = None) -> Platform | None:  # type: ignore[override]
        # Mapping's get would raise and catch a KeyError for every name that is not a preset
        return self[name] if name in self._raw else default

    def __contains__(self, name: object) -> bool:
        return name in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def accounts_from(self, name: str) -> tuple[str, ...]:
        """Whose accounts the preset ``name`` uses (``Platform.accounts_from``), without compiling it."""
        return tuple(self._raw[name][0].get("accounts_from", []))


@cache
def presets() -> Presets:
    """Every built-in platform preset, by name (read once from the package data)."""
    raw: dict[str, tuple[dict[str, Any], str]] = {}
    folder = resources.files(__package__).joinpath("platforms")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            data = tomli.loads(entry.read_text(encoding="utf-8"))
            name = entry.name.removesuffix(".toml")
            if data.get("name") != name:
                raise PresetError(
                    f"platforms/{entry.name}: name {data.get('name')!r} must match the file name"
                )
            raw[name] = (data, f"platforms/{entry.name}")
    return Presets(raw)


def _ops_text(ops: str | list[str]) -> str:
    ops = [ops] if isinstance(ops, str) else list(ops)
    if not ops:
        return ""
    return "GraphQL " + ops[0] + (f" (+{len(ops) - 1} more)" if len(ops) > 1 else "")


def site_platform(site: Site) -> Platform:
    """A user-defined site compiled like a built-in preset."""
    return compile_platform(
        {
            "name": site.name,
            "title": site.name,
            "hosts": list(site.hosts),
            "ids": {"handle": site.handle},
            "pattern": [{"surface": p.surface, "path": p.path} for p in site.pages],
        },
        f"site {site.name}",
    )


def custom_platforms(rules: Ruleset) -> dict[str, Platform]:
    """The rules' own ``[[site]]`` entries, compiled like presets."""
    return {s.name: site_platform(s) for s in rules.sites}
