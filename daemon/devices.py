"""The person's other devices (phones, tablets): WireGuard peers of the daemon, kept in one state file.

A device is a WireGuard key pair and a tunnel address of its own: the daemon runs one mitmproxy
WireGuard server (``proxy.Proxy``) that accepts every device's public key, and tells devices apart by
the tunnel address their traffic comes from, so an attempt on the phone is journalled with its name.
``devices.json`` holds the server's private key and each device's keys; it and each device's client
config (``devices/NAME.conf``, ``NAME.png``) are written 0600, like the CA key.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import os
import re
import socket
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import mitmproxy_rs

from zerocontact.rules.errors import UserFacingError

from .journal.schema import DEVICE_PREFIX
from .paths import Paths, write_private
from .proxy import SETUP_HOST

__all__ = ["DEVICE_PREFIX", "Device", "DeviceError", "Devices"]

DEFAULT_PORT = 51820  # WireGuard's usual port; the phone's config names it
NETWORK = ipaddress.ip_network("10.0.0.0/24")  # tunnel addresses, as mitmproxy's WireGuard mode uses
DNS = ipaddress.ip_address("10.0.0.53")  # answered by mitmproxy inside the tunnel (never a device)
SETUP_ADDRESS = ipaddress.ip_address(SETUP_HOST)  # the CA install page, inside the tunnel only
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class DeviceError(UserFacingError):
    """A device command the user can correct (a bad or unknown name, a damaged store)."""


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    private_key: str
    public_key: str
    address: str  # its tunnel address, unique among devices
    added: str
    remove_requested: str | None = None  # `devices remove` during a block: due after the cooling-off


@dataclass(frozen=True, slots=True)
class Devices:
    """Everything ``devices.json`` holds: where the WireGuard server listens and who may connect."""

    server_key: str
    host: str
    port: int
    devices: tuple[Device, ...] = ()

    @property
    def server_public_key(self) -> str:
        return mitmproxy_rs.wireguard.pubkey(self.server_key)

    def get(self, name: str) -> Device | None:
        return next((d for d in self.devices if d.name == name), None)

    def by_address(self) -> dict[str, str]:
        """Tunnel address → device name (how the proxy names the device behind a connection)."""
        return {d.address: d.name for d in self.devices}

    def peers(self) -> tuple[str, ...]:
        return tuple(d.public_key for d in self.devices)

    def with_device(self, name: str, now: dt.datetime) -> tuple[Devices, Device]:
        check_name(name)
        if self.get(name):
            raise DeviceError(f"a device named {name!r} exists already (`zerocontact devices list`)")
        used = {d.address for d in self.devices} | {str(DNS), str(SETUP_ADDRESS)}
        free = next((str(a) for a in NETWORK.hosts() if str(a) not in used), None)
        if free is None:
            raise DeviceError("no tunnel address is left for another device (250 at most)")
        key = mitmproxy_rs.wireguard.genkey()
        dev = Device(name, key, mitmproxy_rs.wireguard.pubkey(key), free, now.isoformat())
        return replace(self, devices=(*self.devices, dev)), dev

    def without(self, name: str) -> Devices:
        return replace(self, devices=tuple(d for d in self.devices if d.name != name))

    def with_request(self, name: str, when: dt.datetime | None) -> Devices:
        stamp = when.isoformat() if when else None
        return replace(
            self,
            devices=tuple(replace(d, remove_requested=stamp) if d.name == name else d for d in self.devices),
        )

    def client_config(self, dev: Device) -> str:
        """The WireGuard config the device imports: every address (IPv4 and IPv6) into the tunnel, so
        nothing on the device goes around the daemon while the tunnel is on."""
        endpoint = f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"
        return (
            "[Interface]\n"
            f"PrivateKey = {dev.private_key}\n"
            f"Address = {dev.address}/32\n"
            f"DNS = {DNS}\n"
            "\n"
            "[Peer]\n"
            f"PublicKey = {self.server_public_key}\n"
            "AllowedIPs = 0.0.0.0/0, ::/0\n"
            f"Endpoint = {endpoint}\n"
        )


def check_name(name: str) -> None:
    if not NAME_RE.match(name):
        raise DeviceError(
            f"device name {name!r}: use 1-32 lower-case letters, digits, '-' or '_' (e.g. phone, ipad)"
        )


def lan_address() -> str:
    """This machine's address on its local network (the route to the internet; no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: connecting a UDP socket only picks a route
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def load(paths: Paths) -> Devices | None:
    """The devices store, or None when no device was ever added."""
    try:
        text = paths.devices.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as e:
        raise DeviceError(f"cannot read {paths.devices}: {e.strerror}") from None
    try:
        raw: dict[str, Any] = json.loads(text)
        return Devices(
            server_key=str(raw["server_key"]),
            host=str(raw["host"]),
            port=int(raw["port"]),
            devices=tuple(Device(**d) for d in raw.get("devices", [])),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise DeviceError(f"{paths.devices} is damaged ({e}); it holds the devices' keys") from None


def new_store(host: str, port: int) -> Devices:
    return Devices(mitmproxy_rs.wireguard.genkey(), host, port)


def save(paths: Paths, store: Devices) -> None:
    paths.ensure_state()
    data = {**asdict(store), "devices": [asdict(d) for d in store.devices]}
    write_private(paths.devices, json.dumps(data, indent=2))


def qr_matrix(text: str) -> tuple[tuple[bool, ...], ...]:
    """The QR code for ``text`` as rows of dark (True) modules, with the 4-module quiet zone."""
    import segno

    qr = segno.make(text, error="m", micro=False)
    size = len(qr.matrix)
    border = 4
    rows = [[False] * (size + 2 * border) for _ in range(border)]
    for row in qr.matrix:
        rows.append([False] * border + [bool(b) for b in row] + [False] * border)
    rows += [[False] * (size + 2 * border) for _ in range(border)]
    return tuple(tuple(r) for r in rows)


def qr_terminal(text: str) -> str:
    """The QR code drawn with half blocks, two modules per character: dark modules are spaces on a
    light block so it scans on dark and light terminals alike (light is '█', dark is ' ')."""
    m = qr_matrix(text)
    glyph = {(False, False): "█", (True, True): " ", (True, False): "▄", (False, True): "▀"}
    lines = []
    for y in range(0, len(m), 2):
        top, bottom = m[y], m[y + 1] if y + 1 < len(m) else tuple(False for _ in m[y])
        lines.append("".join(glyph[(t, b)] for t, b in zip(top, bottom, strict=True)))
    return "\n".join(lines)


def qr_png(text: str) -> bytes:
    import segno

    buf = io.BytesIO()
    segno.make(text, error="m", micro=False).save(buf, kind="png", scale=8, border=4)
    return buf.getvalue()


def write_config(paths: Paths, store: Devices, dev: Device) -> tuple[Path, Path]:
    """Write the device's config and its QR code (both hold its private key: 0600)."""
    folder = paths.devices_dir
    folder.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)
    conf = store.client_config(dev)
    conf_path, png_path = folder / f"{dev.name}.conf", folder / f"{dev.name}.png"
    write_private(conf_path, conf)
    fd = os.open(png_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(qr_png(conf))
    return conf_path, png_path


def forget_config(paths: Paths, name: str) -> None:
    for suffix in (".conf", ".png"):
        (paths.devices_dir / f"{name}{suffix}").unlink(missing_ok=True)
