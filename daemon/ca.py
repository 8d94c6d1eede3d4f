"""zerocontact's own CA, limited with X.509 name constraints to the domains the rules target.

mitmproxy signs a leaf certificate for every decrypted host with this CA. Without constraints its key
could vouch for *any* name — a stolen key would let someone impersonate the user's bank. With a
critical NameConstraints extension that permits only the target platforms' domains (a name and its
subdomains, RFC 5280 §4.2.1.10) and excludes every IP address, OpenSSL, NSS and Chromium refuse any
other name it signs. The CA is therefore renewed whenever the set of targeted domains changes
(``install`` does it and re-trusts the new one; the daemon only warns, since it cannot re-trust).

The files keep mitmproxy's names, so ``confdir`` finds them: ``mitmproxy-ca.pem`` (key + certificate,
0600), ``mitmproxy-ca-cert.pem`` (certificate) and ``mitmproxy-dhparam.pem``; the directory is 0700.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("zerocontact.ca")

BASENAME = "mitmproxy"
KEY_FILE = f"{BASENAME}-ca.pem"  # key + certificate: what mitmproxy loads
CERT_FILE = f"{BASENAME}-ca-cert.pem"  # the certificate alone: what stores trust
DH_FILE = f"{BASENAME}-dhparam.pem"
NOTHING = "invalid"  # RFC 6761's reserved TLD: a CA limited to it can vouch for no real name
VALIDITY = dt.timedelta(days=5 * 365)
RENEW_BEFORE = dt.timedelta(days=90)  # install renews a CA this close to expiry; doctor warns
ORG = "zerocontact"


@dataclass(frozen=True)
class CaInfo:
    """What a CA certificate says about itself, for renewal decisions and ``doctor``."""

    permitted: tuple[str, ...]  # permitted DNS subtrees; () means unconstrained
    ip_excluded: bool
    not_before: dt.datetime
    not_after: dt.datetime
    sha256: str  # fingerprint, hex
    subject: str

    @property
    def constrained(self) -> bool:
        return bool(self.permitted)

    def missing(self, hosts: Iterable[str]) -> list[str]:
        """The hosts this CA cannot vouch for (an unconstrained CA vouches for all)."""
        if not self.constrained:
            return []
        return [h for h in hosts if not covered(h, self.permitted)]

    def expires_soon(self, now: dt.datetime | None = None) -> bool:
        return self.not_after - (now or dt.datetime.now(dt.UTC)) < RENEW_BEFORE

    def expired(self, now: dt.datetime | None = None) -> bool:
        return self.not_after <= (now or dt.datetime.now(dt.UTC))


def normalise(hosts: Iterable[str]) -> tuple[str, ...]:
    """Lower-case, IDNA-encoded, de-duplicated host suffixes, minus those another one covers."""
    out = set()
    for h in hosts:
        h = h.strip().rstrip(".").lower()
        if not h:
            continue
        with contextlib.suppress(UnicodeError):
            h = h.encode("idna").decode("ascii")
        out.add(h)
    return tuple(sorted(h for h in out if not any(h != o and h.endswith("." + o) for o in out)))


def covered(host: str, permitted: Iterable[str]) -> bool:
    """Whether a name is one of ``permitted`` or below one (RFC 5280's DNS subtree rule)."""
    h = host.lower().rstrip(".")
    return any(h == p or h.endswith("." + p) for p in permitted)


def constraints_for(hosts: Sequence[str]) -> x509.NameConstraints:
    """Permit only ``hosts`` (or the reserved ``invalid``, when there are none) and no IP address."""
    names = normalise(hosts) or (NOTHING,)
    return x509.NameConstraints(
        permitted_subtrees=[x509.DNSName(h) for h in names],
        # no iPAddress subtree would leave IP names unconstrained (RFC 5280): exclude them all
        excluded_subtrees=[
            x509.IPAddress(ipaddress.ip_network("0.0.0.0/0")),
            x509.IPAddress(ipaddress.ip_network("::/0")),
        ],
    )


def generate(hosts: Sequence[str], common_name: str, now: dt.datetime | None = None) -> tuple[bytes, bytes]:
    """A new CA limited to ``hosts`` (and their subdomains): (key + cert PEM, cert PEM)."""
    now = now or dt.datetime.now(dt.UTC)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # mitmproxy reuses it for leaves
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORG),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=2))  # like mitmproxy: tolerate a slow clock
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # only TLS server certificates: not code signing, not mail
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(constraints_for(hosts), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    return key_pem + cert_pem, cert_pem


def inspect(cert_pem: bytes) -> CaInfo:
    """Read back the constraints, validity and fingerprint of a CA certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    permitted: tuple[str, ...] = ()
    ip_excluded = False
    try:
        nc = cert.extensions.get_extension_for_class(x509.NameConstraints).value
    except x509.ExtensionNotFound:
        pass
    else:
        permitted = tuple(
            sorted(str(n.value).lower() for n in nc.permitted_subtrees or () if isinstance(n, x509.DNSName))
        )
        ip_excluded = any(isinstance(n, x509.IPAddress) for n in nc.excluded_subtrees or ())
    return CaInfo(
        permitted=permitted,
        ip_excluded=ip_excluded,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        sha256=cert.fingerprint(hashes.SHA256()).hex(),
        subject=cert.subject.rfc4514_string(),
    )


def der_base64(cert_pem: bytes) -> str:
    """The certificate as base64 DER: the form Chromium's CACertificates policies take."""
    import base64

    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    return base64.b64encode(der).decode("ascii")


def dhparam() -> bytes:
    """mitmproxy's own DH parameters (it writes them next to the CA if they are missing)."""
    from mitmproxy import certs

    return bytes(certs.DEFAULT_DHPARAM)


def needs_renewal(cert_pem: bytes | None, hosts: Sequence[str]) -> str | None:
    """Why the CA must be (re)made for exactly ``hosts``, or None when it fits."""
    if cert_pem is None:
        return "there is no CA yet"
    try:
        info = inspect(cert_pem)
    except ValueError:
        return "the CA certificate cannot be read"
    want = normalise(hosts) or (NOTHING,)
    if not info.constrained:
        return "the CA is not name-constrained (it could vouch for any site)"
    if info.permitted != want:
        return f"the targeted domains changed (CA: {', '.join(info.permitted)}; rules: {', '.join(want)})"
    if info.expires_soon():
        return f"the CA expires on {info.not_after:%Y-%m-%d}"
    return None


def write_files(ca_dir: Path, key_and_cert: bytes, cert: bytes) -> None:
    """Write a CA the way mitmproxy expects to find it (used by the daemon; install uses ops)."""
    ca_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_dir.chmod(0o700)
    for name, data, mode in (
        (KEY_FILE, key_and_cert, 0o600),
        (CERT_FILE, cert, 0o644),
        (DH_FILE, dhparam(), 0o644),
    ):
        path = ca_dir / name
        fd = os.open(path.with_suffix(".tmp"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(path.with_suffix(".tmp"), path)
        path.chmod(mode)


def all_preset_hosts() -> list[str]:
    """Every host of every platform zerocontact knows: the bound for a CA made before rules are known."""
    from zerocontact.rules.platforms import presets

    return sorted({h for p in presets().values() for h in p.hosts})


def ensure(ca_dir: Path, common_name: str, hosts: Sequence[str] | None = None) -> Path:
    """The daemon's CA: created name-constrained when missing; an existing one is kept (it may be
    trusted already; only ``install`` can re-trust a new one), with a warning naming the targeted
    hosts it cannot vouch for. ``hosts`` None or empty (no rules known yet, no person yet): every
    preset platform's hosts, so naming a first person later needs no new CA."""
    key_file, cert_file = ca_dir / KEY_FILE, ca_dir / CERT_FILE
    if not key_file.exists():
        key_and_cert, cert = generate(hosts or all_preset_hosts(), common_name)
        write_files(ca_dir, key_and_cert, cert)
        log.info("created a new interception CA in %s, limited to the targeted domains", ca_dir)
    else:
        ca_dir.chmod(0o700)
        key_file.chmod(0o600)
        if not cert_file.exists():  # only the key file survived: the certificate is inside it
            cert_file.write_bytes(
                x509.load_pem_x509_certificate(key_file.read_bytes()).public_bytes(serialization.Encoding.PEM)
            )
        info = inspect(cert_file.read_bytes())
        if not info.constrained:
            log.warning(
                "the CA in %s is not name-constrained: it could vouch for any site. "
                "`zerocontact install` replaces it with one limited to the targeted platforms",
                ca_dir,
            )
        elif hosts:
            missing = info.missing(hosts)
            if missing:
                log.warning(
                    "the CA in %s cannot vouch for %s, which the rules now target: browsers will refuse "
                    "those sites until you run `zerocontact install` (it renews and re-trusts the CA)",
                    ca_dir,
                    ", ".join(missing),
                )
    return cert_file


def missing_hosts(cert_file: Path, hosts: Sequence[str]) -> list[str]:
    """Targeted hosts the CA at ``cert_file`` cannot vouch for (for the daemon's status)."""
    try:
        return inspect(cert_file.read_bytes()).missing(hosts)
    except (OSError, ValueError):
        return list(hosts)
