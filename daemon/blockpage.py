"""Render the block page, the note confirmation and API refusals (templates compiled once)."""

from __future__ import annotations

import json
from importlib import resources

import jinja2

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


def describe(platform: str | None, surface: str | None) -> str:
    """'An Instagram profile', 'Instagram stories', … for the block page and the log."""
    p = presets().get(platform or "")
    title = p.title if p else (platform or "this site")
    text = _SURFACE_TEXT.get(surface or "", "{a} {title} page")
    # "An Instagram profile", "An X profile" (said "ex"), "A TikTok profile"
    a = "An" if title[:1].lower() in "aeiou" or title == "X" else "A"
    return text.format(a=a, title=title)


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
        person_name: str | None,
        why: str,
        today_count: int,
        lifts_on: str | None,
        instead: str,
        attempt_id: str,
    ) -> str:
        return self.block_t.render(
            what=what,
            person_name=person_name,
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
