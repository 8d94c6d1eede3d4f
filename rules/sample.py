"""``rules init``: a commented sample rules file generated from the schema's own field docs."""

from __future__ import annotations

import dataclasses

from .schema import SCHEDULE_DOCS, App, Lock, Person, Settings, Site


def _fields(cls: type, active: set[str]) -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        if "toml" not in f.metadata:
            continue
        key, text, example = f.metadata["toml"], f.metadata["doc"], f.metadata["example"]
        out.append(f"# {text}")
        out.append(f"{'' if key in active else '# '}{key} = {example}")
    return out


def _schedule(active: dict[str, str]) -> list[str]:
    out = []
    for key, (text, example) in SCHEDULE_DOCS.items():
        out.append(f"# {text}")
        out.append(f"{key} = {active[key]}" if key in active else f"# {key} = {example}")
    return out


def sample() -> str:
    """The sample as text; it passes ``rules check`` as written (a test proves it)."""
    lines = [
        "# zerocontact rules. Every line starting with # is a comment; remove the # to use a setting.",
        "# Check this file with:  zerocontact rules check",
        "# See what would happen to a link:  zerocontact explain https://www.instagram.com/sam.example/",
        "",
        "[lock]",
        *_fields(Lock, {"cooling_off"}),
        "",
        "[settings]",
        *_fields(Settings, {"show_name", "instead"}),
        "",
        "# One [[person]] block for each person you choose not to look at.",
        "# Surfaces: profile, stories, posts, presence (online / last seen), search, messages,",
        "# and client (the whole web client, e.g. WhatsApp Web: only where a platform hides the person).",
        "[[person]]",
        *_fields(Person, {"name", "accounts", "why"}),
        "# When the block is in force (with none of these: always).",
        *_schedule({}),
        "",
        "# Apps to stop, always or on a schedule (the process watcher enforces these).",
        "# [[app]]",
        *(
            "# " + line if not line.startswith("#") else line
            for line in _fields(App, {"name", "match", "action"}) + _schedule({"windows": '["22:00-07:00"]'})
        ),
        "",
        "# A site without a preset: give it a name, then use that name in a person's accounts.",
        "# [[site]]",
        *(
            "# " + line if not line.startswith("#") else line
            for line in _fields(Site, {"name", "hosts", "pages"})
        ),
        "",
    ]
    return "\n".join(lines)
