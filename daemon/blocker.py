"""The blocker, zerocontact's mitmproxy addon: judge each request on a targeted host, answer blocked
ones itself.

It imports only mitmproxy's public addon API (``http``) and its content decoders (``net.encoding``),
so ``mitmproxy.test.taddons`` can drive it.
Hooks never touch the disk or scan processes: journal writes are queued, lookups run in a thread.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import datetime as dt
import email.utils
import logging
import time
import zlib
import zoneinfo
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from mitmproxy import connection, http
from mitmproxy.net import encoding

from zerocontact.rules import Matcher, Request, Verdict
from zerocontact.rules.feed import Stripped, rules_for, strip
from zerocontact.rules.policy import entry_key
from zerocontact.rules.prefilter import Prefilter
from zerocontact.rules.request import all_dicts
from zerocontact.rules.response import JsonText, json_objects, json_text

from .attempts import DayCount, Looks, is_navigation
from .blockpage import HEADERS_API, HEADERS_HTML, NOTE_PATH, Pages, describe, ordinal, refusal
from .clientproc import process_for
from .devices import DEVICE_PREFIX
from .enforcement import Enforcement
from .journal import Attempt, Journal

log = logging.getLogger("zerocontact.proxy")
# The note form sends an attempt key and at most 500 characters: even percent-encoded (up to 9
# bytes a character) that is under 5 KB. Anything larger is refused before it is parsed, since
# parsing a 40 MB form of ten million fields held the proxy's loop for about 20 s.
NOTE_BODY_LIMIT = 16 * 1024
# the refusals' headers as mitmproxy stores them: made once, not encoded again for every block
_HTML_FIELDS = tuple((k.encode(), v.encode()) for k, v in HEADERS_HTML.items())
_API_FIELDS = tuple((k.encode(), v.encode()) for k, v in HEADERS_API.items())


MAX_CONNECTIONS_REMEMBERED = 1000
# A body this small is searched, and decoded and walked if it mentions a target, in the hook itself;
# larger ones go to the inspection thread. Decoding there holds the GIL, so the loop gets it back
# only every switch interval (5 ms): for work shorter than that (a 256 KB body: ~1.5-3 ms) handing it
# over does not let other flows go on any sooner, and the hand-over and the threads' contention cost
# CPU (mention_post20k 3.2 -> 2.2 ms per request inline; mention_feed200k 6.2-6.9 -> 5.0-5.3 ms).
# The compiled search lets go of the GIL while it runs (~0.9 ms per 2 MB here): in the thread it
# runs beside the loop, which meanwhile serves the other flows.
INLINE_BYTES = 256 * 1024
# A compressed body larger than this (as sent) is decompressed in the inspection thread, not in the
# hook: platforms send their JSON compressed (gzip, br, zstd), and inflating costs ~3-9 ns per byte
# sent, more than searching what comes out (a 2 MB feed: 4.2 ms to gunzip, 0.7 ms to search). zlib,
# brotli and zstd let go of the GIL while they work, so the loop serves other flows meanwhile (2 MB
# gzip over HTTP, 4 clients: 0.37 -> 0.55 of mitmproxy's requests/s). Below it the hand-over costs
# more than it frees: with 16 KB, a 200 KB feed in br (45 KB sent, 0.35 ms to inflate) went from
# 1.04 to 0.94 of mitmproxy's requests/s, 0.6 ms more CPU per response.
INLINE_ENCODED_BYTES = 128 * 1024


@dataclass(frozen=True)
class _Found:
    """What inspecting one response found: ids learned, a target owning it, the lists without them."""

    learned: list[tuple[str, str]] = field(default_factory=list)
    owner: tuple[str, str] | None = None
    stripped: Stripped = field(default_factory=Stripped)


@dataclass
class Blocker:
    """Blocks, logs and learns. ``enforcement`` is replaced by the daemon, never mutated."""

    enforcement: Enforcement
    journal: Journal | None = None
    proxy_port: int = 0
    today: DayCount | None = None  # shared with the daemon's other channels; None: counted here alone
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))
    on_date: Callable[[dt.datetime], None] | None = None  # a platform's HTTPS Date header, for the clock
    pages: Pages = field(default_factory=Pages)
    devices: dict[str, str] = field(default_factory=dict)  # WireGuard tunnel address → device name
    _looks: Looks = field(default_factory=Looks)
    _lookups: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="zerocontact-lookup")
    )
    # one thread decodes the bodies that mention a target: learning then has a single writer
    _inspector: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="zerocontact-inspect")
    )
    # a client connection's process, looked up once: every attempt on a keep-alive connection comes
    # from the same process, and a reload storm would otherwise queue a full socket scan per reload
    _procs: dict[str, Future[str | None]] = field(default_factory=dict)
    _filters: dict[str, tuple[Matcher, int, Prefilter]] = field(default_factory=dict)
    _last_page: tuple[tuple[str, int, str, str | None] | None, bytes] = (None, b"")
    _last_date: str = ""  # the last HTTPS Date header handed to on_date
    blocked: int = 0
    hidden: int = 0  # entries kept out of sight (removed from mixed lists) since the start
    missed: int = 0  # responses with their entries that could not be rewritten safely, passed on as they were

    def __post_init__(self) -> None:
        if self.today is None:
            self.today = DayCount(lambda: self.enforcement.rules.settings.timezone or "UTC", self.clock)

    # -- hooks ------------------------------------------------------------------------------------
    def http_connect(self, flow: http.HTTPFlow) -> None:
        # "www.instagram.com." is the same host fully qualified: tunnel to the plain name, so the
        # certificate mitmproxy makes names it (a trailing dot falls outside the CA's name
        # constraints) and every later check sees one spelling.
        host = flow.request.host
        if host.endswith(".") or host != host.lower():
            flow.request.host = host.lower().rstrip(".") or host

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A note whose declared size is over the bound is refused before its body is read."""
        req = flow.request
        if req.method != "POST" or not req.path.startswith("/.zerocontact/"):
            return
        size = req.headers.get("content-length", "")
        if not (size.isdigit() and int(size) > NOTE_BODY_LIMIT):
            return  # no length (chunked, HTTP/2): the request hook checks the size it got
        if any(self.enforcement.matcher.platforms_for(h) for h in self._views(flow)):
            self._too_large(flow)

    def _too_large(self, flow: http.HTTPFlow) -> None:
        flow.response = http.Response.make(
            413,
            "That note is too long to keep; a line or two is plenty.\n",
            {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store", "Connection": "close"},
        )
        flow.metadata["zerocontact_blocked"] = True  # answered here, never forwarded

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        enf = self.enforcement
        req = flow.request
        views = self._views(flow)
        targeted = [h for h in views if enf.matcher.platforms_for(h)]
        if req.path.startswith("/.zerocontact/") and targeted:
            self._own_endpoint(flow)  # never forwarded, whichever name the request gives
            return
        judged: Mapping[str, str] | None = None  # the headers, once decoded for the rules
        try:
            verdict, judged = self._judge(flow, views)
        except Exception as e:  # fail closed, but only for hosts the rules target
            if not targeted:
                return
            log.exception("error while judging %s %s; blocking it", req.method, req.pretty_host)
            verdict = Verdict(
                True,
                f"zerocontact could not judge this request ({type(e).__name__}); blocked to be safe",
                kind="api",
            )
        if verdict.block:
            self._block(flow, verdict, judged)
        elif verdict.needs_response or (verdict.targeted and verdict.platform):
            flow.metadata["zerocontact"] = verdict

    @staticmethod
    def _views(flow: http.HTTPFlow) -> tuple[str, ...]:
        """Every host name this request is about, normalised, the Host header (or :authority) first.

        Inside a decrypted tunnel the request travels to the host the tunnel was opened for (CONNECT,
        and the TLS SNI), whatever its Host header says: ``Host: evil.example`` inside a tunnel to
        www.instagram.com still reaches Instagram. A plain-HTTP request goes to its absolute URL's
        host. So each of these names is judged, and the request is blocked if any view blocks.
        Worked out once per spelling (a keep-alive connection sends the same names every time).
        """
        r = flow.request
        address = flow.server_conn.address
        key = (r.host_header, r.host, flow.client_conn.sni or "", str(address[0]) if address else "")
        got = _VIEWS.get(key)
        if got is None:
            out: list[str] = []
            for n in (r.pretty_host, *key[1:]):
                h = n.lower().rstrip(".")
                if h and h not in out:
                    out.append(h)
            got = _remember(_VIEWS, key, tuple(out))
        return got

    def _judge(self, flow: http.HTTPFlow, views: tuple[str, ...]) -> tuple[Verdict, Mapping[str, str]]:
        """The verdict over every view: the first that blocks, else the first that targets a
        platform (its response is checked), else the Host header's; and the headers judged."""
        enf = self.enforcement
        r = flow.request
        base = self._request(flow)  # decoded once: its URL names the Host header's host
        path = r.path if r.path.startswith("/") else "/"
        reqs = [base] + [
            dataclasses.replace(base, url=f"{r.scheme}://{f'[{h}]' if ':' in h else h}{path}")
            for h in views
            if h != base.host
        ]
        verdicts = [enf.matcher.judge(q, enf.active) for q in reqs]
        verdict = (
            next((v for v in verdicts if v.block), None)
            or next((v for v in verdicts if v.targeted or v.needs_response), None)
            or verdicts[0]
        )
        return verdict, base.headers

    def response(self, flow: http.HTTPFlow) -> Coroutine[Any, Any, None] | None:
        """Learn ids, check owners, strip entries, but only for bodies that mention a target at all.

        Every other body is passed on untouched after one byte search (``rules.prefilter``). A body
        that does mention one is decoded and walked: here when it is at most ``INLINE_BYTES``,
        else in the inspection thread, where the returned coroutine (mitmproxy awaits it) holds
        this flow alone, never the loop. Without a running loop (tests calling the hook directly)
        the work is always done here, synchronously."""
        verdict: Verdict | None = flow.metadata.get("zerocontact")
        if verdict is None or flow.response is None or flow.metadata.get("zerocontact_blocked"):
            return None
        platform = verdict.platform or ""
        enf = self.enforcement
        if self.on_date is not None and flow.request.scheme == "https":
            date = flow.response.headers.get("date")
            # a Date header changes once a second: the same text again says nothing new (and parsing
            # it was most of what this hook cost an allowed HTTPS response)
            if date and date != self._last_date:
                self._last_date = date
                with contextlib.suppress(TypeError, ValueError, IndexError):
                    self.on_date(email.utils.parsedate_to_datetime(date))
        plat = enf.matcher.platforms.get(platform)
        if plat is None:
            return None
        try:
            resp = flow.response
            ctype = resp.headers.get("content-type", "").lower()
            if ctype and not any(t in ctype for t in ("json", "html", "javascript", "text/plain")):
                return None  # images, video, fonts: nothing to learn, and no need to decode them in a hook
            search = self._prefilter(enf.matcher, platform)
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                looping = False
            else:
                looping = True
            raw = resp.raw_content or b""
            ce = resp.headers.get("content-encoding", "")
            if looping and ce and len(raw) > INLINE_ENCODED_BYTES:
                req = self._request(flow)
                return self._inspect_off_loop(flow, verdict, enf, raw, ctype, req, search, ce)
            body = decoded_content(raw, ce) if ce else raw
            if not looping or len(body) <= INLINE_BYTES:
                if not search.mentions(body):
                    return None  # names no target in any spelling: nothing to learn, check or strip
                req = self._request(flow)
                self._apply(flow, verdict, enf, self._inspect(enf, verdict, body, ctype, req))
                return None
            # read on the loop: mitmproxy's content decoding keeps a module-wide cache, unsafe to share
            req = self._request(flow)  # (operation names are decoded in the inspection thread)
            return self._inspect_off_loop(flow, verdict, enf, body, ctype, req, search)
        except Exception:
            self._failed(flow, verdict)
            return None

    async def _inspect_off_loop(
        self,
        flow: http.HTTPFlow,
        verdict: Verdict,
        enf: Enforcement,
        body: bytes,
        ctype: str,
        req: Request,
        search: Prefilter,
        content_encoding: str = "",
    ) -> None:
        try:
            loop = asyncio.get_running_loop()
            found = await loop.run_in_executor(
                self._inspector,
                self._search_and_inspect,
                enf,
                verdict,
                body,
                ctype,
                req,
                search,
                content_encoding,
            )
            if found is not None:
                self._apply(flow, verdict, enf, found)
        except Exception:
            self._failed(flow, verdict)

    def _search_and_inspect(
        self,
        enf: Enforcement,
        verdict: Verdict,
        body: bytes,
        ctype: str,
        req: Request,
        search: Prefilter,
        content_encoding: str = "",
    ) -> _Found | None:
        """In the inspection thread: None for a body that names no target (passed on untouched).
        ``body`` is as sent when ``content_encoding`` is given: it is decompressed here first."""
        if content_encoding:
            body = decoded_content(body, content_encoding)
        if not search.mentions(body):
            return None
        return self._inspect(enf, verdict, body, ctype, req)

    def _inspect(self, enf: Enforcement, verdict: Verdict, body: bytes, ctype: str, req: Request) -> _Found:
        """Decode and walk a body that mentions a target. Runs in the one inspection thread, so the
        matcher's learned table has one writer; touches no flow, journal or log (``_apply`` does).
        Where the bytes show every mention as written, only the objects around each are decoded
        (``JsonText.around``), and the whole body only to take entries out of a list, when a
        mention can sit at an entry's owner key.

        Stripping (``rules.feed``) comes after learning, so an id learned from this very body already
        counts, and is skipped when a target owns the whole response (it is blocked instead)."""
        platform = verdict.platform or ""
        path = req.url.split("://", 1)[-1].partition("/")[2].split("?")[0]
        rules = rules_for(enf.matcher, platform, "/" + path, req.operations, req.host)
        owners = verdict.needs_response and bool(verdict.surface)
        # the current search: it holds ids learned since the hook looked
        offsets = self._prefilter(enf.matcher, platform).offsets(body)
        doc = None if offsets is None else json_text(body, ctype)
        objs = None
        if doc is not None and offsets is not None:
            objs = doc.around(offsets, enf.matcher.mention_paths(platform, owners))
        whole = objs is None
        if objs is None:
            objs = _decoded(doc, body, ctype)
        dicts = all_dicts(objs)  # walked once for learning and the owner check
        learned = enf.matcher.learn_from(platform, objs, dicts) if objs else []
        if learned and doc is not None and not whole:
            # an id learned from this very body can name an owner elsewhere in it: look there too
            offsets = self._prefilter(enf.matcher, platform).offsets(body)
            if owners:
                objs = (
                    None
                    if offsets is None
                    else doc.around(offsets, enf.matcher.mention_paths(platform, True))
                )
                if objs is None:
                    objs, whole = _decoded(doc, body, ctype), True
                dicts = all_dicts(objs)
        owner = None
        if objs and owners:
            owner = enf.matcher.owner_in(platform, objs, dicts)
        if owner is not None:
            return _Found(learned, owner)
        if not rules:
            return _Found(learned)
        if not whole:
            # an entry is theirs only where a mention sits at one of its owner keys: if none can,
            # there is nothing to take out (and no need to decode the whole body to find that out)
            owned = [
                f"{lst[-1]}.{key}" if key else lst[-1] for r in rules for lst in r.lists for key in r.items
            ]
            if offsets is not None and doc is not None and doc.may_reach(offsets, owned) is False:
                return _Found(learned)
            objs = _decoded(doc, body, ctype)  # (the walk to a feed's list often decoded it all)
        # a compact body decoded as one document is what strip would decode again: hand it over
        # (anything on several lines, which may be several documents, is framed by strip itself)
        core = body.strip()
        one = len(objs) == 1 and core[:1] in (b"{", b"[", b"f") and b"\n" not in core
        stripped = strip(enf.matcher, platform, rules, body, enf.active, *([objs[0]] if one else []))
        return _Found(learned, owner, stripped)

    def _apply(self, flow: http.HTTPFlow, verdict: Verdict, enf: Enforcement, found: _Found) -> None:
        """On the loop: log what was learned, block if a target owns it, or put the stripped list in."""
        platform = verdict.platform or ""
        plat = enf.matcher.platforms[platform]
        current = self.enforcement.matcher
        for value, person in found.learned:
            log.info("learned a %s id of %s: %s", plat.title, person, value)
            if current is not enf.matcher:  # the rules were swapped while this body was inspected
                current.learn(platform, value, person)
            if self.journal:
                self.journal.learned(platform, value, person)
        owner = found.owner
        if owner and verdict.surface and enf.matcher.blocks(owner[0], verdict.surface, enf.active):
            person, ident = owner
            self._block(
                flow,
                Verdict(
                    True,
                    f"{describe(platform, verdict.surface)} by {person} ({ident}), seen in the response",
                    person=person,
                    platform=platform,
                    surface=verdict.surface,
                    kind=verdict.kind,
                    pattern=verdict.pattern,
                    identifier=ident,
                    targeted=True,
                ),
            )
            return
        self._out_of_sight(flow, plat.name, plat.title, found.stripped)

    def _out_of_sight(self, flow: http.HTTPFlow, platform: str, title: str, stripped: Stripped) -> None:
        """Put the rewritten body in, or say why it could not be; count both for today (queued)."""
        where = flow.request.path.split("?")[0][:120]
        if stripped.body is not None and flow.response is not None:
            flow.response.set_content(stripped.body)
            self.hidden += stripped.removed
            log.info(
                "kept %d entr%s out of sight in %s %s",
                stripped.removed,
                "y" if stripped.removed == 1 else "ies",
                title,
                where,
            )
        elif stripped.missed is not None:
            self.missed += 1
            log.warning(
                "could not keep %s %s out of sight (%s): passed on unchanged", title, where, stripped.missed
            )
        else:
            if stripped.unexpected is not None:  # a changed shape, maybe (debug: Reddit reads every path)
                log.debug("nothing to remove in %s %s (%s)", title, where, stripped.unexpected)
            return
        if self.journal:
            assert self.today is not None
            done = stripped.body is not None
            self.journal.hidden(
                self.today.date(), platform, stripped.removed if done else 0, 0 if done else 1
            )

    def _failed(self, flow: http.HTTPFlow, verdict: Verdict) -> None:
        log.exception("error while checking a response from %s", flow.request.pretty_host)
        if verdict.needs_response:  # fail closed: this view may be theirs
            self._block(
                flow,
                Verdict(
                    True,
                    "zerocontact could not check whose this is; blocked to be safe",
                    platform=verdict.platform,
                    surface=verdict.surface,
                    kind="api",
                ),
            )

    def _prefilter(self, matcher: Matcher, platform: str) -> Prefilter:
        """The compiled search for ``platform``'s identifiers, rebuilt when the matcher is or learns."""
        cached = self._filters.get(platform)
        if cached is not None and cached[0] is matcher and cached[1] == matcher.generation:
            return cached[2]
        generation = matcher.generation  # read first: a learn racing this build only makes it stale
        pf = Prefilter(*matcher.identifiers(platform))
        self._filters[platform] = (matcher, generation, pf)
        return pf

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:
            return
        msg = flow.websocket.messages[-1]
        enf = self.enforcement
        for plat in enf.matcher.platforms_for(flow.request.pretty_host):
            if not plat.frames:
                continue
            objs = json_objects(msg.content, "application/json")
            hit = enf.matcher.frame_target(plat.name, objs)
            if hit and enf.matcher.blocks(hit[0], hit[1], enf.active):
                msg.drop()
                return

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _request(flow: http.HTTPFlow) -> Request:
        r = flow.request
        headers = header_dict(r.headers, _NOT_JUDGED)
        body = r.get_content(strict=False) or b"" if r.method not in ("GET", "HEAD") else b""
        return Request(r.method, pretty_url(r), headers, body)

    def _attempt(
        self, flow: http.HTTPFlow, v: Verdict, headers: Mapping[str, str]
    ) -> tuple[str, int, Attempt | None]:
        """Open a new look, or fold this request into the look it belongs to (``attempts``: one per
        look, never one per request); return the attempt's key, today's count and the new attempt,
        which the caller queues (None: folded, and the repeat already queued)."""
        assert self.today is not None
        now = time.monotonic()
        person, platform = v.person or "", v.platform or ""
        look = self._looks.current(person, platform, is_navigation(headers, v.kind), now)
        if look is not None:
            new_surface = self._looks.fold(look, v.surface, now)
            if self.journal:
                self.journal.bump(look.key, self.clock(), v.surface if new_surface else None)
            return look.key, self.today.count, None
        attempt = Attempt(
            time=self.clock(),
            person=v.person,
            platform=v.platform,
            surface=v.surface,
            channel="web",
            method=flow.request.method,
            host=flow.request.pretty_host,
            path=flow.request.path.split("?")[0][:500],
            rule=v.pattern or v.reason[:200],
            detail=v.reason[:500],
            process=self._device(flow),
        )
        self._looks.open(person, platform, attempt.key, v.surface, now)
        count = self.today.add()
        return attempt.key, count, attempt

    def _device(self, flow: http.HTTPFlow) -> str | None:
        """'device NAME' for a request from one of the person's devices (its tunnel address)."""
        peer = flow.client_conn.peername
        name = self.devices.get(str(peer[0])) if peer and self.devices else None
        return f"{DEVICE_PREFIX}{name}" if name else None

    def _log_with_process(self, flow: http.HTTPFlow, attempt: Attempt) -> None:
        """Queue the attempt now, naming its client process when the connection's is already known
        (every attempt after a connection's first); else find it off the loop and add it then."""
        journal = self.journal
        assert journal is not None
        found = self._process_of(flow) if not attempt.process else None  # a device's names the device
        if found is not None and found.done():
            if not found.cancelled() and found.exception() is None and (name := found.result()):
                attempt.process = name[:200]  # in the row itself: no second write to add it
            found = None
        journal.record(attempt)
        if found is None:
            return
        key = attempt.key

        def named(done: Future[str | None]) -> None:  # at once if known, else in the lookup thread
            if not done.cancelled() and done.exception() is None and (name := done.result()):
                journal.set_process(key, name)

        found.add_done_callback(named)

    def _process_of(self, flow: http.HTTPFlow) -> Future[str | None] | None:
        """The lookup of this connection's client process, started on its first attempt."""
        peer = flow.client_conn.peername
        if not peer or not self.proxy_port:
            return None
        conn = flow.client_conn.id
        found = self._procs.get(conn)
        if found is None:
            # the connection's two ends, as the client's socket has them: its own, and the proxy's
            local = flow.client_conn.sockname
            proxy = (str(local[0]), int(local[1])) if local and local[1] else (str(peer[0]), self.proxy_port)
            try:
                found = self._lookups.submit(process_for, (str(peer[0]), int(peer[1])), proxy)
            except RuntimeError:  # shutting down: the attempt is logged without it
                return None
            if len(self._procs) >= MAX_CONNECTIONS_REMEMBERED:  # disconnects normally keep it small
                self._procs.pop(next(iter(self._procs)))
            self._procs[conn] = found
        return found

    def client_disconnected(self, client: connection.Client) -> None:
        self._procs.pop(client.id, None)

    def _block(self, flow: http.HTTPFlow, v: Verdict, headers: Mapping[str, str] | None = None) -> None:
        """Answer with the block page or a refusal, and journal a new attempt. ``headers``: by
        lower-case name, as judged (without the cookies and credentials the rules never see, which
        nothing here reads), when the caller has them."""
        self.blocked += 1
        if headers is None:
            headers = header_dict(flow.request.headers)
        key, count, attempt = self._attempt(flow, v, headers)
        try:
            self._answer(flow, v, headers, key, count, attempt is not None)
        finally:
            # queued after the log line: the writer thread this wakes then does not take the GIL
            # from the loop while the line is written (and an error above still records it)
            if attempt is not None and self.journal:
                self._log_with_process(flow, attempt)

    def _answer(
        self, flow: http.HTTPFlow, v: Verdict, headers: Mapping[str, str], key: str, count: int, new: bool
    ) -> None:
        """Put the block page (or the refusal) in, and say it in the service's log."""
        what = describe(v.platform, v.surface)
        flow.metadata["zerocontact_blocked"] = True
        if self._is_page(flow, v, headers):
            # a burst (a page reloaded, its assets retried) shows the same page: render it once
            page_key = (key, count, what, v.person)
            if self._last_page[0] != page_key:
                self._last_page = (page_key, self._page(v, what, count, key).encode())
            resp = http.Response.make(403, self._last_page[1], _HTML_FIELDS)
        else:
            resp = http.Response.make(403, refusal(what), _API_FIELDS)
        flow.response = resp  # in the response hook this replaces the origin's answer unseen
        # One line per attempt, naming neither the person nor the address: this log is the service
        # manager's (journald keeps it, readable beyond its owner, and `forget` cannot reach it); the
        # details stay in the private journal. Repeats inside a burst only at debug level.
        if new:
            log.info("blocked: %s, the %s time today", what, ordinal(count))
        elif log.isEnabledFor(logging.DEBUG):
            log.debug(
                "blocked again %s %s%s",
                flow.request.method,
                flow.request.pretty_host,
                flow.request.path.split("?")[0][:80],
            )

    @staticmethod
    def _is_page(flow: http.HTTPFlow, v: Verdict, h: Mapping[str, str]) -> bool:
        """Whether a browser shows this answer as a page (``h``: the headers by lower-case name)."""
        if v.kind != "page" or flow.request.method not in ("GET", "HEAD"):
            return False
        dest = h.get("sec-fetch-dest", "")
        if dest:
            return dest in ("document", "iframe", "frame")
        if h.get("x-requested-with") or h.get("x-ig-app-id") or h.get("x-csrftoken"):
            return False
        accept = h.get("accept", "*/*")
        return "text/html" in accept or accept.strip() == "*/*"

    def _page(self, v: Verdict, what: str, count: int, key: str) -> str:
        rules = self.enforcement.rules
        person = rules.person(v.person or "")
        lifts = None
        if person is not None:
            end = self.enforcement.state.ends.get(entry_key(person))
            if end is not None:
                tz = zoneinfo.ZoneInfo(person.schedule.timezone)
                local = end.astimezone(tz)
                lifts = f"{local.day} {local:%B %Y}" + (
                    f", {local:%H:%M}" if local.time() != dt.time(0) else ""
                )
        instead = (
            rules.settings.instead[count % len(rules.settings.instead)] if rules.settings.instead else ""
        )
        return self.pages.block(
            what=describe(v.platform, v.surface, v.person) if rules.settings.show_name else what,
            why=person.why if person else "",
            today_count=max(count, 1),
            lifts_on=lifts,
            instead=instead,
            attempt_id=key,
        )

    def _own_endpoint(self, flow: http.HTTPFlow) -> None:
        """The block page's note form posts here; it is answered locally and never forwarded."""
        req = flow.request
        if req.path.split("?")[0] == NOTE_PATH and req.method == "POST":
            raw = req.raw_content or b""  # as sent: a browser never compresses a form post
            if len(raw) > NOTE_BODY_LIMIT:  # sent without a length (chunked, HTTP/2)
                self._too_large(flow)
                return
            try:
                form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=16)
            except ValueError:  # more fields than the form has: not our form
                form = {}
            key = (form.get("attempt") or [""])[0][:32]
            note = " ".join((form.get("note") or [""])[0].split())[:500]
            if key and note and self.journal:
                self.journal.note(key, note)
            instead = self.enforcement.rules.settings.instead
            body = self.pages.noted(instead[0] if instead else "")
            flow.response = http.Response.make(200, body, {**HEADERS_HTML, "X-Zerocontact": "noted"})
        else:
            flow.response = http.Response.make(404, b"", {"Cache-Control": "no-store"})
        flow.metadata["zerocontact_blocked"] = True

    def done(self) -> None:
        # lookups still queued are dropped (those attempts are logged without a process name):
        # after a burst of attempts they would hold the shutdown up one process scan each
        self._lookups.shutdown(wait=True, cancel_futures=True)
        self._inspector.shutdown(wait=True)


def decoded_content(raw: bytes, content_encoding: str) -> bytes:
    """The body as the browser will read it, as ``Message.get_content(strict=False)`` gives it for
    one encoding: mitmproxy's own decoders, safe to call off the loop.

    Not ``encoding.decode``: its module-wide cache is one global read and written in steps, so two
    threads decoding at once could each be handed the other's body. Encodings stacked in one header
    (``gzip, br``: rare, but a browser undoes them) are undone last first, where mitmproxy would
    give up; a mention inside must not pass unread. A body that does not decode (or an encoding
    that gives text) is the raw bytes, as there: the search then reads them as they are, and a
    browser could not show them either."""
    names = [n.strip().lower() for n in content_encoding.split(",") if n.strip()]
    if not names or len(names) > _MAX_STACKED:
        return raw
    body = raw
    for name in reversed(names):
        out = _decoded_once(body, name)
        if out is None:
            return raw
        body = out
    return body


_MAX_STACKED = 4  # encodings in one Content-Encoding header: past this it is no real server's


def _decoded_once(raw: bytes, name: str) -> bytes | None:
    if name == "gzip":
        whole = _gunzip(raw)
        if whole is not None:
            return whole
    try:
        decode = encoding.custom_decode.get(name)
        out = decode(raw) if decode is not None else codecs.decode(raw, name)
    except Exception:  # what mitmproxy reads as "does not decode": any decoder's error
        return None
    return out if isinstance(out, bytes) else None


def _gunzip(raw: bytes) -> bytes | None:
    """A gzip body inflated in one call, its output sized from the trailer; None if it is not plain
    gzip (mitmproxy's decoder then reads it, zlib headers and cut-short streams as it does).

    zlib lets go of the GIL only for each block of output it fills: grown from 32 KB, a 2 MB body
    takes a dozen blocks, and beside a busy loop each waits for the GIL again (~30 ms per 2 MB
    instead of ~4). One block sized from the trailer's length needs one wait. The trailer is only
    a hint (the last member's size, mod 2**32): bounded, and zlib grows the block if it was wrong."""
    if len(raw) < 18 or raw[:2] != b"\x1f\x8b":
        return None
    hint = min(int.from_bytes(raw[-4:], "little"), 32 * len(raw), 256 << 20) or 16384
    try:
        return zlib.decompress(raw, 31, hint)  # wbits 31: a gzip header and trailer, checked
    except zlib.error:
        return None


_MEMO_SIZE = 1024
_VIEWS: dict[tuple[str | None, str, str, str], tuple[str, ...]] = {}
_ORIGINS: dict[tuple[str, str], str] = {}


def _decoded(doc: JsonText | None, body: bytes, ctype: str) -> list[Any]:
    """Every JSON document in ``body``: the one a walk over ``doc`` already decoded whole, if it
    did (decoding a 200 KB feed is ~1 ms), else decoded now."""
    got = doc.whole() if doc is not None else None
    return got if got is not None else json_objects(body, ctype)


def pretty_url(r: http.Request) -> str:
    """``r.pretty_url``, its authority parsed once per spelling: the URL is the same
    ``scheme://host[:port]`` before the path for every request naming that Host (mitmproxy parses
    and validates the authority again each time, a tenth of judging an allowed request)."""
    header, path = r.host_header, r.path
    if not header or path == "*" or r.first_line_format == "authority":
        return r.pretty_url
    key = (r.scheme, header)
    origin = _ORIGINS.get(key)
    if origin is None:
        full = r.pretty_url
        if not full.endswith(path):
            return full
        origin = _remember(_ORIGINS, key, full[: len(full) - len(path)])
    return origin + path


def _remember[K, V](table: dict[K, V], key: K, value: V) -> V:
    """Keep ``value`` under ``key``; a table grown past ``_MEMO_SIZE`` spellings (forged Host
    headers) starts again rather than growing without bound."""
    if len(table) >= _MEMO_SIZE:
        table.clear()
    table[key] = value
    return value


_NOT_JUDGED = frozenset({"cookie", "authorization"})  # never handed to the rules, or kept


def header_dict(headers: http.Headers, drop: frozenset[str] = frozenset()) -> dict[str, str]:
    """The headers by lower-case name, repeats folded with ", " as ``headers[name]`` folds them.

    One pass over the raw fields: ``Headers.items()`` scans every field again for each name (100+
    lower-casings for a browser's dozen headers, half of judging an allowed request)."""
    out: dict[str, str] = {}
    for k, v in headers.fields:
        name = k.lower().decode("utf-8", "surrogateescape")
        if name in drop:
            continue
        value = v.decode("utf-8", "surrogateescape")
        before = out.get(name)
        out[name] = value if before is None else f"{before}, {value}"
    return out


@dataclass
class RedirectUpstream:
    """For tests and debugging only: send *allowed* requests for some hosts to a local plain-HTTP origin.

    Runs after the Blocker, so judging always sees the real URL; it makes "passed on" observable
    on a machine with no network.
    """

    mapping: dict[str, tuple[str, int]]

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        # by the Host header, else by the tunnel's host: a forged Host header cannot send a test's
        # request out to the real platform
        target = self.mapping.get(flow.request.pretty_host.lower().rstrip(".")) or self.mapping.get(
            flow.request.host.lower().rstrip(".")
        )
        if target:
            flow.request.scheme = "http"
            flow.request.host, flow.request.port = target
