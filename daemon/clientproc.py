"""Which local process opened a connection to the proxy (best effort, for the journal only).

On Linux the one socket is asked for by its two addresses (``sock_diag``, what ``ss`` uses: the
kernel looks that socket up directly), or, where netlink is refused, found by its ports in
``/proc/net/tcp`` searched as bytes; then the process holding its inode, looking first at the
processes found before (a browser opens many connections), then at the socket owner's.
``psutil.net_connections`` instead parses every TCP socket of the machine in Python and maps every
file descriptor of every process: 40–105 ms of CPU, most of it holding the GIL the proxy's loop
needs, for each new connection that is blocked (measured with 3,000–6,000 sockets and 619
processes: benchmarks/README.md, tenth pass). Elsewhere psutil answers, as before.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import re
import socket
import struct
import sys
from collections.abc import Iterator

# recently found client processes, most recent last: looked at first
_RECENT: list[int] = []
_RECENT_MAX = 8

_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST = 1
_NLMSG_ERROR = 2
_NO_COOKIE = 0xFFFFFFFF


def process_for(client: tuple[str, int], proxy: tuple[str, int]) -> str | None:
    """'name (pid)' of the local process whose socket at ``client`` (the connection's peer, as the
    proxy sees it) is connected to ``proxy`` (the proxy's end of the same connection)."""
    # imported on the first lookup (in the Blocker's lookup thread), not before the daemon is ready
    import psutil

    pid: int | None
    if sys.platform.startswith("linux") and os.path.isdir("/proc/self/fd"):
        pid = _linux_pid(client, proxy)
    else:
        pid = _psutil_pid(client[1], proxy[1])
    if pid is None:
        return None
    if pid in _RECENT:
        _RECENT.remove(pid)
    _RECENT.append(pid)
    del _RECENT[:-_RECENT_MAX]
    try:
        return f"{psutil.Process(pid).name()} ({pid})"
    except psutil.Error:
        return f"pid {pid} (exited)"


def _psutil_pid(client_port: int, proxy_port: int) -> int | None:
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return None
    for c in conns:
        if c.laddr and c.laddr.port == client_port and c.raddr and c.raddr.port == proxy_port and c.pid:
            return int(c.pid)
    return None


def _linux_pid(client: tuple[str, int], proxy: tuple[str, int]) -> int | None:
    try:
        found = diag_socket(client, proxy)
        sockets = [found] if found else []
    except (OSError, ValueError):  # no sock_diag here (a sandbox, an old kernel): read the tables
        sockets = proc_sockets(client[1], proxy[1])
    sockets = [(uid, inode) for uid, inode in sockets if inode]  # 0: closing, held by no process
    if not sockets:
        return None
    links = {f"socket:[{inode}]" for _, inode in sockets}
    owners = {uid for uid, _ in sockets}
    for pid in _candidates(owners):
        if _holds(pid, links):
            return pid
    return None


def diag_socket(client: tuple[str, int], proxy: tuple[str, int]) -> tuple[int, int] | None:
    """(owner uid, inode) of the TCP socket bound at ``client`` and connected to ``proxy``, from the
    kernel by exact lookup (``SOCK_DIAG_BY_FAMILY`` without a dump); None if there is none. Raises
    OSError where sock_diag cannot be used."""
    src, dst = ipaddress.ip_address(client[0]), ipaddress.ip_address(proxy[0])
    tries = [(src, dst)]
    if isinstance(src, ipaddress.IPv6Address) and isinstance(dst, ipaddress.IPv6Address):
        s4, d4 = src.ipv4_mapped, dst.ipv4_mapped
        if s4 is not None and d4 is not None:  # a dual-stack listener sees an IPv4 client so
            tries.insert(0, (s4, d4))
    for a, b in tries:
        found = _diag(a, client[1], b, proxy[1])
        if found is not None:
            return found
    return None


def _diag(
    src: ipaddress.IPv4Address | ipaddress.IPv6Address,
    sport: int,
    dst: ipaddress.IPv4Address | ipaddress.IPv6Address,
    dport: int,
) -> tuple[int, int] | None:
    family = socket.AF_INET if src.version == 4 else socket.AF_INET6
    sockid = (
        struct.pack(">HH", sport, dport)
        + src.packed.ljust(16, b"\0")
        + dst.packed.ljust(16, b"\0")
        + struct.pack("=III", 0, _NO_COOKIE, _NO_COOKIE)
    )
    req = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 0xFFFFFFFF) + sockid
    msg = struct.pack("=IHHII", 16 + len(req), _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST, 1, 0) + req
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_SOCK_DIAG) as s:
        s.settimeout(2)
        s.sendto(msg, (0, 0))
        data = s.recv(8192)
    _, kind = struct.unpack_from("=IH", data)
    if kind == _NLMSG_ERROR:
        code = -struct.unpack_from("=i", data, 16)[0]
        if code == errno.ENOENT:
            return None
        raise OSError(code, os.strerror(code))
    if kind != _SOCK_DIAG_BY_FAMILY or len(data) < 88:
        raise ValueError(f"unexpected sock_diag reply (type {kind}, {len(data)} bytes)")
    # inet_diag_msg after the 16-byte header: 4 bytes, the 48-byte socket id, expires, rqueue, wqueue
    uid, inode = struct.unpack_from("=II", data, 16 + 4 + 48 + 12)
    return uid, inode


def _socket_line(client_port: int, proxy_port: int) -> re.Pattern[bytes]:
    """A line of /proc/net/tcp{,6} for a socket from ``client_port`` to ``proxy_port``: ``sl local
    rem st tx:rx tr:when retrnsmt uid timeout inode``, addresses as HEX:PORT (ports 4 hex digits)."""
    return re.compile(
        rb"^\s*\d+:\s+[0-9A-F]+:%04X\s+[0-9A-F]+:%04X\s+[0-9A-F]{2}\s+\S+\s+\S+\s+\S+\s+(\d+)\s+\d+\s+(\d+)"
        % (client_port, proxy_port),
        re.MULTILINE,
    )


def proc_sockets(client_port: int, proxy_port: int) -> list[tuple[int, int]]:
    """(owner uid, inode) of every socket from ``client_port`` to ``proxy_port`` in /proc/net/tcp
    and tcp6 (a few ms of the kernel's time, but only a byte search of the text for Python)."""
    line = _socket_line(client_port, proxy_port)
    out: list[tuple[int, int]] = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, "rb") as f:
                text = f.read()
        except OSError:
            continue
        out += [(int(m.group(1)), int(m.group(2))) for m in line.finditer(text)]
    return out


def _candidates(owners: set[int]) -> Iterator[int]:
    """Every process, in the order most likely to hold the socket: those found before (only then is
    /proc listed), the socket owner's, newest first (a client that just connected is more often new
    than old), then the rest (a process that made itself undumpable shows as root's)."""
    recent = _RECENT[::-1]  # a copy: another lookup thread may reorder the list meanwhile
    seen = set(recent)
    yield from recent
    try:
        pids = sorted((int(n) for n in os.listdir("/proc") if n.isdigit()), reverse=True)
    except OSError:
        return
    others: list[int] = []
    for pid in pids:
        if pid in seen:
            continue
        try:
            owner = os.stat(f"/proc/{pid}").st_uid
        except OSError:
            continue  # exited
        if owner in owners:
            yield pid
        else:
            others.append(pid)
    yield from others


def _holds(pid: int, links: set[str]) -> bool:
    """Does process ``pid`` hold one of the sockets ``links`` names (``socket:[inode]``)?"""
    base = f"/proc/{pid}/fd"
    try:
        fds = os.listdir(base)
    except OSError:  # exited, or not ours to look at (psutil skipped those too)
        return False
    for fd in fds:
        try:
            if os.readlink(f"{base}/{fd}") in links:
                return True
        except OSError:
            continue
    return False
