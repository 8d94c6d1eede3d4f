"""The certificate install page the daemon serves to its devices, at http://10.0.0.1/ in the tunnel.

Only a connection that came through the devices' WireGuard tunnel gets it (the address exists
nowhere else): the page with two steps per system, an iOS configuration profile and the CA as a
DER certificate for Android. It is answered before any connection is made.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from mitmproxy import http

from .blockpage import Pages
from .devices import SETUP_ADDRESS
from .proxy import is_wireguard

HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def mobileconfig(cert: x509.Certificate) -> bytes:
    """An iOS configuration profile holding the CA (a com.apple.security.root payload)."""
    der = cert.public_bytes(serialization.Encoding.DER)
    name = cert.subject.rfc4514_string()
    seed = hashlib.sha256(der).digest()
    profile_id, payload_id = uuid.UUID(bytes=seed[:16]), uuid.UUID(bytes=seed[16:])
    data = base64.b64encode(der).decode()
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
<plist version="1.0">
<dict>
  <key>PayloadContent</key>
  <array>
    <dict>
      <key>PayloadCertificateFileName</key><string>zerocontact.cer</string>
      <key>PayloadContent</key><data>{data}</data>
      <key>PayloadDescription</key><string>zerocontact's local certificate</string>
      <key>PayloadDisplayName</key><string>zerocontact</string>
      <key>PayloadIdentifier</key><string>org.zerocontact.ca.{payload_id}</string>
      <key>PayloadType</key><string>com.apple.security.root</string>
      <key>PayloadUUID</key><string>{payload_id}</string>
      <key>PayloadVersion</key><integer>1</integer>
    </dict>
  </array>
  <key>PayloadDescription</key><string>Lets this device show zerocontact's pause page ({name})</string>
  <key>PayloadDisplayName</key><string>zerocontact</string>
  <key>PayloadIdentifier</key><string>org.zerocontact.{profile_id}</string>
  <key>PayloadType</key><string>Configuration</string>
  <key>PayloadUUID</key><string>{profile_id}</string>
  <key>PayloadVersion</key><integer>1</integer>
</dict>
</plist>
""".encode()


class DevicePage:
    """A mitmproxy addon answering http://10.0.0.1/ for WireGuard peers; placed before the Blocker."""

    def __init__(
        self,
        ca_cert: Path,
        device_name: dict[str, str],
        pages: Pages | None = None,
        on_certificate: Callable[[str], None] | None = None,
    ) -> None:
        self.cert = x509.load_pem_x509_certificate(ca_cert.read_bytes())
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.profile = mobileconfig(self.cert)
        self.devices = device_name  # shared with the Blocker: tunnel address → device name
        self.on_certificate = on_certificate  # a device took the certificate (pinning.certificate_taken)
        self.template = (pages or Pages()).env.get_template("devices.html")
        cn = self.cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        self.ca_name = str(cn[0].value) if cn else "zerocontact"

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None or flow.request.host != str(SETUP_ADDRESS):
            return
        if not is_wireguard(flow.client_conn):
            return
        path = flow.request.path.split("?")[0]
        peer = flow.client_conn.peername
        device = self.devices.get(str(peer[0])) if peer else None
        if path in ("/zerocontact.mobileconfig", "/zerocontact.crt") and device and self.on_certificate:
            self.on_certificate(device)
        if path == "/zerocontact.mobileconfig":
            flow.response = http.Response.make(
                200, self.profile, {**HEADERS, "Content-Type": "application/x-apple-aspen-config"}
            )
        elif path == "/zerocontact.crt":
            flow.response = http.Response.make(
                200,
                self.der,
                {
                    **HEADERS,
                    "Content-Type": "application/x-x509-ca-cert",
                    "Content-Disposition": 'attachment; filename="zerocontact.crt"',
                },
            )
        else:
            body = self.template.render(device=device or "this device", ca_name=self.ca_name)
            flow.response = http.Response.make(
                200, body, {**HEADERS, "Content-Type": "text/html; charset=utf-8"}
            )
