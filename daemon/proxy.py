"""The one module that touches mitmproxy's master internals: start, reconfigure and stop the proxy.

mitmproxy's maintainers do not support embedding (mitmproxy#5171), so everything that depends on
``Master``, ``default_addons`` and the proxyserver's internals lives here, behind four methods, and an
end-to-end test catches drift when mitmproxy is upgraded.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import importlib.util
import ipaddress
import logging
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import mitmproxy
import mitmproxy_rs


def addons_package() -> types.ModuleType:
    """``mitmproxy.addons``, registered without running its ``__init__`` unless something imported
    it already. That ``__init__`` imports all 31 default addons, and with them Flask (the onboarding
    app), ldap3 (proxy authentication) and the pyparsing flow filters: about a quarter of a start's
    imports, for addons the daemon never runs. Registered unrun, its modules import one by one; the
    first use of a name the ``__init__`` defines (``default_addons``, by anyone else in the process)
    runs it then, as if it had run from the start."""
    got = sys.modules.get("mitmproxy.addons")
    if got is not None:
        return got
    spec = importlib.util.find_spec("mitmproxy.addons")
    if spec is None or spec.loader is None:  # not a package here: let the import say so
        return importlib.import_module("mitmproxy.addons")
    loader = spec.loader
    pkg = importlib.util.module_from_spec(spec)

    def run_init(name: str) -> Any:
        # a submodule is not an attribute yet: the import system then loads that module alone
        if name.startswith("__") or importlib.util.find_spec(f"mitmproxy.addons.{name}") is not None:
            raise AttributeError(name)
        del pkg.__dict__["__getattr__"]  # the __init__'s own imports must find only what it made
        loader.exec_module(pkg)
        return getattr(pkg, name)

    pkg.__dict__["__getattr__"] = run_init
    sys.modules["mitmproxy.addons"] = pkg
    mitmproxy.addons = pkg
    return pkg


# before mitmproxy's master, which imports a module of mitmproxy.addons (running the package)
addons_package()
from mitmproxy import master, options  # noqa: E402
from mitmproxy.proxy import mode_servers, mode_specs  # noqa: E402

log = logging.getLogger("zerocontact.proxy")


# The mitmproxy addons the daemon runs, as (module in mitmproxy.addons, class), in the order of
# mitmproxy's default chain: core options and commands, block_global, ECH stripping for the devices'
# DNS, h2c refused, the listeners, DNS, the layers, the certificates.
ADDONS = (
    ("core", "Core"),
    ("block", "Block"),
    ("strip_dns_https_records", "StripDnsHttpsRecords"),
    ("disable_h2c", "DisableH2C"),
    ("proxyserver", "Proxyserver"),
    ("dns_resolver", "DnsResolver"),
    ("next_layer", "NextLayer"),
    ("tlsconfig", "TlsConfig"),
)
# The rest of mitmproxy's default addons, never used here: playback, export, rewriting and saving
# flows, proxy authentication, its onboarding app (the devices' own page hands out the CA).
# mitmproxy calls every addon in the chain for every event of every flow (a generator, a context
# manager and a coroutine each, whether or not it has that hook): these 23 were about a fifth of the
# loop's CPU per request. A test fails when mitmproxy's defaults are not exactly both lists, so an
# addon a later mitmproxy adds is a decision, not an accident.
UNUSED_ADDONS = frozenset(
    {
        "Browser",
        "BlockList",
        "AntiCache",
        "AntiComp",
        "ClientPlayback",
        "CommandHistory",
        "Comment",
        "Cut",
        "Export",
        "Onboarding",
        "ProxyAuth",
        "ScriptLoader",
        "ServerPlayback",
        "MapRemote",
        "MapLocal",
        "ModifyBody",
        "ModifyHeaders",
        "StickyAuth",
        "StickyCookie",
        "Save",
        "SaveHar",
        "UpstreamAuth",
        "UpdateAltSvc",
    }
)


def lean_addons() -> list[Any]:
    """New instances of the addons the daemon runs (``ADDONS``), each module imported alone."""
    return [getattr(importlib.import_module(f"mitmproxy.addons.{m}"), cls)() for m, cls in ADDONS]


@dataclass(frozen=True, slots=True)
class WireGuard:
    """mitmproxy's WireGuard mode for the person's devices: the one listener off loopback, on an
    address the user chose (``devices add --endpoint``), open only to the peers' keys."""

    host: str
    port: int
    server_key: str
    peers: tuple[str, ...]

    def token(self) -> str:
        """Names these keys in the mode spec (never the keys themselves: specs are shown and logged);
        a changed peer list is a new spec, so mitmproxy restarts the server with it."""
        text = "\n".join((self.server_key, *self.peers))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def spec(self) -> str:
        # mitmproxy splits "@HOST:PORT" at the last colon, so an IPv6 host goes unbracketed
        return f"wireguard:{self.token()}@{self.host}:{self.port}"


SETUP_HOST = "10.0.0.1"  # the devices' certificate page, inside the tunnel (devices.SETUP_ADDRESS)

# The keys behind each WireGuard spec this process made (the spec names them by token).
_WIREGUARD: dict[str, WireGuard] = {}
_M = TypeVar("_M")


class _DevicesWireGuard(mode_servers.WireGuardServerInstance):
    """mitmproxy's WireGuard server with every device as a peer. mitmproxy's own instance keeps one
    client key in a conf file; ``start_wireguard_server`` takes a list of peers, so this one passes
    them all. A spec that is not one of ours behaves exactly as mitmproxy's."""

    # keep mitmproxy's registry of instance classes untouched at class creation (it would refuse
    # a second class for "wireguard"); the one registration is done explicitly below
    __orig_bases__ = (Generic[_M],)  # type: ignore[index]

    async def _start(self) -> None:
        wg = _WIREGUARD.get(self.mode.data)
        if wg is None:
            await super()._start()
            return
        self.server_key, self.client_key, self.pubkey = wg.server_key, "", ""
        await mode_servers.AsyncioServerInstance._start(self)

    async def start_udp_based_server(self, host: str, port: int) -> Any:
        wg = _WIREGUARD.get(self.mode.data)
        if wg is None:
            return await super().start_udp_based_server(host, port)
        return await mitmproxy_rs.wireguard.start_wireguard_server(
            host, port, wg.server_key, list(wg.peers), self.handle_stream, self.handle_stream
        )

    def client_conf(self) -> str | None:
        # each device's config is made by `zerocontact devices add`, never logged by mitmproxy
        return None if self.mode.data in _WIREGUARD else super().client_conf()


mode_servers.ServerInstance._ServerInstance__modes["wireguard"] = _DevicesWireGuard  # type: ignore[attr-defined]


def is_wireguard(client: Any) -> bool:
    """Whether a client connection came through the devices' WireGuard tunnel."""
    return isinstance(getattr(client, "proxy_mode", None), mode_specs.WireGuardMode)


class _DeviceTraffic:
    """What a device's connections need beyond the loopback proxy's.

    - A decrypted connection is named by its TLS server name, not the IP the device dialled: the
      certificate mitmproxy makes then carries only DNS names, which the name-constrained CA permits
      (it excludes every IP address), and the platform is reached by name, as in regular mode.
    - Nothing on this computer's loopback is reachable from a device (the tunnel would otherwise
      let a phone open this machine's local-only services, the daemon's own among them).
    - QUIC (UDP 443) is refused: mitmproxy passes UDP it does not decrypt through untouched, so a
      phone's browser would reach a targeted platform over HTTP/3 unseen; refused, browsers fall
      back to TCP, where the usual rules apply.
    """

    def tls_clienthello(self, data: Any) -> None:
        c = data.context
        if data.ignore_connection:  # passed through (pinning): it goes where the device dialled
            return
        if is_wireguard(c.client) and data.client_hello.sni and c.server.address:
            c.server.address = (data.client_hello.sni, c.server.address[1])

    def server_connect(self, data: Any) -> None:
        if not is_wireguard(data.client) or not data.server.address:
            return
        host = str(data.server.address[0]).strip("[]")
        try:
            local = ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
        except ValueError:
            local = host.lower().rstrip(".") in ("localhost", "localhost.localdomain")
        if local:
            data.server.error = "zerocontact: a device cannot reach this computer's loopback"

    def udp_start(self, flow: Any) -> None:
        if is_wireguard(flow.client_conn) and flow.server_conn.address and flow.server_conn.address[1] == 443:
            flow.kill()


def allow_pattern(host: str) -> str:
    """An anchored ``allow_hosts`` regex: the host and its subdomains, any port, nothing else.

    A trailing dot (``www.instagram.com.``, the fully qualified spelling) is the same host, so it is
    decrypted and judged too; mitmproxy matches these case-insensitively.
    """
    return rf"^(.+\.)?{re.escape(host.lower().rstrip('.'))}\.*:\d+$"


class _Ready:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def running(self) -> None:
        self.event.set()


class Proxy:
    """An embedded mitmproxy in regular mode on one loopback address."""

    def __init__(
        self,
        host: str,
        port: int,
        confdir: Path,
        addon: Any,
        target_hosts: list[str],
        extra_addons: tuple[Any, ...] = (),
        wireguard: WireGuard | None = None,
    ) -> None:
        self.extra_addons = extra_addons
        self.regular = f"regular@{host}:{port}"
        self.wireguard = wireguard if wireguard and wireguard.peers else None
        self.opts = options.Options(
            listen_host=host, listen_port=port, confdir=str(confdir), mode=self._modes()
        )
        self.addon = addon
        self.target_hosts = target_hosts
        self.master: master.Master | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        m = self.master = master.Master(self.opts)
        # mitmproxy re-emits every stdlib log record as the deprecated ``add_log`` event to each of
        # its ~45 addons, waking the loop from outside for it; no addon here listens, and the daemon
        # logs a line per blocked attempt (~0.1 ms of CPU each went there)
        legacy = getattr(m, "_legacy_log_events", None)
        if legacy is not None:
            legacy.uninstall()
        m.addons.add(*lean_addons())
        self.opts.update(
            connection_strategy="lazy",  # a blocked request never opens a connection to the platform
            http3=False,
            block_global=True,
            allow_hosts=self._allow(self.target_hosts),
            upstream_cert=False,
        )
        ready = _Ready()
        m.addons.add(self.addon, *self.extra_addons, _DeviceTraffic(), ready)
        self._task = asyncio.create_task(m.run(), name="mitmproxy")
        waiter = asyncio.create_task(ready.event.wait())
        await asyncio.wait([self._task, waiter], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        ps = m.addons.get("proxyserver")
        bad = [s for s in ps.servers if not s.is_running]
        if bad or self._task.done():
            errors = "; ".join(str(s.last_exception) for s in bad) or "the proxy stopped during start-up"
            await self.stop()
            raise OSError(errors)
        addr = ps.listen_addrs()[0]
        return str(addr[0]), int(addr[1])

    def _modes(self) -> list[str]:
        if self.wireguard is None:
            return [self.regular]
        _WIREGUARD[self.wireguard.token()] = self.wireguard
        return [self.regular, self.wireguard.spec()]

    async def set_wireguard(self, wireguard: WireGuard | None) -> None:
        """Serve these devices from now on (none: stop the WireGuard server); raises OSError when the
        WireGuard server cannot listen (the loopback proxy keeps running)."""
        wireguard = wireguard if wireguard and wireguard.peers else None
        if self.master is not None and wireguard == self.wireguard and self.wireguard_addr():
            return  # unchanged and running: mitmproxy is not touched
        if self.master is not None and wireguard is None and self.wireguard is None:
            return
        self.wireguard = wireguard
        if self.master is None:
            self.opts.update(mode=self._modes(), allow_hosts=self._allow(self.target_hosts))
            return
        modes = self._modes()
        self.opts.update(mode=modes, allow_hosts=self._allow(self.target_hosts))
        ps = self.master.addons.get("proxyserver")
        await ps.servers.update([mode_specs.ProxyMode.parse(m) for m in modes])
        bad = [s for s in ps.servers if not s.is_running]
        if bad:
            raise OSError("; ".join(str(s.last_exception) for s in bad))

    def wireguard_addr(self) -> tuple[str, int] | None:
        """Where the devices' WireGuard server listens, when it runs."""
        if self.master is None or self.wireguard is None:
            return None
        for s in self.master.addons.get("proxyserver").servers:
            if isinstance(s.mode, mode_specs.WireGuardMode) and s.is_running and s.listen_addrs:
                a = s.listen_addrs[0]
                return str(a[0]), int(a[1])
        return None

    def _allow(self, hosts: list[str]) -> list[str]:
        # Nothing targeted: decrypt nothing (a pattern that can never match a "host:port"). With
        # devices, their setup page's address is read too (answered only to them: devicepage).
        setup = [rf"^{re.escape(SETUP_HOST)}:80$"] if self.wireguard else []
        return [allow_pattern(h) for h in hosts] + setup or [r"^$"]

    def retarget(self, hosts: list[str]) -> None:
        """Decrypt exactly these hosts from now on (new connections)."""
        self.target_hosts = hosts
        if self.master is not None:
            self.opts.update(allow_hosts=self._allow(hosts))

    async def stop(self) -> None:
        m, self.master = self.master, None
        if m is None:
            return
        m.shutdown()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=1.5)
            except (TimeoutError, asyncio.CancelledError):
                pass
            except Exception:
                log.exception("proxy stopped with an error")
        # run() returning leaves the listeners open (mitmproxy has no done hook for them): close them.
        await m.addons.get("proxyserver").servers.update([])
