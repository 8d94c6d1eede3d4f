"""Real-sized responses through the real daemon over HTTPS (and HTTP/2): bodies that name no target
arrive byte for byte as the origin sent them; bodies that do still teach ids that block later."""

from __future__ import annotations

import gzip
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from zctest.e2e import Daemon, daemon_with_origin, journal_rows
from zctest.support import benchmark_module, need_tool, wait_for

bodies = benchmark_module("bodies")  # the platform-shaped bodies the benchmarks use

PLAIN = bodies.feed(200_000)  # a timeline page naming no target
MENTIONS = bodies.feed(200_000, commenter_at=5)  # Sam comments: handle and pk side by side
THEIRS = bodies.feed(200_000, seed=7, commenter_at=3, owned_at=(2, 9))  # two posts and a comment of theirs
CAPTION = bodies.feed(200_000, seed=8, mention_at=4)  # names them only in a caption: parsed, nothing removed
# 2 MB sent gzipped (~450 KB): past INLINE_ENCODED_BYTES, so inflated in the inspection thread
BIG_PLAIN = gzip.compress(bodies.feed(2_000_000, seed=3), mtime=0)
BIG_MENTIONS = gzip.compress(bodies.feed(2_000_000, seed=4, commenter_at=120), mtime=0)
OWNED = json.dumps({"items": [{"code": "Zz1", "user": {"pk": bodies.TARGET_PK, "username": "new.name"}}]})
PAGES: dict[str, tuple[bytes, dict[str, str]]] = {
    "/api/v1/feed/timeline/": (PLAIN, {}),
    "/api/v1/feed/timeline/?gz=1": (gzip.compress(PLAIN, mtime=0), {"Content-Encoding": "gzip"}),
    "/api/v1/feed/timeline/?gz=2m": (BIG_PLAIN, {"Content-Encoding": "gzip"}),
    "/api/v1/feed/reels_tray/?gz=2m": (BIG_MENTIONS, {"Content-Encoding": "gzip"}),
    "/page/": (bodies.html_page(300_000), {"Content-Type": "text/html; charset=utf-8"}),
    "/api/v1/feed/reels_tray/": (MENTIONS, {}),
    "/p/Zz1/?__a=1": (OWNED.encode(), {}),
    "/api/v1/feed/timeline/?theirs=1": (THEIRS, {}),
    "/api/v1/feed/timeline/?theirs=gz": (gzip.compress(THEIRS, mtime=0), {"Content-Encoding": "gzip"}),
    "/api/v1/feed/timeline/?caption=1": (CAPTION, {}),
}


def _page(path: str) -> tuple[bytes, dict[str, str]]:
    body, headers = PAGES[path]
    return body, {"Content-Type": "application/json; charset=utf-8", **headers}


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with daemon_with_origin(tmp_path, _page) as d:
        yield d


def fetch(d: Daemon, out: Path, url: str, *args: str) -> tuple[int, bytes]:
    r = subprocess.run(
        [
            need_tool("curl"),
            "-sS",
            "--max-time",
            "20",
            "-x",
            f"http://{d.proxy}",
            "--cacert",
            str(d.ca),
            "-o",
            str(out),
            "-w",
            "%{http_code} %{http_version}",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    code, version = r.stdout.split()
    if "--http2" in args:
        assert version == "2", "curl and the proxy did not speak HTTP/2"
    return int(code), out.read_bytes()


@pytest.mark.e2e
@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_bodies_that_name_no_target_arrive_byte_identical(
    daemon: Daemon, tmp_path: Path, http2: bool
) -> None:
    extra = ("--http2",) if http2 else ("--http1.1",)
    for path in (
        "/api/v1/feed/timeline/",
        "/api/v1/feed/timeline/?gz=1",
        "/api/v1/feed/timeline/?gz=2m",
        "/page/",
    ):
        code, got = fetch(daemon, tmp_path / "out", f"https://www.instagram.com{path}", *extra)
        assert code == 200
        assert got == PAGES[path][0], f"{path}: {len(got)} bytes, sent {len(PAGES[path][0])}"


@pytest.mark.e2e
@pytest.mark.parametrize("tray", ["/api/v1/feed/reels_tray/", "/api/v1/feed/reels_tray/?gz=2m"])
def test_an_id_learned_from_a_large_response_blocks_a_post_it_owns(
    daemon: Daemon, tmp_path: Path, tray: str
) -> None:
    post = "https://www.instagram.com/p/Zz1/?__a=1"
    code, _ = fetch(daemon, tmp_path / "out", post, "-H", "Accept: application/json")
    assert code == 200  # nobody knows whose pk that is yet
    code, got = fetch(daemon, tmp_path / "out", f"https://www.instagram.com{tray}")
    assert code == 200 and got == PAGES[tray][0]  # learning reads the body, it does not change it
    code, got = fetch(daemon, tmp_path / "out", post, "-H", "Accept: application/json")
    assert code == 403 and json.loads(got)["zerocontact"] == "blocked"
    assert f"learned a Instagram id of Sam: {bodies.TARGET_PK}" in daemon.output()


def without_theirs(body: bytes) -> dict[str, object]:
    """The feed with their posts and their comment taken out, computed here from the origin's body."""
    doc = json.loads(body)
    doc["items"] = [i for i in doc["items"] if i["user"]["username"] != bodies.TARGET_HANDLE]
    for item in doc["items"]:
        item["preview_comments"] = [
            c for c in item["preview_comments"] if c["user"]["username"] != bodies.TARGET_HANDLE
        ]
    return doc


@pytest.mark.e2e
@pytest.mark.parametrize("http2", [False, True], ids=["http1.1", "http2"])
def test_their_posts_leave_the_feed_the_browser_receives(daemon: Daemon, tmp_path: Path, http2: bool) -> None:
    extra = ("--http2",) if http2 else ("--http1.1",)
    expected = without_theirs(THEIRS)
    assert len(expected["items"]) == len(json.loads(THEIRS)["items"]) - 2  # type: ignore[arg-type]
    code, got = fetch(
        daemon, tmp_path / "out", "https://www.instagram.com/api/v1/feed/timeline/?theirs=1", *extra
    )
    assert code == 200
    assert json.dumps(json.loads(got)) == json.dumps(expected)  # every other post, cursor and count as sent
    code, got = fetch(
        daemon, tmp_path / "out", "https://www.instagram.com/api/v1/feed/timeline/?theirs=gz", *extra
    )
    assert code == 200 and json.dumps(json.loads(gzip.decompress(got))) == json.dumps(expected)  # re-encoded
    # a feed that names them only in a caption is read (the prefilter lets it through) and left alone
    code, got = fetch(
        daemon, tmp_path / "out", "https://www.instagram.com/api/v1/feed/timeline/?caption=1", *extra
    )
    assert code == 200 and got == CAPTION
    assert "kept 3 entries out of sight in Instagram /api/v1/feed/timeline/" in daemon.output()

    def counted() -> list[tuple[str, str, int, int]]:
        con = sqlite3.connect(f"file:{daemon.state / 'journal.sqlite3'}?mode=ro", uri=True)
        try:
            return con.execute("SELECT day, platform, removed, missed FROM hidden").fetchall()
        finally:
            con.close()

    # two fetches of three each, on today's row: polled, the writer commits in its own time
    wait_for(lambda: [r for r in counted() if r[2] == 6], 20, "the removals to be counted in the journal")
    assert [(p, n, m) for _, p, n, m in counted()] == [("instagram", 6, 0)]
    assert journal_rows(daemon) == []  # kept out of sight is not an attempt
