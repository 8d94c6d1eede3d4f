"""Render the block page, the note confirmation and API refusals (templates compiled once)."""

from __future__ import annotations

import json
from collections.abc import Collection
from importlib import resources

import jinja2
import markupsafe

from zerocontact.rules import Verdict
from zerocontact.rules.platforms import presets

QUESTION = "If there were no hope of reconnection, would I still make this contact?"
NOTE_PATH = "/.zerocontact/note"
_SURFACE_TEXT = {
    "profile": "{a} {title} profile",
    "stories": "{title} stories",
    "posts": "{a} {title} post",
    "presence": "{title} online status",
    "search": "{a} {title} search",
    "messages": "{a} {title} conversation",
    "client": "{title}'s web client",
}
# the same, naming the person: "An X search for Jordan", "Jordan's Instagram profile"
_SURFACE_TEXT_FOR = {
    "profile": "{person}'s {title} profile",
    "stories": "{person}'s {title} stories",
    "posts": "{a} {title} post by {person}",
    "presence": "{person}'s online status on {title}",
    "search": "{a} {title} search for {person}",
    "messages": "{a} {title} conversation with {person}",
    "client": "{title}'s web client, while {person} is blocked",
}
HEADERS_HTML = {
    "Content-Type": "text/html; charset=utf-8",
    "Cache-Control": "no-store",
    # The page loads nothing from anywhere; the note form may only post back to this origin.
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Zerocontact": "blocked",
}
HEADERS_API = {
    "Content-Type": "application/json; charset=utf-8",
    "Cache-Control": "no-store",
    "X-Zerocontact": "blocked",
}


def describe(platform: str | None, surface: str | None, person: str | None = None) -> str:
    """'An Instagram profile', 'Instagram stories', … for the block page and the log; with ``person``
    'Jordan's Instagram profile', 'An X search for Jordan'."""
    p = presets().get(platform or "")
    title = p.title if p else (platform or "this site")
    if person:
        text = _SURFACE_TEXT_FOR.get(surface or "", "{a} {title} page about {person}")
    else:
        text = _SURFACE_TEXT.get(surface or "", "{a} {title} page")
    # "An Instagram profile", "An X profile" (said "ex"), "A TikTok profile"
    a = "An" if title[:1].lower() in "aeiou" or title == "X" else "A"
    return text.format(a=a, title=title, person=person)


def plainly(v: Verdict, active: Collection[str] | None) -> str:
    """What the daemon does with a request, in a sentence for a person (``explain``); the matcher's
    technical reason (patterns, what a platform hides and why) stays in ``explain --json``."""
    p = presets().get(v.platform or "")
    title = p.title if p else (v.platform or "")

    def mid(text: str) -> str:  # "An X search" inside a sentence; "Jordan's …" keeps its capital
        return text[:1].lower() + text[1:] if text.startswith(("A ", "An ")) else text

    if v.block:
        return f"Blocked: {mid(describe(v.platform, v.surface, v.person))}."
    if v.needs_response:
        return (
            f"Checked: {mid(describe(v.platform, v.surface))} shows whose it is only in its answer, "
            "so the answer is looked at, and blocked if it is about someone you named."
        )
    if v.person:
        what = mid(describe(v.platform, v.surface, v.person))
        if active is not None and v.person not in active:
            return f"Allowed: {what}, but the block on {v.person} is not in force now."
        if v.surface == "client":
            return (
                f"Allowed: {title}'s web client stays open; you did not choose to block the whole "
                f'client while {v.person} is blocked (add "client" to their block list).'
            )
        return f"Allowed: {what}, but you did not choose to block {v.surface} for {v.person}."
    if v.targeted:
        return f"Allowed: this {title} address is not about anyone you named."
    return "Allowed: zerocontact does not look at this site (your rules name no one on it)."


# Marks for the parts of a block page that change with every attempt. Each holds "<", which
# autoescaping turns into "&lt;" wherever the rules' own words (``why``, ``instead``) contain it, so
# a mark left in a rendered frame can only be the template's own.
_TIMES_MARK = "<zc-times/>"
_ID_MARK = "<zc-attempt/>"
_FRAMES_KEPT = 64  # wordings: people x platforms x surfaces x "instead" lines, and first or not
_ORDINAL_WORDS = (
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
)


def ordinal(n: int) -> str:
    """'second', 'tenth', '11th', '22nd', '103rd': how many times today, as the page says it."""
    if 1 <= n <= len(_ORDINAL_WORDS):
        return _ORDINAL_WORDS[n - 1]
    if n % 100 in (11, 12, 13):
        return f"{n}th"
    return f"{n}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th') }"


class Pages:
    def __init__(self) -> None:
        self._frames: dict[tuple[str, str, bool, str | None, str], str] = {}
        root = resources.files("zerocontact.daemon").joinpath("templates")
        self.env = jinja2.Environment(
            loader=jinja2.FunctionLoader(lambda name: root.joinpath(name).read_text(encoding="utf-8")),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.block_t = self.env.get_template("block.html")
        self.noted_t = self.env.get_template("noted.html")

    def block(
        self,
        *,
        what: str,
        why: str,
        today_count: int,
        lifts_on: str | None,
        instead: str,
        attempt_id: str,
    ) -> str:
        """The page for one attempt. Every new attempt has a new count and id, so the template is
        rendered once per wording (the count and id left as marks) and each page is two replaces."""
        first = today_count <= 1
        key = (what, why, first, lifts_on, instead)
        frame = self._frames.get(key)
        if frame is None:
            if len(self._frames) >= _FRAMES_KEPT:
                self._frames.clear()
            frame = self._frames[key] = self.block_t.render(
                what=what,
                why=why,
                times=None if first else markupsafe.Markup(_TIMES_MARK),
                lifts_on=lifts_on,
                instead=instead,
                question=QUESTION,
                note_action=NOTE_PATH,
                attempt_id=markupsafe.Markup(_ID_MARK),
            )
        page = frame.replace(_ID_MARK, str(markupsafe.escape(attempt_id)))
        return page if first else page.replace(_TIMES_MARK, ordinal(today_count))

    def noted(self, instead: str) -> str:
        return self.noted_t.render(instead=instead)


def refusal(what: str) -> bytes:
    """A well-formed JSON refusal: 403 (not 5xx or 429, which clients retry), no Retry-After."""
    return json.dumps(
        {
            "status": "fail",
            "data": None,
            "errors": [{"message": f"Blocked by zerocontact: {what}", "code": 403}],
            "message": f"Blocked by zerocontact: {what}",
            "zerocontact": "blocked",
        }
    ).encode()
