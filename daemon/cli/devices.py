"""``zerocontact devices``: add, list and remove the phones and tablets the daemon protects.

Removing a device is a loosening: during an active block with a cooling-off it is asked for once,
waits out the cooling-off, and is done when asked for again after it (as ``uninstall`` is). The
request lives with the device in ``devices.json`` rather than in the rules: devices are keys on
this machine, not something the rules file describes, and ``rules.commit`` stays about rules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import sys
from pathlib import Path

import click

from .. import devices as devmod
from .. import paths as pathmod
from ..status import Runtime, Status
from .common import UserError, state_dir_option, user_errors


def _paths(state_dir: Path | None) -> pathmod.Paths:
    return pathmod.resolve(state_dir)


def _tell_daemon(paths: pathmod.Paths) -> bool:
    """Ask a running daemon to re-read its devices (SIGHUP); True when one was told."""
    rt = Runtime.read(paths.runtime)
    if rt is None or not rt.alive():
        return False
    with contextlib.suppress(OSError):
        os.kill(rt.pid, signal.SIGHUP)
        return True
    return False


def _trusted_now(paths: pathmod.Paths) -> dt.datetime:
    """The running daemon's trusted time (its last published status), else this clock."""
    rt, st = Runtime.read(paths.runtime), Status.read(paths.status)
    if rt is not None and rt.alive() and st is not None and st.trusted_time:
        return dt.datetime.fromisoformat(st.trusted_time)
    return dt.datetime.now(dt.UTC)


@click.group()
def devices() -> None:
    """Protect your phone or tablet too, through a WireGuard tunnel to this computer."""


@devices.command("add")
@click.argument("name")
@click.option(
    "--endpoint",
    default=None,
    help="The address the device reaches this computer at (default: its LAN address). Used when the "
    "first device is added; giving it again moves every device (their configs are rewritten).",
)
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help=f"UDP port (default {devmod.DEFAULT_PORT})."
)
@click.option("--no-qr", is_flag=True, help="Do not draw the QR code (the config file is still written).")
@state_dir_option
def add(name: str, endpoint: str | None, port: int | None, no_qr: bool, state_dir: Path | None) -> None:
    """Create a WireGuard peer NAME and show its config (QR code for the WireGuard app, and a file)."""
    paths = _paths(state_dir)
    with user_errors():
        store = devmod.load(paths)
        moved = False
        if store is None:
            store = devmod.new_store(endpoint or devmod.lan_address(), port or devmod.DEFAULT_PORT)
        elif (endpoint and endpoint != store.host) or (port and port != store.port):
            store = devmod.Devices(
                store.server_key, endpoint or store.host, port or store.port, store.devices
            )
            moved = True
        store, dev = store.with_device(name, dt.datetime.now(dt.UTC))
        devmod.save(paths, store)
        conf_path, png_path = devmod.write_config(paths, store, dev)
        if moved:
            for other in store.devices:
                devmod.write_config(paths, store, other)
    conf = store.client_config(dev)
    if not no_qr:
        click.echo(devmod.qr_terminal(conf))
    click.echo(
        f"\n{dev.name}: scan this QR code with the WireGuard app (Add tunnel → Scan from QR code), or "
        f"import {conf_path}\n(the same as an image: {png_path}; both hold the device's key, keep them "
        f"private).\n\n{conf}\n"
        f"Then, with the tunnel on, open http://{devmod.SETUP_ADDRESS}/ on the device to install the "
        "certificate, so its browser can show the block page.\n"
        f"This computer listens for devices on UDP {store.host}:{store.port}."
    )
    if moved:
        click.echo(
            f"Every device moved to the new address: re-import their configs from {paths.devices_dir}."
        )
    if _tell_daemon(paths):
        click.echo("The running daemon now accepts this device.")
    else:
        click.echo("Start zerocontact (`zerocontact run` or the service) for the device to connect.")


@devices.command("list")
@state_dir_option
def list_cmd(state_dir: Path | None) -> None:
    """The devices that may connect, with their tunnel addresses."""
    paths = _paths(state_dir)
    with user_errors():
        store = devmod.load(paths)
    if store is None or not store.devices:
        click.echo("no devices (add one with `zerocontact devices add phone`)")
        return
    click.echo(f"devices connect to UDP {store.host}:{store.port}")
    for d in store.devices:
        added = dt.datetime.fromisoformat(d.added).astimezone().strftime("%Y-%m-%d %H:%M")
        pending = f"  (removal asked {d.remove_requested[:16]})" if d.remove_requested else ""
        click.echo(f"  {d.name:<16} {d.address:<12} added {added}{pending}")


@devices.command("remove")
@click.argument("name")
@click.option("--cancel", is_flag=True, help="Withdraw a removal that is waiting out the cooling-off.")
@state_dir_option
def remove(name: str, cancel: bool, state_dir: Path | None) -> None:
    """Stop protecting device NAME (during a block it waits out your cooling-off first)."""
    from ..commitment import lock_in_force

    paths = _paths(state_dir)
    with user_errors():
        store = devmod.load(paths)
        dev = store.get(name) if store else None
        if store is None or dev is None:
            raise UserError(f"no device named {name!r} (`zerocontact devices list`)")
        if cancel:
            if dev.remove_requested:
                devmod.save(paths, store.with_request(name, None))
                _tell_daemon(paths)  # its status no longer shows the removal pending
            click.echo(
                f"the removal of {name} is withdrawn: it stays protected"
                if dev.remove_requested
                else f"no removal of {name} was waiting"
            )
            return
        now = _trusted_now(paths)
        cooling = lock_in_force(paths, now)
        asked = dt.datetime.fromisoformat(dev.remove_requested) if dev.remove_requested else None
        if cooling is None or (asked is not None and now >= asked + cooling):
            devmod.save(paths, store.without(name))
            devmod.forget_config(paths, name)
            told = _tell_daemon(paths)
            click.echo(
                f"{name} is removed: its key no longer connects"
                + (" (the running daemon was told)." if told else ".")
                + " Delete the tunnel in the device's WireGuard app too."
            )
            return
        if asked is None:
            # the daemon publishes its trusted time only when something changes, so it may lag: the
            # wait starts at the later of it and this clock (a clock moved forward only lengthens it)
            asked = max(now, dt.datetime.now(dt.UTC))
            devmod.save(paths, store.with_request(name, asked))
            _tell_daemon(paths)  # it wakes when the removal is due, so its trusted time is there then
    when = (asked + cooling).astimezone().strftime("%a %d %b %H:%M")
    click.echo(
        f"A block is active, so removing {name} waits out your cooling-off ({cooling}), like any other "
        f"loosening.\nRun `zerocontact devices remove {name}` again after {when} to finish; until then "
        f"{name} stays protected. `zerocontact devices remove {name} --cancel` withdraws it."
    )
    sys.exit(3)
