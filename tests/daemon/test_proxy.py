"""The mitmproxy addon chain the daemon runs (``daemon.proxy.lean_addons``)."""

from __future__ import annotations

from mitmproxy import addons

from zerocontact.daemon.proxy import UNUSED_ADDONS, lean_addons


def test_only_addons_the_daemon_never_uses_are_left_out() -> None:
    defaults = {type(a).__name__ for a in addons.default_addons()}
    kept = {type(a).__name__ for a in lean_addons()}
    # a name mitmproxy no longer has would silently stop leaving its addon out
    assert not UNUSED_ADDONS - defaults, UNUSED_ADDONS - defaults
    assert kept == defaults - UNUSED_ADDONS
    # what the daemon's options and modes need: core options and commands, block_global, h2c and
    # ECH stripping, the listeners, DNS for the devices' tunnel, the layers, the certificates
    needed = {"Core", "Block", "DisableH2C", "StripDnsHttpsRecords", "Proxyserver", "DnsResolver"}
    assert needed | {"NextLayer", "TlsConfig"} <= kept
