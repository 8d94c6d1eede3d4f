"""Render the block page, the note confirmation and API refusals (templates compiled once)."""

from __future__ import annotations

import json
from collections.abc import Collection
from importlib import resources

import jinja2

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


class Pages:
    def __init__(self) -> None:
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
        return self.block_t.render(
            what=what,
            why=why,
            today_count=today_count,
            lifts_on=lifts_on,
            instead=instead,
            question=QUESTION,
            note_action=NOTE_PATH,
            attempt_id=attempt_id,
        )

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
