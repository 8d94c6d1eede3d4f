"""Managed browser policies: the strongest routing there is, since the browser itself enforces them.

Chromium and Chrome (and Edge, Brave) read ``/etc/<browser>/policies/managed/*.json`` on Linux:

* ``ProxySettings``: a PAC script given as a ``data:`` URL. It needs no server, and it answers only
  ``PROXY 127.0.0.1:8341`` for the target platforms (no DIRECT fallback): when the daemon is stopped
  or killed, the targets fail closed and everything else still goes DIRECT (the system-mode browser
  test proves it with the daemon SIGKILLed). A PAC *URL* that cannot be fetched would make Chromium
  fall back to DIRECT for everything (checked: feasibility.md §1), and so would a PAC that fails to
  run: ``ProxyPacMandatory`` turns that silent fail-open into a visible error for every site.
* ``QuicAllowed: false``: HTTP/3 runs over UDP and would slip past a TCP proxy.
* ``DnsOverHttpsMode: "off"``: name lookups stay visible to the system and its PAC.
* ``CACertificatesWithConstraints``: trust the CA, and only for the targeted domains, on top of
  the constraints inside the CA itself.

Firefox reads ``policies.json`` (Linux: ``/etc/firefox/policies/``): the proxy locked to the PAC file,
the CA installed, DNS over HTTPS off and locked, HTTP/3 off and locked. Both need ``--system``.
Windows gets the Chromium-family settings as registry policies; macOS only honours Chrome policies
from an MDM profile, so there Chrome follows the system proxy and the System keychain instead.
"""

from __future__ import annotations

import base64
import json
from pathlib import PurePath, PurePosixPath, PureWindowsPath
from typing import Any

from zerocontact.daemon import ca
from zerocontact.daemon.pac import pac

from .context import LABEL, Context
from .ops import Dir, File, JsonKeys, Op, Step
from .trust import CaMaterial
from .windows import RegValue

CHROMIUM_DIRS = {
    "Chromium": PurePosixPath("/etc/chromium/policies/managed"),
    "Google Chrome": PurePosixPath("/etc/opt/chrome/policies/managed"),
    "Microsoft Edge": PurePosixPath("/etc/opt/edge/policies/managed"),
    "Brave": PurePosixPath("/etc/brave/policies/managed"),
}
WINDOWS_POLICY_KEYS = {
    "Google Chrome": r"HKLM\SOFTWARE\Policies\Google\Chrome",
    "Microsoft Edge": r"HKLM\SOFTWARE\Policies\Microsoft\Edge",
    "Chromium": r"HKLM\SOFTWARE\Policies\Chromium",
}
FIREFOX_APP = {  # where Firefox must already be for its bundled policies.json to mean anything
    "darwin": PurePosixPath("/Applications/Firefox.app"),
    "windows": PureWindowsPath(r"C:\Program Files\Mozilla Firefox"),
}
FIREFOX_POLICIES = {
    "linux": PurePosixPath("/etc/firefox/policies/policies.json"),
    "darwin": PurePosixPath("/Applications/Firefox.app/Contents/Resources/distribution/policies.json"),
    "windows": PureWindowsPath(r"C:\Program Files\Mozilla Firefox\distribution\policies.json"),
}


def pac_text(ctx: Context) -> str:
    """The PAC for this installation: only the targeted hosts go to the proxy, with no fallback."""
    return pac(list(ctx.hosts), ctx.proxy)


def pac_data_url(ctx: Context) -> str:
    """The PAC as a ``data:`` URL: nothing to fetch, so nothing that can be down."""
    return (
        "data:application/x-ns-proxy-autoconfig;base64," + base64.b64encode(pac_text(ctx).encode()).decode()
    )


def chromium_policy(ctx: Context, cert_pem: bytes | None) -> dict[str, Any]:
    """The managed policy document (the CA entry only when a certificate is given)."""
    doc: dict[str, Any] = {
        "ProxySettings": {
            "ProxyMode": "pac_script",
            "ProxyPacUrl": pac_data_url(ctx),
            "ProxyPacMandatory": True,  # a PAC that failed to run would otherwise mean DIRECT, targets too
        },
        "QuicAllowed": False,
        "DnsOverHttpsMode": "off",
    }
    if cert_pem is not None:
        doc["CACertificatesWithConstraints"] = [
            {
                "certificate": ca.der_base64(cert_pem),
                "constraints": {"permitted_dns_names": list(ca.normalise(ctx.hosts) or (ca.NOTHING,))},
            }
        ]
    return doc


def policy_json(doc: dict[str, Any]) -> bytes:
    """A policy document as written to disk."""
    return (json.dumps(doc, indent=2) + "\n").encode()


class ChromiumPolicy(Step):
    """Managed policies for every Chromium-family browser (files on Linux, registry on Windows)."""

    name = "policy-chromium"
    title = "Chromium/Chrome/Edge/Brave managed policy: PAC, QUIC off, DoH off, the CA for the targets only"

    def __init__(self, ctx: Context, material: CaMaterial, browsers: dict[str, PurePosixPath] | None = None):
        super().__init__(ctx)
        self.material = material
        self.browsers = CHROMIUM_DIRS if browsers is None else browsers

    def content(self) -> bytes:
        return policy_json(chromium_policy(self.ctx, self.material.cert()))

    def ops(self) -> list[Op]:
        if self.ctx.os == "windows":
            return self._windows()
        if self.ctx.os != "linux":
            return []
        ops: list[Op] = []
        for browser, d in self.browsers.items():
            ops += [Dir(d), File(d / f"{LABEL}.json", self.content, 0o644, browser)]
        return ops

    def _windows(self) -> list[Op]:
        doc = chromium_policy(self.ctx, None)  # the CA is in the Windows root store (trust step)
        ops: list[Op] = []
        for browser, key in WINDOWS_POLICY_KEYS.items():
            ops += [
                RegValue(key, "ProxySettings", "REG_SZ", json.dumps(doc["ProxySettings"]), browser),
                RegValue(key, "QuicAllowed", "REG_DWORD", "0"),
                RegValue(key, "DnsOverHttpsMode", "REG_SZ", "off"),
            ]
        return ops

    def notes(self) -> list[str]:
        if self.ctx.os == "darwin":
            return ["macOS applies Chrome policies only from an MDM profile: Chrome follows the system proxy"]
        return ["written for every Chromium-family browser, so one installed later is covered too"]


def _file_url(p: PurePath) -> str:
    return p.as_uri()


class FirefoxPolicy(Step):
    """Firefox's enterprise policies, merged into any policies.json already there."""

    name = "policy-firefox"
    title = "Firefox policies.json: proxy locked to the PAC, the CA installed, DoH and HTTP/3 off"

    def __init__(self, ctx: Context, ca_file: PurePath, pac_file: PurePath) -> None:
        super().__init__(ctx)
        self.ca_file, self.pac_file = ca_file, pac_file

    @property
    def path(self) -> PurePath:
        return FIREFOX_POLICIES[self.ctx.os]

    def values(self) -> dict[tuple[str, ...], Any]:
        return {
            ("policies", "Proxy"): {
                "Mode": "autoConfig",
                "AutoConfigURL": _file_url(self.pac_file),
                "Locked": True,
            },
            ("policies", "Certificates", "Install"): [str(self.ca_file)],
            ("policies", "DNSOverHTTPS"): {"Enabled": False, "Locked": True},
            ("policies", "Preferences", "network.http.http3.enable"): {"Value": False, "Status": "locked"},
        }

    def ops(self) -> list[Op]:
        app = FIREFOX_APP.get(self.ctx.os)
        if app is not None and not self.ctx.at(app).exists():
            return []  # Firefox is not installed there: its bundle must not be made up
        return [JsonKeys(self.path, self.values(), 0o644)]

    def notes(self) -> list[str]:
        app = FIREFOX_APP.get(self.ctx.os)
        if app is not None and not self.ops():
            return [f"Firefox is not installed ({app} is missing); run install again after installing it"]
        return []
