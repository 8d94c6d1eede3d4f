"""The primitives every step is made of: each change recorded, reverted exactly, undone on failure."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import pytest
from zctest.installer import FakeRunner, said, tree

from zerocontact.installer.context import CommandError, Context, InstallError
from zerocontact.installer.ops import (
    Command,
    Dir,
    File,
    IniKeys,
    JsonKeys,
    Manifest,
    Op,
    Reverter,
    Step,
    ini_get,
    ini_set,
    transaction,
)

P = PurePosixPath


def ctx(root: Path) -> Context:
    return Context(
        mode="system",
        root=root,
        home=P("/home/sam"),
        config_dir=P("/etc/zerocontact"),
        state_dir=P("/var/lib/zerocontact"),
        exe=("/usr/bin/zerocontact",),
        env={},
    )


class Steps(Step):
    name = "test"
    title = "a test step"

    def __init__(self, c: Context, ops: list[Op]) -> None:
        super().__init__(c)
        self._ops = ops

    def ops(self) -> list[Op]:
        return self._ops


def apply(c: Context, runner: FakeRunner, *ops: Op) -> Manifest:
    m = Manifest.load(c.manifest)
    _, say = said()
    with transaction(c, runner, m, say) as tx:
        Steps(c, list(ops)).apply(tx)
    return m


def revert_all(c: Context, runner: FakeRunner) -> None:
    m = Manifest.load(c.manifest)
    r = Reverter(runner, said()[1], {})
    for rec in reversed(m.records):
        r.revert(rec)


def test_a_written_file_is_removed_with_the_folders_made_for_it(staging: Path) -> None:
    c = ctx(staging)
    (staging / "etc").mkdir()
    before = tree(staging)
    m = apply(c, FakeRunner(), File(P("/etc/a/b/c.json"), b"{}", 0o640))
    assert (staging / "etc/a/b/c.json").stat().st_mode & 0o777 == 0o640
    assert [r["kind"] for r in m.records] == ["dir", "dir", "file"]
    revert_all(c, FakeRunner())
    (staging / "var/lib/zerocontact/install.json").unlink()
    for d in ("var/lib/zerocontact", "var/lib", "var"):
        (staging / d).rmdir()
    assert tree(staging) == before


def test_a_replaced_file_comes_back_byte_for_byte_with_its_mode(staging: Path) -> None:
    c = ctx(staging)
    f = staging / "etc/thing.conf"
    f.parent.mkdir()
    f.write_bytes(b"theirs\n")
    f.chmod(0o600)
    apply(c, FakeRunner(), File(P("/etc/thing.conf"), b"ours\n", 0o644))
    apply(c, FakeRunner(), File(P("/etc/thing.conf"), b"ours, v2\n", 0o644))  # a second install
    assert f.read_bytes() == b"ours, v2\n"
    m = Manifest.load(c.manifest)
    assert len(m.records) == 1  # the record of the first install, with the original backup
    revert_all(c, FakeRunner())
    assert f.read_bytes() == b"theirs\n" and f.stat().st_mode & 0o777 == 0o600


def test_applying_twice_records_nothing_new(staging: Path) -> None:
    c = ctx(staging)
    ops: list[Op] = [
        Dir(P("/etc/zc")),
        File(P("/etc/zc/x"), b"1", 0o644),
        Command(["tool", "add"], revert=["tool", "remove"]),
    ]
    r1, r2 = FakeRunner(), FakeRunner()
    first = apply(c, r1, *ops).records
    second = apply(c, r2, *ops).records
    assert first == second
    assert r1.calls == [["tool", "add"]] and r2.calls == [["tool", "add"]]  # commands are idempotent tools


def test_a_failing_step_undoes_this_runs_changes_only(staging: Path) -> None:
    c = ctx(staging)
    apply(c, FakeRunner(), File(P("/etc/keep/me"), b"from an earlier install", 0o644))
    before = tree(staging)
    runner = FakeRunner({("tool", "add"): ("", 0), ("broken",): ("no", 3)})
    with pytest.raises(CommandError, match=r"`broken` failed \(exit 3\)"):
        apply(
            c,
            runner,
            File(P("/etc/keep/me"), b"changed by this run", 0o644),
            File(P("/etc/new/file"), b"new", 0o644),
            Command(["tool", "add"], revert=["tool", "remove"]),
            Command(["broken"]),
        )
    assert runner.calls[-1] == ["tool", "remove"]  # the new command was undone too
    assert tree(staging) == before
    assert [r["key"] for r in Manifest.load(c.manifest).records][-1].endswith("/etc/keep/me")


def test_ini_keys_keep_every_other_line(staging: Path) -> None:
    c = ctx(staging)
    f = staging / "home/sam/.config/kioslaverc"
    f.parent.mkdir(parents=True)
    original = "# KDE\n[Proxy Settings]\nProxyType=1\nhttpProxy=http://corp 3128\n\n[Other]\nx=1\n"
    f.write_text(original)
    apply(
        c,
        FakeRunner(),
        IniKeys(
            P("/home/sam/.config/kioslaverc"),
            "Proxy Settings",
            {"ProxyType": "2", "Proxy Config Script": "http://127.0.0.1:8342/proxy.pac"},
        ),
    )
    text = f.read_text()
    assert ini_get(text, "Proxy Settings", "ProxyType") == "2"
    assert ini_get(text, "Proxy Settings", "httpProxy") == "http://corp 3128"
    assert ini_get(text, "Other", "x") == "1"
    revert_all(c, FakeRunner())
    assert f.read_text() == original


def test_ini_set_adds_a_group_and_removes_keys() -> None:
    assert ini_set("", "G", "k", "v") == "[G]\nk=v\n"
    assert ini_set("[G]\nk=v\n", "G", "k", None) == "[G]\n"
    assert ini_set("[A]\na=1\n", "G", "k", "v") == "[A]\na=1\n\n[G]\nk=v\n"
    assert ini_set("[G]\na=1\n\n[H]\n", "G", "k", "v") == "[G]\na=1\nk=v\n\n[H]\n"


def test_json_keys_merge_into_a_document_others_own(staging: Path) -> None:
    c = ctx(staging)
    f = staging / "etc/firefox/policies/policies.json"
    f.parent.mkdir(parents=True)
    theirs = {"policies": {"DisableTelemetry": True, "Proxy": {"Mode": "none"}}}
    f.write_text(json.dumps(theirs))
    before = f.read_bytes()
    apply(
        c,
        FakeRunner(),
        JsonKeys(
            P("/etc/firefox/policies/policies.json"),
            {("policies", "Proxy"): {"Mode": "autoConfig"}, ("policies", "DNSOverHTTPS"): {"Enabled": False}},
        ),
    )
    doc = json.loads(f.read_text())
    assert doc["policies"]["DisableTelemetry"] is True and doc["policies"]["Proxy"] == {"Mode": "autoConfig"}
    revert_all(c, FakeRunner())
    assert json.loads(f.read_bytes()) == json.loads(before)


def test_a_json_file_created_for_us_goes_away(staging: Path) -> None:
    c = ctx(staging)
    apply(c, FakeRunner(), JsonKeys(P("/etc/firefox/policies/policies.json"), {("policies", "A"): 1}))
    revert_all(c, FakeRunner())
    assert not (staging / "etc/firefox/policies/policies.json").exists()
    assert not (staging / "etc/firefox").exists()


def test_a_broken_json_document_is_refused_clearly(staging: Path) -> None:
    c = ctx(staging)
    f = staging / "etc/p.json"
    f.parent.mkdir()
    f.write_text("{nope")
    with pytest.raises(InstallError, match="is not valid JSON"):
        apply(c, FakeRunner(), JsonKeys(P("/etc/p.json"), {("a",): 1}))
    assert f.read_text() == "{nope"


def test_plan_lines_are_plain_text(staging: Path) -> None:
    c = ctx(staging)
    s = Steps(c, [File(P("/etc/x"), b"", 0o644, "why"), Command(["a"], revert=["b"], live_only=True)])
    assert s.plan() == [
        "[test] a test step",
        "  - write /etc/x (0644): why",
        "  - run a; on uninstall: b (skipped: staging root)",
    ]
