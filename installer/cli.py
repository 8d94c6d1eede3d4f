"""``zerocontact install``, ``uninstall`` and ``doctor``: the commands over ``zerocontact.installer``.

Every mistake a user can make (not root, no systemd, a broken rules file, a failing tool) ends in
one clear message and exit status 1, never a traceback; ``doctor`` exits 1 when protection has a hole.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path, PurePath
from typing import cast

import click

from zerocontact.daemon.cli.common import UserError, read_rules_and_bytes, state_dir_option
from zerocontact.daemon.paths import IN_FORCE, RUNTIME
from zerocontact.installer import plan as planmod
from zerocontact.installer.context import OS, InstallError, Mode, SubprocessRunner, host_os


def target_hosts(rules_data: bytes, rules_name: str, state_dir: Path, timezone: str) -> list[str]:
    """Hosts to route and trust: the rules file's targets plus those of the rules still in force.

    A loosening edit (a person removed) is pending for the cooling-off; the platforms it would drop
    stay routed and trusted until the daemon has applied it, so re-installing cannot skip the wait."""
    from zerocontact.rules import Matcher, RulesError, load

    hosts = set(Matcher(load(rules_data, rules_name, default_timezone=timezone)).target_hosts())
    in_force = state_dir / IN_FORCE
    with contextlib.suppress(OSError, RulesError):
        hosts |= set(
            Matcher(load(in_force.read_bytes(), str(in_force), default_timezone=timezone)).target_hosts()
        )
    return sorted(hosts)


def logical(state_dir: Path) -> PurePath:
    """--state-dir as the installed system sees it (absolute; under --root it is not prefixed)."""
    return PurePath(Path(state_dir).absolute())


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else 0


def fail(e: Exception) -> click.ClickException:
    return UserError(str(e))


def read_rules_bytes(path: Path) -> bytes:
    """The rules file's bytes, checked as `rules check` checks them (every problem, located), read
    once and only if it is a regular file of bounded size (rulesfile.read_rules_file)."""
    return read_rules_and_bytes(path)[1]


def manifest_candidates(root: Path, state_dir: Path | None) -> list[tuple[Mode, Path]]:
    """Where an installation's manifest may be: the given state dir, else system then user
    (user first for a normal user, who cannot read the system's)."""
    if state_dir is not None:
        ctx = planmod.make_context("user", root, state_dir=logical(state_dir), exe=("/x",))
        return [("user", ctx.manifest)]
    found: list[tuple[Mode, Path]] = []
    first = default_mode(root)
    order: tuple[Mode, ...] = (first, "user" if first == "system" else "system")
    for mode in order:
        ctx = planmod.make_context(mode, root, exe=("/x",))
        found.append((mode, ctx.manifest))
    return found


def default_mode(root: Path) -> Mode:
    """Which installation to look at first. On the live system, the one ``status`` reports on
    (``daemon.status.locate``: a running daemon, else an installed service), so doctor and status
    never disagree; in a staging root, system for root and user otherwise."""
    if root == Path("/"):
        from zerocontact.daemon.status import locate

        located = locate()
        if located.how in ("running", "installed"):
            return "system" if located.mode == "system" else "user"
    return "system" if _euid() == 0 else "user"


def find_manifest(root: Path, state_dir: Path | None) -> tuple[Mode, Path] | None:
    for mode, path in manifest_candidates(root, state_dir):
        try:
            if path.exists():
                return mode, path
        except PermissionError:
            return mode, path
    return None


# -- install ------------------------------------------------------------------------------------
@click.command("install")
@click.option("--user", "mode", flag_value="user", help="For you: a user service (default without root).")
@click.option("--system", "mode", flag_value="system", help="For the machine: a system service (needs root).")
@click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="A rules file to install (copied to the configuration folder).",
)
@click.option("--dry-run", is_flag=True, help="Only print the plan.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    help="Install into this staging folder instead of the running system.",
)
@click.option(
    "--for",
    "target_os",
    type=click.Choice(["linux", "darwin", "windows"]),
    default=None,
    help="Print the plan for another OS (with --dry-run).",
)
@click.option(
    "--refresh", is_flag=True, help="Re-apply the recorded installation if the rules' platforms changed."
)
@state_dir_option
def install_cmd(
    mode: str | None,
    rules_path: Path | None,
    dry_run: bool,
    root: Path,
    target_os: str | None,
    refresh: bool,
    state_dir: Path | None,
) -> None:
    """Install zerocontact as a service: the CA trusted, the PAC and browser policies set."""
    from zerocontact.daemon.cli.common import local_timezone

    root = root.absolute()
    if not root.is_dir():
        raise UserError(f"--root {root} is not a folder")
    runner = SubprocessRunner()
    if refresh:
        _refresh(root, state_dir, runner)
        return
    chosen: Mode = "system" if (mode or ("system" if _euid() == 0 else "user")) == "system" else "user"
    target: OS = cast(OS, target_os) if target_os else host_os()
    if target != host_os() and not dry_run:
        raise UserError(f"a plan for {target} can only be printed here: add --dry-run")
    try:
        ctx = planmod.make_context(
            chosen,
            root,
            target=target,
            state_dir=logical(state_dir) if state_dir else None,
        )
        if not dry_run:
            planmod.preflight(ctx)
    except InstallError as e:
        raise fail(e) from None
    clone = planmod.editable_source()
    if clone is not None and ctx.live and not dry_run:
        raise UserError(
            f"this zerocontact runs from the source folder {clone} (an editable install, as ./dev "
            "makes): the service would stop the day that folder is deleted. Install it first "
            '(pipx install .  — README: "Installing zerocontact"), then run that zerocontact install.'
        )
    copy: tuple[bytes, str] | None = None
    if rules_path is not None:
        data = read_rules_bytes(rules_path)
        copy = (data, str(rules_path))
    else:
        installed_rules = ctx.at(ctx.rules)
        if not installed_rules.exists():
            raise UserError(
                f"no rules file at {ctx.rules}; write one (zerocontact rules init FILE) "
                "and pass it with --rules FILE"
            )
        data = read_rules_bytes(installed_rules)
    hosts = target_hosts(data, str(rules_path or ctx.rules), ctx.at(ctx.state_dir), local_timezone())
    ctx = dataclasses.replace(ctx, hosts=tuple(hosts))
    steps = planmod.build_steps(ctx, rules=copy)
    click.echo(planmod.plan_text(ctx, steps), nl=False)
    if clone is not None:
        click.echo(
            f"note: this zerocontact runs from the source folder {clone}; the service starts it "
            "from there, so it must stay (a real install: pipx install .)"
        )
    if dry_run:
        click.echo("(dry run: nothing was changed)")
        return
    click.echo("\napplying:")
    try:
        planmod.install(ctx, steps, runner, lambda line: click.echo(f"  {line}"))
    except InstallError as e:
        raise fail(e) from None
    except PermissionError as e:
        raise UserError(
            f"permission denied: {e.filename}; is this the right mode (--user/--system)?"
        ) from None
    where = "" if ctx.live else f" --root {root}"
    click.echo(f"\ninstalled. Check it with: zerocontact doctor{where}")


def _refresh(root: Path, state_dir: Path | None, runner: SubprocessRunner) -> None:
    from zerocontact.daemon.ca import needs_renewal
    from zerocontact.daemon.cli.common import local_timezone
    from zerocontact.installer.ops import Manifest

    found = find_manifest(root, state_dir)
    if found is None:
        raise UserError("zerocontact is not installed here: nothing to refresh")
    try:
        manifest = Manifest.load(found[1])
    except (InstallError, PermissionError) as e:
        raise fail(e) from None
    if not manifest.data.get("installed"):
        raise UserError("zerocontact is not installed here: nothing to refresh")
    ctx = planmod.context_from_manifest(manifest)
    try:
        data = read_rules_bytes(ctx.at(ctx.rules))
    except click.ClickException as e:
        raise UserError(f"{e.format_message()}\nthe installation was left as it is") from None
    hosts = target_hosts(data, str(ctx.rules), ctx.at(ctx.state_dir), local_timezone())
    cert = ctx.at(ctx.ca_dir) / "mitmproxy-ca-cert.pem"
    current = cert.read_bytes() if cert.exists() else None
    if set(hosts) == set(ctx.hosts) and needs_renewal(current, hosts) is None:
        click.echo("nothing to refresh: the installation already fits the rules")
        return
    ctx = dataclasses.replace(ctx, hosts=tuple(hosts))
    click.echo(f"the rules target {', '.join(hosts) or 'nothing'} now: refreshing")
    try:
        planmod.preflight(ctx)
        planmod.install(ctx, planmod.build_steps(ctx), runner, lambda line: click.echo(f"  {line}"))
    except InstallError as e:
        raise fail(e) from None


# -- uninstall ------------------------------------------------------------------------------------
@click.command("uninstall")
@click.option(
    "--purge", is_flag=True, help="Also delete your rules file (if install put it there) and the journal."
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    help="Uninstall from this staging folder.",
)
@click.option("--cancel", is_flag=True, help="Withdraw an uninstall that waits out the cooling-off.")
@state_dir_option
def uninstall_cmd(purge: bool, root: Path, state_dir: Path | None, cancel: bool = False) -> None:
    """Revert every step install recorded. Your rules file and journal stay unless --purge.

    During a block with a cooling-off, uninstalling is a loosening like any other: the first call
    asks for it, and it runs when called again once the cooling-off has passed."""
    root = root.absolute()
    found = find_manifest(root, state_dir)
    if found is None:
        if purge:
            mode, path = manifest_candidates(root, state_dir)[0]
            if path.parent.exists():
                planmod.uninstall(path, SubprocessRunner(), click.echo, purge=True)
                return
        click.echo("zerocontact is not installed here: nothing to uninstall")
        return
    mode, path = found
    if mode == "system" and root == Path("/") and _euid() != 0:
        raise UserError("the installation is system-wide: run `sudo zerocontact uninstall`")
    if not _lock_allows_uninstall(path, purge, cancel):
        return
    try:
        done = planmod.uninstall(path, SubprocessRunner(), lambda line: click.echo(f"  {line}"), purge=purge)
    except InstallError as e:
        raise fail(e) from None
    except PermissionError as e:
        raise UserError(f"permission denied: {e.filename}; run it as the user who installed it") from None
    if not done:
        click.echo("zerocontact is not installed here: nothing to uninstall")
    elif purge:
        click.echo("uninstalled, and your journal and rules were deleted.")
    else:
        click.echo("uninstalled. Your rules file and journal were kept (`uninstall --purge` deletes them).")


def _lock_allows_uninstall(manifest_path: Path, purge: bool, cancel: bool) -> bool:
    """True when uninstalling may go ahead now. During an active block with a cooling-off it is a
    pending change: asked for once, due after the cooling-off, and only if asked for again then.
    Time is the running daemon's trusted time (its last published status), else this clock."""
    from zerocontact.daemon.commitment import UninstallRequest, lock_in_force
    from zerocontact.daemon.paths import Paths
    from zerocontact.daemon.status import Runtime, Status
    from zerocontact.installer.ops import Manifest

    ctx = planmod.context_from_manifest(Manifest.load(manifest_path))
    paths = Paths(config_dir=ctx.at(ctx.config_dir), state_dir=ctx.at(ctx.state_dir))
    request = UninstallRequest.read(paths.uninstall_request)
    if cancel:
        with contextlib.suppress(FileNotFoundError):
            paths.uninstall_request.unlink()
        click.echo(
            "the uninstall request is withdrawn: zerocontact stays installed"
            if request
            else "no uninstall was waiting"
        )
        return False
    rt, st = Runtime.read(paths.runtime), Status.read(paths.status)
    now = dt.datetime.now(dt.UTC)
    if rt is not None and rt.alive() and st is not None and st.trusted_time:
        now = dt.datetime.fromisoformat(st.trusted_time)
    cooling = lock_in_force(paths, now)
    if cooling is None or (request is not None and now >= request.due(cooling) and request.purge >= purge):
        with contextlib.suppress(FileNotFoundError):
            paths.uninstall_request.unlink()  # asked for, waited out, asked again: done with
        return True
    if request is None or (purge and not request.purge):
        request = UninstallRequest(now, purge)
        request.write(paths.uninstall_request)
        if rt is not None and rt.alive() and hasattr(signal, "SIGHUP"):
            with contextlib.suppress(OSError):  # the daemon re-reads: status shows it pending now
                os.kill(rt.pid, signal.SIGHUP)
    due = request.due(cooling)
    when = due.astimezone().strftime("%a %d %b %H:%M")
    click.echo(
        f"A block is active, so uninstalling waits out your cooling-off ({cooling}), like any other "
        f"loosening.\nRun `zerocontact uninstall{' --purge' if purge else ''}` again after {when} to "
        "finish; until then everything stays as it is. `zerocontact uninstall --cancel` withdraws it."
    )
    sys.exit(3)


# -- doctor -------------------------------------------------------------------------------------------
@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="The checks as one JSON object.")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("/"),
    help="Check an installation in this staging folder.",
)
@state_dir_option
def doctor_cmd(as_json: bool, root: Path, state_dir: Path | None) -> None:
    """Is protection whole? Service, proxy, PAC, CA, policies, QUIC, rules, clock; each with a fix."""
    from zerocontact.daemon.cli.common import local_timezone
    from zerocontact.installer import doctor as doc
    from zerocontact.installer.ops import Manifest

    root = root.absolute()
    found = find_manifest(root, state_dir)
    manifest = None
    if found is not None:
        try:
            manifest = Manifest.load(found[1])
        except InstallError as e:
            raise fail(e) from None
    if manifest is not None and manifest.data.get("mode"):
        ctx = planmod.context_from_manifest(manifest)
    else:
        mode: Mode = found[0] if found else default_mode(root)
        ctx = planmod.make_context(mode, root, state_dir=logical(state_dir) if state_dir else None)
        manifest = manifest or Manifest.load(ctx.manifest)

    rules_file = ctx.at(ctx.rules)
    running = doc.read_json(ctx.at(ctx.state_dir) / RUNTIME) or {}
    if not manifest.data.get("installed") and Path(str(running.get("rules", ""))).is_file():
        rules_file = Path(running["rules"])  # not installed: check what the running daemon uses

    def rules_check() -> tuple[doc.Check, Sequence[str] | None]:
        path = rules_file
        try:
            data = read_rules_bytes(path)
        except click.ClickException as e:
            msg = e.format_message()
            status = doc.WARN if "permission" in msg.lower() else doc.FAIL
            fix = f"zerocontact rules check {path}" if status == doc.FAIL else "run doctor with sudo"
            return doc.Check("rules", status, msg.splitlines()[0], fix), None
        hosts = target_hosts(data, str(path), ctx.at(ctx.state_dir), local_timezone())
        return doc.Check("rules", doc.OK, f"{path} is valid"), hosts

    steps = planmod.build_steps(ctx, doc.CurrentCa(ctx))
    checks = doc.doctor(ctx, manifest, SubprocessRunner(timeout=20), steps, rules_check)
    holes = any(c.status == doc.FAIL for c in checks)
    if as_json:
        click.echo(json.dumps({"ok": not holes, "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        click.echo(doc.report(checks), nl=False)
    sys.exit(1 if holes else 0)
