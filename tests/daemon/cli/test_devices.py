"""``zerocontact devices``: peers with private keys, a config that scans, and removal as a loosening."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from zctest.e2e import RULES, ZC, start_daemon
from zctest.support import need_tool, wait_for


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def zc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZC, *args], capture_output=True, text=True, timeout=60)


def config_in(stdout: str) -> str:
    start = stdout.index("[Interface]")
    end = stdout.index("\n", stdout.index("Endpoint = ", start))
    return stdout[start : end + 1]


def terminal_qr_to_pbm(stdout: str, path: Path) -> None:
    """Turn the half-block QR the command drew back into modules, as a PBM image zbarimg can read."""
    lines = [ln for ln in stdout.splitlines() if ln and set(ln) <= set("█▀▄ ")]
    dark = {"█": (0, 0), " ": (1, 1), "▀": (0, 1), "▄": (1, 0)}
    rows: list[list[int]] = []
    for ln in lines:
        rows.append([dark[c][0] for c in ln])
        rows.append([dark[c][1] for c in ln])
    scale = 6
    width, height = len(rows[0]) * scale, len(rows) * scale
    wide = [" ".join(str(b) for b in row for _ in range(scale)) for row in rows]
    body = "\n".join(line for line in wide for _ in range(scale))
    path.write_text(f"P1\n{width} {height}\n{body}\n")


def decode(image: Path) -> str:
    zbar = need_tool("zbarimg")
    r = subprocess.run([zbar, "-q", "--raw", str(image)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.removesuffix("\n")  # zbarimg ends each symbol with a newline of its own


def test_add_writes_private_keys_and_a_config_whose_qr_codes_decode_to_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    r = zc("devices", "add", "phone", "--endpoint", "192.168.1.20", "--state-dir", str(state))
    assert r.returncode == 0, r.stderr
    conf = config_in(r.stdout)
    assert "Address = 10.0.0.2/32" in conf and "Endpoint = 192.168.1.20:51820" in conf
    assert "AllowedIPs = 0.0.0.0/0, ::/0" in conf  # nothing goes around the tunnel
    store = json.loads((state / "devices.json").read_text())
    (dev,) = store["devices"]
    assert f"PrivateKey = {dev['private_key']}" in conf
    for f in (state / "devices.json", state / "devices" / "phone.conf", state / "devices" / "phone.png"):
        assert f.stat().st_mode & 0o777 == 0o600, f
    assert (state / "devices" / "phone.conf").read_text() == conf
    assert decode(state / "devices" / "phone.png") == conf
    terminal_qr_to_pbm(r.stdout, tmp_path / "terminal.pbm")
    assert decode(tmp_path / "terminal.pbm") == conf
    assert "http://10.0.0.1/" in r.stdout  # where the device installs the certificate

    second = zc("devices", "add", "ipad", "--no-qr", "--state-dir", str(state))
    assert second.returncode == 0 and "█" not in second.stdout
    assert "Address = 10.0.0.3/32" in second.stdout and "192.168.1.20:51820" in second.stdout
    listed = zc("devices", "list", "--state-dir", str(state)).stdout
    assert "phone" in listed and "ipad" in listed and "10.0.0.3" in listed


def test_bad_and_duplicate_names_are_refused_plainly(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    assert zc("devices", "add", "phone", "--state-dir", state).returncode == 0
    for name, words in (("phone", "exists already"), ("My Phone", "lower-case"), ("../x", "lower-case")):
        r = zc("devices", "add", name, "--state-dir", state)
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = zc("devices", "remove", "tablet", "--state-dir", state)
    assert r.returncode == 1 and "no device named 'tablet'" in r.stderr


def test_remove_without_a_block_is_immediate(tmp_path: Path) -> None:
    state = tmp_path / "state"
    assert zc("devices", "add", "phone", "--state-dir", str(state)).returncode == 0
    r = zc("devices", "remove", "phone", "--state-dir", str(state))
    assert r.returncode == 0 and "removed" in r.stdout
    assert json.loads((state / "devices.json").read_text())["devices"] == []
    assert not (state / "devices" / "phone.conf").exists()


def test_remove_during_a_block_waits_out_the_cooling_off(tmp_path: Path) -> None:
    rules = RULES.replace("[[person]]", '[lock]\ncooling_off = "5s"\n\n[[person]]', 1)
    d = start_daemon(tmp_path, rules)
    state = str(d.state)
    try:
        add = zc(
            "devices",
            "add",
            "phone",
            "--endpoint",
            "127.0.0.1",
            "--port",
            str(free_udp_port()),
            "--state-dir",
            state,
        )
        assert add.returncode == 0, add.stderr
        r = zc("devices", "remove", "phone", "--state-dir", state)
        assert r.returncode == 3 and "waits out your cooling-off" in r.stdout, r.stdout + r.stderr
        assert zc("devices", "remove", "phone", "--state-dir", state).returncode == 3  # too soon
        wait_for(
            lambda: any(
                p["key"] == "device:phone" and "remove the device phone" in p["change"]
                for p in json.loads(zc("status", "--json", "--state-dir", state).stdout)["pending"]
            ),
            10,
            "status to show the pending removal",
        )
        assert "removal asked" in zc("devices", "list", "--state-dir", state).stdout
        assert zc("devices", "remove", "phone", "--cancel", "--state-dir", state).returncode == 0
        assert "removal asked" not in zc("devices", "list", "--state-dir", state).stdout
        assert zc("devices", "remove", "phone", "--state-dir", state).returncode == 3  # a new wait
        done = wait_for(
            lambda: (r := zc("devices", "remove", "phone", "--state-dir", state)).returncode == 0 and r,
            20,
            "the cooling-off to pass and the removal to run",
        )
        assert "removed" in done.stdout
        assert zc("devices", "list", "--state-dir", state).stdout.startswith("no devices")
    finally:
        d.stop()
