"""The one module that touches mitmproxy's master internals: start, reconfigure and stop the proxy.

mitmproxy's maintainers do not support embedding (mitmproxy#5171), so everything that depends on
``Master``, ``default_addons`` and the proxyserver's internals lives here, behind four methods, and an
end-to-end test catches drift when mitmproxy is upgraded.
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

from mitmproxy import addons, master, options

log = logging.getLogger("zerocontact.proxy")


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
    ) -> None:
        self.extra_addons = extra_addons
        self.opts = options.Options(
            listen_host=host, listen_port=port, confdir=str(confdir), mode=[f"regular@{host}:{port}"]
        )
        self.addon = addon
        self.target_hosts = target_hosts
        self.master: master.Master | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> tuple[str, int]:
        m = self.master = master.Master(self.opts)
        m.addons.add(*addons.default_addons())
        self.opts.update(
            connection_strategy="lazy",  # a blocked request never opens a connection to the platform
            http3=False,
            block_global=True,
            allow_hosts=self._allow(self.target_hosts),
            upstream_cert=False,
        )
        ready = _Ready()
        m.addons.add(self.addon, *self.extra_addons, ready)
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

    @staticmethod
    def _allow(hosts: list[str]) -> list[str]:
        # Nothing targeted: decrypt nothing (a pattern that can never match a "host:port").
        return [allow_pattern(h) for h in hosts] or [r"^$"]

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
