"""The addon with mitmproxy's own test helpers (taddons, tflow): real flows, real rules text."""

from __future__ import annotations

import dataclasses
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest
import tomli
from mitmproxy import http
from mitmproxy.test import taddons, tflow
from mitmproxy.websocket import WebSocketMessage
from wsproto.frame_protocol import Opcode
from zctest.support import benchmark_module

from zerocontact.daemon import blocker as blocker_module
from zerocontact.daemon.blocker import Blocker
from zerocontact.daemon.enforcement import build
from zerocontact.daemon.journal import Journal
from zerocontact.daemon.journal.reader import Filters, reading
from zerocontact.rules import Matcher, load
from zerocontact.rules.policy import State

CASES = Path(__file__).resolve().parent.parent / "rules" / "cases"


def blocker(rules_text: str, learned: list[list[str]] = ()) -> Blocker:  # type: ignore[assignment]
    import datetime as dt

    rules = load(rules_text)
    return Blocker(enforcement=build(rules, dt.datetime.now(dt.UTC), None, learned=learned))


def flow(method: str, url: str, headers: dict[str, str] | None = None, body: bytes = b"") -> http.HTTPFlow:
    f = tflow.tflow()
    f.request = http.Request.make(method, url, body, headers or {})
    return f


def _cases() -> list[Any]:
    out = []
    for file in sorted(CASES.glob("*.toml")):
        doc = tomli.loads(file.read_text())
        for i, c in enumerate(doc["case"]):
            out.append(
                pytest.param(file.stem, doc["rules"], doc.get("learned", []), c, id=f"{file.stem}-{i + 1}")
            )
    return out


_BLOCKERS: dict[str, Blocker] = {}


@pytest.mark.parametrize(("name", "rules", "learned", "case"), _cases())
def test_addon_answers_exactly_the_blocked_cases(
    name: str, rules: str, learned: list[list[str]], case: dict[str, Any]
) -> None:
    if name not in _BLOCKERS:
        _BLOCKERS[name] = blocker(rules, learned)
    b = _BLOCKERS[name]
    method, _, url = case["request"].rpartition(" ")
    f = flow(method or "GET", url, case.get("headers"), case.get("body", "").encode())
    with taddons.context(b):
        b.request(f)
    if case["verdict"] == "block":
        assert f.response is not None and f.response.status_code == 403, case
        assert f.response.headers["X-Zerocontact"] == "blocked"
    else:
        assert f.response is None, (case, f.response and f.response.text[:200])


RULES = (
    '[settings]\nshow_name = false\n[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example", '
    'spotify = "21t64rkd4a6ykxmin5ahgpj4q" }\nwhy = "Healing."\n'
)


def test_page_navigation_gets_the_block_page_and_api_calls_json() -> None:
    b = blocker(RULES)
    page = flow(
        "GET", "https://www.instagram.com/sam.example/", {"Sec-Fetch-Dest": "document", "Accept": "text/html"}
    )
    api = flow(
        "GET",
        "https://www.instagram.com/sam.example/",
        {"Sec-Fetch-Dest": "empty", "Accept": "application/json"},
    )
    with taddons.context(b):
        b.request(page)
        b.request(api)
    assert page.response is not None and 'data-zerocontact="blocked"' in page.response.text
    assert "Sam" not in page.response.text  # the name is shown only when the rules ask for it
    assert "Healing." in page.response.text
    assert "default-src 'none'" in page.response.headers["Content-Security-Policy"]
    assert api.response is not None and json.loads(api.response.text)["zerocontact"] == "blocked"
    assert api.response.headers["Content-Type"].startswith("application/json")
    assert "Retry-After" not in api.response.headers


def test_each_new_attempt_gets_its_own_count_and_id_on_the_page(caplog: pytest.LogCaptureFixture) -> None:
    """The page is rendered from a kept frame per wording; the count and attempt id are put in per
    attempt, and the rules' own words cannot stand in for them (the marks are escaped there)."""
    b = blocker(RULES.replace('why = "Healing."', 'why = "Healing <zc-times/> <zc-attempt/>"'))
    pages = []
    with taddons.context(b), caplog.at_level("INFO", logger="zerocontact.proxy"):
        for _ in range(12):
            nav = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
            f = flow("GET", "https://www.instagram.com/sam.example/", nav)
            b.request(f)
            assert f.response is not None
            pages.append(f.response.text)
    assert "first time today" in pages[0] and "second time today" in pages[1]
    assert "tenth time today" in pages[9] and "12th time today" in pages[11]
    ids = [p.split('name="attempt" value="')[1].split('"')[0] for p in pages]
    assert len(set(ids)) == 12 and all(len(i) >= 16 for i in ids)
    assert all("Healing &lt;zc-times/&gt; &lt;zc-attempt/&gt;" in p for p in pages)
    assert all("<zc-" not in p for p in pages)
    # the service's log (journald keeps it, beyond the private journal) names neither her nor the address
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("blocked")]
    assert lines[:2] == [
        "blocked: An Instagram profile, the first time today",
        "blocked: An Instagram profile, the second time today",
    ]
    assert len(lines) == 12 and not any("sam" in line.lower() for line in lines)


def test_show_name_setting() -> None:
    b = blocker(RULES.replace("show_name = false", "show_name = true"))
    f = flow("GET", "https://www.instagram.com/sam.example/")
    with taddons.context(b):
        b.request(f)
    assert f.response is not None and "Sam&#39;s Instagram profile" in f.response.text


def test_the_page_names_what_was_paused_as_a_person_would() -> None:
    from zerocontact.daemon.blockpage import describe

    assert describe("x", "search", "Jordan") == "An X search for Jordan"
    assert describe("instagram", "profile", "Jordan") == "Jordan's Instagram profile"
    assert describe("instagram", "posts", "Jordan") == "An Instagram post by Jordan"
    assert describe("whatsapp", "presence", "Jordan") == "Jordan's online status on WhatsApp"
    assert describe("x", "messages", None) == "An X conversation"


def test_post_opened_by_shortcode_is_checked_in_the_response() -> None:
    b = blocker(RULES)
    theirs = flow("GET", "https://www.instagram.com/p/Chm_-tPJqpd/?__a=1", {"Accept": "application/json"})
    other = flow("GET", "https://www.instagram.com/p/Other123/?__a=1", {"Accept": "application/json"})
    with taddons.context(b):
        for f, (owner, pk) in ((theirs, ("sam.example", "52222405344")), (other, ("someone", "777"))):
            b.request(f)
            assert f.response is None
            f.response = http.Response.make(
                200,
                json.dumps({"items": [{"code": "x", "user": {"pk": pk, "username": owner}}]}),
                {"Content-Type": "application/json"},
            )
            b.response(f)
    assert theirs.response is not None and theirs.response.status_code == 403
    assert other.response is not None and other.response.status_code == 200


def test_ids_learned_from_allowed_responses_block_id_only_calls() -> None:
    b = blocker(RULES)
    search = flow("GET", "https://www.instagram.com/api/v1/web/search/topsearch/?query=cats")
    story = flow("GET", "https://i.instagram.com/api/v1/feed/user/343260652/story/")
    with taddons.context(b):
        b.request(search)
        assert search.response is None
        search.response = http.Response.make(
            200,
            json.dumps({"users": [{"user": {"pk": "343260652", "username": "sam.example"}}]}),
            {"Content-Type": "application/json"},
        )
        b.response(search)
        b.request(story)
    assert story.response is not None and story.response.status_code == 403


def test_friend_activity_entry_is_removed_not_the_list() -> None:
    b = blocker(RULES)
    f = flow("GET", "https://guc-spclient.spotify.com/presence-view/v1/buddylist")
    friends = {
        "friends": [
            {"user": {"uri": "spotify:user:21t64rkd4a6ykxmin5ahgpj4q"}, "track": {}},
            {"user": {"uri": "spotify:user:someoneelse"}, "track": {}},
        ]
    }
    with taddons.context(b):
        b.request(f)
        assert f.response is None
        f.response = http.Response.make(200, json.dumps(friends), {"Content-Type": "application/json"})
        b.response(f)
    kept = json.loads(f.response.text)["friends"]
    assert [x["user"]["uri"] for x in kept] == ["spotify:user:someoneelse"]


def test_presence_websocket_message_is_dropped() -> None:
    b = blocker(RULES)
    f = tflow.twebsocketflow()
    f.request.host = "dealer.spotify.com"
    theirs = json.dumps({"type": "message", "uri": "hm://presence2/user/21t64rkd4a6ykxmin5ahgpj4q"}).encode()
    other = json.dumps({"type": "message", "uri": "hm://presence2/user/someoneelse"}).encode()
    with taddons.context(b):
        assert f.websocket is not None
        for content in (theirs, other):
            f.websocket.messages.append(WebSocketMessage(Opcode.TEXT, False, content))
            b.websocket_message(f)
    assert f.websocket.messages[-2].dropped and not f.websocket.messages[-1].dropped


def test_error_while_judging_fails_closed_for_targets_only(monkeypatch: pytest.MonkeyPatch) -> None:
    b = blocker(RULES)

    def boom(*a: object, **k: object) -> None:
        raise ValueError("bug")

    monkeypatch.setattr(b.enforcement.matcher, "judge", boom)
    target = flow("GET", "https://www.instagram.com/explore/")
    other = flow("GET", "https://example.org/")
    with taddons.context(b):
        b.request(target)
        b.request(other)
    assert target.response is not None and target.response.status_code == 403
    assert other.response is None


def test_inactive_schedule_lets_requests_through() -> None:
    b = blocker(RULES)
    b.enforcement = dataclasses.replace(
        b.enforcement, state=State(b.enforcement.state.at, frozenset(), frozenset(), None, {})
    )
    f = flow("GET", "https://www.instagram.com/sam.example/")
    with taddons.context(b):
        b.request(f)
    assert f.response is None


def test_note_endpoint_is_answered_locally() -> None:
    b = blocker(RULES)
    f = flow(
        "POST",
        "https://www.instagram.com/.zerocontact/note",
        {"Content-Type": "application/x-www-form-urlencoded"},
        b"attempt=abc&note=a+song",
    )
    with taddons.context(b):
        b.request(f)
    assert f.response is not None and 'data-zerocontact="noted"' in f.response.text


def tunnelled(url: str, host_header: str) -> http.HTTPFlow:
    """A request inside a decrypted CONNECT tunnel to ``url``'s host, with its own Host header."""
    f = flow("GET", url)
    f.request.headers["Host"] = host_header
    assert f.request.pretty_host == host_header
    f.client_conn.sni = f.request.host
    f.server_conn.address = (f.request.host, 443)
    return f


@pytest.mark.parametrize("forged", ["evil.example", "localhost", "instagram.com.evil.example"])
def test_a_forged_host_header_is_judged_as_the_tunnels_host_too(forged: str) -> None:
    b = blocker(RULES)
    f = tunnelled("https://www.instagram.com/sam.example/", forged)
    with taddons.context(b):
        b.request(f)
    assert f.response is not None and f.response.status_code == 403
    # and the other way round: the Host header names the target, the tunnel does not
    f = tunnelled("https://evil.example/sam.example/", "www.instagram.com")
    with taddons.context(b):
        b.request(f)
    assert f.response is not None and f.response.status_code == 403


def test_a_forged_host_header_on_someone_elses_page_is_still_checked_as_the_platform() -> None:
    b = blocker(RULES)
    f = tunnelled("https://www.instagram.com/someone.else/", "evil.example")
    with taddons.context(b):
        b.request(f)
    assert f.response is None
    assert f.metadata["zerocontact"].platform == "instagram"  # its response is checked as Instagram's


def test_the_note_endpoint_is_answered_locally_whatever_the_host_header_says() -> None:
    b = blocker(RULES)
    f = tunnelled("https://www.instagram.com/.zerocontact/note", "evil.example")
    f.request.method = "POST"
    f.request.content = b"attempt=abc&note=private+words"
    with taddons.context(b):
        b.request(f)
    assert f.response is not None and f.response.headers.get("X-Zerocontact") == "noted"


SPELLINGS = [
    ("http", "www.instagram.com", "/sam.example/?a=1"),
    ("http", "www.instagram.com:80", "/x"),
    ("http", "www.instagram.com:8080", "/x"),
    ("https", "www.instagram.com", "/"),
    ("https", "www.instagram.com:443", "/p/abc/"),
    ("https", "WWW.Instagram.COM.", "/sam.example/"),
    ("https", "[::1]:8443", "/x"),
    ("https", "evil.example", "*"),
    ("http", "xn--bcher-kva.example", "/y"),
]


def test_the_url_judged_is_mitmproxys_pretty_url_whichever_spelling_came_first() -> None:
    """The origin is worked out once per scheme and Host header: every later request naming them
    (other paths, HTTP/2's :authority, a CONNECT) must still get exactly ``pretty_url``."""
    flows = []
    for scheme, host_header, path in SPELLINGS * 2:
        f = flow("GET", f"{scheme}://127.0.0.1:9{path if path != '*' else '/'}")
        f.request.path = path
        f.request.headers["Host"] = host_header
        flows.append(f)
    h2 = flow("GET", "https://www.instagram.com/a")
    h2.request.http_version = "HTTP/2.0"
    h2.request.authority = "www.instagram.com:443"
    h2.request.headers["Host"] = "ignored.example"
    connect = flow("CONNECT", "https://www.instagram.com:443/")
    connect.request.authority = "www.instagram.com:443"
    bare = flow("GET", "https://www.instagram.com/b")  # no Host header: the URL's host
    for f in [*flows, h2, connect, bare, h2]:
        assert blocker_module.pretty_url(f.request) == f.request.pretty_url, f.request.headers.get("Host")


def test_the_views_are_the_same_remembered_or_worked_out() -> None:
    """Each request's host names are remembered by what they are made of: a request that differs in
    any one of them (Host header, URL host, TLS name, address dialled) gets its own."""
    blocker_module._VIEWS.clear()

    def fresh(f: http.HTTPFlow) -> tuple[str, ...]:
        blocker_module._VIEWS.clear()
        return Blocker._views(f)

    variants = [
        tunnelled("https://www.instagram.com/sam.example/", "evil.example"),
        tunnelled("https://www.instagram.com/sam.example/", "www.instagram.com"),
        tunnelled("https://evil.example/sam.example/", "www.instagram.com"),
        tunnelled("https://www.instagram.com./x", "WWW.INSTAGRAM.COM."),
    ]
    # the same Host header and URL host, told apart only by the TLS name, then only by the address
    by_sni = tunnelled("https://www.instagram.com/x", "www.instagram.com")
    by_sni.client_conn.sni = "evil.example"
    by_address = tunnelled("https://www.instagram.com/x", "www.instagram.com")
    by_address.server_conn.address = ("evil.example", 443)
    plain = flow("GET", "http://www.instagram.com/x")
    plain.client_conn.sni = None
    plain.server_conn.address = None
    variants += [by_sni, by_address, plain]
    expected = [fresh(f) for f in variants]
    # a key missing any part would hand one of these another's views (no evil.example among them)
    assert expected[1] == ("www.instagram.com",)
    assert expected[2] == expected[4] == expected[5] == ("www.instagram.com", "evil.example")
    blocker_module._VIEWS.clear()
    assert [Blocker._views(f) for f in variants * 2] == expected * 2


def test_forged_host_headers_cannot_grow_the_remembered_tables_without_bound() -> None:
    for i in range(2 * blocker_module._MEMO_SIZE + 5):
        f = tunnelled("https://www.instagram.com/x", f"forged{i}.example")
        assert Blocker._views(f) == (f"forged{i}.example", "www.instagram.com")
        assert blocker_module.pretty_url(f.request) == f"https://forged{i}.example/x"
    assert 0 < len(blocker_module._VIEWS) <= blocker_module._MEMO_SIZE
    assert 0 < len(blocker_module._ORIGINS) <= blocker_module._MEMO_SIZE


def test_a_non_target_request_is_untouched_by_the_tunnel_check() -> None:
    b = blocker(RULES)
    f = tunnelled("https://example.org/sam.example/", "example.org")
    with taddons.context(b):
        b.request(f)
    assert f.response is None and "zerocontact" not in f.metadata


def test_a_note_over_the_bound_is_refused_before_its_body_is_read() -> None:
    from zerocontact.daemon.blocker import NOTE_BODY_LIMIT

    b = blocker(RULES)
    f = flow("POST", "https://www.instagram.com/.zerocontact/note")
    f.request.headers["Content-Length"] = str(40_000_000)
    with taddons.context(b):
        b.requestheaders(f)  # mitmproxy has read the headers only
    assert f.response is not None and f.response.status_code == 413
    # sent without a length (chunked): refused by size in the request hook, never parsed
    f = flow(
        "POST",
        "https://www.instagram.com/.zerocontact/note",
        body=b"attempt=a&note=x" + b"&a=b" * NOTE_BODY_LIMIT,
    )
    del f.request.headers["Content-Length"]
    with taddons.context(b):
        b.requestheaders(f)
        assert f.response is None
        b.request(f)
    assert f.response is not None and f.response.status_code == 413


def test_a_note_of_normal_size_is_kept_and_a_large_post_elsewhere_is_untouched() -> None:
    b = blocker(RULES)
    f = flow("POST", "https://www.instagram.com/.zerocontact/note", body=b"attempt=abc&note=" + b"x" * 500)
    with taddons.context(b):
        b.requestheaders(f)
        b.request(f)
    assert f.response is not None and f.response.headers.get("X-Zerocontact") == "noted"
    upload = flow("POST", "https://www.instagram.com/upload/", {"Content-Length": str(40_000_000)})
    with taddons.context(b):
        b.requestheaders(upload)
    assert upload.response is None


# -- the response prefilter: decode only what mentions a target, and that off the loop -------------
TIMELINE = "https://www.instagram.com/api/v1/feed/timeline/"
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


def _answered(b: Blocker, f: http.HTTPFlow, body: bytes) -> object:
    """Run the request hook, give the flow the origin's answer, run the response hook."""
    b.request(f)
    assert f.response is None
    f.response = http.Response.make(200, body, JSON_HEADERS)
    return b.response(f)


def _threads_calling(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[str]:
    """Wrap ``owner.name`` so that each call notes the thread it runs in; returns those names."""
    import threading

    seen: list[str] = []
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return seen


def test_learning_from_a_large_response_that_mentions_the_target_runs_off_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    bodies = benchmark_module("bodies")
    from zerocontact.daemon import blocker as addon

    b = blocker(RULES)
    body = bodies.feed(2_000_000, commenter_at=250)  # ~2 MB, Sam's comment deep inside
    decoded_in = _threads_calling(monkeypatch, addon, "json_objects")

    async def run() -> None:
        with taddons.context(b):
            f = flow("GET", TIMELINE)
            pending = _answered(b, f, body)
            assert asyncio.iscoroutine(pending)  # mitmproxy awaits it; the loop stays free meanwhile
            await pending
            assert f.response is not None
            # the feed surface took her comment out (in the same thread); nothing else changed
            expected = json.loads(body)
            expected["items"][250]["preview_comments"].pop()
            assert json.loads(f.response.content or b"") == expected
            story = flow("GET", f"https://i.instagram.com/api/v1/feed/user/{bodies.TARGET_PK}/story/")
            b.request(story)
            assert story.response is not None and story.response.status_code == 403
        b.done()

    asyncio.run(run())
    assert decoded_in and all(n.startswith("zerocontact-inspect") for n in decoded_in)
    assert b.enforcement.matcher.lookup("instagram", str(bodies.TARGET_PK)) == ("Sam",)


def test_a_large_body_that_names_no_one_is_searched_off_the_loop_and_passed_on_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past INLINE_BYTES even the byte search runs in the inspection thread (the compiled search lets
    go of the GIL there, so the loop serves other flows meanwhile): the body comes back untouched."""
    import asyncio
    import threading

    bodies = benchmark_module("bodies")
    from zerocontact.daemon import blocker as addon
    from zerocontact.rules.prefilter import Prefilter

    b = blocker(RULES)
    body = bodies.feed(2_000_000)  # no one of the rules in it
    searched_in = _threads_calling(monkeypatch, Prefilter, "mentions")

    async def run() -> None:
        with taddons.context(b):
            f = flow("GET", TIMELINE)
            pending = _answered(b, f, body)
            assert asyncio.iscoroutine(pending)
            await pending
            assert f.response is not None and f.response.status_code == 200
            assert f.response.content == body
            small = flow("GET", TIMELINE)
            assert _answered(b, small, bodies.feed(20_000)) is None  # small: searched in the hook
        b.done()

    asyncio.run(run())
    assert len(searched_in) == 2
    assert searched_in[0].startswith("zerocontact-inspect")
    assert searched_in[1] == threading.main_thread().name
    assert len(body) > addon.INLINE_BYTES


def _compressed(body: bytes, how: str) -> bytes:
    """``body`` as a platform sends it with ``Content-Encoding: how`` (mitmproxy's own encoders)."""
    from mitmproxy.net import encoding

    return encoding.encode(body, how)


@pytest.mark.parametrize("how", ["gzip", "br", "zstd", "deflate"])
def test_a_compressed_body_that_mentions_them_is_decompressed_and_learned_from_off_the_loop(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Platforms send their JSON compressed. Past INLINE_ENCODED_BYTES (as sent) the inflating runs
    in the inspection thread, never in the hook; learning and the feed surface work as on plain bytes,
    and the rewritten body goes out compressed as it came."""
    import asyncio

    bodies = benchmark_module("bodies")
    from zerocontact.daemon import blocker as addon

    b = blocker(RULES)
    body = bodies.feed(2_000_000, commenter_at=40)  # Sam's comment, handle and pk side by side
    raw = _compressed(body, how)
    assert len(raw) > addon.INLINE_ENCODED_BYTES
    inflated_in = _threads_calling(monkeypatch, addon, "decoded_content")

    async def run() -> None:
        with taddons.context(b):
            f = flow("GET", TIMELINE)
            b.request(f)
            f.response = http.Response.make(200, b"", {**JSON_HEADERS, "Content-Encoding": how})
            f.response.raw_content = raw
            pending = b.response(f)
            assert asyncio.iscoroutine(pending)
            await pending
            assert f.response.headers["content-encoding"] == how
            expected = json.loads(body)
            expected["items"][40]["preview_comments"].pop()  # the feed surface took her comment out
            assert json.loads(f.response.content or b"") == expected
        b.done()

    asyncio.run(run())
    assert inflated_in and all(n.startswith("zerocontact-inspect") for n in inflated_in)
    assert b.enforcement.matcher.lookup("instagram", str(bodies.TARGET_PK)) == ("Sam",)


def test_a_post_sent_with_stacked_encodings_is_still_read_and_blocked_as_theirs() -> None:
    """``Content-Encoding: gzip, br`` (gzip, then brotli over it) is rare, and mitmproxy gives up on
    it, but a browser undoes both: the owner check must read what the browser will show."""
    from mitmproxy.net import encoding

    b = blocker(RULES)
    post = flow("GET", "https://www.instagram.com/p/Other123/?__a=1", {"Accept": "application/json"})
    plain = json.dumps({"items": [{"code": "x", "user": {"username": "sam.example"}}]}).encode()
    with taddons.context(b):
        b.request(post)
        post.response = http.Response.make(200, b"", JSON_HEADERS)
        post.response.raw_content = encoding.encode(encoding.encode(plain, "gzip"), "br")
        post.response.headers["content-encoding"] = "gzip, br"
        assert b.response(post) is None  # small: read in the hook
    assert post.response is not None and post.response.status_code == 403


def test_a_compressed_body_that_names_no_one_is_passed_on_as_sent() -> None:
    """Searched after inflating it in the thread; the bytes sent on are the compressed ones, untouched."""
    import asyncio

    bodies = benchmark_module("bodies")
    b = blocker(RULES)
    raw = _compressed(bodies.feed(2_000_000), "gzip")
    assert len(raw) > blocker_module.INLINE_ENCODED_BYTES

    async def run() -> None:
        with taddons.context(b):
            f = flow("GET", TIMELINE)
            b.request(f)
            f.response = http.Response.make(200, b"", {**JSON_HEADERS, "Content-Encoding": "gzip"})
            f.response.raw_content = raw
            pending = b.response(f)
            assert asyncio.iscoroutine(pending)
            await pending
            assert f.response.raw_content == raw and f.response.headers["content-encoding"] == "gzip"
        b.done()

    asyncio.run(run())
    assert b.hidden == 0


def test_stacked_encodings_are_undone_last_first() -> None:
    from mitmproxy.net import encoding

    from zerocontact.daemon.blocker import decoded_content

    plain = b'{"user": {"username": "sam.example"}}' * 50
    sent = encoding.encode(encoding.encode(plain, "gzip"), "br")
    assert decoded_content(sent, "gzip, br") == decoded_content(sent, " GZIP ,BR ") == plain
    assert decoded_content(sent, "br, gzip") == sent  # the wrong order does not decode: as sent
    assert decoded_content(sent, ",".join(["identity"] * 5)) == sent  # no real server stacks five


def _gzip_members(n: int) -> bytes:
    return b"".join(gzip.compress(b'{"m": %d}' % i * 500, mtime=0) for i in range(n))


@pytest.mark.parametrize(
    ("encoding_name", "raw"),
    [
        ("gzip", None),
        ("GZIP", None),
        ("br", None),
        ("zstd", None),
        ("deflate", None),
        ("identity", b'{"a": 1}'),
        ("gzip", b"not gzip at all"),  # does not decode: the raw bytes, as mitmproxy gives them
        ("x-unknown", b'{"a": 1}'),
        ("utf8", b'{"a": 1}'),  # an encoding that gives text is refused as mitmproxy refuses it
        # gzip's odd shapes, which the one-call inflate leaves to mitmproxy's decoder or reads alike
        ("gzip", _gzip_members(2)),  # two members: the first, as mitmproxy reads it
        ("gzip", _gzip_members(1)[:-30]),  # cut short
        ("gzip", _gzip_members(1)[:-4] + (10).to_bytes(4, "little")),  # a trailer that lies
        ("gzip", _gzip_members(1) + b"junk"),  # bytes after the trailer
        ("gzip", zlib.compress(b'{"a": 1}' * 500)),  # zlib's wrapper, not gzip's
    ],
)
def test_decoded_content_is_what_mitmproxy_would_read(encoding_name: str, raw: bytes | None) -> None:
    from zerocontact.daemon.blocker import decoded_content

    plain = b'{"user": {"username": "sam.example"}}' * 50
    sent = raw if raw is not None else _compressed(plain, encoding_name.lower())
    r = http.Response.make(200, b"")
    r.raw_content = sent
    r.headers["content-encoding"] = encoding_name
    assert decoded_content(sent, encoding_name) == r.get_content(strict=False)
    if raw is None:
        assert decoded_content(sent, encoding_name) == plain


def test_response_naming_the_owner_only_in_escapes_is_still_checked() -> None:
    b = blocker(RULES)
    post = flow("GET", "https://www.instagram.com/p/Chm_-tPJqpd/?__a=1", {"Accept": "application/json"})
    body = b'{"items":[{"code":"Chm_-tPJqpd","user":{"pk":"1","username":"\\u0053am\\u002eEXAMPLE"}}]}'
    with taddons.context(b):
        _answered(b, post, body)
    assert post.response is not None and post.response.status_code == 403


def test_an_id_learned_from_a_post_names_its_owner_elsewhere_in_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the objects around the handle are decoded at first; the id learned there names the post's
    owner far from it (``user.pk``), so it is looked for again before the owner is checked."""
    from zerocontact.daemon import blocker as addon

    def boom(data: bytes, ctype: str) -> list[Any]:
        raise AssertionError("decoded the whole body")

    monkeypatch.setattr(addon, "json_objects", boom)
    b = blocker(RULES)
    post = flow("GET", "https://www.instagram.com/p/Chm_-tPJqpd/?__a=1", {"Accept": "application/json"})
    filler = [{"text": f'comment {i} {{"x": [1]}}', "user": {"pk": str(i)}} for i in range(200)]
    body = json.dumps(
        {
            "items": [
                {
                    "code": "Chm_-tPJqpd",
                    "user": {"pk": "999000111"},
                    "comments": filler,
                    "mentions": [{"username": "sam.example", "pk": "999000111"}],
                }
            ]
        },
        separators=(",", ":"),
    ).encode()
    with taddons.context(b):
        _answered(b, post, body)
    assert post.response is not None and post.response.status_code == 403
    assert b.enforcement.matcher.lookup("instagram", "999000111") == ("Sam",)


def test_a_feed_mentioning_them_is_learned_from_without_decoding_it_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Her comment in a 200 KB feed: the id beside her handle is learned from the objects around it."""
    bodies = benchmark_module("bodies")
    from zerocontact.daemon import blocker as addon

    decoded: list[int] = []
    real = addon.json_objects

    def counted(data: bytes, ctype: str) -> list[Any]:
        decoded.append(len(data))
        return real(data, ctype)

    monkeypatch.setattr(addon, "json_objects", counted)
    b = blocker(RULES)
    feed = flow("GET", "https://www.instagram.com/api/v1/feed/reels_tray/")
    with taddons.context(b):
        assert _answered(b, feed, bodies.feed(200_000, seed=5, commenter_at=5)) is None
    assert feed.response is not None and feed.response.status_code == 200
    assert b.enforcement.matcher.lookup("instagram", str(bodies.TARGET_PK)) == ("Sam",)
    assert decoded == []


def test_their_posts_leave_a_200_kb_feed_with_the_body_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Walking out from her posts to the feed's list decodes the whole document: the strip takes that
    one, not a second decode (~1 ms for 200 KB), and still takes out exactly her posts and comment."""
    bodies = benchmark_module("bodies")
    from zerocontact.rules import response

    body = bodies.feed(200_000, seed=9, commenter_at=7, owned_at=(3, 11, 20))
    whole: list[int] = []
    real = response._DECODER.raw_decode

    def counted(text: str, start: int = 0) -> tuple[Any, int]:
        got = real(text, start)
        if got[1] - start > len(body) // 2:
            whole.append(start)
        return got

    monkeypatch.setattr(response, "_DECODER", type("D", (), {"raw_decode": staticmethod(counted)})())
    monkeypatch.setattr(blocker_module, "json_objects", lambda *a: pytest.fail("decoded the body again"))
    b = blocker(RULES)
    f = flow("GET", TIMELINE)
    with taddons.context(b):
        assert _answered(b, f, body) is None
    assert whole == [0]  # the one decode of it all, during the walk
    assert f.response is not None and f.response.status_code == 200
    before = [i["code"] for i in json.loads(body)["items"]]
    after = [i["code"] for i in json.loads(f.response.content or b"")["items"]]
    assert after == [c for n, c in enumerate(before) if n not in (3, 11, 20)]
    # and her comment: four entries out, and her handle nowhere left
    assert b.hidden == 4 and bodies.TARGET_HANDLE.encode() not in (f.response.content or b"")


def test_response_naming_no_target_is_passed_on_byte_identical_without_decoding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bodies = benchmark_module("bodies")
    from zerocontact.daemon import blocker as addon

    def boom(data: bytes, ctype: str) -> list[Any]:
        raise AssertionError("decoded a body that names no target")

    monkeypatch.setattr(addon, "json_objects", boom)
    b = blocker(RULES)
    body = bodies.feed(200_000)
    # the owner of this post shows only in the response: a decode failure would block it (fail closed)
    post = flow("GET", "https://www.instagram.com/p/Other123/?__a=1", {"Accept": "application/json"})
    timeline = flow("GET", TIMELINE)
    with taddons.context(b):
        for f in (post, timeline):
            assert _answered(b, f, body) is None
            assert f.response is not None and f.response.status_code == 200
            assert f.response.raw_content == body


def test_an_id_learned_from_one_response_is_searched_for_in_the_next() -> None:
    bodies = benchmark_module("bodies")

    b = blocker(RULES)
    owned = json.dumps({"items": [{"code": "x", "user": {"pk": bodies.TARGET_PK, "username": "renamed"}}]})
    with taddons.context(b):
        _answered(b, flow("GET", TIMELINE), bodies.feed(20_000, commenter_at=1))
        post = flow("GET", "https://www.instagram.com/p/Other123/?__a=1", {"Accept": "application/json"})
        _answered(b, post, owned.encode())
    assert post.response is not None and post.response.status_code == 403


def test_an_id_learned_while_the_rules_are_swapped_reaches_the_new_matcher() -> None:
    import asyncio

    bodies = benchmark_module("bodies")

    from zerocontact.daemon import blocker as addon

    b = blocker(RULES)
    old = b.enforcement

    async def run() -> None:
        with taddons.context(b):
            f = flow("GET", TIMELINE)
            # past INLINE_BYTES: inspected in the thread, so the swap can happen meanwhile
            pending = _answered(b, f, bodies.feed(2 * addon.INLINE_BYTES, commenter_at=1))
            assert asyncio.iscoroutine(pending)
            b.enforcement = dataclasses.replace(old, matcher=Matcher(old.rules))  # a reload, meanwhile
            await pending
        b.done()

    asyncio.run(run())
    assert old.matcher.lookup("instagram", str(bodies.TARGET_PK)) == ("Sam",)
    assert b.enforcement.matcher.lookup("instagram", str(bodies.TARGET_PK)) == ("Sam",)


def test_a_small_body_that_mentions_them_is_inspected_in_the_hook_itself() -> None:
    """Up to INLINE_BYTES the hook decodes at once (the thread hop cost more than the work); the
    verdict is the same as off the loop: their post is blocked from the response."""
    import asyncio

    from zerocontact.daemon import blocker as addon

    b = blocker(RULES)
    post = flow("GET", "https://www.instagram.com/p/Other123/?__a=1", {"Accept": "application/json"})
    body = json.dumps({"items": [{"code": "x", "user": {"username": "sam.example"}}]}).encode()
    assert len(body) <= addon.INLINE_BYTES

    async def run() -> None:
        with taddons.context(b):
            assert _answered(b, post, body) is None  # done, not a coroutine
        b.done()

    asyncio.run(run())
    assert post.response is not None and post.response.status_code == 403


def test_a_failing_inspection_off_the_loop_fails_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from zerocontact.daemon import blocker as addon

    def boom(data: bytes, ctype: str) -> list[Any]:
        raise ValueError("bug")

    monkeypatch.setattr(addon, "json_objects", boom)
    b = blocker(RULES)
    post = flow("GET", "https://www.instagram.com/p/Other123/?__a=1", {"Accept": "application/json"})

    async def run() -> None:
        with taddons.context(b):
            many = addon.INLINE_BYTES // 40
            padding = [{"code": f"o{i}", "user": {"username": "someone.else"}} for i in range(many)]
            body = json.dumps({"items": [{"user": {"username": "sam.example"}}, *padding]}).encode()
            assert len(body) > addon.INLINE_BYTES  # inspected in the thread, which fails
            pending = _answered(b, post, body)
            assert asyncio.iscoroutine(pending)
            await pending
        b.done()

    asyncio.run(run())
    assert post.response is not None and post.response.status_code == 403


FEED_RULES = '[[person]]\nname = "Sam"\naccounts = { instagram = ["sam.example", "5544332211"] }\n'


def _timeline(*owners: tuple[str, str]) -> bytes:
    items = [
        {"media_or_ad": {"code": f"C{i}", "user": {"pk": pk, "username": name}}}
        for i, (pk, name) in enumerate(owners)
    ]
    return json.dumps({"feed_items": items, "next_max_id": "KGEAxo", "more_available": True}).encode()


def test_their_posts_leave_the_home_feed_and_are_counted_for_today(tmp_path: Path) -> None:
    b = blocker(FEED_RULES)
    b.journal = Journal(tmp_path / "journal.sqlite3")
    b.journal.start()
    f = flow("GET", "https://i.instagram.com/api/v1/feed/timeline/")
    body = _timeline(("1", "friend"), ("5544332211", "sam.example"), ("55443322", "sam.exampl"))
    with taddons.context(b):
        b.request(f)
        assert f.response is None and f.metadata.get("zerocontact") is not None
        f.response = http.Response.make(200, body, {"Content-Type": "application/json; charset=utf-8"})
        b.response(f)
    assert f.response.status_code == 200 and not f.metadata.get("zerocontact_blocked")
    got = json.loads(f.response.content or b"")
    assert [i["media_or_ad"]["code"] for i in got["feed_items"]] == ["C0", "C2"]
    assert got["next_max_id"] == "KGEAxo"
    assert b.hidden == 1 and b.blocked == 0  # a removal is not an attempt
    assert b.journal.flush()
    b.journal.close()
    assert b.today is not None
    with reading(tmp_path / "journal.sqlite3") as r:
        assert r.hidden(b.today.date(), b.today.date()) == [(b.today.date(), "instagram", 1, 0)]
        assert list(r.select_attempts(Filters())) == []  # a removal is never an attempt


def test_a_feed_without_them_is_passed_on_byte_identical_and_unparsed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = blocker(FEED_RULES)
    f = flow("GET", "https://i.instagram.com/api/v1/feed/timeline/")
    body = _timeline(("1", "friend"), ("55443322", "sam.exampl")).replace(b", ", b",  ")  # odd spacing kept

    def never(*a: object, **k: object) -> None:
        raise AssertionError("a body that does not mention them is never decoded")

    monkeypatch.setattr(blocker_module, "json_objects", never)
    with taddons.context(b):
        b.request(f)
        f.response = http.Response.make(200, body, {"Content-Type": "application/json"})
        b.response(f)
    assert f.response.content == body and b.hidden == 0 and b.missed == 0


def test_a_feed_that_cannot_be_rewritten_is_passed_on_and_the_miss_counted(tmp_path: Path) -> None:
    b = blocker(FEED_RULES)
    b.journal = Journal(tmp_path / "journal.sqlite3")
    b.journal.start()
    f = flow("GET", "https://i.instagram.com/api/v1/feed/timeline/")
    body = _timeline(("5544332211", "sam.example"), ("1", "friend")).replace(b'"KGEAxo"', b"1e999")
    with taddons.context(b):
        b.request(f)
        f.response = http.Response.make(200, body, {"Content-Type": "application/json"})
        b.response(f)
    assert f.response.content == body and f.response.status_code == 200
    assert b.hidden == 0 and b.missed == 1
    assert b.journal.flush()
    b.journal.close()
    assert b.today is not None
    with reading(tmp_path / "journal.sqlite3") as r:
        assert r.hidden(b.today.date(), b.today.date()) == [(b.today.date(), "instagram", 0, 1)]


def test_each_new_https_date_header_reaches_the_clock_once() -> None:
    """The trusted clock hears a platform's Date header; the same header text again (every response
    within that second) is not parsed again, a new second is, and plain HTTP never counts."""
    import datetime as dt

    seen: list[dt.datetime] = []
    b = dataclasses.replace(blocker(RULES), on_date=seen.append)
    dates = ["Wed, 02 Dec 2026 03:00:00 GMT"] * 3 + ["Wed, 02 Dec 2026 03:00:01 GMT", "not a date"]
    with taddons.context(b):
        for scheme, date in [("https", d) for d in dates] + [("http", "Wed, 02 Dec 2026 03:00:05 GMT")]:
            f = flow("GET", f"{scheme}://www.instagram.com/api/v1/feed/timeline/")
            b.request(f)
            f.response = http.Response.make(200, b"{}", {"Content-Type": "application/json", "Date": date})
            b.response(f)
    assert seen == [
        dt.datetime(2026, 12, 2, 3, 0, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 2, 3, 0, 1, tzinfo=dt.UTC),
    ]


NAV = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}


def _attempt_rows(path: Path) -> list[dict[str, Any]]:
    with reading(path) as r:
        return list(r.select_attempts(Filters(), newest_first=False))


def test_each_attempt_names_its_connections_process_known_or_found_later(tmp_path: Path) -> None:
    """A connection's process is looked up once: its first attempt gets the name when the lookup
    ends, every later one on that connection carries it from the start."""
    from concurrent.futures import Future

    b = blocker(RULES)
    b.proxy_port = 8341
    b.journal = Journal(tmp_path / "journal.sqlite3")
    b.journal.start()
    pending: Future[str | None] = Future()
    f = flow("GET", "https://www.instagram.com/sam.example/", NAV)
    b._procs[f.client_conn.id] = pending  # the lookup of this connection, still running
    with taddons.context(b):
        b.request(f)
        assert b.journal.flush()
        assert [r["process"] for r in _attempt_rows(tmp_path / "journal.sqlite3")] == [None]
        pending.set_result("firefox (4242)")  # the lookup thread finds it
        for _ in range(2):  # the next attempts on the same connection
            g = flow("GET", "https://www.instagram.com/sam.example/", NAV)
            g.client_conn = f.client_conn
            b.request(g)
    assert b.journal.flush()
    b.journal.close()
    rows = _attempt_rows(tmp_path / "journal.sqlite3")
    assert [r["process"] for r in rows] == ["firefox (4242)"] * 3
    assert len({r["key"] for r in rows}) == 3


def test_an_attempt_is_journalled_even_when_its_answer_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempt is queued after the page is made and the line logged: an error there (a bug)
    must still leave the attempt in the journal."""
    b = blocker(RULES)
    b.journal = Journal(tmp_path / "journal.sqlite3")
    b.journal.start()

    def broken(*args: object, **kw: object) -> str:
        raise RuntimeError("a template bug")

    monkeypatch.setattr(b.pages, "block", broken)
    with taddons.context(b), pytest.raises(RuntimeError):
        b.request(flow("GET", "https://www.instagram.com/sam.example/", NAV))
    assert b.journal.flush()
    b.journal.close()
    rows = _attempt_rows(tmp_path / "journal.sqlite3")
    assert [(r["person"], r["platform"]) for r in rows] == [("Sam", "instagram")]
