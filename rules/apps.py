"""Which processes the watcher stops, which it never touches, and which launches bypass the proxy.

Pure: a process is described by a ``ProcInfo`` (what psutil reports); nothing here reads ``/proc``,
a clock or the network. App presets are data (``rules/apps.toml``); ``judge`` turns a process and the
active app rules (``compile_apps`` builds them from a ruleset, once) into a ``ProcessVerdict``;
``check_entry`` is the ``rules check`` validation of a ``[[app]].match`` or ``[[person]].apps`` entry;
``explain_process`` backs ``explain --process``.

An entry is one of
  - a preset name (``whatsapp``): the app's process names, executables and command lines on Linux,
    macOS and Windows, Flatpak and Snap included;
  - ``name:GLOB``, ``exe:GLOB`` or ``cmdline:GLOB``: a glob on that field;
  - a bare glob, whose shape says the field: with a space it is a command line, with a ``/`` (or
    ``\\``) an executable path, otherwise a process name (``telegram*``).
Globs use ``*``, ``?`` and ``[...]`` and compare in lower case; ``\\`` in paths is read as ``/``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import fnmatch
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import tomli

from .schema import App, Ruleset

ACTIONS = ("terminate", "suspend")
GLOB_FIELDS = ("name", "exe", "cmdline")
MIN_LITERAL = 3  # a user glob needs this many non-wildcard characters: "*a*" stops half the system

# --- the protected list ----------------------------------------------------------------------------
# Process names (lower case, without ".exe" or a login shell's leading "-") that zerocontact never
# signals, whatever a rule says, and that no rule may match (``rules check`` refuses it). Stopping
# any of these would end the user's session, lock them out, or stop zerocontact itself.
PROTECTED: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "init or service manager",
        (
            "init", "systemd", "systemd-*", "launchd", "runit", "runsv", "runsvdir", "s6-svscan",
            "s6-supervise", "openrc", "openrc-init", "upstart", "tini", "dumb-init", "containerd",
            "containerd-shim*", "dockerd", "snapd", "polkitd", "dbus-daemon", "dbus-broker*", "udevd",
            "kthreadd",
        ),
    ),
    (
        "login or privilege",
        (
            "login", "agetty", "getty", "mingetty", "sshd", "sshd-session", "sshd-auth", "ssh", "sudo",
            "su", "doas", "pkexec", "gdm", "gdm-*", "gdm3", "sddm", "sddm-helper", "lightdm", "greetd",
            "xdm", "loginwindow", "winlogon", "wininit", "lsass", "csrss", "smss", "services", "system",
        ),
    ),
    (
        "desktop session",
        (
            "gnome-session*", "gnome-shell", "mutter", "kwin", "kwin_*", "plasmashell", "ksmserver",
            "startplasma-*", "plasma_session", "xfce4-session", "xfwm4", "xfce4-panel", "cinnamon",
            "cinnamon-session*", "mate-session", "marco", "lxsession", "lxqt-session", "openbox", "i3",
            "sway", "hyprland", "niri", "weston", "labwc", "river", "wayfire", "xorg", "x", "xwayland",
            "xinit", "startx", "gnome-keyring-daemon", "pipewire", "pipewire-pulse", "wireplumber",
            "pulseaudio", "at-spi-bus-launcher", "xdg-desktop-portal*", "windowserver", "dock", "finder",
            "systemuiserver", "explorer", "dwm", "sihost", "fontdrvhost", "ctfmon", "taskhostw",
            "runtimebroker", "startmenuexperiencehost", "shellexperiencehost", "svchost", "conhost",
        ),
    ),
    (
        "shell",
        (
            "sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "tcsh", "csh", "nu", "elvish", "pwsh",
            "powershell", "cmd",
        ),
    ),
    (
        "terminal",
        (
            "tmux*", "screen", "gnome-terminal*", "kgx", "ptyxis*", "konsole", "xterm", "uxterm", "urxvt*",
            "rxvt*", "alacritty", "kitty", "wezterm*", "foot", "footclient", "tilix", "terminator",
            "xfce4-terminal", "lxterminal", "mate-terminal", "qterminal", "st", "terminal", "iterm2",
            "windowsterminal", "openconsole",
        ),
    ),
    ("interpreter (it may be running zerocontact)", ("python", "python3", "python3.*", "pypy*")),
    ("zerocontact", ("zerocontact*",)),
)  # fmt: skip


@cache
def _protected_globs() -> tuple[tuple[re.Pattern[str], str, str], ...]:
    """PROTECTED compiled, on first use (the watcher's first scan, or a rules file with app rules):
    ~150 patterns, ~10 ms that the daemon's start does not need before it enforces."""
    return tuple((re.compile(fnmatch.translate(g)), g, why) for why, globs in PROTECTED for g in globs)


# --- processes ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProcInfo:
    """One process as the operating system reports it (what psutil gives the watcher)."""

    pid: int
    name: str
    exe: str = ""  # empty when unknown (another user's process, a kernel thread)
    cmdline: tuple[str, ...] = ()
    ppid: int = 0
    uid: int | None = None
    create_time: float = 0.0
    cgroup: str = ""  # the unified-hierarchy path on Linux (Flatpak and Snap scopes live here)

    @property
    def label(self) -> str:
        """``name (pid)``, as the journal's ``process`` column writes it."""
        return f"{self.name} ({self.pid})"


def _path(text: str) -> str:
    return text.replace("\\", "/").lower()


def _base(text: str) -> str:
    return _path(text).rstrip("/").rsplit("/", 1)[-1]


def _bare(name: str) -> str:
    n = name.lower().lstrip("-")
    return n[:-4] if n.endswith(".exe") else n


@dataclass(frozen=True, slots=True)
class _View:
    """A process normalised for matching: every spelling a glob may be compared with."""

    names: tuple[str, ...]
    paths: tuple[str, ...]
    cmdlines: tuple[str, ...]
    cgroup: str


def _view(p: ProcInfo) -> _View:
    names = [p.name.lower(), _bare(p.name)]
    paths = []
    if p.exe:
        names += [_base(p.exe), _bare(_base(p.exe))]
        paths.append(_path(p.exe))
    cmdlines = []
    if p.cmdline:
        argv0 = p.cmdline[0]
        if argv0:
            names += [_base(argv0), _bare(_base(argv0))]
            if "/" in argv0 or "\\" in argv0:
                paths.append(_path(argv0))
        rest = [_path(a) for a in p.cmdline[1:]]
        cmdlines = [" ".join([_path(argv0), *rest]), " ".join([_base(argv0), *rest])]
    return _View(tuple(dict.fromkeys(n for n in names if n)), tuple(paths), tuple(cmdlines), p.cgroup.lower())


# --- patterns ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProcessPattern:
    """One compiled glob on one field of a process (``cgroup`` is used by presets only)."""

    field: str  # name | exe | cmdline | cgroup
    glob: str  # lower case
    source: str  # what the user wrote, or "preset whatsapp"
    regex: re.Pattern[str]

    def matches(self, v: _View) -> bool:
        if self.field == "name":
            values: Iterable[str] = v.names
        elif self.field == "exe":
            values = v.paths
        elif self.field == "cmdline":
            values = v.cmdlines
        else:
            values = (v.cgroup,) if v.cgroup else ()
        return any(self.regex.match(x) for x in values)

    def __str__(self) -> str:
        return f"{self.source}: {self.field} {self.glob!r}"


def _pattern(field: str, glob: str, source: str) -> ProcessPattern:
    g = _path(glob) if field in ("exe", "cmdline") else glob.lower()
    return ProcessPattern(field, g, source, re.compile(fnmatch.translate(g)))


class AppPresetError(ValueError):
    """``apps.toml`` is malformed: a bug in the package data, reported with the preset's name."""


@dataclass(frozen=True, slots=True)
class AppPreset:
    """An app (or a browser) as data: how its processes look on every system, with samples."""

    name: str
    title: str
    note: str
    kind: str  # "app", or for browsers the flag dialect: "chromium" | "firefox"
    patterns: tuple[ProcessPattern, ...]
    samples: tuple[tuple[str, ProcInfo], ...]  # (system, process) that must match

    def matches(self, p: ProcInfo | _View) -> ProcessPattern | None:
        v = p if isinstance(p, _View) else _view(p)
        return next((pat for pat in self.patterns if pat.matches(v)), None)


_PRESET_KEYS = {
    "name",
    "title",
    "note",
    "kind",
    "names",
    "exes",
    "cmdlines",
    "flatpak",
    "snap",
    "bwrap",
    "sample",
}


def _strings(raw: dict[str, Any], key: str, where: str) -> list[str]:
    v = raw.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
        raise AppPresetError(f"{where}: {key} must be a list of non-empty strings")
    return v


def _proc(raw: Any, where: str, pid: int = 4242) -> ProcInfo:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise AppPresetError(f"{where}: a sample process needs at least a name")
    cmd = raw.get("cmdline", [])
    if not isinstance(cmd, list) or not all(isinstance(x, str) for x in cmd):
        raise AppPresetError(f"{where}: cmdline must be a list of strings")
    return ProcInfo(
        pid=pid,
        name=raw["name"],
        exe=str(raw.get("exe", "")),
        cmdline=tuple(cmd),
        cgroup=str(raw.get("cgroup", "")),
    )


def compile_preset(raw: dict[str, Any], kind: str = "app") -> AppPreset:
    """A preset's table from ``apps.toml`` → patterns (Flatpak/Snap/bwrap expanded) and samples."""
    name = raw.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9-]*", name):
        raise AppPresetError(f"apps.toml: preset name {name!r} must be lower-case letters, digits and -")
    where = f"apps.toml: {name}"
    unknown = set(raw) - _PRESET_KEYS
    if unknown:
        raise AppPresetError(f"{where}: unknown keys {sorted(unknown)}")
    src = f"preset {name}"
    pats = [_pattern("name", g, src) for g in _strings(raw, "names", where)]
    pats += [_pattern("exe", g, src) for g in _strings(raw, "exes", where)]
    pats += [_pattern("cmdline", g, src) for g in _strings(raw, "cmdlines", where)]
    for app_id in _strings(raw, "flatpak", where):
        i = app_id.lower()
        for g in (f"flatpak run {i}", f"flatpak run {i} *", f"flatpak run * {i}", f"flatpak run * {i} *"):
            pats.append(_pattern("cmdline", g, src))
        pats.append(_pattern("cgroup", f"*/app-flatpak-{i}-*", src))
    for snap in _strings(raw, "snap", where):
        s = snap.lower()
        pats += [_pattern("exe", f"/snap/{s}/*", src), _pattern("exe", f"/snap/bin/{s}", src)]
        for g in (f"snap run {s}", f"snap run {s} *", f"snap-confine * snap.{s}.*"):
            pats.append(_pattern("cmdline", g, src))
        pats.append(_pattern("cgroup", f"*/snap.{s}.*", src))
    for command in _strings(raw, "bwrap", where):
        c = command.lower()
        pats += [
            _pattern("cmdline", f"bwrap --args * {c}", src),
            _pattern("cmdline", f"bwrap --args * {c} *", src),
        ]
    samples = raw.get("sample", [])
    if not isinstance(samples, list):
        raise AppPresetError(f"{where}: write [[{kind if kind == 'app' else 'browser'}.sample]] tables")
    procs = tuple((str(s.get("system", "")) if isinstance(s, dict) else "", _proc(s, where)) for s in samples)
    return AppPreset(
        name=name,
        title=str(raw.get("title", name)),
        note=str(raw.get("note", "")),
        kind=str(raw.get("kind", kind)),
        patterns=tuple(pats),
        samples=procs,
    )


def _data_text() -> str:
    """``apps.toml`` from the package data (or, in a source checkout, next to this module)."""
    entry = resources.files(__package__).joinpath("apps.toml")
    if entry.is_file():
        return entry.read_text(encoding="utf-8")
    # A strict editable install links only the files package-data lists; the source is next to us.
    return Path(__file__).resolve().with_name("apps.toml").read_text(encoding="utf-8")


@cache
def _data() -> dict[str, Any]:
    return tomli.loads(_data_text())


@cache
def app_presets() -> dict[str, AppPreset]:
    """Every built-in app preset, by name (read once from the package data)."""
    out: dict[str, AppPreset] = {}
    for raw in _data().get("app", []):
        p = compile_preset(raw)
        if p.name in out:
            raise AppPresetError(f"apps.toml: preset {p.name!r} is defined twice")
        out[p.name] = p
    return out


@cache
def browsers() -> dict[str, AppPreset]:
    """The browsers whose launch flags are checked for proxy bypasses, by name."""
    out: dict[str, AppPreset] = {}
    for raw in _data().get("browser", []):
        p = compile_preset(raw, kind="chromium")
        if p.kind not in ("chromium", "firefox"):
            raise AppPresetError(f"apps.toml: browser {p.name}: kind must be chromium or firefox")
        out[p.name] = p
    return out


@cache
def innocents() -> tuple[ProcInfo, ...]:
    """Processes that no app preset may match (neighbours with similar names; the usual desktop)."""
    return tuple(_proc(r, "apps.toml: innocent") for r in _data().get("innocent", []))


# --- entries: presets and globs ----------------------------------------------------------------------
def _field_of(entry: str) -> tuple[str, str] | None:
    """(field, glob) for a glob entry, or None when the entry is a bare word (a preset's name)."""
    for f in GLOB_FIELDS:
        if entry.lower().startswith(f + ":"):
            return f, entry[len(f) + 1 :].strip()
    if any(c.isspace() for c in entry):
        return "cmdline", entry
    if "/" in entry or "\\" in entry:
        return "exe", entry
    if any(c in entry for c in "*?["):
        return "name", entry
    return None


def compile_entry(entry: str) -> tuple[ProcessPattern, ...]:
    """The patterns one ``match``/``apps`` entry stands for; ValueError if it names no preset."""
    e = entry.strip()
    preset = app_presets().get(e.lower())
    if preset is not None:
        return preset.patterns
    fg = _field_of(e)
    if fg is None:
        raise ValueError(
            f"unknown app preset {e!r}" + _suggest(e.lower(), list(app_presets()))
            + f"; to match a process by name write 'name:{e}' or a glob like '{e}*'"
        )  # fmt: skip
    field, glob = fg
    if not glob:
        raise ValueError(f"{e!r}: write a glob after '{field}:'")
    return (_pattern(field, glob, e),)


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else f" (presets: {', '.join(sorted(choices))})"


def _concrete(glob: str) -> str:
    return glob.replace("*", "").replace("?", "")


@cache
def _probes() -> tuple[ProcInfo, ...]:
    """Protected processes as they look on disk and in ``ps``: what a rule must never match."""
    out: list[ProcInfo] = []
    for _why, globs in PROTECTED:
        for g in globs:
            n = _concrete(g).rstrip("-._") or g
            out.append(ProcInfo(0, n, f"/usr/bin/{n}", (f"/usr/bin/{n}",)))
            out.append(ProcInfo(0, n, f"/usr/lib/{n}/{n}", (f"/usr/sbin/{n}",)))
            out.append(ProcInfo(0, n + ".exe", f"C:\\Windows\\System32\\{n}.exe", (f"{n}.exe",)))
    out += [
        ProcInfo(0, "bash", "/bin/bash", ("-bash",)),
        ProcInfo(0, "sshd", "/usr/sbin/sshd", ("sshd: sam@pts/0",)),
        ProcInfo(0, "systemd", "/usr/lib/systemd/systemd", ("/usr/lib/systemd/systemd", "--user")),
        ProcInfo(0, "init", "/sbin/init", ("/sbin/init", "splash")),
        ProcInfo(0, "Xorg", "/usr/lib/xorg/Xorg", ("/usr/lib/xorg/Xorg", ":0", "-seat", "seat0", "vt2")),
        ProcInfo(0, "python3", "/usr/bin/python3.13", ("/usr/bin/python3", "-m", "zerocontact", "run")),
        ProcInfo(0, "zerocontact", "/usr/bin/python3.13", ("python3", "/usr/bin/zerocontact", "run")),
        ProcInfo(0, "explorer.exe", "C:\\Windows\\explorer.exe", ("C:\\Windows\\Explorer.EXE",)),
        ProcInfo(0, "loginwindow", "/System/Library/CoreServices/loginwindow.app/Contents/MacOS/loginwindow",
                 ("/System/Library/CoreServices/loginwindow.app/Contents/MacOS/loginwindow", "console")),
        ProcInfo(0, "Finder", "/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",
                 ("/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder",)),
    ]  # fmt: skip
    return tuple(out)


def check_entry(entry: str) -> str | None:
    """Why ``rules check`` refuses a ``match``/``apps`` entry, or None if it is fine.

    Refused: an unknown preset name (with a suggestion); a glob with fewer than three letters that
    are not wildcards (``*``, ``*sh*``, ``a*``: they stop half the system); and a glob that matches
    a protected process (``systemd*``, ``python*``, ``*zerocontact*``, ``init``, ``gnome-shell``,
    ``/usr/bin/*``, …; see ``PROTECTED``).
    """
    if entry.strip().lower() in app_presets():
        return None
    if _field_of(entry.strip()) is None:
        why = _protected_name(entry.strip())
        if why:
            return f"{entry!r} is a protected process ({why}); zerocontact never stops it"
    try:
        pats = compile_entry(entry)
    except ValueError as e:
        return str(e)
    (pat,) = pats
    literal = re.sub(r"\[[^\]]*\]|[*?]", "", pat.glob)
    if pat.field in ("exe", "cmdline"):
        literal = literal.replace("/", "").replace(" ", "")
    if len(literal) < MIN_LITERAL:
        return f"{entry!r} would match too many processes; name the app (3 or more letters besides wildcards)"
    hits = list(dict.fromkeys(_bare(p.name) for p in _probes() if pat.matches(_view(p))))
    literal_name = pat.field == "name" and not any(c in pat.glob for c in "*?[")
    if literal_name and _protected_name(pat.glob) and _bare(pat.glob) not in hits:
        hits.append(_bare(pat.glob))
    if hits:
        shown = ", ".join(hits[:6]) + (f" and {len(hits) - 6} more" if len(hits) > 6 else "")
        return (
            f"{entry!r} would also match {shown}: system, session, shell or zerocontact processes, "
            "which are never stopped; name the app more precisely"
        )
    return None


def _protected_name(name: str) -> str | None:
    """The protected group a process name belongs to (``PROTECTED``), or None."""
    n = _bare(name)
    return next((why for rx, _g, why in _protected_globs() if rx.match(n)), None)


def protected_reason(p: ProcInfo) -> str | None:
    """Why a process must never be signalled, judged from the process alone (or None).

    The watcher adds what only it knows: itself, its ancestors, session leaders with a terminal and,
    in user mode, other users' processes.
    """
    if p.pid == 1:
        return "PID 1 (init)"
    if p.pid == 2 or p.ppid == 2:  # (PID 0 is the kernel, or "unknown" in a description)
        return "a kernel thread"
    why = _protected_name(p.name)
    if why:
        return f"{p.name} is a protected process ({why})"
    for arg in p.cmdline[:3]:
        b = _base(arg)
        if b.startswith("zerocontact") or b == "zerocontact.daemon.cli":
            return "part of zerocontact"
    return None


# --- rules -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AppRule:
    """An ``[[app]]`` entry or a person's ``apps``, compiled: what it matches and what it does."""

    name: str  # the journal's ``rule``
    key: str  # the policy entry it follows: "app:NAME" or "person:NAME"
    action: str
    grace: float
    person: str | None
    patterns: tuple[ProcessPattern, ...]


def person_rule_name(person: str) -> str:
    """The rule name a person's ``apps`` go by in the log."""
    return f"{person}: apps"


def app_rules(rules: Ruleset) -> tuple[AppRule, ...]:
    """Every app rule of a validated ruleset: ``[[app]]`` entries, then each person's ``apps``.

    A person's apps are terminated (grace 3 s) while that person is blocked. Entries were validated
    by the loader; one that still does not compile is skipped rather than stopping everything else.
    """
    out: list[AppRule] = []

    def pats(entries: Iterable[str]) -> tuple[ProcessPattern, ...]:
        got: list[ProcessPattern] = []
        for e in entries:
            try:
                got.extend(compile_entry(e))
            except ValueError:
                continue
        return tuple(got)

    for a in rules.apps:
        out.append(AppRule(a.name, f"app:{a.name}", a.action, a.grace, a.person, pats(a.match)))
    for p in rules.people:
        if p.apps:
            default = App(name=person_rule_name(p.name))
            out.append(
                AppRule(default.name, f"person:{p.name}", "terminate", default.grace, p.name, pats(p.apps))
            )
    return tuple(r for r in out if r.patterns)


def active_rules(
    compiled: Sequence[AppRule], active_apps: frozenset[str], active_people: frozenset[str]
) -> tuple[AppRule, ...]:
    """The rules in force, given ``State.apps`` and ``State.people`` from ``rules.policy.evaluate``."""
    return tuple(
        r
        for r in compiled
        if (r.key.startswith("app:") and r.key[4:] in active_apps)
        or (r.key.startswith("person:") and r.key[7:] in active_people)
    )


@dataclass(frozen=True, slots=True)
class AppRules:
    """A ruleset's app rules, compiled once by ``compile_apps``: what the watcher judges processes with.

    Equal when the rules the watcher uses are equal, so a reload that leaves them alone changes nothing.
    """

    rules: tuple[AppRule, ...]
    bypass_detection: bool  # ``settings.bypass_detection``

    def active(self, active_apps: frozenset[str], active_people: frozenset[str]) -> tuple[AppRule, ...]:
        """The rules in force, given ``State.apps`` and ``State.people`` (``active_rules``)."""
        return active_rules(self.rules, active_apps, active_people)

    def bypass_context(
        self, active_people: frozenset[str], target_hosts: Sequence[str], proxy_port: int, pac_url: str
    ) -> BypassContext | None:
        """What launches are checked against for bypasses (None: detection is off, or nobody is blocked)."""
        if self.bypass_detection and active_people:
            return BypassContext(tuple(target_hosts), proxy_port, pac_url)
        return None


def compile_apps(rules: Ruleset) -> AppRules:
    """The one compile step for processes: a validated ruleset's app rules and bypass setting."""
    return AppRules(app_rules(rules), rules.settings.bypass_detection)


# --- bypasses ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class BypassContext:
    """What a launch must respect to go through zerocontact: the targets, our proxy and PAC file."""

    target_hosts: tuple[str, ...]
    proxy_port: int  # 0: unknown, proxy flags are not judged
    pac_url: str  # "": unknown, PAC flags are not judged


_LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}


def _ours(uri: str, port: int) -> bool:
    u = uri.strip().lower()
    if "://" in u:
        scheme, _, u = u.partition("://")
        if scheme == "direct":
            return False
    u = u.split("/", 1)[0]
    host, sep, p = u.rpartition(":")
    return bool(sep) and host in _LOOPBACK and p.isdigit() and int(p) == port


def _proxy_is_ours(value: str, port: int) -> bool:
    """``--proxy-server`` value: every rule that carries http or https must name our proxy."""
    relevant = []
    for part in re.split(r"[;,]", value):
        part = part.strip()
        if not part:
            continue
        scheme, eq, uri = part.partition("=")
        if eq and "://" not in scheme:
            if scheme.strip().lower() in ("http", "https"):
                relevant.append(uri)
        else:
            relevant.append(part)
    return bool(relevant) and all(_ours(u, port) for u in relevant)


def _same_pac(a: str, b: str) -> bool:
    def norm(u: str) -> str:
        u = u.strip().lower().rstrip("/")
        return u.replace("://localhost:", "://127.0.0.1:").replace("://[::1]:", "://127.0.0.1:")

    return norm(a) == norm(b)


def bypass_list_covers(value: str, hosts: Sequence[str]) -> str | None:
    """The first target host that a ``--proxy-bypass-list`` value sends direct, or None."""
    for raw in re.split(r"[;,]", value):
        e = raw.strip().lower()
        if not e or e.startswith("<") or "/" in e.split("://", 1)[-1]:
            continue  # <local>, <-loopback>, CIDR ranges
        e = e.split("://", 1)[-1]
        if e.startswith("["):
            continue  # an IPv6 literal
        e = re.sub(r":\d+$", "", e)
        if re.fullmatch(r"[\d.]+", e):
            continue  # an IPv4 literal: targets are names
        if e.startswith("."):
            e = "*" + e
        for h in hosts:
            if fnmatch.fnmatchcase(h, e) or fnmatch.fnmatchcase("www." + h, e):
                return h
            if not any(c in e for c in "*?[") and e.endswith("." + h):
                return h
    return None


def chromium_bypass(cmdline: Sequence[str], ctx: BypassContext) -> str | None:
    """Why a Chromium-family launch routes around zerocontact, from its switches (or None).

    Chromium reads ``--switch=value`` (and ``-switch``); precedence is ``--no-proxy-server``, then
    ``--proxy-server`` (with ``--proxy-bypass-list``), then ``--proxy-pac-url``, then
    ``--proxy-auto-detect``, as in ``net/proxy_resolution/proxy_config_service`` switches.
    """
    flags: dict[str, str] = {}
    for arg in cmdline[1:]:
        if not arg.startswith("-") or arg in ("-", "--"):
            continue
        name, _, value = arg.lstrip("-").partition("=")
        flags.setdefault(name.lower(), value)
    if "no-proxy-server" in flags:
        return "started with --no-proxy-server"
    if "proxy-server" in flags:
        value = flags["proxy-server"]
        if ctx.proxy_port and not _proxy_is_ours(value, ctx.proxy_port):
            return f"started with --proxy-server={value}, which is not zerocontact's proxy"
        host = bypass_list_covers(flags.get("proxy-bypass-list", ""), ctx.target_hosts)
        if host:
            return f"started with --proxy-bypass-list that sends {host} direct"
        return None
    if "proxy-pac-url" in flags:
        if ctx.pac_url and not _same_pac(flags["proxy-pac-url"], ctx.pac_url):
            return (
                f"started with --proxy-pac-url={flags['proxy-pac-url']}, which is not zerocontact's PAC file"
            )
        return None
    if "proxy-auto-detect" in flags:
        return "started with --proxy-auto-detect, which ignores zerocontact's PAC file"
    return None


def bypass_of(p: ProcInfo, ctx: BypassContext) -> str | None:
    """Why this launch routes around the proxy (Tor Browser, or a browser's proxy switches), or None."""
    v = _view(p)
    tor = app_presets().get("tor-browser")
    if tor is not None and tor.matches(v):
        return "Tor Browser routes around zerocontact's proxy"
    for b in browsers().values():
        if b.matches(v):
            if b.kind != "chromium":
                return None
            why = chromium_bypass(p.cmdline, ctx)
            return f"{b.title} {why}" if why else None
    return None


# --- the verdict -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ProcessVerdict:
    """What to do with one process: ``terminate``, ``suspend``, ``bypass`` (log it) or ``allow``."""

    action: str
    rule: AppRule | None = None
    pattern: ProcessPattern | None = None
    reason: str = ""
    bypass: str | None = None  # set when the launch also routes around the proxy

    @property
    def stops(self) -> bool:
        return self.action in ACTIONS

    @property
    def preset(self) -> str | None:
        """The app preset that matched, if any (the journal's ``platform`` for app attempts)."""
        if self.pattern and self.pattern.source.startswith("preset "):
            return self.pattern.source[len("preset ") :]
        return None


def judge(p: ProcInfo, rules: Sequence[AppRule], bypass: BypassContext | None = None) -> ProcessVerdict:
    """The verdict on one process, given the active app rules and (when detection is on) the bypass
    context. A stronger action wins (terminate over suspend), then the first rule in the file."""
    v = _view(p)
    best: tuple[AppRule, ProcessPattern] | None = None
    for r in rules:
        hit = next((pat for pat in r.patterns if pat.matches(v)), None)
        if hit and (best is None or (r.action == "terminate" and best[0].action != "terminate")):
            best = (r, hit)
    why = bypass_of(p, bypass) if bypass is not None else None
    if best:
        r, pat = best
        who = f" (for {r.person})" if r.person else ""
        return ProcessVerdict(r.action, r, pat, f"{r.action}: rule {r.name!r}{who} matched {pat}", why)
    if why:
        return ProcessVerdict("bypass", reason=why, bypass=why)
    return ProcessVerdict("allow", reason="no active app rule matches")


# --- explain -----------------------------------------------------------------------------------------
def describe(text: str, pid: int = 0) -> ProcInfo:
    """A process description from what a user types: a name, a path or a whole command line."""
    try:
        argv = tuple(shlex.split(text))
    except ValueError:
        argv = tuple(text.split())
    argv = argv or (text,)
    exe = argv[0] if ("/" in argv[0] or "\\" in argv[0]) else ""
    return ProcInfo(pid=pid, name=_base(argv[0]) if exe else argv[0], exe=exe, cmdline=argv)


def explain_process(
    rules: Ruleset,
    process: ProcInfo | str,
    now: dt.datetime,
    *,
    started: Mapping[str, dt.datetime] | None = None,
    target_hosts: Sequence[str] = (),
    proxy_port: int = 0,
    pac_url: str = "",
) -> dict[str, Any]:
    """What the watcher would do with a process at ``now``: a JSON-ready dict (``text`` is a line).

    Keys: ``process``, ``pid``, ``verdict`` (terminate/suspend/bypass/allow/protected), ``rule``,
    ``person``, ``action``, ``active`` (is the matching rule in force now), ``matched``, ``bypass``,
    ``protected``, ``reason``, ``text``. ``process`` may be a ``ProcInfo`` (from the watcher's psutil
    lookup) or a name/path/command line.
    """
    from .policy import evaluate

    p = describe(process) if isinstance(process, str) else process
    state = evaluate(rules, now, started)
    apps = compile_apps(rules)
    v = judge(
        p,
        apps.active(state.apps, state.people),
        apps.bypass_context(state.people, target_hosts, proxy_port, pac_url),
    )
    inactive = judge(p, apps.rules) if not v.stops else v
    guard = protected_reason(p)
    out: dict[str, Any] = {
        "process": p.label if p.pid else p.name,
        "pid": p.pid or None,
        "verdict": v.action,
        "rule": None,
        "person": None,
        "action": None,
        "active": v.stops,
        "matched": None,
        "bypass": v.bypass,
        "protected": guard,
        "reason": v.reason,
    }
    shown = v if v.stops else inactive
    if shown.rule is not None:
        out.update(
            rule=shown.rule.name,
            person=shown.rule.person,
            action=shown.rule.action,
            matched=str(shown.pattern),
        )
    if guard and (v.stops or inactive.stops):
        out["verdict"] = "protected"
        out["reason"] = f"never stopped: {guard}"
    elif not v.stops and inactive.stops and inactive.rule is not None:
        out["reason"] = (
            f"rule {inactive.rule.name!r} matches ({inactive.pattern}) but is not in force now"
            + (f"; {v.reason}" if v.action == "bypass" else "")
        )
    elif v.action == "bypass":
        out["reason"] = f"logged as a bypass (not stopped): {v.bypass}"
    mark = {"terminate": "STOP", "suspend": "PAUSE", "bypass": "NOTE", "protected": "never"}.get(
        out["verdict"], "allow"
    )
    out["text"] = f"{mark:5}  {out['process']}\n       {out['reason']}"
    return out
