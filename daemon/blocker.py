"""The blocker, zerocontact's mitmproxy addon: judge each request on a targeted host, answer blocked
ones itself.

It imports only mitmproxy's public addon API (``http``), so ``mitmproxy.test.taddons`` can drive it.
Hooks never touch the disk or scan processes: journal writes are queued, lookups run in a thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import logging
import time
import zoneinfo
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from mitmproxy import http

from zerocontact.rules import Request, Verdict
from zerocontact.rules.policy import entry_key
from zerocontact.rules.request import resolve
from zerocontact.rules.response import json_objects

from .attempts import DayCount, Looks, is_navigation
from .blockpage import HEADERS_API, HEADERS_HTML, NOTE_PATH, Pages, describe, refusal
from .clientproc import process_for
from .devices import DEVICE_PREFIX
from .enforcement import Enforcement
from .journal import Attempt, Journal

log = logging.getLogger("zerocontact.proxy")


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
    blocked: int = 0

    def __post_init__(self) -> None:
        if self.today is None:
            self.today = DayCount(lambda: self.enforcement.rules.settings.timezone or "UTC", self.clock)

    # -- hooks ------------------------------------------------------------------------------------
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        enf = self.enforcement
        req = flow.request
        if req.path.startswith("/.zerocontact/") and enf.matcher.platforms_for(req.pretty_host):
            self._own_endpoint(flow)
            return
        try:
            verdict = enf.matcher.judge(self._request(flow), enf.active)
        except Exception as e:  # fail closed, but only for hosts the rules target
            if not enf.matcher.platforms_for(req.pretty_host):
                return
            log.exception("error while judging %s %s; blocking it", req.method, req.pretty_host)
            verdict = Verdict(
                True,
                f"zerocontact could not judge this request ({type(e).__name__}); blocked to be safe",
                kind="api",
            )
        if verdict.block:
            self._block(flow, verdict)
        elif verdict.needs_response or (verdict.targeted and verdict.platform):
            flow.metadata["zerocontact"] = verdict

    def response(self, flow: http.HTTPFlow) -> None:
        verdict: Verdict | None = flow.metadata.get("zerocontact")
        if verdict is None or flow.response is None or flow.metadata.get("zerocontact_blocked"):
            return
        platform = verdict.platform or ""
        enf = self.enforcement
        if self.on_date is not None and flow.request.scheme == "https" and "date" in flow.response.headers:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                self.on_date(email.utils.parsedate_to_datetime(flow.response.headers["date"]))
        plat = enf.matcher.platforms.get(platform)
        if plat is None:
            return
        try:
            resp = flow.response
            ctype = resp.headers.get("content-type", "").lower()
            if ctype and not any(t in ctype for t in ("json", "html", "javascript", "text/plain")):
                return  # images, video, fonts: nothing to learn, and no need to decode them in a hook
            objs = json_objects(resp.get_content(strict=False) or b"", ctype)
            if not objs:
                return
            for value, person in enf.matcher.learn_from(platform, objs):
                log.info("learned a %s id of %s: %s", plat.title, person, value)
                if self.journal:
                    self.journal.learned(platform, value, person)
            if verdict.needs_response and verdict.surface:
                owner = enf.matcher.owner_in(platform, objs)
                if owner and enf.matcher.blocks(owner[0], verdict.surface, enf.active):
                    person, ident = owner
                    self._block(
                        flow,
                        Verdict(
                            True,
                            f"{describe(platform, verdict.surface)} by {person} ({ident}), seen in the "
                            "response",
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
            self._strip(flow, platform, objs)
        except Exception:
            log.exception("error while checking a response from %s", flow.request.pretty_host)
            if verdict.needs_response:  # fail closed: this view may be theirs
                self._block(
                    flow,
                    Verdict(
                        True,
                        "zerocontact could not check whose this is; blocked to be safe",
                        platform=platform,
                        surface=verdict.surface,
                        kind="api",
                    ),
                )

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
        headers = {k.lower(): v for k, v in r.headers.items() if k.lower() not in ("cookie", "authorization")}
        body = r.get_content(strict=False) or b"" if r.method not in ("GET", "HEAD") else b""
        return Request(r.method, r.pretty_url, headers, body)

    def _attempt(self, flow: http.HTTPFlow, v: Verdict) -> tuple[str, int]:
        """Record one look, or fold this request into the look it belongs to; return the attempt's
        key and today's count (``attempts``: one per look, never one per request)."""
        assert self.today is not None
        now = time.monotonic()
        person, platform = v.person or "", v.platform or ""
        headers = {k.lower(): val for k, val in flow.request.headers.items()}
        look = self._looks.current(person, platform, is_navigation(headers, v.kind), now)
        if look is not None:
            new_surface = self._looks.fold(look, v.surface, now)
            if self.journal:
                self.journal.bump(look.key, self.clock(), v.surface if new_surface else None)
            return look.key, self.today.count
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
        if self.journal:
            self._log_with_process(flow, attempt)
        return attempt.key, count

    def _device(self, flow: http.HTTPFlow) -> str | None:
        """'device NAME' for a request from one of the person's devices (its tunnel address)."""
        peer = flow.client_conn.peername
        name = self.devices.get(str(peer[0])) if peer and self.devices else None
        return f"{DEVICE_PREFIX}{name}" if name else None

    def _log_with_process(self, flow: http.HTTPFlow, attempt: Attempt) -> None:
        """Queue the attempt now; find the client process off the loop and add it when known."""
        journal = self.journal
        assert journal is not None
        journal.record(attempt)
        peer = flow.client_conn.peername
        if not peer or not self.proxy_port or attempt.process:  # a device's attempt names the device
            return
        port, proxy_port = peer[1], self.proxy_port

        def lookup() -> None:
            name = process_for(port, proxy_port)
            if name:
                journal.set_process(attempt.key, name)

        with contextlib.suppress(RuntimeError):  # shutting down: the attempt is logged without it
            self._lookups.submit(lookup)

    def _block(self, flow: http.HTTPFlow, v: Verdict) -> None:
        self.blocked += 1
        key, count = self._attempt(flow, v)
        what = describe(v.platform, v.surface)
        flow.metadata["zerocontact_blocked"] = True
        if self._is_page(flow, v):
            body = self._page(v, what, count, key)
            resp = http.Response.make(403, body, HEADERS_HTML)
        else:
            resp = http.Response.make(403, refusal(what), HEADERS_API)
        flow.response = resp  # in the response hook this replaces the origin's answer unseen
        log.info(
            "blocked %s %s%s: %s",
            flow.request.method,
            flow.request.pretty_host,
            flow.request.path.split("?")[0][:80],
            v.reason,
        )

    @staticmethod
    def _is_page(flow: http.HTTPFlow, v: Verdict) -> bool:
        if v.kind != "page" or flow.request.method not in ("GET", "HEAD"):
            return False
        h = flow.request.headers
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
            what=what,
            person_name=v.person if rules.settings.show_name else None,
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
            form = parse_qs((req.get_content(strict=False) or b"").decode("utf-8", "replace"))
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

    def _strip(self, flow: http.HTTPFlow, platform: str, objs: list[Any]) -> None:
        """Remove targets' entries from list responses (e.g. a friend-activity feed)."""
        enf = self.enforcement
        plat = enf.matcher.platforms[platform]
        path = flow.request.path.split("?")[0]
        if flow.response is None:
            return
        for rule in plat.strips:
            if not path.startswith(rule.path) or len(objs) != 1 or not isinstance(objs[0], dict):
                continue
            doc = objs[0]
            items = doc.get(rule.list_key)
            if not isinstance(items, list):
                continue

            def keep(item: Any, rule: Any = rule) -> bool:
                if not isinstance(item, dict):
                    return True
                for value in resolve(item, rule.item_key):
                    got = rule.template.capture(value)
                    names = enf.matcher.lookup(platform, got) if got else ()
                    if any(enf.matcher.blocks(n, rule.surface, enf.active) for n in names):
                        return False
                return True

            kept = [i for i in items if keep(i)]
            if len(kept) != len(items):
                doc[rule.list_key] = kept
                flow.response.set_content(json.dumps(doc).encode())
                log.info(
                    "removed %d entr%s from %s %s",
                    len(items) - len(kept),
                    "y" if len(items) - len(kept) == 1 else "ies",
                    plat.title,
                    path,
                )

    def done(self) -> None:
        self._lookups.shutdown(wait=True)


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
        target = self.mapping.get(flow.request.pretty_host.lower())
        if target:
            flow.request.scheme = "http"
            flow.request.host, flow.request.port = target
