"""A minimal Chrome DevTools Protocol client over wsproto (already installed with mitmproxy)."""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any
from urllib.parse import urlsplit

from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Message, Ping, Request, TextMessage


class CDP:
    def __init__(self, ws_url: str, timeout: float = 20) -> None:
        u = urlsplit(ws_url)
        self.sock = socket.create_connection((u.hostname, u.port), timeout=timeout)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.sock.sendall(self.ws.send(Request(host=f"{u.hostname}:{u.port}", target=u.path)))
        self._next = 0
        self._buf = ""
        self._pending: list[dict[str, Any]] = []
        while not any(isinstance(e, AcceptConnection) for e in self._events()):
            pass

    def _events(self) -> list[Any]:
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("devtools closed the connection")
        self.ws.receive_data(data)
        out = []
        for e in self.ws.events():
            if isinstance(e, Ping):
                self.sock.sendall(self.ws.send(e.response()))
            elif isinstance(e, CloseConnection):
                raise ConnectionError("devtools closed the connection")
            out.append(e)
        return out

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        mid = self._next
        self.sock.sendall(
            self.ws.send(TextMessage(json.dumps({"id": mid, "method": method, "params": params})))
        )
        while True:
            for e in self._events():
                if isinstance(e, Message):
                    self._buf += e.data if isinstance(e, TextMessage) else e.data.decode()
                    if e.message_finished:
                        msg = json.loads(self._buf)
                        self._buf = ""
                        if msg.get("id") == mid:
                            if "error" in msg:
                                raise RuntimeError(f"{method}: {msg['error']}")
                            return msg.get("result", {})  # type: ignore[no-any-return]

    def evaluate(self, expression: str) -> Any:
        r = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return r.get("result", {}).get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def wait(self, expression: str, timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                got = self.evaluate(expression)
            except RuntimeError:
                got = None
            if got:
                return got
            time.sleep(0.05)  # polling interval
        raise AssertionError(f"timed out waiting for {expression}")

    def close(self) -> None:
        self.sock.close()
