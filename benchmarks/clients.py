"""Keep-alive clients for the traffic benchmarks: HTTP/1.1 (plain, or HTTPS through CONNECT) with
``http.client``, and HTTP/2 through CONNECT with the ``h2`` state machine mitmproxy already depends on
(no new dependency). Each ``get`` returns (status, body bytes received); bodies are read in full."""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Protocol

import h2.config
import h2.connection
import h2.events
import h2.settings


class Client(Protocol):
    def get(self, host: str, path: str, headers: dict[str, str]) -> tuple[int, int]: ...

    def close(self) -> None: ...


class Http1:
    """``GET http://host/path`` to the proxy itself (absolute-form), one keep-alive connection."""

    def __init__(self, proxy: tuple[str, int]) -> None:
        self.conn = http.client.HTTPConnection(*proxy, timeout=30)

    def get(self, host: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
        self.conn.request("GET", f"http://{host}{path}", headers=headers)
        r = self.conn.getresponse()
        n = len(r.read())
        if r.will_close:
            self.conn.close()
        return r.status, n

    def close(self) -> None:
        self.conn.close()


class Https1:
    """HTTPS through ``CONNECT host:443``, trusting only the proxy's CA: the decrypted path."""

    def __init__(self, proxy: tuple[str, int], ca: str, host: str) -> None:
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["http/1.1"])
        self.conn = http.client.HTTPSConnection(*proxy, timeout=30, context=ctx)
        self.conn.set_tunnel(host, 443)

    def get(self, host: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
        self.conn.request("GET", path, headers=headers)
        r = self.conn.getresponse()
        n = len(r.read())
        return r.status, n

    def close(self) -> None:
        self.conn.close()


class H2:
    """HTTP/2 over TLS through ``CONNECT host:443``: one connection, one stream at a time."""

    WINDOW = 2**24  # large windows, so a 2 MB body is not paced by WINDOW_UPDATE round trips

    def __init__(self, proxy: tuple[str, int], ca: str, host: str) -> None:
        raw = socket.create_connection(proxy, timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = raw.recv(4096)
            if not chunk:
                raise ConnectionError("the proxy closed the CONNECT")
            head += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"CONNECT refused: {head[:60]!r}")
        ctx = ssl.create_default_context(cafile=ca)
        ctx.set_alpn_protocols(["h2"])
        self.sock = ctx.wrap_socket(raw, server_hostname=host)
        if self.sock.selected_alpn_protocol() != "h2":
            raise ConnectionError(f"the proxy did not choose h2 ({self.sock.selected_alpn_protocol()})")
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: self.WINDOW})
        self.h2.increment_flow_control_window(self.WINDOW)
        self.sock.sendall(self.h2.data_to_send())

    def get(self, host: str, path: str, headers: dict[str, str]) -> tuple[int, int]:
        sid = self.h2.get_next_available_stream_id()
        hdrs = [(":method", "GET"), (":scheme", "https"), (":authority", host), (":path", path)]
        hdrs += [(k.lower(), v) for k, v in headers.items()]
        self.h2.send_headers(sid, hdrs, end_stream=True)
        self.sock.sendall(self.h2.data_to_send())
        status, n = 0, 0
        while True:
            data = self.sock.recv(262144)
            if not data:
                raise ConnectionError("the proxy closed the HTTP/2 connection")
            done = False
            for ev in self.h2.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived) and ev.stream_id == sid:
                    status = int(dict(ev.headers)[b":status"])
                elif isinstance(ev, h2.events.DataReceived):
                    n += len(ev.data)
                    self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                elif isinstance(ev, h2.events.StreamEnded) and ev.stream_id == sid:
                    done = True
                elif isinstance(ev, h2.events.StreamReset) and ev.stream_id == sid:
                    raise ConnectionError(f"stream reset: {ev.error_code}")
            out = self.h2.data_to_send()
            if out:
                self.sock.sendall(out)
            if done:
                return status, n

    def close(self) -> None:
        try:
            self.h2.close_connection()
            self.sock.sendall(self.h2.data_to_send())
        except OSError:
            pass
        self.sock.close()


def make(kind: str, proxy: tuple[str, int], ca: str, host: str) -> Client:
    if kind == "http":
        return Http1(proxy)
    if kind == "https":
        return Https1(proxy, ca, host)
    if kind == "h2":
        return H2(proxy, ca, host)
    raise ValueError(kind)
