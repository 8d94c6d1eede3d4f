"""Pull JSON out of a response body (JSON itself, or the JSON islands inside an HTML page).

Pure; the proxy calls it on responses from targeted hosts to learn ids and find a content's owner.
"""

from __future__ import annotations

import json
import re
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
