"""A request as the matcher sees it: decoded once, every place an identifier can hide made searchable."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

_FORM_TYPES = ("application/x-www-form-urlencoded", "")


@dataclass(frozen=True)
class Request:
    """Method, URL, lower-cased headers and body; everything else is derived lazily and cached."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @cached_property
    def _split(self) -> Any:
        url = self.url.strip()
        if "://" not in url:
            url = "https://" + url
        return urlsplit(url)

    @cached_property
    def host(self) -> str:
        try:
            h = self._split.hostname or ""
        except ValueError:
            return ""
        return h.lower().rstrip(".")

    @cached_property
    def segments(self) -> tuple[str, ...]:
        """Decoded, non-empty path segments: trailing and doubled slashes do not matter."""
        return tuple(unquote(s) for s in self._split.path.split("/") if s)

    @cached_property
    def query(self) -> dict[str, list[str]]:
        return _multidict(parse_qsl(self._split.query, keep_blank_values=True))

    @cached_property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @cached_property
    def json_body(self) -> Any:
        if not self.body or self.body.lstrip()[:1] not in (b"{", b"["):
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None

    @cached_property
    def form(self) -> dict[str, list[str]]:
        if not self.body or self.json_body is not None or self.content_type not in _FORM_TYPES:
            return {}
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            return {}
        if "=" not in text:
            return {}
        form = _multidict(parse_qsl(text, keep_blank_values=True))
        # Instagram's app signs its form bodies: signed_body=<signature>.<JSON of the real fields>.
        for signed in form.get("signed_body", []):
            _, dot, doc = signed.partition(".")
            inner = parse_variables(doc) if dot else None
            if isinstance(inner, dict):
                for k, v in inner.items():
                    if _is_scalar(v):
                        form.setdefault(k, []).append(_scalar(v))
                    elif isinstance(v, (dict, list)):
                        form.setdefault(k, []).append(json.dumps(v, separators=(",", ":")))
        return form

    @cached_property
    def json_index(self) -> dict[str, list[str]]:
        """Every key anywhere in the JSON body → its scalar values (strings and numbers)."""
        out: dict[str, list[str]] = {}
        if self.json_body is not None:
            index_json(self.json_body, out)
        return out

    @cached_property
    def operations(self) -> frozenset[str]:
        """GraphQL operation names, from every place a web app puts them (never the rotating ids)."""
        names = set()
        if self.segments:
            names.add(self.segments[-1])
        for src in (self.query, self.form):
            for k in ("operationName", "fb_api_req_friendly_name", "operation_name"):
                names.update(src.get(k, []))
        if "x-fb-friendly-name" in self.headers:
            names.add(self.headers["x-fb-friendly-name"])
        # LinkedIn: queryId=voyagerIdentityDashProfiles.<rotating hash>; the name before the dot is stable.
        for qid in self.query.get("queryId", []):
            names.add(qid.rsplit(".", 1)[0])
        body = self.json_body
        for item in body if isinstance(body, list) else [body]:
            if isinstance(item, dict) and isinstance(item.get("operationName"), str):
                names.add(item["operationName"])
        return frozenset(names)

    @cached_property
    def variables_index(self) -> dict[str, list[str]]:
        """Keys → values inside GraphQL ``variables`` (JSON or LinkedIn's Rest.li tuples), wherever sent."""
        out: dict[str, list[str]] = {}
        raw: list[Any] = [*self.query.get("variables", []), *self.form.get("variables", [])]
        # Rest.li tuples in any other query value: /search/dash/clusters?query=(keywords:…,…)
        raw.extend(
            v
            for k, vs in self.query.items()
            if k != "variables"
            for v in vs
            if v.startswith("(") and v.endswith(")") and ":" in v
        )
        body = self.json_body
        for item in body if isinstance(body, list) else [body]:
            if isinstance(item, dict) and "variables" in item:
                raw.append(item["variables"])
        for v in raw:
            if isinstance(v, str):
                v = parse_variables(v)
            if v is not None:
                index_json(v, out)
        return out


def _multidict(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


def index_json(obj: Any, out: dict[str, list[str]], depth: int = 0) -> None:
    if depth > 40:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)):
                if isinstance(v, list):
                    out.setdefault(k, []).extend(_scalar(x) for x in v if _is_scalar(x))
                index_json(v, out, depth + 1)
            elif _is_scalar(v):
                out.setdefault(k, []).append(_scalar(v))
    elif isinstance(obj, list):
        for v in obj:
            index_json(v, out, depth + 1)


def _is_scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool)


def _scalar(v: Any) -> str:
    return v if isinstance(v, str) else str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def parse_variables(text: str) -> Any:
    text = text.strip()
    if text.startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            return None
    if text.startswith("("):
        try:
            value, _ = _restli(text, 0)
            return value
        except (IndexError, ValueError):
            return None
    return None


def _restli(s: str, i: int) -> tuple[Any, int]:
    """LinkedIn Rest.li protocol 2.0 tuples: ``(a:1,b:List(x,y),c:(d:e))`` with %-encoded values."""
    if s.startswith("List(", i):
        items: list[Any] = []
        i += 5
        while s[i] != ")":
            v, i = _restli(s, i)
            items.append(v)
            if s[i] == ",":
                i += 1
        return items, i + 1
    if s[i] == "(":
        obj: dict[str, Any] = {}
        i += 1
        while s[i] != ")":
            j = s.index(":", i)
            key = unquote(s[i:j])
            v, i = _restli(s, j + 1)
            obj[key] = v
            if s[i] == ",":
                i += 1
        return obj, i + 1
    j = i
    while j < len(s) and s[j] not in ",)":
        j += 1
    return unquote(s[i:j]), j


def all_dicts(objects: Iterable[Any]) -> list[dict[str, Any]]:
    """Every JSON object inside each of ``objects``, depth first (an object before those inside it),
    to 60 levels, as one list: walked once for everything a body is checked for (learning, owners),
    not once per check. Decoded JSON holds plain dicts and lists only, so their exact types are
    tested (twice as fast as ``isinstance`` over the thousands of values of a 200 KB body)."""
    out: list[dict[str, Any]] = []
    add = out.append
    d_, l_ = dict, list

    def visit(o: Any, depth: int) -> None:
        if depth > 60:
            return
        if type(o) is d_:
            add(o)
            o = o.values()
        for v in o:
            t = type(v)
            if t is d_ or t is l_:
                visit(v, depth + 1)

    for obj in objects:
        if type(obj) is d_ or type(obj) is l_:
            visit(obj, 0)
    return out


def resolve(obj: dict[str, Any], dotted: str) -> list[str]:
    """Scalar values at a dotted key path (``core.screen_name``) below one JSON object."""
    if "." not in dotted:  # most keys: asked of every object of a decoded body, so kept short
        v = obj.get(dotted) if isinstance(obj, dict) else None
        if v is None:
            return []
        if isinstance(v, list):
            return [_scalar(x) for x in v if _is_scalar(x)]
        return [_scalar(v)] if _is_scalar(v) else []
    cur: list[Any] = [obj]
    for part in dotted.split("."):
        nxt: list[Any] = []
        for c in cur:
            if isinstance(c, dict) and part in c:
                v = c[part]
                nxt.extend(v if isinstance(v, list) else [v])
        cur = nxt
    return [_scalar(v) for v in cur if _is_scalar(v)]
