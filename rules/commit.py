"""Commitment: which edits loosen the rules in force, and what stays enforced while they wait.

Tightening (a new person, account, surface, search term, app, longer schedule) applies at once.
Each loosening is a separate *pending* change with its own start time; it applies only after the
cooling-off of the rules in force has passed and only if the file still asks for it. Pure: the
caller passes the time (a trusted one) and the pending map it persisted.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from .policy import entry_key
from .schema import App, Person, Ruleset, Schedule, Window

WEEK = 7 * 1440
NEVER = dt.datetime.max.replace(tzinfo=dt.UTC)  # a pending change that can never come due


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    text: str


@dataclass(frozen=True, slots=True)
class Pending:
    change: Change
    since: dt.datetime
    due: dt.datetime


@dataclass(frozen=True, slots=True)
class Decision:
    """The rules to enforce now, what waits (and until when), and what was just released."""

    effective: Ruleset
    pending: tuple[Pending, ...]
    released: tuple[Change, ...]

    def pending_map(self) -> dict[str, str]:
        return {p.change.key: p.since.isoformat() for p in self.pending}


def _intervals(windows: tuple[Window, ...]) -> list[tuple[int, int]]:
    """Minutes of the week covered by the windows, as merged [start, end) intervals."""
    raw = []
    for w in windows:
        start = w.start.hour * 60 + w.start.minute
        end = w.end.hour * 60 + w.end.minute
        length = (end - start) % 1440 or 1440
        for d in w.days:
            s = d * 1440 + start
            e = s + length
            if e > WEEK:
                raw += [(s, WEEK), (0, e - WEEK)]
            else:
                raw.append((s, e))
    raw.sort()
    merged: list[tuple[int, int]] = []
    for s, e in raw:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _covered(inner: list[tuple[int, int]], outer: list[tuple[int, int]]) -> bool:
    return all(any(os <= s and e <= oe for os, oe in outer) for s, e in inner)


def covers(new: Schedule, old: Schedule, start: dt.datetime | None, now: dt.datetime) -> bool:
    """True if ``new`` blocks at least whenever ``old`` did (so switching to it is not loosening)."""
    from .policy import ends_at

    base = start or now
    new_end, old_end = ends_at(new, base), ends_at(old, base)
    if new_end is not None and (old_end is None or new_end < old_end):
        return False
    if not new.windows:
        return True
    if not old.windows:
        return False
    if new.timezone != old.timezone:
        return False
    return _covered(_intervals(old.windows), _intervals(new.windows))


def loosenings(
    old: Ruleset, new: Ruleset, started: Mapping[str, dt.datetime], now: dt.datetime
) -> list[Change]:
    """Every way ``new`` blocks less than ``old``, each as its own change."""
    out: list[Change] = []
    new_people = {p.name: p for p in new.people}
    for p in old.people:
        n = new_people.get(p.name)
        if n is p:
            continue  # the very entry (a restart on the rules in force): nothing in it loosens
        if n is None:
            out.append(Change(f"person:{p.name}", f"stop blocking {p.name}"))
            continue
        kept = {(a.platform, a.value) for a in n.accounts}
        for a in p.accounts:
            if (a.platform, a.value) not in kept:
                out.append(
                    Change(
                        f"person:{p.name}/account:{a.platform}:{a.value}",
                        f"unblock {p.name}'s {a.platform} account {a.given}",
                    )
                )
        for s in sorted(p.block - n.block):
            out.append(Change(f"person:{p.name}/surface:{s}", f"stop blocking {p.name}'s {s}"))
        for t in p.search_terms:
            if t not in n.search_terms:
                out.append(Change(f"person:{p.name}/search:{t}", f"allow searches for {t!r}"))
        for a_ in p.apps:
            if a_ not in n.apps:
                out.append(Change(f"person:{p.name}/app:{a_}", f"stop stopping {a_} for {p.name}"))
        if not covers(n.schedule, p.schedule, started.get(entry_key(p)), now):
            out.append(Change(f"person:{p.name}/schedule", f"shorten or narrow {p.name}'s schedule"))
    new_apps = {a.name: a for a in new.apps}
    for app in old.apps:
        m = new_apps.get(app.name)
        if m is None:
            out.append(Change(f"app:{app.name}", f"remove the app rule {app.name!r}"))
            continue
        for g in app.match:
            if g not in m.match:
                out.append(Change(f"app:{app.name}/match:{g}", f"stop matching {g!r} in {app.name!r}"))
        if app.action == "terminate" and m.action != "terminate":
            out.append(Change(f"app:{app.name}/action", f"suspend instead of terminate in {app.name!r}"))
        if not covers(m.schedule, app.schedule, started.get(entry_key(app)), now):
            out.append(Change(f"app:{app.name}/schedule", f"shorten or narrow {app.name!r}'s schedule"))
    new_sites = {s.name: s for s in new.sites}
    for site in old.sites:
        m_ = new_sites.get(site.name)
        if m_ is None:
            out.append(Change(f"site:{site.name}", f"remove the site {site.name!r}"))
            continue
        narrower = not set(site.hosts) <= set(m_.hosts) or not set(site.pages) <= set(m_.pages)
        if narrower or site.handle != m_.handle:
            out.append(Change(f"site:{site.name}/definition", f"narrow the site {site.name!r}"))
    if new.lock.cooling_off < old.lock.cooling_off:
        out.append(Change("lock:cooling_off", "shorten the cooling-off"))
    if old.settings.bypass_detection and not new.settings.bypass_detection:
        out.append(Change("settings:bypass_detection", "turn off bypass detection"))
    return out


def hold(new: Ruleset, old: Ruleset, keys: set[str]) -> Ruleset:
    """``new`` with the loosenings named by ``keys`` undone, using what ``old`` had."""
    if not keys:
        return new
    old_people = {p.name: p for p in old.people}
    people: list[Person] = []
    for n in new.people:
        p = old_people.get(n.name)
        if p is None:
            people.append(n)
            continue
        pre = f"person:{p.name}/"
        accounts = list(n.accounts) + [
            a for a in p.accounts if f"{pre}account:{a.platform}:{a.value}" in keys
        ]
        block = n.block | {s for s in p.block if f"{pre}surface:{s}" in keys}
        terms = tuple(n.search_terms) + tuple(t for t in p.search_terms if f"{pre}search:{t}" in keys)
        apps = tuple(n.apps) + tuple(a for a in p.apps if f"{pre}app:{a}" in keys)
        sched = p.schedule if f"{pre}schedule" in keys else n.schedule
        people.append(
            dataclasses.replace(
                n,
                accounts=tuple(accounts),
                block=frozenset(block),
                search_terms=terms,
                apps=apps,
                schedule=sched,
            )
        )
    names = {p.name for p in people}
    people += [p for p in old.people if f"person:{p.name}" in keys and p.name not in names]
    old_apps = {a.name: a for a in old.apps}
    apps_out: list[App] = []
    for m in new.apps:
        a = old_apps.get(m.name)
        if a is None:
            apps_out.append(m)
            continue
        pre = f"app:{a.name}/"
        match = tuple(m.match) + tuple(g for g in a.match if f"{pre}match:{g}" in keys)
        action = a.action if f"{pre}action" in keys else m.action
        sched = a.schedule if f"{pre}schedule" in keys else m.schedule
        apps_out.append(dataclasses.replace(m, match=match, action=action, schedule=sched))
    app_names = {a.name for a in apps_out}
    apps_out += [a for a in old.apps if f"app:{a.name}" in keys and a.name not in app_names]
    old_sites = {s.name: s for s in old.sites}
    sites = [old_sites[s.name] if f"site:{s.name}/definition" in keys else s for s in new.sites]
    site_names = {s.name for s in sites}
    sites += [s for s in old.sites if f"site:{s.name}" in keys and s.name not in site_names]
    lock = old.lock if "lock:cooling_off" in keys else new.lock
    settings = (
        dataclasses.replace(new.settings, bypass_detection=True)
        if "settings:bypass_detection" in keys
        else new.settings
    )
    return dataclasses.replace(
        new, people=tuple(people), apps=tuple(apps_out), sites=tuple(sites), lock=lock, settings=settings
    )


def decide(
    in_force: Ruleset | None,
    requested: Ruleset,
    pending: Mapping[str, dt.datetime],
    started: Mapping[str, dt.datetime],
    now: dt.datetime,
) -> Decision:
    """What to enforce at ``now`` when the file asks for ``requested`` and ``in_force`` holds."""
    if in_force is None:
        return Decision(requested, (), ())
    cooling = in_force.lock.cooling_off
    held: list[Pending] = []
    released: list[Change] = []
    for c in loosenings(in_force, requested, started, now):
        since = pending.get(c.key, now)
        try:
            due = since + cooling
        except OverflowError:  # a corrupt start time near the year 9999: the change waits for good
            due = NEVER
        if due <= now:
            released.append(c)
        else:
            held.append(Pending(c, since, due))
    effective = hold(requested, in_force, {p.change.key for p in held})
    return Decision(effective, tuple(held), tuple(released))
