"""Ids learned from allowed responses, through the real daemon: rules name only a handle, an allowed
response about someone else mentions the person next to their id, and from then on a request that
carries only that id is blocked, also after the daemon restarts.

One daemon serves every platform (a JSON origin on loopback stands in for all their hosts via
``--redirect-upstream``); it is started twice on the same state directory. Spotify is not here: a
Spotify user has one identifier (their user id, which their URLs, API calls and presence all carry), so
there is nothing to learn; the rules list that id.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import quote

import pytest
from zctest.e2e import Daemon, start_daemon
from zctest.support import need_tool, wait_for

RULES = """
[[person]]
name = "Sam"
accounts = { instagram = "sam.example", x = "samexample", tiktok = "sam.example", facebook = "sam.example",
             youtube = "@sam.example", linkedin = "sam-example", reddit = "sam_example" }
"""

MEMBER = "ACoAAB2xYz0Bc1dEf2gHi3jKl4mNo5pQr6sTu7v"
SECUID = "MS4wLjABAAAAv7iSuuXDJGDvJkmH_vz1qkDZYo1apxgzaxdBSeIuPiM"


def _vars(doc: dict[str, object]) -> str:
    return quote(json.dumps(doc, separators=(",", ":")))


@dataclass(frozen=True)
class Lesson:
    """One platform: an allowed request whose response teaches the id, and a request carrying only it."""

    platform: str
    teach: tuple[str, ...]  # curl arguments
    answer: object  # what the origin answers the teaching request with (JSON, or HTML text)
    probe: tuple[str, ...]

    @property
    def path(self) -> str:
        url = next(a for a in self.teach if a.startswith("https://"))
        return "/" + url.split("/", 3)[3].split("?")[0]


LESSONS = [
    Lesson(
        "instagram",
        ("https://www.instagram.com/api/v1/friendships/25025320/followers/?count=12",),
        {"users": [{"pk": "1234567", "username": "sam.example", "full_name": "Sam"}], "big_list": True},
        ("https://www.instagram.com/api/v1/feed/user/1234567/?count=12",),
    ),
    Lesson(
        "threads",
        (
            "-H",
            "X-FB-Friendly-Name: BarcelonaFriendshipsFollowersTabQuery",
            "--data-urlencode",
            'variables={"userID":"314216"}',
            "https://www.threads.com/graphql/query",
        ),
        {"data": {"followers": {"edges": [{"node": {"pk": "7654321", "username": "sam.example"}}]}}},
        (
            "-H",
            "X-FB-Friendly-Name: BarcelonaProfileThreadsTabQuery",
            "--data-urlencode",
            'variables={"userID":"7654321"}',
            "https://www.threads.com/api/graphql",
        ),
    ),
    Lesson(
        "x",
        (
            "https://x.com/i/api/graphql/gC_lyAxZOptAMLCJX5UhWw/Followers?variables="
            + _vars({"userId": "11348282"}),
        ),
        {
            "data": {
                "user": {
                    "result": {
                        "timeline": {
                            "timeline": {
                                "instructions": [
                                    {
                                        "entries": [
                                            {
                                                "content": {
                                                    "itemContent": {
                                                        "user_results": {
                                                            "result": {
                                                                "rest_id": "2244994945",
                                                                "core": {"screen_name": "SamExample"},
                                                            }
                                                        }
                                                    }
                                                }
                                            }
                                        ]
                                    }
                                ]
                            }
                        }
                    }
                }
            }
        },
        (
            "https://x.com/i/api/graphql/QWF3SzpHmykQHsQMixG0cg/UserTweets?variables="
            + _vars({"userId": "2244994945"}),
        ),
    ),
    Lesson(
        "tiktok",
        (
            "https://www.tiktok.com/api/user/list/?aid=1988&count=30&secUid=MS4wLjABAAAAsomeoneelse0123456789abcdef",
        ),
        {"userList": [{"user": {"id": "6812345678901234567", "uniqueId": "sam.example", "secUid": SECUID}}]},
        (f"https://www.tiktok.com/api/post/item_list/?aid=1988&count=35&secUid={SECUID}&cursor=0",),
    ),
    Lesson(
        "facebook",
        ("https://www.facebook.com/someone.else/friends",),
        '<html><head><title>Friends</title></head><body><script type="application/json">'
        + json.dumps({"require": [{"props": {"userVanity": "sam.example", "userID": "100064860875397"}}]})
        + "</script></body></html>",
        ("https://www.facebook.com/profile.php?id=100064860875397",),
    ),
    Lesson(
        "youtube",
        (
            "-H",
            "Content-Type: application/json",
            "--data",
            '{"context":{},"query":"sourdough"}',
            "https://www.youtube.com/youtubei/v1/search?prettyPrint=false",
        ),
        {
            "contents": [
                {
                    "channelRenderer": {
                        "channelId": "UCa1b2c3d4e5f6g7h8i9j0kL",
                        "channelHandleText": {"runs": [{"text": "@sam.example"}]},
                    }
                }
            ]
        },
        ("https://www.youtube.com/channel/UCa1b2c3d4e5f6g7h8i9j0kL/videos",),
    ),
    Lesson(
        "linkedin",
        ("https://www.linkedin.com/voyager/api/search/dash/clusters?q=all&query=(keywords:data%20engineer)",),
        {"included": [{"publicIdentifier": "sam-example", "entityUrn": f"urn:li:fsd_profile:{MEMBER}"}]},
        (
            "https://www.linkedin.com/voyager/api/messaging/dash/presenceStatuses?ids=List("
            + quote(f"urn:li:fsd_profile:{MEMBER}", safe="")
            + ")",
        ),
    ),
    Lesson(
        "reddit",
        ("https://www.reddit.com/r/pics/new.json?limit=25",),
        {
            "kind": "Listing",
            "data": {"children": [{"data": {"author": "sam_example", "author_fullname": "t2_6c1xjab"}}]},
        },
        ("https://matrix.redditspace.com/_matrix/client/v3/presence/%40t2_6c1xjab%3Areddit.com/status",),
    ),
]
HOSTS = [
    "www.instagram.com",
    "www.threads.com",
    "x.com",
    "www.tiktok.com",
    "www.facebook.com",
    "www.youtube.com",
    "www.linkedin.com",
    "www.reddit.com",
    "matrix.redditspace.com",
]


class _JsonOrigin(http.server.BaseHTTPRequestHandler):
    """Answers each lesson's teaching path with its recorded body, everything else with an empty JSON."""

    answers: ClassVar[dict[str, object]] = {lesson.path: lesson.answer for lesson in LESSONS}

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        answer = self.answers.get(self.path.split("?")[0], {})
        if isinstance(answer, str):
            body, ctype = answer.encode(), "text/html; charset=utf-8"
        else:
            body, ctype = json.dumps(answer).encode(), "application/json"
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


@dataclass
class Run:
    before: dict[str, int]  # id-only request before anything was learned
    taught: dict[str, int]  # the teaching request
    after: dict[str, int]  # id-only request once the response was seen
    restarted: dict[str, int]  # id-only request after a restart
    log: str


def _status(d: Daemon, *args: str) -> int:
    curl = [need_tool("curl"), "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10"]
    r = subprocess.run(
        [*curl, "-x", f"http://{d.proxy}", "--cacert", str(d.ca), *args],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    tmp = tmp_path_factory.mktemp("learned")
    home = tmp / "home"
    env = {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_STATE_HOME": str(home / ".state"),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _JsonOrigin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    extra = tuple(a for h in HOSTS for a in ("--redirect-upstream", f"{h}=127.0.0.1:{port}"))
    d = start_daemon(tmp, RULES, extra, env=env, name="learn")
    try:
        before = {lesson.platform: _status(d, *lesson.probe) for lesson in LESSONS}
        taught = {lesson.platform: _status(d, *lesson.teach) for lesson in LESSONS}
        after = {lesson.platform: _status(d, *lesson.probe) for lesson in LESSONS}
        wait_for(lambda: d.output().count("learned a") >= len(LESSONS), 10, "every id to be learned")
        assert d.stop() == 0, d.output()
        d = start_daemon(tmp, RULES, extra, env=env, name="learn")
        restarted = {lesson.platform: _status(d, *lesson.probe) for lesson in LESSONS}
        yield Run(before, taught, after, restarted, d.output())
    finally:
        d.stop()
        server.shutdown()


@pytest.mark.e2e
@pytest.mark.parametrize("platform", [lesson.platform for lesson in LESSONS])
def test_an_id_learned_from_an_allowed_response_blocks_and_survives_a_restart(
    run: Run, platform: str
) -> None:
    assert run.before[platform] == 200, "the id-only request passed before anything was learned"
    assert run.taught[platform] == 200, "the teaching response (about someone else) was passed on"
    assert run.after[platform] == 403, "the id-only request is blocked once the id is learned"
    assert run.restarted[platform] == 403, f"still blocked after a restart:\n{run.log}"


def test_lessons_cover_every_platform_with_ids_but_spotify() -> None:
    from zerocontact.rules.platforms import presets

    learnable = {name for name, p in presets().items() if p.learn or p.accounts_from == ("instagram",)}
    assert {lesson.platform for lesson in LESSONS} == learnable
    assert not presets()["spotify"].learn
