"""The service commands: ``run`` (the daemon in the foreground), ``ca``, ``status`` and ``reload``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from zerocontact.rules import RulesError, load
from zerocontact.rules.sample import sample as sample_text

from .. import installation
from .. import paths as pathmod
from ..status import ReloadStatus, Runtime, Status
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

    from ..app import Daemon, Options

    if sample and rules_path:
        raise UserError("use either --rules or --sample, not both")
    paths = pathmod.resolve(state_dir)
    installs = installation.find(
        installation.candidates(pathmod.resolve().state_dir, paths.state_dir if state_dir else None, _euid())
    )
    with user_errors():
        if sample:
            if state_dir is None:
                paths = paths.for_demo()
            source = click.get_current_context().get_parameter_source
            pac = pac_port if pac_port is not None else (port + 1 if port else 0)
            moved = installation.check_demo(
                installs,
                paths.state_dir,
                [
                    ("--port", port, source("port") != ParameterSource.DEFAULT),
                    ("--pac-port", pac, pac_port is not None),
                ],
            )
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
    if sample:
        logging.getLogger("zerocontact").info(
            "the demo keeps its state in %s (see it with --state-dir %s)", paths.state_dir, paths.state_dir
        )
    opts = Options(
        paths=paths,
        rules_path=rules_file,
        host=host,
        port=port,
        pac_port=pac_port,
        timezone=tz,
        redirect_upstream=redirects or None,
        rules_bytes=rules_bytes,
    )
    with user_errors(), contextlib.suppress(KeyboardInterrupt):
        asyncio.run(Daemon(opts, rs).run())


@click.command()
@click.option("--path", "show", flag_value="path", default=True, help="Print the CA certificate's path.")
@click.option("--pem", "show", flag_value="pem", help="Print the CA certificate itself (PEM).")
@state_dir_option
def ca(show: str, state_dir: Path | None) -> None:
    """The interception CA to trust for HTTPS (created on first use, private to you)."""
    import socket

    from .. import ca as camod

    p = pathmod.resolve(state_dir)
    p.ensure_state()
    cert = camod.ensure(p.ca_dir, f"zerocontact local CA ({socket.gethostname()})")
    click.echo(cert.read_text(encoding="ascii") if show == "pem" else str(cert), nl=show != "pem")


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


def _running(p: pathmod.Paths) -> int | None:
    """The PID of a daemon running on this state directory, if any."""
    rt = Runtime.read(p.runtime)
    return rt.pid if rt is not None and rt.alive() else None


def _local(iso: str | None) -> str:
    if not iso:
        return "-"
    return f"{dt.datetime.fromisoformat(iso).astimezone():%Y-%m-%d %H:%M}"


@click.command()
@click.option("--json", "as_json", is_flag=True, help="The status as one JSON object.")
@state_dir_option
def status(as_json: bool, state_dir: Path | None) -> None:
    """What is enforced now, what is pending, the last reload, and whether the clock is trusted."""
    p = pathmod.resolve(state_dir)
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
    st = st or Status()
    if pid is not None:
        click.echo(f"zerocontact is running (pid {pid}); proxy {st.proxy}, PAC {st.pac}")
    for person in st.people:
        when = f"until {_local(person.until)}" if person.until else "no end date"
        if person.windows:
            when += f", in {', '.join(person.windows)}"
        state = "blocking now" if person.active else "not now     "
        click.echo(f"  {state}  {person.name} ({', '.join(person.platforms)}; {when})")
    for app in st.apps:
        click.echo(f"  {'stopping now' if app.active else 'not now     '}  app {app.name!r} ({app.action})")
    click.echo(f"Next change:  {_local(st.next_transition)}")
    if st.pending:
        hours = st.cooling_off_seconds / 3600
        click.echo(f"Pending loosenings (cooling-off {hours:g} h; each applies only if the file still asks):")
        for item in st.pending:
            click.echo(f"  - {item.change}: applies at {_local(item.applies_at)}")
    reload = st.last_reload
    click.echo(f"Last reload:  {'ok' if reload.ok else 'FAILED'}: {reload.detail}")
    trusted = "trusted" if st.clock.trusted else "NOT trusted"
    click.echo(f"Clock:        {trusted}: {st.clock.detail}")
    click.echo(f"Journal:      {st.journal.error or 'ok'}")
    sys.exit(0 if pid else 3)


@click.command()
@state_dir_option
def reload(state_dir: Path | None) -> None:
    """Ask the running daemon to re-read the rules file now (loosening edits still wait)."""
    import signal
    import time

    p = pathmod.resolve(state_dir)
    pid = _running(p)
    if pid is None:
        raise UserError(f"zerocontact is not running (state directory {p.state_dir})")

    def last() -> ReloadStatus | None:
        st = Status.read(p.status)
        return st.last_reload if st else None

    before = last()
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while (now := last()) == before and time.monotonic() < deadline:
        time.sleep(0.05)  # polling the status the daemon publishes
    if now == before or not now:
        raise UserError("the daemon did not report the reload within 10 s; see its log")
    click.echo(now.detail)
    if not now.ok:
        sys.exit(1)
