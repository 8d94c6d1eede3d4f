"""The mitmproxy addon chain the daemon runs (``daemon.proxy.ADDONS``), and what it imports."""

from __future__ import annotations

import subprocess
import sys

from mitmproxy import addons

from zerocontact.daemon.proxy import ADDONS, UNUSED_ADDONS, lean_addons


def test_the_chain_is_mitmproxys_defaults_less_exactly_the_unused_ones() -> None:
    defaults = [type(a).__name__ for a in addons.default_addons()]
    kept = [type(a).__name__ for a in lean_addons()]
    assert kept == [cls for _, cls in ADDONS]
    # every default addon is either run or named unused: one a later mitmproxy adds fails here
    assert set(defaults) == set(kept) | UNUSED_ADDONS
    assert not set(kept) & UNUSED_ADDONS
    assert kept == [name for name in defaults if name in kept]  # in mitmproxy's own order
    # what the daemon's options and modes need: core options and commands, block_global, h2c and
    # ECH stripping, the listeners, DNS for the devices' tunnel, the layers, the certificates
    needed = {"Core", "Block", "DisableH2C", "StripDnsHttpsRecords", "Proxyserver", "DnsResolver"}
    assert needed | {"NextLayer", "TlsConfig"} <= set(kept)


def test_the_daemon_imports_none_of_the_addons_it_never_runs() -> None:
    """In a process of its own: the daemon's modules leave out Flask (mitmproxy's onboarding app),
    ldap3 and the unused addons' modules; mitmproxy.addons still works whole for anyone who asks."""
    script = """
import sys
import zerocontact.daemon.app
from zerocontact.daemon.proxy import lean_addons
chain = lean_addons()
left = ["flask", "ldap3", "mitmproxy.addons.onboarding", "mitmproxy.addons.proxyauth",
        "mitmproxy.addons.blocklist", "mitmproxy.flowfilter"]
print(sorted(m for m in left if m in sys.modules))
from mitmproxy import addons
from mitmproxy.addons import default_addons
print(len(addons.default_addons()), len(default_addons()), "flask" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [
        "[]",
        f"{len(ADDONS) + len(UNUSED_ADDONS)} {len(ADDONS) + len(UNUSED_ADDONS)} True",
    ]
