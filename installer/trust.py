"""The CA step (make or renew the name-constrained CA) and the stores that must trust it.

Linux: the system store (Debian/Ubuntu ``update-ca-certificates``, Fedora ``update-ca-trust``) for
curl, Python and friends; NSS databases for Chromium (``~/.pki/nssdb``) and each Firefox profile
(``certutil``), since browsers on Linux do not read the system store. macOS and Windows: their system
or user store (``security``, ``certutil.exe``), as planned commands.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import socket
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from zerocontact.daemon import ca

from .context import LABEL, Context, InstallError
from .ops import Command, Dir, File, Op, Step, Tx

NICKNAME = LABEL  # the CA's name in NSS databases


class CaMaterial:
    """The CA as the rest of the plan sees it: the current one, or a new one made on first use.

    Generating is deferred until a step needs the bytes, so a plan (``--dry-run``) or ``doctor``
    never creates a key."""

    def __init__(self, ctx: Context, common_name: str | None = None) -> None:
        self.ctx = ctx
        self.common_name = common_name or f"zerocontact local CA ({socket.gethostname()})"
        self._new: tuple[bytes, bytes] | None = None

    @property
    def dir(self) -> Path:
        return self.ctx.at(self.ctx.ca_dir)

    @property
    def cert_path(self) -> Path:
        return self.dir / ca.CERT_FILE

    def current(self) -> bytes | None:
        try:
            return self.cert_path.read_bytes()
        except FileNotFoundError:
            try:
                return x509.load_pem_x509_certificate((self.dir / ca.KEY_FILE).read_bytes()).public_bytes(
                    serialization.Encoding.PEM
                )
            except (FileNotFoundError, ValueError):
                return None
        except OSError:
            return None

    def renewal(self) -> str | None:
        return ca.needs_renewal(self.current(), self.ctx.hosts)

    def new(self) -> tuple[bytes, bytes]:
        if self._new is None:
            self._new = ca.generate(self.ctx.hosts, self.common_name)
        return self._new

    def cert(self) -> bytes:
        """The certificate the stores must trust: the new one if this run makes one."""
        if self._new is not None:
            return self._new[1]
        cur = self.current()
        if cur is not None and self.renewal() is None:
            return cur
        return self.new()[1]

    def sha1(self) -> str:
        der = x509.load_pem_x509_certificate(self.cert()).public_bytes(serialization.Encoding.DER)
        return hashlib.sha1(der).hexdigest().upper()

    def serial(self) -> str:
        return format(x509.load_pem_x509_certificate(self.cert()).serial_number, "x")


class CaStep(Step):
    """Make the CA, or renew it when the targeted domains changed (or it nears its end)."""

    name = "ca"

    def __init__(self, ctx: Context, material: CaMaterial) -> None:
        super().__init__(ctx)
        self.material = material
        hosts = ", ".join(ca.normalise(ctx.hosts)) or "nothing yet (no platform is targeted)"
        self.title = f"interception CA, valid only for: {hosts}"

    def ops(self) -> list[Op]:
        if self.material.renewal() is None:
            return []
        d = self.ctx.ca_dir
        m = self.material
        return [
            Dir(d, 0o700),
            File(d / ca.KEY_FILE, lambda: m.new()[0], 0o600, "private key + certificate (mitmproxy's name)"),
            File(d / ca.CERT_FILE, lambda: m.new()[1], 0o644, "the certificate the stores below trust"),
            File(d / ca.DH_FILE, ca.dhparam, 0o644, "mitmproxy's DH parameters"),
        ]

    def notes(self) -> list[str]:
        why = self.material.renewal()
        if why is None:
            return ["the CA already fits the targeted domains; kept"]
        return [f"a new CA is made because {why}; it cannot vouch for any other site, even if stolen"]


@dataclass
class CertCommand(Op):
    """A command that names the certificate (path, SHA-1, serial), known only once the CA exists.

    ``{cert}``, ``{sha1}`` and ``{serial}`` in the templates are filled in at apply time."""

    argv: Sequence[str]
    revert: Sequence[str]
    material: CaMaterial
    key: str
    why: str = ""
    live_only: bool = True

    def describe(self) -> str:
        return f"run {' '.join(self.argv)}; on uninstall: {' '.join(self.revert)}" + (
            f": {self.why}" if self.why else ""
        )

    def apply(self, tx: Tx) -> None:
        if self.live_only and not tx.ctx.live_commands:
            tx.say(f"skipped (staging root): {' '.join(self.argv)}")
            return
        fill: dict[str, Callable[[], str]] = {
            "{cert}": lambda: str(self.material.cert_path),
            "{sha1}": self.material.sha1,
            "{serial}": self.material.serial,
        }

        def sub(args: Sequence[str]) -> list[str]:
            return [fill[a]() if a in fill else a for a in args]

        old = tx.manifest.find(self.key)
        argv, revert = sub(self.argv), sub(self.revert)
        if old is not None and old.get("revert") == revert:
            tx.say(f"unchanged: {' '.join(argv)}")
            return
        if old is not None:  # a renewed CA: take the old one out first
            tx.reverter.revert(old)
            tx.manifest.remove(self.key)
        tx.command(argv, revert, self.key)
        tx.say(f"ran {' '.join(argv)}")


class PublicFiles(Step):
    """System mode: the CA certificate and the PAC file where every user's browser can read them."""

    name = "public"
    title = "public copies of the CA certificate and the PAC file (for Firefox's policy)"

    def __init__(self, ctx: Context, material: CaMaterial, pac_text: Callable[[], str]) -> None:
        super().__init__(ctx)
        self.material, self.pac_text = material, pac_text

    @property
    def ca_file(self) -> PurePath:
        return self.ctx.config_dir / "ca.pem"

    @property
    def pac_file(self) -> PurePath:
        return self.ctx.config_dir / "proxy.pac"

    def ops(self) -> list[Op]:
        return [
            File(self.ca_file, self.material.cert, 0o644, "the CA certificate (public)"),
            File(self.pac_file, lambda: self.pac_text().encode(), 0o644, "only the targets go to the proxy"),
        ]


def _tool(ctx: Context, name: str) -> str | None:
    return shutil.which(name, path=ctx.env.get("PATH"))


class DebianTrust(Step):
    """Debian/Ubuntu: a .crt in /usr/local/share/ca-certificates, then update-ca-certificates."""

    name = "trust-system"
    title = "system trust store (Debian/Ubuntu: update-ca-certificates), for curl, Python, …"
    DIR = PurePosixPath("/usr/local/share/ca-certificates/zerocontact")

    def __init__(self, ctx: Context, material: CaMaterial) -> None:
        super().__init__(ctx)
        self.material = material

    def update(self) -> list[str]:
        if self.ctx.live:
            return ["update-ca-certificates"]
        # A staging root's own store. Not --sysroot: Debian 12's stock tool lacks it (and, like
        # every version, answers an option it does not know with its usage and exit 0); it is only
        # shorthand for these options, which every version has.
        r = self.ctx.at
        return [
            "update-ca-certificates",
            *("--certsconf", str(r("/etc/ca-certificates.conf"))),
            *("--certsdir", str(r("/usr/share/ca-certificates"))),
            *("--localcertsdir", str(r("/usr/local/share/ca-certificates"))),
            *("--etccertsdir", str(r("/etc/ssl/certs"))),
            *("--hooksdir", str(r("/etc/ca-certificates/update.d"))),
        ]

    def ops(self) -> list[Op]:
        return [
            Command(None, revert=[*self.update(), "--fresh"], key="cmd:trust-system:refresh"),
            Dir(self.DIR),
            File(self.DIR / f"{LABEL}.crt", self.material.cert, 0o644, "the CA (the name must end in .crt)"),
            Command(self.update(), why="rebuild /etc/ssl/certs", only_if_changed=True),
            BundleHasCa(PurePosixPath(DEBIAN_BUNDLE), self.material, "update-ca-certificates"),
        ]

    @classmethod
    def detect(cls, ctx: Context) -> bool:
        if not _tool(ctx, "update-ca-certificates"):
            return False
        return ctx.live or ctx.at(PurePosixPath("/etc/ca-certificates.conf")).exists()


DEBIAN_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
USAGE_LINE = "[--verbose] [--fresh]"  # what update-ca-certificates prints for an option it lacks


def bundle_has(bundle: bytes, cert_pem: bytes) -> bool:
    """Whether a PEM bundle holds this certificate (line breaks aside)."""
    body = b"".join(cert_pem.strip().split(b"\n")[1:-1])
    return bool(body) and body in bundle.replace(b"\r", b"").replace(b"\n", b"")


@dataclass
class BundleHasCa(Op):
    """The trust store's bundle must really hold the CA after the tool ran: its exit status is no
    proof (a tool that does not understand an option prints its usage and exits 0, changing nothing)."""

    bundle: PurePath
    material: CaMaterial
    tool: str

    def describe(self) -> str:
        return f"check that {self.bundle} now holds the CA ({self.tool}'s exit status is not proof)"

    def apply(self, tx: Tx) -> None:
        path = tx.ctx.at(self.bundle)
        try:
            data = path.read_bytes()
        except OSError as e:
            data, why = b"", f"cannot read it ({e.strerror})"
        else:
            why = "it does not hold the CA"
        if not bundle_has(data, self.material.cert()):
            raise InstallError(
                f"{self.tool} finished without error, but {self.bundle}: {why}. This version of "
                f"{self.tool} may not understand how it was called (it answers with its usage line "
                f"{USAGE_LINE!r} and success); update the ca-certificates package and install again"
            )
        tx.say(f"checked: {self.bundle} holds the CA")


class FedoraTrust(Step):
    """Fedora/RHEL: a trust anchor, then update-ca-trust."""

    name = "trust-system"
    title = "system trust store (Fedora/RHEL: update-ca-trust), for curl, Python, …"
    ANCHOR = PurePosixPath(f"/etc/pki/ca-trust/source/anchors/{LABEL}.pem")

    def __init__(self, ctx: Context, material: CaMaterial) -> None:
        super().__init__(ctx)
        self.material = material

    def ops(self) -> list[Op]:
        return [
            # update-ca-trust has no staging option: on a staging root only the anchor is written
            Command(
                None, revert=["update-ca-trust", "extract"], key="cmd:trust-system:refresh", live_only=True
            ),
            File(self.ANCHOR, self.material.cert, 0o644, "the CA as a trust anchor"),
            Command(["update-ca-trust", "extract"], only_if_changed=True, live_only=True),
        ]

    @classmethod
    def detect(cls, ctx: Context) -> bool:
        if not _tool(ctx, "update-ca-trust") and ctx.live:
            return False
        return ctx.at(PurePosixPath("/etc/pki/ca-trust/source/anchors")).is_dir()


@dataclass
class NssCert(Op):
    """Trust the CA in one NSS database (``certutil -A -t C,,``), replacing an older zerocontact CA."""

    db: PurePath
    material: CaMaterial
    create: bool = False
    what: str = ""

    def describe(self) -> str:
        made = " (created if missing)" if self.create else ""
        return f"certutil -A -n {NICKNAME} -t C,, -d sql:{self.db}{made}: {self.what}"

    def apply(self, tx: Tx) -> None:
        real = tx.ctx.at(self.db)
        sql = f"sql:{real}"
        if not (real / "cert9.db").exists():
            if not self.create:
                tx.say(f"skipped {self.db}: no NSS database there")
                return
            tx.mkdir(real, 0o700)
            tx.run(["certutil", "-N", "-d", sql, "--empty-password"])
            tx.record({"key": f"nssdb:{real}", "kind": "nssdb", "path": str(real)})
            tx.on_undo(functools.partial(remove_nssdb, real))
            tx.changed()
        pem = self.material.cert()
        key = f"nss:{real}"
        if same_cert(tx.run(["certutil", "-L", "-d", sql, "-n", NICKNAME, "-a"], check=False).stdout, pem):
            if tx.manifest.find(key) is None:
                tx.command((), ["certutil", "-D", "-d", sql, "-n", NICKNAME], key)
            tx.say(f"unchanged: the CA is trusted in {self.db}")
            return
        for _ in range(20):  # an older zerocontact CA (renewed since) goes first
            if tx.run(["certutil", "-D", "-d", sql, "-n", NICKNAME], check=False).returncode != 0:
                break
        with tempfile.NamedTemporaryFile(suffix=".pem") as f:
            f.write(pem)
            f.flush()
            tx.command(
                ["certutil", "-A", "-d", sql, "-n", NICKNAME, "-t", "C,,", "-i", f.name],
                ["certutil", "-D", "-d", sql, "-n", NICKNAME],
                key,
            )
        tx.say(f"trusted the CA in {self.db}")


def remove_nssdb(db: Path) -> None:
    """Delete the files of an NSS database zerocontact created."""
    for name in ("cert9.db", "key4.db", "pkcs11.txt"):
        (db / name).unlink(missing_ok=True)


def same_cert(pem_text: str, pem: bytes) -> bool:
    """Whether certutil's PEM output holds the same certificate as ``pem``."""
    try:
        got = x509.load_pem_x509_certificates(pem_text.encode())
        want = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return False
    return bool(got) and got[0].fingerprint(hashes.SHA256()) == want.fingerprint(hashes.SHA256())


def firefox_profiles(ctx: Context) -> list[PurePath]:
    """Every Firefox profile with an NSS database: plain, Snap and Flatpak installs."""
    bases = [
        ctx.home / ".mozilla" / "firefox",
        ctx.home / "snap" / "firefox" / "common" / ".mozilla" / "firefox",
        ctx.home / ".var" / "app" / "org.mozilla.firefox" / ".mozilla" / "firefox",
    ]
    out: list[PurePath] = []
    for base in bases:
        real = ctx.at(base)
        if real.is_dir():
            out += [base / p.name for p in sorted(real.iterdir()) if (p / "cert9.db").exists()]
    return out


class NssTrust(Step):
    """User mode on Linux: Chromium's shared NSS database and every Firefox profile."""

    name = "trust-nss"
    title = "browser trust stores (NSS): Chromium/Chrome and each Firefox profile"

    def __init__(self, ctx: Context, material: CaMaterial) -> None:
        super().__init__(ctx)
        self.material = material

    def ops(self) -> list[Op]:
        ops: list[Op] = [NssCert(self.ctx.home / ".pki" / "nssdb", self.material, True, "Chromium, Chrome")]
        snap = self.ctx.home / "snap" / "chromium" / "current" / ".pki" / "nssdb"
        if self.ctx.at(snap).is_dir():
            ops.append(NssCert(snap, self.material, False, "Chromium (Snap)"))
        ops += [
            NssCert(p, self.material, False, f"Firefox profile {p.name}") for p in firefox_profiles(self.ctx)
        ]
        return ops

    def apply(self, tx: Tx) -> None:
        if not _tool(self.ctx, "certutil"):
            raise InstallError(
                "certutil is needed to make browsers trust the CA: install libnss3-tools "
                "(Debian/Ubuntu) or nss-tools (Fedora), then run install again"
            )
        super().apply(tx)


class MacTrust(Step):
    """macOS: the System keychain (--system) or the login keychain, trusted for SSL."""

    name = "trust-system"

    def __init__(self, ctx: Context, material: CaMaterial) -> None:
        super().__init__(ctx)
        self.material = material
        self.title = (
            "System keychain (Safari, Chrome, curl…)" if ctx.mode == "system" else "your login keychain"
        )

    def ops(self) -> list[Op]:
        if self.ctx.mode == "system":
            kc, flags = "/Library/Keychains/System.keychain", ["-d"]
        else:
            kc, flags = str(self.ctx.home / "Library" / "Keychains" / "login.keychain-db"), []
        return [
            CertCommand(
                ["security", "add-trusted-cert", *flags, "-r", "trustRoot", "-p", "ssl", "-k", kc, "{cert}"],
                ["security", "delete-certificate", "-t", "-Z", "{sha1}", kc],
                self.material,
                "cmd:trust-system:keychain",
                "macOS asks for an administrator's confirmation",
            )
        ]


class WindowsTrust(Step):
    """Windows: the Root store of the machine (--system) or of the user."""

    name = "trust-system"

    def __init__(self, ctx: Context, material: CaMaterial) -> None:
        super().__init__(ctx)
        self.material = material
        self.title = (
            "Windows root store (LocalMachine): Edge, Chrome, …"
            if ctx.mode == "system"
            else "your Windows root store (CurrentUser): Edge, Chrome, …"
        )

    def ops(self) -> list[Op]:
        user = [] if self.ctx.mode == "system" else ["-user"]
        return [
            CertCommand(
                ["certutil", *user, "-addstore", "-f", "Root", "{cert}"],
                ["certutil", *user, "-delstore", "Root", "{serial}"],
                self.material,
                "cmd:trust-system:root",
                "" if self.ctx.mode == "system" else "Windows asks you to confirm",
            )
        ]


def system_trust(ctx: Context, material: CaMaterial) -> Step | None:
    """The system store for this OS, or None when there is none we know how to fill."""
    if ctx.os == "darwin":
        return MacTrust(ctx, material)
    if ctx.os == "windows":
        return WindowsTrust(ctx, material)
    if ctx.mode != "system":
        return None
    if DebianTrust.detect(ctx):
        return DebianTrust(ctx, material)
    if FedoraTrust.detect(ctx):
        return FedoraTrust(ctx, material)
    return None
