"""The devices store: unique tunnel addresses, the client config, private files, a damaged store."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import mitmproxy_rs
import pytest
from mitmproxy.proxy import mode_specs

from zerocontact.daemon import devices as devmod
from zerocontact.daemon.paths import Paths
from zerocontact.daemon.proxy import WireGuard

NOW = dt.datetime(2026, 12, 1, 22, 0, tzinfo=dt.UTC)


def paths(tmp_path: Path) -> Paths:
    return Paths(config_dir=tmp_path / "cfg", state_dir=tmp_path / "state")


def test_devices_get_distinct_addresses_that_skip_the_reserved_ones() -> None:
    store = devmod.new_store("192.168.1.20", 51820)
    seen = []
    for i in range(5):
        store, dev = store.with_device(f"d{i}", NOW)
        seen.append(dev.address)
    assert seen == ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
    assert str(devmod.SETUP_ADDRESS) not in seen and str(devmod.DNS) not in seen
    assert store.by_address()["10.0.0.4"] == "d2"
    # a freed address is given again, never one in use
    store, again = store.without("d1").with_device("new", NOW)
    assert again.address == "10.0.0.3"
    assert len({d.address for d in store.devices}) == len(store.devices)


def test_the_client_config_pairs_the_device_key_with_the_server() -> None:
    store, dev = devmod.new_store("fd00::5", 4000).with_device("phone", NOW)
    conf = store.client_config(dev)
    assert f"PrivateKey = {dev.private_key}" in conf
    assert mitmproxy_rs.wireguard.pubkey(dev.private_key) == dev.public_key
    assert f"PublicKey = {store.server_public_key}" in conf
    assert "Endpoint = [fd00::5]:4000" in conf  # an IPv6 endpoint is bracketed
    assert store.peers() == (dev.public_key,)


def test_saved_store_is_private_and_reads_back(tmp_path: Path) -> None:
    p = paths(tmp_path)
    assert devmod.load(p) is None
    store, dev = devmod.new_store("10.1.1.1", 51820).with_device("ipad", NOW)
    devmod.save(p, store)
    assert p.devices.stat().st_mode & 0o777 == 0o600
    assert devmod.load(p) == store
    asked = store.with_request("ipad", NOW)
    assert asked.get("ipad") is not None and asked.get("ipad").remove_requested == NOW.isoformat()  # type: ignore[union-attr]
    assert asked.with_request("ipad", None).get("ipad") == dev


def test_a_damaged_store_is_a_plain_error(tmp_path: Path) -> None:
    p = paths(tmp_path)
    p.ensure_state()
    p.devices.write_text(json.dumps({"server_key": "x"}))
    with pytest.raises(devmod.DeviceError, match="damaged"):
        devmod.load(p)


def test_the_wireguard_spec_changes_with_the_peers_and_never_shows_a_key() -> None:
    key = mitmproxy_rs.wireguard.genkey()
    one = WireGuard("10.1.1.1", 51820, key, ("peerA",))
    two = WireGuard("10.1.1.1", 51820, key, ("peerA", "peerB"))
    assert one.spec() != two.spec()  # mitmproxy restarts the server with the new peers
    assert key not in one.spec() and one.spec().endswith("@10.1.1.1:51820")
    v6 = mode_specs.ProxyMode.parse(WireGuard("fd00::1", 1, key, ("p",)).spec())
    assert (v6.custom_listen_host, v6.custom_listen_port) == ("fd00::1", 1)  # as mitmproxy reads it


def test_a_device_cannot_reach_this_computers_loopback() -> None:
    from types import SimpleNamespace

    from zerocontact.daemon.proxy import _DeviceTraffic

    wg, regular = mode_specs.ProxyMode.parse("wireguard"), mode_specs.ProxyMode.parse("regular")

    def connect(mode: mode_specs.ProxyMode, host: str) -> str | None:
        data = SimpleNamespace(
            client=SimpleNamespace(proxy_mode=mode), server=SimpleNamespace(address=(host, 80), error=None)
        )
        _DeviceTraffic().server_connect(data)
        return data.server.error  # type: ignore[no-any-return]

    for host in ("127.0.0.1", "127.8.9.1", "::1", "0.0.0.0", "localhost"):
        assert connect(wg, host) is not None, host
    assert connect(wg, "10.214.1.1") is None and connect(wg, "www.example.org") is None
    assert connect(regular, "127.0.0.1") is None  # the computer's own clients are not devices
