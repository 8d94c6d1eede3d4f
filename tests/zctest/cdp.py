"""A minimal Chrome DevTools Protocol client over wsproto (already installed with mitmproxy)."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
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


class Browser:
    """Headless Chromium with its DevTools socket: one page, driven over CDP (no proxy, offline)."""

    def __init__(self, profile: Path, *args: str, env: dict[str, str] | None = None) -> None:
        from zctest.support import chromium_args, wait_for

        self.proc = subprocess.Popen(
            chromium_args(profile, "--remote-debugging-port=0", *args, "about:blank"),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        port = wait_for(lambda: port_file.exists() and port_file.read_text().split("\n")[0], 30, "devtools")
        targets = wait_for(
            lambda: [
                t
                for t in json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5))
                if t["type"] == "page"
            ],
            30,
            "a page target",
        )
        self.page = CDP(targets[0]["webSocketDebuggerUrl"])

    def view(self, url: str, *, width: int, height: int, mobile: bool = False, dark: bool = False) -> None:
        """Load ``url`` in a viewport of this size (a phone: mobile, 2x pixels), light or dark."""
        self.page.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=2 if mobile else 1,
            mobile=mobile,
        )
        self.page.call(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}],
        )
        self.page.call("Page.enable")
        self.page.call("Page.navigate", url=url)
        self.page.wait("document.readyState === 'complete' && location.href !== 'about:blank'")

    def full_screenshot(self) -> bytes:
        """The whole page, not only the viewport."""
        size = self.page.call("Page.getLayoutMetrics")["cssContentSize"]
        shot = self.page.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        )
        return base64.b64decode(shot["data"])

    def overflowing(self) -> dict[str, Any]:
        """Every element wider than the viewport or reaching past its edges, and the page's width."""
        return self.page.evaluate(  # type: ignore[no-any-return]
            """(() => {
              const w = document.documentElement.clientWidth, bad = [];
              for (const e of document.querySelectorAll('body *')) {
                const r = e.getBoundingClientRect();
                if (r.width === 0 && r.height === 0) continue;  // not shown (display: none)
                if (r.width > w + 0.5 || r.right > w + 0.5 || r.left < -0.5)
                  bad.push(`${e.tagName}.${e.getAttribute('class') || ''} ` +
                           `${Math.round(r.left)}..${Math.round(r.right)}`);
              }
              return {width: w, scrollWidth: document.documentElement.scrollWidth, bad};
            })()"""
        )

    def close(self) -> None:
        self.page.close()
        self.proc.kill()
        self.proc.wait()
