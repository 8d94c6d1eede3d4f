"""The service commands: ``run`` (the daemon in the foreground), ``ca``, ``status`` and ``reload``."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import click
from click.core import ParameterSource

from zerocontact.rules import RulesError, Ruleset, load
from zerocontact.rules.sample import sample as sample_text
from zerocontact.rules.schema import Lock, Person

from .. import installation
from .. import paths as pathmod
from ..parseahead import ParseAhead
from ..status import ReloadStatus, Runtime, Status, locate
from .common import (
    UserError,
    default_rules,
    local_timezone,
    read_rules_and_bytes,
    rules_option,
    state_dir_option,
    user_errors,
)


@click.command()
@rules_option
@click.option(
    "--sample",
    is_flag=True,
    help="A demo on the embedded sample rules, in a throwaway state folder (deleted when it stops).",
)
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
    # Before the daemon's modules import (mitmproxy: ~0.4 s), a big rules file starts being parsed
    # in a child process, so that the two overlap (parseahead.py); the child is reaped when the
    # command ends, however it ends, if the document was not read by then
    ahead = None if sample else ParseAhead.start(default_rules(rules_path))
    if ahead is not None:
        click.get_current_context().call_on_close(ahead.close)
    import asyncio
    import gc
    import logging

    from ..app import Daemon, Options

    if sample and rules_path:
        raise UserError("use either --rules or --sample, not both")
    paths = pathmod.resolve(state_dir)
    installs = installation.find(
        installation.candidates(pathmod.resolve().state_dir, paths.state_dir if state_dir else None, _euid())
    )
    throwaway: Path | None = None
    with user_errors():
        if sample:
            if state_dir is None:
                # The demo must leave no trace in the user's own state (no lock, no log, no CA): it
                # gets a folder of its own that is deleted when it stops.
                throwaway = Path(tempfile.mkdtemp(prefix="zerocontact-demo-"))
                paths = pathmod.resolve(throwaway)
            source = click.get_current_context().get_parameter_source
            pac = pac_port if pac_port is not None else (port + 1 if port else 0)
            try:
                moved = installation.check_demo(
                    installs,
                    paths.state_dir,
                    [
                        ("--port", port, source("port") != ParameterSource.DEFAULT),
                        ("--pac-port", pac, pac_port is not None),
                    ],
                )
            except BaseException:
                if throwaway is not None:
                    shutil.rmtree(throwaway, ignore_errors=True)
                raise
            if "--port" in moved:
                port = 0
                pac_port = 0 if pac_port is None else pac_port
            if "--pac-port" in moved:
                pac_port = 0
        else:
            installation.check_run(installs, paths.state_dir, default_rules(rules_path))
    tz = local_timezone()
    if sample:
        try:
            rs, rules_file = load(sample_text(), "<embedded sample>", default_timezone=tz), None
            rules_bytes = b""
        except RulesError as e:  # a packaging bug, but still no traceback
            raise UserError(f"the embedded sample does not load:\n{e}") from None
        # a demo commits to nothing: loosening it would never wait
        rs = dataclasses.replace(rs, lock=Lock(cooling_off=dt.timedelta(0)))
    else:
        rules_file = default_rules(rules_path)
        gc.disable()  # a long-lived build (10,000 people: a fifth faster); Daemon.start turns it on
        rs, rules_bytes = read_rules_and_bytes(rules_file, ahead)
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
    if sample:
        _demo_banner(rs, paths, throwaway is not None, port)
    opts = Options(
        paths=paths,
        rules_path=rules_file,
        host=host,
        port=port,
        pac_port=pac_port,
        timezone=tz,
        redirect_upstream=redirects or None,
        rules_bytes=rules_bytes,
        demo=sample,
    )
    try:
        with user_errors(), contextlib.suppress(KeyboardInterrupt):
            asyncio.run(Daemon(opts, rs).run())
    finally:
        if throwaway is not None:
            shutil.rmtree(throwaway, ignore_errors=True)
            click.echo(f"demo over: deleted {throwaway}; nothing was kept.", err=True)


def _demo_banner(rs: Ruleset, paths: pathmod.Paths, throwaway: bool, port: int) -> None:
    """What the demo is and where its state lives: said before anything starts."""
    where = (
        f"a throwaway folder, {paths.state_dir}, deleted when you stop it (Ctrl-C)"
        if throwaway
        else f"{paths.state_dir} (your --state-dir; it is kept)"
    )
    proxy = f"127.0.0.1:{port}" if port else "127.0.0.1:<the port logged below>"
    from zerocontact.rules.platforms import presets

    def accounts(p: Person) -> str:
        by: dict[str, list[str]] = {}
        for a in p.accounts:
            by.setdefault(a.platform, []).append(a.given)
        titles = presets()
        return ", ".join(f"{titles[k].title if k in titles else k} {' and '.join(v)}" for k, v in by.items())

    who = "; ".join(f"{p.name} ({accounts(p)})" for p in rs.people)
    lines = [
        f"zerocontact demo: the sample rules block {who}.",
        f"Its state (CA, log) lives in {where}.",
        "Your own rules, log and settings are not touched; there is no cooling-off, and stopping the",
        "demo is not noted anywhere.",
        f"Try:  curl -x http://{proxy} --cacert {paths.ca_cert} https://www.instagram.com/sam.example/",
        f"Other commands see the demo with --state-dir {paths.state_dir}",
        "",
    ]
    click.echo("\n".join(lines), err=True)


@click.command()
@click.option("--path", "show", flag_value="path", default=True, help="Print the CA certificate's path.")
@click.option("--pem", "show", flag_value="pem", help="Print the CA certificate itself (PEM).")
@state_dir_option
def ca(show: str, state_dir: Path | None) -> None:
    """The interception CA to trust for HTTPS (created on first use, private to you)."""
    import socket

    from .. import ca as camod

    p = pathmod.resolve(state_dir)
    try:
        p.ensure_state()
        cert = camod.ensure(p.ca_dir, f"zerocontact local CA ({socket.gethostname()})")
    except OSError as e:  # a read-only or full state directory: one line, not a traceback
        raise UserError(f"cannot create the CA in {p.ca_dir}: {pathmod.os_problem(e)}") from None
    click.echo(cert.read_text(encoding="ascii") if show == "pem" else str(cert), nl=show != "pem")


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


def _running(p: pathmod.Paths) -> int | None:
    """The PID of a daemon running on this state directory, if any."""
    rt = Runtime.read(p.runtime)
    return rt.pid if rt is not None and rt.alive() else None


def duration(d: dt.timedelta) -> str:
    """A span as a person says it, to the two largest units: '2 min', '24 h', '1 day 12 h'."""
    total = max(0, round(d.total_seconds()))
    if total < 60:
        return "less than a minute" if total else "now"
    parts = []
    for unit, size in (("day", 86400), ("h", 3600), ("min", 60)):
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n} {unit}{'s' if unit == 'day' and n != 1 else ''}")
    return " ".join(parts[:2])


def _local(iso: str | None) -> str:
    if not iso:
        return "-"
    return f"{dt.datetime.fromisoformat(iso).astimezone():%Y-%m-%d %H:%M}"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The status as one JSON object.")
@state_dir_option
def status(as_json: bool, state_dir: Path | None) -> None:
    """What is enforced now, what is pending, the last reload, and whether the clock is trusted.

    Exits 0 when running, 1 when running but not doing all of its job (a problem is listed, the
    journal cannot be written, or it cannot publish a current status), 3 when not running."""
    p = locate(state_dir).paths  # the same installation doctor checks
    pid = _running(p)
    st = Status.read(p.status)
    if as_json:
        click.echo(json.dumps({**(st.as_json() if st else {}), "running": pid is not None}, indent=2))
        sys.exit(0 if pid else 3)
    if pid is None:
        click.echo(f"zerocontact is not running (state directory {p.state_dir}).")
        if st is None or not st.people:
            sys.exit(3)
        click.echo("Last known status:")
    elif st is None:
        # running, but no status: it could not write one (and removed the old one rather than let
        # it speak for the present)
        click.echo(
            f"zerocontact is running (pid {pid}) but cannot publish its status in {p.state_dir}: "
            "the disk may be full or the directory read-only; see its log."
        )
        sys.exit(1)
    st = st or Status()
    stale = st.stale_for(dt.datetime.now(dt.UTC)) if pid is not None else None
    if pid is not None:
        click.echo(f"zerocontact is running (pid {pid}); proxy {st.proxy}, PAC {st.pac}")
        if stale is not None:
            click.echo(
                f"This status is NOT current: the daemon last wrote it {stale / 60:.0f} min ago (is its "
                "state directory full or read-only? see its log). As it was then:"
            )
    for person in st.people:
        when = f"until {_local(person.until)}" if person.until else "no end date"
        if person.windows:
            when += f", in {', '.join(person.windows)}"
        state = "blocking now" if person.active else "not now     "
        click.echo(f"  {state}  {person.name} ({', '.join(person.platforms)}; {when})")
    for app in st.apps:
        click.echo(f"  {'stopping now' if app.active else 'not now     '}  app {app.name!r} ({app.action})")
    now = dt.datetime.fromisoformat(st.trusted_time) if st.trusted_time else dt.datetime.now(dt.UTC)
    if st.next_transition:
        at = dt.datetime.fromisoformat(st.next_transition)
        what = f": {st.next_change}" if st.next_change else ""
        click.echo(f"Next change:  {_local(st.next_transition)} (in {duration(at - now)}){what}")
    else:
        click.echo("Next change:  none scheduled (only an edit of the rules changes what is blocked)")
    if st.pending:
        wait = duration(dt.timedelta(seconds=st.cooling_off_seconds))
        click.echo(f"Pending loosenings (cooling-off {wait}; each applies only if the file still asks):")
        for item in st.pending:
            left = duration(dt.datetime.fromisoformat(item.applies_at) - now)
            click.echo(f"  - {item.change}: applies at {_local(item.applies_at)} (in {left})")
    reload = st.last_reload
    click.echo(f"Last reload:  {'ok' if reload.ok else 'FAILED'}: {reload.detail}")
    trusted = "trusted" if st.clock.trusted else "NOT trusted"
    click.echo(f"Clock:        {trusted}: {st.clock.detail}")
    journal = st.journal.error or ("ok" if stale is None else "unknown (the status is not current)")
    click.echo(f"Journal:      {journal}")
    for problem in st.problems:
        click.echo(f"Problem:      {problem}")
    for note in st.tampering:
        click.echo(f"Tampering:    {note}")
    degraded = stale is not None or bool(st.problems) or st.journal.error is not None
    sys.exit(3 if not pid else 1 if degraded else 0)


@click.command()
@state_dir_option
def reload(state_dir: Path | None) -> None:
    """Ask the running daemon to re-read the rules file now (loosening edits still wait)."""
    import signal
    import time

    p = locate(state_dir).paths
    pid = _running(p)
    if pid is None:
        raise UserError(f"zerocontact is not running (state directory {p.state_dir})")

    def last() -> ReloadStatus | None:
        st = Status.read(p.status)
        return st.last_reload if st else None

    hup = getattr(signal, "SIGHUP", None)
    if hup is None:
        raise UserError(
            "this system has no SIGHUP to ask the daemon with; it re-reads the rules file by itself "
            "when the file is saved (see `zerocontact status` for the last reload)"
        )
    before = last()
    os.kill(pid, hup)
    deadline = time.monotonic() + 10
    while (now := last()) == before and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the status the daemon publishes
    if now == before or not now:
        raise UserError("the daemon did not report the reload within 10 s; see its log")
    click.echo(now.detail)
    if not now.ok:
        sys.exit(1)
