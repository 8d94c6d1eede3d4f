"""The client-process lookup with real sockets and real processes: the one socket found by its two
addresses (sock_diag), or by its ports in /proc/net/tcp where netlink is refused, and the process
that holds it; psutil's whole-machine scan is the reference it must agree with."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import psutil
import pytest

from zerocontact.daemon import clientproc
from zerocontact.daemon.clientproc import process_for

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux lookup")

CLIENT = (
    "import socket, sys, time; c = socket.create_connection((sys.argv[1], int(sys.argv[2]))); "
    "print(c.getsockname()[1], flush=True); sys.stdin.read()"
)


@contextmanager
def connected(
    family: socket.AddressFamily = socket.AF_INET, host: str = "127.0.0.1", to: str | None = None
) -> Iterator[tuple[subprocess.Popen[str], tuple[str, int], tuple[str, int]]]:
    """A listener (the proxy) and a child process connected to it: (child, its end as the
    listener sees it, the listener's end of that connection)."""
    with socket.socket(family) as srv:
        srv.bind((host, 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        child = subprocess.Popen(
            [sys.executable, "-c", CLIENT, to or host, str(port)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None
            int(child.stdout.readline())
            conn, peer = srv.accept()
            with conn:
                yield (
                    child,
                    (str(peer[0]), int(peer[1])),
                    (str(conn.getsockname()[0]), int(conn.getsockname()[1])),
                )
        finally:
            child.kill()
            child.wait()


def name(pid: int) -> str:
    return f"{psutil.Process(pid).name()} ({pid})"


def test_names_the_child_process_that_holds_the_socket_as_psutil_would() -> None:
    with connected() as (child, peer, proxy):
        clientproc._RECENT.clear()
        assert process_for(peer, proxy) == name(child.pid)
        assert clientproc._psutil_pid(peer[1], proxy[1]) == child.pid  # the whole-machine scan agrees
        assert process_for(peer, proxy) == name(child.pid)  # again, now a process found before


def test_a_process_found_before_does_not_answer_for_another_connection() -> None:
    with connected() as (first, peer1, proxy1), connected() as (second, peer2, proxy2):
        assert process_for(peer1, proxy1) == name(first.pid)
        assert process_for(peer2, proxy2) == name(second.pid)
        assert process_for(peer1, proxy1) == name(first.pid)


def test_without_netlink_the_tcp_tables_find_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_: object) -> None:
        raise PermissionError(13, "netlink refused")

    with connected() as (child, peer, proxy):
        assert clientproc.diag_socket(peer, proxy) in clientproc.proc_sockets(peer[1], proxy[1])
        monkeypatch.setattr(clientproc, "diag_socket", refused)
        clientproc._RECENT.clear()
        assert process_for(peer, proxy) == name(child.pid)


def test_no_socket_and_a_closed_one_name_nobody() -> None:
    with connected() as (child, peer, proxy):
        wrong_port = (peer[0], 1)
        assert process_for(wrong_port, proxy) is None
        assert clientproc.diag_socket(wrong_port, proxy) is None
        child.kill()
        child.wait()
        # the client's socket is gone (or closing, held by no process): nobody holds it
        assert process_for(peer, proxy) is None


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6(), reason="this machine's loopback has no IPv6")
def test_ipv6_and_an_ipv4_client_of_a_dual_stack_listener() -> None:
    with connected(socket.AF_INET6, "::1") as (child, peer, proxy):
        assert process_for(peer, proxy) == name(child.pid)
    # a listener on :: sees an IPv4 client as ::ffff:127.0.0.1; the client's socket is IPv4
    with connected(socket.AF_INET6, "::", to="127.0.0.1") as (child, peer, proxy):
        assert peer[0].startswith("::ffff:")
        clientproc._RECENT.clear()
        assert process_for(peer, proxy) == name(child.pid)


def test_elsewhere_psutil_answers_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS and Windows take psutil's scan (those systems cannot run here; psutil's scan can, and
    it is the same code path there)."""
    with connected() as (child, peer, proxy):
        monkeypatch.setattr(clientproc.sys, "platform", "darwin")
        monkeypatch.setattr(clientproc, "_linux_pid", None)  # never reached off Linux
        assert process_for(peer, proxy) == name(child.pid)
