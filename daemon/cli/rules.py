"""``rules init``, ``rules check`` and ``explain``: writing, checking and understanding the rules."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from zerocontact.rules import Matcher, Request, Ruleset, evaluate
from zerocontact.rules.feed import rules_for
from zerocontact.rules.sample import sample as sample_text

from .. import paths as pathmod
from .common import UserError, default_rules, read_rules, rules_option, state_dir_option

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT"}


@click.group()
def rules() -> None:
    """Write, check and understand the rules file."""


@rules.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def rules_init(path: Path | None, force: bool) -> None:
    """Write a commented sample rules file (default: the user config location)."""
    default = path is None
    path = default_rules(path)
    if path.exists() and not force:
        raise UserError(f"{path} already exists; use --force to overwrite it")
    try:
        _write_private(path, sample_text(), tighten_folder=default)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    click.echo(f"wrote {path}; edit it, then: zerocontact rules check {path}")


def _write_private(path: Path, text: str, *, tighten_folder: bool) -> None:
    """Write the rules (a person's name and handles, your reasons) readable by you alone: the file
    0600, the folders made for it 0700, and zerocontact's own config folder tightened to 0700. A
    folder you chose (``rules init ./my-rules.toml``) keeps its mode."""
    import os

    missing = []
    p = path.parent
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(mode=0o700)
        os.chmod(d, 0o700)  # mkdir's mode is masked by the umask
    if tighten_folder:
        os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # --force over a file that was 0644
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)


@rules.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
def rules_check(path: Path | None) -> None:
    """Validate a rules file: a one-line summary, or every problem with its line and key."""
    path = default_rules(path)
    rs = read_rules(path)
    click.echo(f"{path}: ok: {rs.summary()}")
    for note in rs.notes:
        click.echo(f"note: {note}")
    for line in meaning(rs, dt.datetime.now(dt.UTC)):
        click.echo(line)


def meaning(rs: Ruleset, now: dt.datetime) -> list[str]:
    """What a valid file means in practice, when that is not what its writer may think: it names
    no one, or a block's end date has already passed (so it blocks nothing)."""
    from zerocontact.rules.schema import App, Person

    if not rs.people and not rs.apps:
        return [
            "Nothing is blocked: this file names no one yet. Add a [[person]] with their accounts "
            "(`zerocontact rules init FILE` writes a sample to copy from)."
        ]
    out = []
    entries: list[Person | App] = [*rs.people, *rs.apps]
    over = [e for e in entries if e.schedule.until is not None and e.schedule.until <= now]
    for e in over:
        assert e.schedule.until is not None
        what = f"The block on {e.name}" if isinstance(e, Person) else f"The app rule {e.name!r}"
        out.append(
            f"{what} is over: its end date ({e.schedule.until.astimezone():%Y-%m-%d %H:%M}) has passed, "
            "so it blocks nothing now. Set a later until, or remove it."
        )
    if over and len(over) == len(entries):
        out.append("Nothing is blocked now.")
    return out


def _parse_requests(
    args: tuple[str, ...], body: bytes, headers: dict[str, str]
) -> Iterator[tuple[str, Request]]:
    words = [w for a in args for w in a.split()]
    i = 0
    while i < len(words):
        method = "GET"
        if words[i].upper() in METHODS and i + 1 < len(words):
            method, i = words[i].upper(), i + 1
        url = words[i]
        i += 1
        yield f"{method} {url}", Request(method, url, headers, body)


def _stdin_requests(headers: dict[str, str]) -> Iterator[tuple[str, Request] | str]:
    for raw in sys.stdin:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        method = "GET"
        if parts[0].upper() in METHODS and len(parts) > 1:
            method, parts = parts[0].upper(), parts[1:]
        body = b""
        if len(parts) > 1 and parts[1].startswith("@"):
            try:
                body = Path(parts[1][1:]).read_bytes()
            except OSError as e:
                yield f"cannot read body file {parts[1][1:]}: {e.strerror}"
                continue
        yield f"{method} {parts[0]}", Request(method, parts[0], headers, body)


@click.command()
@rules_option
@click.option("--body", type=click.File("rb"), default=None, help="A POST body for the requests given.")
@click.option("-H", "--header", "header", multiple=True, help="A request header, 'Name: value'.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line.")
@click.option("--at", "at", default=None, help="Judge at this ISO date-time instead of now.")
@click.option(
    "--process",
    "process",
    default=None,
    metavar="NAME|PID",
    help="Say what the process watcher would do with this process instead.",
)
@state_dir_option
@click.argument("request", nargs=-1)
def explain(
    rules_path: Path | None,
    body: Any,
    header: tuple[str, ...],
    as_json: bool,
    at: str | None,
    process: str | None,
    state_dir: Path | None,
    request: tuple[str, ...],
) -> None:
    """Say what the daemon would do with requests: URL or METHOD URL (or one a line on stdin)."""
    requested = read_rules(default_rules(rules_path))
    headers: dict[str, str] = {}
    for h in header:
        name, sep, value = h.partition(":")
        if not sep:
            raise UserError(f"header {h!r} must look like 'Name: value'")
        headers[name.strip().lower()] = value.strip()
    try:
        when = dt.datetime.fromisoformat(at) if at else dt.datetime.now(dt.UTC)
    except ValueError:
        raise UserError(f"--at {at!r} is not an ISO date-time like 2027-03-01T22:30") from None
    if when.tzinfo is None:
        import zoneinfo

        when = when.replace(tzinfo=zoneinfo.ZoneInfo(requested.settings.timezone))
    # Judge as the daemon would: loosening edits still in their cooling-off stay enforced.
    from ..commitment import Commitment
    from ..journal.reader import kept_state

    p = pathmod.resolve(state_dir)
    commitment = (
        Commitment(p, requested.settings.timezone, kept=kept_state(p.journal), requested=requested)
        if p.state_dir.exists()
        else None
    )
    rs = commitment.decide(requested, when).effective if commitment else requested
    if process is not None:
        _explain_process(rs, process, when, commitment.started if commitment else None, as_json)
        return
    matcher = Matcher(rs)
    _load_learned(matcher, p)
    active = evaluate(rs, when, commitment.started if commitment else None).people
    items: Iterator[tuple[str, Request] | str] = (
        _parse_requests(request, body.read() if body else b"", headers)
        if request
        else _stdin_requests(headers)
    )
    from ..blockpage import plainly  # jinja2 with it: only explain needs it

    devices = _device_names(p)
    failed = False
    for item in items:
        if isinstance(item, str):
            click.echo(f"zerocontact: {item}", err=True)
            failed = True
            continue
        text, req = item
        v = matcher.judge(req, active)
        on_devices = _on_devices(devices, matcher, req.host, active) if devices and v.targeted else None
        hidden = _out_of_sight(rs, matcher, v, req, active)
        says = plainly(v, active) + (f" {hidden}" if hidden else "")
        if as_json:  # the technical reason stays here, for tools and bug reports
            row = {"request": text, **v.as_dict(), "says": says, "out_of_sight": bool(hidden)}
            if on_devices:
                row["on_devices"] = on_devices
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            mark = "BLOCK" if v.block else ("CHECK" if v.needs_response else "allow")
            click.echo(f"{mark:5}  {text}\n       {says}")
            if on_devices:
                click.echo(f"       {on_devices}")
    if failed:
        sys.exit(1)


def _device_names(p: pathmod.Paths) -> list[str]:
    """The person's devices (``devices add``), for what explain says about phones; [] if none."""
    from .. import devices as devmod

    try:
        store = devmod.load(p) if p.state_dir.exists() else None
    except devmod.DeviceError:
        return []
    return [d.name for d in store.devices] if store else []


def _on_devices(devices: list[str], matcher: Matcher, host: str, active: Any) -> str:
    """What happens to the same host on the person's devices: the browser is judged the same way;
    an app that refuses the certificate cannot be looked into, so it is passed or refused whole."""
    names = ", ".join(devices)
    closed = matcher.client_closed(host, active)
    app = (
        f"refused whole now ({closed[0]}'s block includes the whole client)"
        if closed
        else "passed through untouched (it cannot be looked into; its use is logged once)"
    )
    return (
        f"on {names}: the browser gets the same answer; an app that refuses zerocontact's certificate "
        f"is {app}"
    )


def _out_of_sight(rs: Ruleset, matcher: Matcher, v: Any, req: Request, active: Any) -> str:
    """For an allowed response with mixed lists: whose entries the feed surface takes out of it."""
    plat = matcher.platforms.get(v.platform or "")
    if v.block or plat is None:
        return ""
    path = urlsplit(req.url if "://" in req.url else f"https://{req.url}").path or "/"
    rules = rules_for(matcher, plat.name, path, req.operations, req.host)
    platforms = {plat.name, *plat.accounts_from}
    who = [
        p.name
        for p in rs.people
        if p.name in active
        and any(a.platform in platforms for a in p.accounts)
        and any(r.surface in p.block for r in rules)
    ]
    if not rules or not who:
        return ""
    what = next((r.note for r in rules if r.note), "its lists")
    return f"Anything of {' or '.join(who)}'s in it ({what}) is taken out before it reaches you."


def _explain_process(rs: Ruleset, process: str, when: dt.datetime, started: Any, as_json: bool) -> None:
    from ..watcher import explain_running

    m = Matcher(rs)
    try:
        rows = explain_running(rs, process, when, started=started, target_hosts=m.target_hosts())
    except ValueError as e:
        raise UserError(str(e)) from None
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False, default=str) if as_json else row["text"])


def _load_learned(matcher: Matcher, p: pathmod.Paths) -> None:
    """Ids the daemon learned from responses, so explain judges as the daemon would."""
    from ..journal import learned_ids

    for platform, value, person in learned_ids(p.journal):
        matcher.learn(platform, value, person)
