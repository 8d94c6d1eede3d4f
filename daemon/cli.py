"""The ``zerocontact`` command. Every error a user can cause ends in a clear message and a non-zero
exit, never a traceback."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from zerocontact.rules import Matcher, Request, RulesError, Ruleset, evaluate, load
from zerocontact.rules.sample import sample as sample_text

from . import paths as pathmod

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT"}


class UserError(click.ClickException):
    """A mistake the user can fix; click prints it without a traceback and exits 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"zerocontact: {self.format_message()}", err=True)


def state_dir_option[G: Callable[..., Any]](fn: G) -> G:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where the journal, CA and learned ids live (default: XDG state dir).",
    )(fn)


rules_option = click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The rules file (default: the user config location).",
)


def local_timezone() -> str:
    """The system's IANA zone name, for rules that do not name one (UTC if it cannot be told)."""
    import os

    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and "/" in tz and not tz.startswith("/"):
        return tz
    try:
        link = Path("/etc/localtime").resolve()
        if "zoneinfo" in link.parts:
            return "/".join(link.parts[link.parts.index("zoneinfo") + 1 :])
    except OSError:
        pass
    return "UTC"


def read_rules(path: Path) -> Ruleset:
    """Load a rules file or raise a UserError with every problem, located."""
    return read_rules_and_bytes(path)[0]


def read_rules_and_bytes(path: Path) -> tuple[Ruleset, bytes]:
    """The rules and the exact bytes they came from (the file watcher starts from those)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"no rules file at {path}; create one with: zerocontact rules init {path}") from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    try:
        return load(data, str(path), default_timezone=local_timezone()), data
    except RulesError as e:
        n = len(e.problems)
        raise UserError(
            f"{n} problem{'s' if n != 1 else ''} in {path}:\n" + "\n".join(f"  {p}" for p in e.problems)
        ) from None


def default_rules(rules: Path | None) -> Path:
    return rules if rules is not None else pathmod.resolve().rules


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="zerocontact")
def main() -> None:
    """zerocontact: stop looking at one person, gently, and see the urge fade."""


@main.group()
def rules() -> None:
    """Write, check and understand the rules file."""


@rules.command("init")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
def rules_init(path: Path | None, force: bool) -> None:
    """Write a commented sample rules file (default: the user config location)."""
    path = default_rules(path)
    if path.exists() and not force:
        raise UserError(f"{path} already exists; use --force to overwrite it")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(sample_text(), encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror}") from None
    click.echo(f"wrote {path}; edit it, then: zerocontact rules check {path}")


@rules.command("check")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path), required=False)
def rules_check(path: Path | None) -> None:
    """Validate a rules file: a one-line summary, or every problem with its line and key."""
    path = default_rules(path)
    rs = read_rules(path)
    click.echo(f"{path}: ok: {rs.summary()}")


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


@main.command()
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
    from .commitment import Commitment

    p = pathmod.resolve(state_dir)
    commitment = Commitment(p.state_dir, requested.settings.timezone) if p.state_dir.exists() else None
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
    failed = False
    for item in items:
        if isinstance(item, str):
            click.echo(f"zerocontact: {item}", err=True)
            failed = True
            continue
        text, req = item
        v = matcher.judge(req, active)
        if as_json:
            click.echo(json.dumps({"request": text, **v.as_dict()}, ensure_ascii=False))
        else:
            mark = "BLOCK" if v.block else ("CHECK" if v.needs_response else "allow")
            click.echo(f"{mark:5}  {text}\n       {v.reason}")
    if failed:
        sys.exit(1)


def _explain_process(rs: Ruleset, process: str, when: dt.datetime, started: Any, as_json: bool) -> None:
    from .watcher import explain_running

    m = Matcher(rs)
    try:
        rows = explain_running(rs, process, when, started=started, target_hosts=m.target_hosts())
    except ValueError as e:
        raise UserError(str(e)) from None
    for row in rows:
        click.echo(json.dumps(row, ensure_ascii=False, default=str) if as_json else row["text"])


def _load_learned(matcher: Matcher, p: pathmod.Paths) -> None:
    """Ids the daemon learned from responses, so explain judges as the daemon would."""
    from .journal import learned_ids

    for platform, value, person in learned_ids(p.journal):
        matcher.learn(platform, value, person)


@main.command()
@rules_option
@click.option("--sample", is_flag=True, help="Run on the embedded sample rules (a safe demo).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8341,
    show_default=True,
    help="Proxy port (0: any free port); the PAC file is served on the next one.",
)
@click.option("--pac-port", type=click.IntRange(0, 65535), default=None, help="PAC server port.")
@click.option("-v", "--verbose", is_flag=True, help="Also log each committed journal batch.")
@click.option(
    "--redirect-upstream",
    multiple=True,
    hidden=True,
    help="Tests only: HOST=IP:PORT sends allowed requests for HOST to a local plain-HTTP origin.",
)
@state_dir_option
def run(
    rules_path: Path | None,
    sample: bool,
    host: str,
    port: int,
    pac_port: int | None,
    verbose: bool,
    redirect_upstream: tuple[str, ...],
    state_dir: Path | None,
) -> None:
    """Run the service in the foreground (Ctrl-C or SIGTERM stops it)."""
    import asyncio
    import logging

    from .app import Daemon, Options, StartError
    from .journal import JournalError

    if sample and rules_path:
        raise UserError("use either --rules or --sample, not both")
    tz = local_timezone()
    if sample:
        try:
            rs, rules_file = load(sample_text(), "<embedded sample>", default_timezone=tz), None
            rules_bytes = b""
        except RulesError as e:  # a packaging bug, but still no traceback
            raise UserError(f"the embedded sample does not load:\n{e}") from None
    else:
        rules_file = default_rules(rules_path)
        rs, rules_bytes = read_rules_and_bytes(rules_file)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    for noisy in ("mitmproxy", "asyncio", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("zerocontact.journal").setLevel(logging.INFO if verbose else logging.WARNING)
    redirects: dict[str, tuple[str, int]] = {}
    for spec in redirect_upstream:
        name, _, addr = spec.partition("=")
        ip, _, rport = addr.rpartition(":")
        if not (name and ip and rport.isdigit()):
            raise UserError(f"--redirect-upstream {spec!r}: write HOST=IP:PORT")
        redirects[name.lower()] = (ip, int(rport))
    opts = Options(
        paths=pathmod.resolve(state_dir),
        rules_path=rules_file,
        host=host,
        port=port,
        pac_port=pac_port,
        timezone=tz,
        redirect_upstream=redirects or None,
        rules_bytes=rules_bytes,
    )
    try:
        asyncio.run(Daemon(opts, rs).run())
    except (StartError, JournalError) as e:
        raise UserError(str(e)) from None
    except KeyboardInterrupt:
        pass


@main.command()
@click.option("--path", "show", flag_value="path", default=True, help="Print the CA certificate's path.")
@click.option("--pem", "show", flag_value="pem", help="Print the CA certificate itself (PEM).")
@state_dir_option
def ca(show: str, state_dir: Path | None) -> None:
    """The interception CA to trust for HTTPS (created on first use, private to you)."""
    import socket

    from .proxy import ensure_ca

    p = pathmod.resolve(state_dir)
    p.ensure_state()
    cert = ensure_ca(p.ca_dir, f"zerocontact local CA ({socket.gethostname()})")
    click.echo(cert.read_text(encoding="ascii") if show == "pem" else str(cert), nl=show != "pem")


def _running(p: pathmod.Paths) -> int | None:
    """The PID of a daemon running on this state directory, if any."""
    try:
        pid = int(json.loads(p.runtime.read_text(encoding="utf-8"))["pid"])
        os.kill(pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return pid


def _local(iso: str | None) -> str:
    if not iso:
        return "-"
    return f"{dt.datetime.fromisoformat(iso).astimezone():%Y-%m-%d %H:%M}"


@main.command()
@click.option("--json", "as_json", is_flag=True, help="The status as one JSON object.")
@state_dir_option
def status(as_json: bool, state_dir: Path | None) -> None:
    """What is enforced now, what is pending, the last reload, and whether the clock is trusted."""
    p = pathmod.resolve(state_dir)
    pid = _running(p)
    try:
        st = json.loads((p.state_dir / "status.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        st = {}
    st["running"] = pid is not None
    if as_json:
        click.echo(json.dumps(st, indent=2))
        sys.exit(0 if pid else 3)
    if pid is None:
        click.echo(f"zerocontact is not running (state directory {p.state_dir}).")
        if not st.get("people"):
            sys.exit(3)
        click.echo("Last known status:")
    else:
        click.echo(f"zerocontact is running (pid {pid}); proxy {st.get('proxy')}, PAC {st.get('pac')}")
    for person in st.get("people", []):
        when = f"until {_local(person['until'])}" if person.get("until") else "no end date"
        if person.get("windows"):
            when += f", in {', '.join(person['windows'])}"
        state = "blocking now" if person["active"] else "not now     "
        click.echo(f"  {state}  {person['name']} ({', '.join(person['platforms'])}; {when})")
    for app in st.get("apps", []):
        click.echo(
            f"  {'stopping now' if app['active'] else 'not now     '}  app {app['name']!r} ({app['action']})"
        )
    click.echo(f"Next change:  {_local(st.get('next_transition'))}")
    pending = st.get("pending", [])
    if pending:
        hours = st.get("cooling_off_seconds", 0) / 3600
        click.echo(f"Pending loosenings (cooling-off {hours:g} h; each applies only if the file still asks):")
        for item in pending:
            click.echo(f"  - {item['change']}: applies at {_local(item['applies_at'])}")
    reload = st.get("last_reload") or {}
    click.echo(f"Last reload:  {'ok' if reload.get('ok', True) else 'FAILED'}: {reload.get('detail', '-')}")
    clock = st.get("clock") or {}
    trusted = "trusted" if clock.get("trusted", True) else "NOT trusted"
    click.echo(f"Clock:        {trusted}: {clock.get('detail', '-')}")
    journal = (st.get("journal") or {}).get("error")
    click.echo(f"Journal:      {journal or 'ok'}")
    sys.exit(0 if pid else 3)


@main.command()
@state_dir_option
def reload(state_dir: Path | None) -> None:
    """Ask the running daemon to re-read the rules file now (loosening edits still wait)."""
    import signal
    import time

    p = pathmod.resolve(state_dir)
    pid = _running(p)
    if pid is None:
        raise UserError(f"zerocontact is not running (state directory {p.state_dir})")
    status_file = p.state_dir / "status.json"

    def last() -> Any:
        try:
            return json.loads(status_file.read_text(encoding="utf-8")).get("last_reload")
        except (OSError, ValueError):
            return None

    before = last()
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while (now := last()) == before and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the status the daemon publishes
    if now == before or not now:
        raise UserError("the daemon did not report the reload within 10 s; see its log")
    click.echo(now["detail"])
    if not now["ok"]:
        sys.exit(1)


def _register_review() -> None:
    """The review commands (log, stats, report, export, forget) live in their own module."""
    from .cli_review import register

    register(main, UserError, state_dir_option)


_register_review()


def _register_install() -> None:
    """install, uninstall and doctor live in their own module, over zerocontact.installer."""
    from .cli_install import register

    register(main, UserError, state_dir_option)


_register_install()


if __name__ == "__main__":
    main()
