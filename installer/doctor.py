"""``zerocontact doctor``: is protection whole? Each check says what it found and the one-line fix.

It re-derives what the installation should look like (the same steps ``install`` applies, with the
CA that exists now) and compares it with what is really there, then asks the running daemon: is
the service up, does the proxy answer, does the PAC send every target to it, is the clock trusted.
A ``fail`` is a hole in the protection (the exit status is 1); a ``warn`` is a weakness.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress
import json
import os
import socket
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from zerocontact.daemon import ca, paths
from zerocontact.daemon.status import Status

from .context import Context, Runner
from .ops import Command, Dir, File, IniKeys, JsonKeys, Manifest, Op, Step, ini_get, json_get
from .routing import GSetting, TrackNewFile
from .trust import CaMaterial, NssCert, same_cert

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, ok/warn/fail/skip, what was found, the fix."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class CurrentCa(CaMaterial):
    """The CA as it is: doctor never makes one."""

    def new(self) -> tuple[bytes, bytes]:
        raise LookupError("no usable CA")

    def cert(self) -> bytes:
        cur = self.current()
        if cur is None:
            raise LookupError("no CA")
        return cur


def _sudo(ctx: Context) -> str:
    return "sudo " if ctx.mode == "system" and ctx.os != "windows" else ""


def install_fix(ctx: Context) -> str:
    """The command that re-applies this installation (it repairs whatever is missing)."""
    if ctx.live and ctx.mode == "user" and ctx.os == "linux" and os.geteuid() == 0:
        # root's own daemon: install refuses --user as root (it would serve root alone)
        return "zerocontact install --system"
    return f"{_sudo(ctx)}zerocontact install --{ctx.mode}" + ("" if ctx.live else f" --root {ctx.root}")


def verify_op(op: Op, ctx: Context, runner: Runner) -> str | None:
    """None when what ``op`` would make is in place, else what is wrong."""
    try:
        if isinstance(op, File):
            real = ctx.at(op.path)
            if not real.exists():
                return f"{op.path} is missing"
            if real.read_bytes() != op.data():
                return f"{op.path} differs from what zerocontact wrote (out of date, or edited)"
            return None
        if isinstance(op, Dir):
            return None if ctx.at(op.path).is_dir() else f"{op.path} is missing"
        if isinstance(op, JsonKeys):
            real = ctx.at(op.path)
            doc = json.loads(real.read_text(encoding="utf-8"))
            for keypath, value in op.values.items():
                had, got = json_get(doc, keypath)
                if not had or got != value:
                    return f"{'.'.join(keypath)} in {op.path} is not zerocontact's"
            return None
        if isinstance(op, IniKeys):
            text = ctx.at(op.path).read_text(encoding="utf-8")
            for k, v in op.values.items():
                if ini_get(text, op.group, k) != v:
                    return f"[{op.group}] {k} in {op.path} is not {v}"
            return None
        if isinstance(op, GSetting):
            r = runner.run(["gsettings", "get", op.schema, op.key], env={**ctx.env, **op.env}, check=False)
            got = r.stdout.strip()
            return None if got == op.value else f"{op.schema} {op.key} is {got or '?'}, not {op.value}"
        if isinstance(op, NssCert):
            real = ctx.at(op.db)
            if not (real / "cert9.db").exists():
                return None if not op.create else f"there is no NSS database at {op.db}"
            r = runner.run(
                ["certutil", "-L", "-d", f"sql:{real}", "-n", "zerocontact", "-a"], env=ctx.env, check=False
            )
            return (
                None if same_cert(r.stdout, op.material.cert()) else f"{op.db} does not trust the current CA"
            )
    except FileNotFoundError as e:
        return f"{e.filename} is missing"
    except (OSError, ValueError) as e:
        return str(e)
    except LookupError:
        return "there is no CA to compare with"
    return None  # commands and other actions leave nothing to compare


def check_steps(ctx: Context, steps: Sequence[Step], runner: Runner) -> list[Check]:
    """For each installed step, whether what it wrote is still there, unchanged."""
    out = []
    for step in steps:
        if step.name in ("state", "rules"):
            continue
        problems = [
            p
            for op in step.ops()
            if not isinstance(op, Command | TrackNewFile)
            for p in [verify_op(op, ctx, runner)]
            if p
        ]
        if step.name == "trust-system" and ctx.os == "linux":
            problems += _bundle_problem(ctx, step)
        name = "service-files" if step.name == "service" else step.name
        if problems:
            out.append(Check(name, FAIL, f"{step.title}: " + "; ".join(problems[:3]), install_fix(ctx)))
        else:
            out.append(Check(name, OK, step.title))
    return out


def _bundle_problem(ctx: Context, step: Step) -> list[str]:
    """The system bundle must contain the CA, not just the anchor file."""
    material = getattr(step, "material", None)
    if material is None:
        return []
    bundle = ctx.at(Path("/etc/ssl/certs/ca-certificates.crt"))
    if not bundle.exists():
        bundle = ctx.at(Path("/etc/pki/tls/certs/ca-bundle.crt"))
    try:
        body = b"".join(material.cert().split(b"\n")[1:-2])
        data = bundle.read_bytes().replace(b"\n", b"")
    except (OSError, LookupError):
        return [f"cannot read {bundle}"]
    return [] if body in data else [f"{bundle} does not include the CA yet"]


def check_ca(ctx: Context) -> Check:
    """The CA exists, is valid, is name-constrained and covers every targeted host."""
    material = CurrentCa(ctx)
    cur = material.current()
    fix = install_fix(ctx)
    if cur is None:
        return Check("ca", FAIL, f"no CA in {ctx.ca_dir}", fix)
    try:
        info = ca.inspect(cur)
    except ValueError as e:
        return Check("ca", FAIL, f"the CA certificate cannot be read: {e}", fix)
    if info.expired():
        return Check("ca", FAIL, f"the CA expired on {info.not_after:%Y-%m-%d}", fix)
    if not info.constrained:
        return Check("ca", WARN, "the CA is not name-constrained: it could vouch for any site", fix)
    missing = info.missing(ctx.hosts)
    if missing:
        return Check("ca", FAIL, f"the CA cannot vouch for {', '.join(missing)} (browsers refuse them)", fix)
    if info.expires_soon():
        return Check("ca", WARN, f"the CA expires on {info.not_after:%Y-%m-%d}", fix)
    return Check("ca", OK, f"valid until {info.not_after:%Y-%m-%d}, only for {', '.join(info.permitted)}")


def check_service(ctx: Context, runner: Runner) -> Check:
    """The service manager runs the daemon and starts it at boot or login."""
    if not ctx.live:
        return Check("service", SKIP, f"staging root {ctx.root}: nothing runs there")
    if ctx.os == "linux":
        if not Path("/run/systemd/system").is_dir():
            return Check("service", WARN, "systemd is not running here; cannot tell", "")
        sc = ["systemctl"] if ctx.mode == "system" else ["systemctl", "--user"]
        active = runner.run(
            [*sc, "is-active", "zerocontact.service"], env=ctx.env, check=False
        ).stdout.strip()
        enabled = runner.run(
            [*sc, "is-enabled", "zerocontact.service"], env=ctx.env, check=False
        ).stdout.strip()
        if active != "active":
            return Check(
                "service",
                FAIL,
                f"zerocontact.service is {active or 'unknown'}",
                f"{_sudo(ctx)}{' '.join(sc)} restart zerocontact",
            )
        if enabled != "enabled":
            return Check(
                "service",
                WARN,
                f"running, but {enabled or 'not enabled'} at start-up",
                f"{_sudo(ctx)}{' '.join(sc)} enable zerocontact",
            )
        return Check("service", OK, "zerocontact.service is active and enabled")
    if ctx.os == "darwin":
        from .launchd import domain

        r = runner.run(
            ["launchctl", "print", f"{domain(ctx)}/net.zerocontact.daemon"], env=ctx.env, check=False
        )
        return Check(
            "service",
            OK if r.returncode == 0 else FAIL,
            "launchd job loaded" if r.returncode == 0 else "the launchd job is not loaded",
            "" if r.returncode == 0 else install_fix(ctx),
        )
    r = runner.run(["schtasks", "/Query", "/TN", "zerocontact"], env=ctx.env, check=False)
    return Check(
        "service",
        OK if r.returncode == 0 else FAIL,
        "the task is registered" if r.returncode == 0 else "the task is missing",
        "" if r.returncode == 0 else install_fix(ctx),
    )


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (another user's too); psutil, as ``os.kill(pid, 0)`` kills it on Windows."""
    import psutil

    return bool(psutil.pid_exists(pid))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def check_runtime(
    ctx: Context, runtime: dict[str, Any] | None, status: Status | None, hosts: Sequence[str]
) -> list[Check]:
    """The running daemon: alive, its proxy answering, its PAC complete, its clock trusted."""
    out = []
    start = "start it: " + (
        f"{_sudo(ctx)}systemctl{'' if ctx.mode == 'system' else ' --user'} start zerocontact"
        if ctx.os == "linux"
        else install_fix(ctx)
    )
    pid = runtime.get("pid") if runtime else None
    if isinstance(pid, int) and _alive(pid):
        out.append(Check("daemon", OK, f"running (pid {pid})"))
    else:
        out.append(Check("daemon", FAIL, "the daemon is not running (no live daemon.json)", start))
    proxy = (
        str(runtime.get("proxy")) if runtime and runtime.get("proxy") else f"{ctx.proxy[0]}:{ctx.proxy[1]}"
    )
    host, _, port = proxy.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=2):  # "[::1]:8341"
            pass
        out.append(Check("proxy", OK, f"{proxy} accepts connections"))
    except (OSError, ValueError) as e:
        out.append(Check("proxy", FAIL, f"nothing answers on {proxy} ({e})", start))
    pac_url = str(runtime.get("pac")) if runtime and runtime.get("pac") else ctx.pac_url
    try:
        with urllib.request.urlopen(pac_url, timeout=3) as r:  # loopback only (the daemon's own)
            body = r.read().decode("utf-8", "replace")
        missing = [h for h in hosts if json.dumps(h) not in body]
        if missing:
            out.append(Check("pac", FAIL, f"the PAC does not send {', '.join(missing)} to the proxy", start))
        else:
            out.append(Check("pac", OK, f"{pac_url} sends the {len(hosts)} targeted hosts to the proxy"))
    except (OSError, ValueError) as e:
        out.append(Check("pac", FAIL, f"cannot fetch {pac_url} ({e})", start))
    alive = isinstance(pid, int) and _alive(pid)
    if status is None:
        if alive:  # it runs, yet has no status: it could not write one (and removed the old one)
            out.append(
                Check(
                    "status",
                    FAIL,
                    "the daemon runs but cannot publish its status (a full disk or a read-only state "
                    "directory?)",
                    "free disk space / check the state directory; the daemon's log says more",
                )
            )
        else:
            out.append(Check("clock", WARN, "no status.json yet (the daemon writes it once running)", start))
        return out
    stale = status.stale_for(dt.datetime.now(dt.UTC)) if alive else None
    if stale is not None:
        out.append(
            Check(
                "status",
                FAIL,
                f"the daemon has not updated its status for {stale / 60:.0f} min; what follows is old",
                "free disk space / check the state directory; the daemon's log says more",
            )
        )
    clock = status.clock
    if clock.trusted:
        out.append(Check("clock", OK, f"trusted: {clock.detail}"))
    else:
        out.append(
            Check(
                "clock",
                WARN,
                f"not trusted: {clock.detail} (blocks are never shortened meanwhile)",
                "keep the system clock on network time; it becomes trusted once a platform's Date agrees",
            )
        )
    if not status.last_reload.ok:
        out.append(
            Check(
                "reload",
                WARN,
                "the last edit of the rules did not load; the last good rules are in force",
                "zerocontact rules check",
            )
        )
    journal = status.journal.error
    if journal:
        out.append(
            Check(
                "journal",
                WARN,
                f"the journal cannot be written: {journal}",
                "free disk space / check permissions of the state directory",
            )
        )
    user = "" if ctx.mode == "system" else " --user"
    logs = "see the daemon's log" + (
        f": {_sudo(ctx)}journalctl{user} -u zerocontact" if ctx.os == "linux" else ""
    )
    for problem in status.problems:  # the daemon runs, but not all of its job gets done
        out.append(Check("daemon", FAIL, problem, logs))
    return out


def _ago(t: dt.datetime, now: dt.datetime) -> str:
    s = max(0, int((now - t).total_seconds()))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if s >= size:
            n = s // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def check_device_connections(state: Path, names: Sequence[str], now: dt.datetime) -> list[Check]:
    """Per device, its latest connection through the tunnel, as the daemon journalled it.

    This stands in for the last WireGuard handshake, which cannot be shown: mitmproxy_rs keeps each
    peer's handshake state inside its Rust WireGuard server and its Python API (``WireGuardServer``:
    ``getsockname``, ``close``, ``wait_closed``) reports none of it, nor does it log handshakes. A
    phone with its tunnel on opens connections all the time (DNS among them), so the latest one says
    the same thing: whether the device is going through zerocontact."""
    from zerocontact.daemon.journal.reader import devices_seen

    seen = devices_seen(state / paths.JOURNAL)
    out = []
    for name in names:
        t = seen.get(name)
        if t is None:
            out.append(
                Check(
                    f"device {name}",
                    WARN,
                    f"{name} has not connected through the tunnel yet",
                    f"import {state / paths.DEVICES_DIR / (name + '.conf')} in the device's WireGuard app "
                    "and turn the tunnel on",
                )
            )
        else:
            when = t.astimezone().strftime("%a %d %b %H:%M")
            out.append(
                Check(
                    f"device {name}",
                    OK,
                    f"{name}: last connection through the tunnel {_ago(t, now)} ({when})",
                )
            )
    return out


def check_devices(state: Path, start: str, now: dt.datetime | None = None) -> list[Check]:
    """The devices' side (``devices add``): the WireGuard server listening where their configs say,
    for every device, and each device's latest connection (``check_device_connections``: the last
    handshake is not reported by mitmproxy_rs). Nothing when there are no devices."""
    store = read_json(state / paths.DEVICES)
    names = [str(d.get("name")) for d in store.get("devices", []) if isinstance(d, dict)] if store else []
    if not store or not names:
        return []
    where = f"{store.get('host')}:{store.get('port')}"
    served = read_json(state / paths.WIREGUARD)
    if served is None:
        return [
            Check("devices", FAIL, f"{', '.join(names)} are not protected: the daemon is not running", start)
        ]
    if served.get("error") or not served.get("listening"):
        fix = "free the port, or choose another: zerocontact devices add NAME --port N (then re-import)"
        return [Check("devices", FAIL, f"the WireGuard server is not running: {served.get('error')}", fix)]
    missing = [n for n in names if n not in served.get("devices", [])]
    if missing:
        return [
            Check("devices", WARN, f"the daemon does not know {', '.join(missing)} yet", "zerocontact reload")
        ]
    host, _, port = str(served["listening"]).rpartition(":")
    out = [Check("devices", OK, f"WireGuard on UDP {served['listening']} for {', '.join(names)}")]
    out += check_device_connections(state, names, now or dt.datetime.now(dt.UTC))
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((host.strip("[]"), int(port)))  # binding succeeds only if nothing listens there
        out.append(Check("wireguard", FAIL, f"nothing listens on UDP {served['listening']}", start))
    except OSError:
        pass
    try:
        loopback = ipaddress.ip_address(str(store.get("host"))).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        out.append(
            Check(
                "wireguard",
                WARN,
                f"devices are told to connect to {where}, a loopback address no phone can reach",
                "zerocontact devices add NAME --endpoint <this computer's LAN address>",
            )
        )
    return out


def check_quic(ctx: Context, steps: Sequence[Step]) -> Check:
    """QUIC (HTTP/3) would bypass a TCP proxy: it must be off by policy."""
    if any(s.name == "policy-chromium" for s in steps):
        for s in steps:
            if s.name == "policy-chromium":
                for op in s.ops():
                    if isinstance(op, File):
                        try:
                            doc = json.loads(ctx.at(op.path).read_text(encoding="utf-8"))
                        except (OSError, ValueError):
                            return Check(
                                "quic", FAIL, f"{op.path} is missing: Chromium may use QUIC", install_fix(ctx)
                            )
                        if doc.get("QuicAllowed") is not False:
                            return Check("quic", FAIL, f"{op.path} does not turn QUIC off", install_fix(ctx))
        return Check("quic", OK, "QUIC (HTTP/3) is off by policy in Chromium-family browsers and Firefox")
    return Check(
        "quic",
        WARN,
        "QUIC is not turned off by policy (that needs --system); browsers do not use QUIC for hosts the PAC "
        "sends to a proxy, but a browser started without the proxy setting could",
        "sudo zerocontact install --system",
    )


def check_targets(ctx: Context, installed: Sequence[str], current: Sequence[str] | None) -> Check | None:
    """Whether the installation covers every host the rules target now."""
    if current is None:
        return None
    new = sorted(set(current) - set(installed))
    if new:
        return Check(
            "targets",
            FAIL,
            f"the rules now target {', '.join(new)}, which the installation does not route or trust yet",
            install_fix(ctx),
        )
    return Check("targets", OK, f"{len(installed)} targeted hosts, as the rules ask")


def doctor(
    ctx: Context,
    manifest: Manifest,
    runner: Runner,
    steps: Sequence[Step],
    rules_check: Callable[[], tuple[Check, Sequence[str] | None]],
) -> list[Check]:
    """Every check, in the order a person would fix them."""
    checks: list[Check] = []
    if manifest.data.get("installed"):
        when = manifest.data.get("updated", "?")
        checks.append(Check("install", OK, f"installed (--{ctx.mode}), last applied {when}"))
    else:
        checks.append(Check("install", FAIL, "zerocontact is not installed as a service", install_fix(ctx)))
    rules, current = rules_check()
    checks.append(rules)
    installed = bool(manifest.data.get("installed"))
    if installed:
        t = check_targets(ctx, ctx.hosts, current)
        if t is not None:
            checks.append(t)
        checks.append(check_service(ctx, runner))
    if ctx.live:
        state = ctx.at(ctx.state_dir)
        runtime, status = read_json(state / paths.RUNTIME), Status.read(state / paths.STATUS)
        checks += check_runtime(ctx, runtime, status, current if current is not None else ctx.hosts)
        checks += check_devices(state, "start zerocontact (the service, or `zerocontact run`)")
    else:
        checks.append(Check("daemon", SKIP, "staging root: the daemon, proxy, PAC and clock are not checked"))
    checks.append(check_ca(ctx if installed else dataclasses.replace(ctx, hosts=tuple(current or ()))))
    if installed:
        checks += check_steps(ctx, [s for s in steps if s.name != "ca"], runner)
        checks.append(check_quic(ctx, steps))
    return checks


def report(checks: Sequence[Check]) -> str:
    """The checks as text, one line each with the fix under it, and a closing verdict."""
    mark = {OK: "ok  ", WARN: "WARN", FAIL: "FAIL", SKIP: "skip"}
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(f"{mark[c.status]}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in (WARN, FAIL):
            lines.append(f"      {'':<{width}}  fix: {c.fix}")
    holes = sum(c.status == FAIL for c in checks)
    lines.append("")
    if holes:
        lines.append(f"{holes} problem{'s leave' if holes != 1 else ' leaves'} a hole in the protection.")
    else:
        lines.append("protection has no holes.")
    return "\n".join(lines) + "\n"
