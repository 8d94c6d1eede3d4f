"""The compiled matcher: given a request, which person (if any) it looks at, and on which surface.

Built once per Ruleset. Hosts are indexed by suffix and identifiers by value, so the cost of a decision
depends on the platform's handful of patterns, never on how many people or handles the rules name.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .platforms import Pattern, Platform, Template, custom_platforms, presets
from .request import Request, all_dicts, resolve
from .schema import Ruleset

SEARCH_PREFIX_MIN = 4  # typeahead sends every keystroke; prefixes this long of a handle are blocked too


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the daemon would do with one request, and why, in words a person can read."""

    block: bool
    reason: str
    person: str | None = None
    platform: str | None = None
    surface: str | None = None
    certain: bool = True  # False: only the response can show whose it is (see needs_response)
    kind: str = "page"  # page | api | socket: how a refusal should look
    pattern: str | None = None
    identifier: str | None = None
    needs_response: bool = False
    targeted: bool = False  # the host belongs to a platform the rules target

    def as_dict(self) -> dict[str, Any]:
        return {
            "verdict": "block" if self.block else "allow",
            "person": self.person,
            "platform": self.platform,
            "surface": self.surface,
            "reason": self.reason,
            "certain": self.certain,
            "kind": self.kind,
            "pattern": self.pattern,
            "identifier": self.identifier,
            "needs_response": self.needs_response,
        }


def norm(value: str) -> str:
    v = value.strip().lower()
    return v[1:] if v.startswith("@") else v


def norm_search(value: str) -> str:
    return " ".join(norm(value).split())


# A filter token of a search grammar: word:value (lang:en, since:2024-01-01, filter:replies).
_OPERATOR = re.compile(r"[A-Za-z_]+:\S+")
# One token of a search query: words glued to "quoted phrases" (from:"sam example" is one token).
_TOKEN = re.compile(r'(?:[^\s"]+|"[^"]*")+')


def query_tokens(query: str) -> list[str]:
    """The operator-bearing tokens of a search query; negated ones (-from:x) look away and are skipped."""
    out = []
    for m in _TOKEN.finditer(query):
        tok = m.group().strip("()")
        if tok and not tok.startswith("-"):
            out.append(tok)
    return out


def values_for(data: dict[str, list[str]], key: str) -> list[str]:
    """Values of ``key``, or of every key matching it when it is a glob (``route_urls[*]``)."""
    if "*" not in key:
        return data.get(key, [])
    rx = _key_glob(key)
    return [v for k, vs in data.items() if rx.fullmatch(k) for v in vs]


@lru_cache(maxsize=256)
def _key_glob(key: str) -> re.Pattern[str]:
    """Only ``*`` is special in a key glob: ``route_urls[*]`` matches route_urls[0], route_urls[12] …"""
    return re.compile(".*".join(re.escape(part) for part in key.split("*")))


class _Terms:
    """A platform's search terms, sorted, with who each names: the terms a typed query begins."""

    def __init__(self, named: dict[str, set[str]]) -> None:
        self._terms = sorted(named)
        self._names = [named[t] for t in self._terms]

    def beginning(self, query: str) -> set[str]:
        """Who a query names: every term it begins once it is ``SEARCH_PREFIX_MIN`` long, else an
        equal term only (a three-letter handle is found when typed whole)."""
        out: set[str] = set()
        i = bisect.bisect_left(self._terms, query)
        while i < len(self._terms) and self._terms[i].startswith(query):
            if len(query) < SEARCH_PREFIX_MIN and self._terms[i] != query:
                break  # sorted: the equal term, if any, came first
            out |= self._names[i]
            i += 1
        return out


_LITERAL_DEPTH = 3  # how many leading literal path segments a pattern is indexed by


def _literal_prefix(pat: Pattern) -> tuple[str, ...]:
    """The pattern's leading path segments that are plain ASCII literals (compared case-blind)."""
    out: list[str] = []
    for t in (pat.path or ())[:_LITERAL_DEPTH]:
        if t.kind is not None or t.decode or "*" in t.text or not t.text or not t.text.isascii():
            break
        out.append(t.text.lower())
    return tuple(out)


def _captures_first(pat: Pattern) -> bool:
    return bool(pat.path) and pat.path is not None and pat.path[0].kind is not None


class _PathIndex:
    """A platform's patterns by their leading literal path segments, so that judging a request tries
    only the patterns its path can match, in their order (Instagram has 76 patterns; a request under
    /api/v1/media/ can match a handful). Every allowed request on a targeted host is judged.

    A pattern with no path that names GraphQL operations (most of a web app's views) is indexed by
    those names instead: it can match only a request carrying one of them, whatever its path."""

    def __init__(self, patterns: tuple[Pattern, ...], reserved: frozenset[str]) -> None:
        self._all = patterns
        self._reserved = reserved
        by: dict[tuple[str, ...], list[int]] = {}
        ops: dict[str, list[int]] = {}
        prefixes = [_literal_prefix(pat) for pat in patterns]
        for i, pat in enumerate(patterns):
            if pat.path is None and pat.operation:
                for name in pat.operation:
                    ops.setdefault(name, []).append(i)
            else:
                by.setdefault(prefixes[i], []).append(i)
        self._by = {k: tuple(v) for k, v in by.items()}
        self._ops = {k: tuple(v) for k, v in ops.items()}
        # found through its bucket, a pattern's leading literal segments are known to match
        self._verified = tuple(len(p) for p in prefixes)
        self._every = tuple((p, 0) for p in patterns)
        # A reserved first segment ("api", "explore") is never a handle: patterns that capture one
        # there cannot match it (``Matcher._match`` refuses them), so they are not tried.
        self._by_reserved = {
            k: tuple(i for i in v if not _captures_first(patterns[i])) for k, v in by.items()
        }
        self._depths = sorted({len(k) for k in by})

    def candidates(self, req: Request) -> tuple[tuple[Pattern, int], ...] | list[tuple[Pattern, int]]:
        """The patterns ``req`` can match, in order, each with how many of its leading path
        segments are already known to match (compared here, case-blind)."""
        segments = req.segments
        head = segments[:_LITERAL_DEPTH]
        if not all(s.isascii() for s in head):
            # re's case-blind match also pairs some non-ASCII letters with ASCII ones (the Kelvin
            # sign with "k"), which lower() does not: such a path tries every pattern, as before
            return self._every
        low = tuple(s.lower() for s in head)
        by = self._by_reserved if low and low[0] in self._reserved else self._by
        found = [got for d in self._depths if d <= len(low) and (got := by.get(low[:d]))]
        if self._ops:
            found.extend(got for name in req.operations if (got := self._ops.get(name)))
        every, verified = self._all, self._verified
        if len(found) == 1:
            return [(every[i], verified[i]) for i in found[0]]
        return [(every[i], verified[i]) for i in sorted({i for f in found for i in f})]


class Matcher:
    """Compiled from a Ruleset; ``judge`` is pure apart from the learned-alias table it may be given."""

    def __init__(self, rules: Ruleset, extra_platforms: dict[str, Platform] | None = None) -> None:
        # the presets are compiled as they are looked up (presets() is lazy): the platforms the rules
        # target, and those sharing their accounts, not all of them
        built = presets()
        own = {**custom_platforms(rules), **(extra_platforms or {})}
        self.rules = rules
        self._people = {p.name: p for p in rules.people}
        # Built with lists (an identifier nearly always names one person) and made into sorted
        # tuples once: 10,000 people are ~50,000 identifiers, and a set for each was a third of this.
        ids: dict[str, dict[str, list[str]]] = {}
        for person in rules.people:
            name = person.name
            for acc in person.accounts:
                by_value = ids.get(acc.platform)
                if by_value is None:
                    by_value = ids[acc.platform] = {}
                names = by_value.get(acc.value)
                if names is None:
                    by_value[acc.value] = [name]
                else:
                    names.append(name)
        # A platform may share another's accounts (Threads uses Instagram's): it becomes targeted too.
        # One that has no accounts of its own and takes them from one platform that takes none from
        # others (so its table is complete, whatever the order) gets that very table (``shared``):
        # read-only from here on, so it is compiled once,
        # not once more for Threads (a third of the work for 10,000 Instagram-and-X people).
        shared: dict[str, str] = {}
        for pname in {**dict.fromkeys(built), **own}:  # in the order {**presets, **own} had
            plat = own.get(pname)
            sources = plat.accounts_from if plat is not None else built.accounts_from(pname)
            dest = plat.name if plat else pname
            giving = [src for src in sources if ids.get(src)]
            if not giving:
                continue
            if (
                len(giving) == 1
                and dest not in ids
                and giving[0] not in shared
                and not self._takes_from(giving[0], own, built)
            ):
                shared[dest] = giving[0]
                ids[dest] = ids[giving[0]]
                continue
            if dest in shared:  # a second source: this one needs a table of its own after all
                ids[dest] = {v: list(n) for v, n in ids[shared.pop(dest)].items()}
            for src in giving:
                for value, from_src in ids[src].items():
                    ids.setdefault(dest, {}).setdefault(value, []).extend(from_src)
        final: dict[int, dict[str, tuple[str, ...]]] = {}
        self._ids: dict[str, dict[str, tuple[str, ...]]] = {}
        for p, m in ids.items():
            table = final.get(id(m))
            if table is None:
                table = final[id(m)] = {
                    v: (n[0],) if len(n) == 1 else tuple(sorted(set(n))) for v, n in m.items()
                }
            self._ids[p] = table
        self.platforms: dict[str, Platform] = {
            n: own[n] if n in own else built[n] for n in self._ids if n in own or n in built
        }
        # tables shared above are compiled once: ``done`` holds each one's members and search terms
        done: dict[int, tuple[tuple[str, ...], dict[str, set[str]], _Terms]] = {}
        self._members: dict[str, tuple[str, ...]] = {}
        searched = [p for p in self._people.values() if p.search_terms]  # few people have search terms
        # Typeahead: a query matches every term it begins (from SEARCH_PREFIX_MIN characters on). The
        # terms are kept sorted and bisected, not expanded into every prefix: 10,000 people would be
        # half a million prefix entries, most of a second to build at start.
        self._search: dict[str, _Terms] = {}
        # Whole terms only: a word beside search filters or after an operator is a submitted search, not
        # typeahead, so "same lang:en" is not a look for samexample.
        self._whole: dict[str, dict[str, set[str]]] = {}
        normed: dict[str, str] = {}
        for pname, table in self._ids.items():
            got = done.get(id(table))
            if got is None:
                members = set(itertools.chain.from_iterable(table.values()))
                whole: dict[str, set[str]] = {}
                for value, who in table.items():
                    # an account's value is already lower case and stripped by the loader: one with no
                    # whitespace (printable, no space) and no "@" is its own search term
                    if " " not in value and value[:1] != "@" and value.isprintable():
                        term = value
                    elif value in normed:
                        term = normed[value]
                    else:
                        term = normed[value] = norm_search(value)
                    named = whole.get(term)
                    if named is None:
                        whole[term] = set(who)
                    else:
                        named.update(who)
                for person in searched:
                    if person.name in members:
                        for term in person.search_terms:
                            whole.setdefault(norm_search(term), set()).add(person.name)
                got = done[id(table)] = (tuple(sorted(members)), whole, _Terms(whole))
            self._members[pname], self._whole[pname], self._search[pname] = got
        self._paths = {
            name: _PathIndex(plat.patterns, plat.reserved) for name, plat in self.platforms.items()
        }
        self._hosts: dict[str, list[Platform]] = {}
        for plat in self.platforms.values():
            for h in plat.hosts:
                self._hosts.setdefault(h, []).append(plat)
        self._learned: dict[str, dict[str, tuple[str, ...]]] = {}
        self.generation = 0  # bumped by every learned id: what was compiled from identifiers() is stale

    @staticmethod
    def _takes_from(name: str, own: dict[str, Platform], built: Any) -> bool:
        """Does platform ``name`` take accounts from others (so its table may still grow)?"""
        plat = own.get(name)
        return bool(
            plat.accounts_from if plat is not None else built.accounts_from(name) if name in built else ()
        )

    # -- the host index -------------------------------------------------------------------------
    def platforms_for(self, host: str) -> list[Platform]:
        host = host.lower().rstrip(".")
        out: list[Platform] = []
        labels = host.split(".")
        for i in range(len(labels)):
            out.extend(self._hosts.get(".".join(labels[i:]), ()))
        return out

    def target_hosts(self) -> list[str]:
        """Every host suffix a targeted platform lives on: what to decrypt and route to the proxy."""
        return sorted(self._hosts)

    # -- learned aliases --------------------------------------------------------------------------
    def learn(self, platform: str, value: str, person: str) -> bool:
        """Remember an id learned at run time; True if it was new."""
        v = norm(value)
        if not v or person not in self._people:
            return False
        known = self._ids.get(platform, {}).get(v, ()) + self._learned.get(platform, {}).get(v, ())
        if person in known:
            return False
        table = self._learned.get(platform, {})
        # copy-on-write: the proxy learns in its inspection thread while the loop reads and lists these
        self._learned = {**self._learned, platform: {**table, v: (*table.get(v, ()), person)}}
        self.generation += 1
        return True

    def identifiers(self, platform: str) -> tuple[frozenset[str], frozenset[str]]:
        """Every identifier ``lookup`` can find on ``platform``: (from the rules, learned at run time).

        What a response must mention for learning, owner checks or stripping to find anything."""
        plat = self.platforms.get(platform)
        learned = set(self._learned.get(platform, {}))
        for src in plat.accounts_from if plat else ():
            learned.update(self._learned.get(src, {}))
        return frozenset(self._ids.get(platform, {})), frozenset(learned)

    def mention_paths(self, platform: str, owners: bool) -> tuple[str, ...]:
        """The dotted keys at which ``learn_from`` (and ``owner_in``, with ``owners``) look for an
        identifier: where a body's mention must sit for either to find it."""
        plat = self.platforms.get(platform)
        if plat is None:
            return ()
        learn = tuple(hp for spec in plat.learn for hp in spec.handle)
        return learn + tuple(plat.owner_keys) if owners else learn

    def learned(self) -> list[tuple[str, str, str]]:
        return [(p, v, n) for p, t in self._learned.items() for v, names in t.items() for n in names]

    def lookup(self, platform: str, value: str) -> tuple[str, ...]:
        v = norm(value)
        found = self._ids.get(platform, {}).get(v, ()) + self._learned.get(platform, {}).get(v, ())
        plat = self.platforms.get(platform)
        for src in plat.accounts_from if plat else ():  # ids learned on Instagram hold on Threads too
            found += self._learned.get(src, {}).get(v, ())
        return found

    # -- judging ----------------------------------------------------------------------------------
    def judge(self, req: Request, active: Collection[str] | None = None, _depth: int = 0) -> Verdict:
        """Decide one request. ``active``: names of people whose block is in force (None: everyone)."""
        plats = self.platforms_for(req.host)
        if not plats:
            return Verdict(False, f"{req.host or 'this host'} is not a platform the rules target")
        pending: tuple[Platform, Pattern] | None = None
        for plat in plats:
            for pat, known in self._paths[plat.name].candidates(req):
                hit = self._match(plat, pat, req, active, _depth, known)
                if hit is None:
                    continue
                if isinstance(hit, Verdict):
                    return hit
                names, ident = hit
                if pat.owner == "response" and not names:
                    pending = pending or (plat, pat)
                    continue
                return self._decide(plat, pat, names, ident, active)
        if pending:
            plat, pat = pending
            who = [n for n in self._members.get(plat.name, ()) if self._blocks(n, pat.surface, active)]
            if who:
                return Verdict(
                    False,
                    f"{plat.title} {pat.surface}: the owner shows only in the response; "
                    "it is checked there" + (f" ({pat.note})" if pat.note else ""),
                    platform=plat.name,
                    surface=pat.surface,
                    certain=False,
                    kind=pat.kind,
                    pattern=pat.label,
                    needs_response=True,
                    targeted=True,
                )
        plat = plats[0]
        limits = f"; note: {plat.limits[0]}" if plat.limits else ""
        return Verdict(
            False,
            f"no {plat.title} pattern names a blocked person here{limits}",
            platform=plat.name,
            targeted=True,
        )

    def _blocks(self, name: str, surface: str, active: Collection[str] | None) -> bool:
        p = self._people.get(name)
        return p is not None and surface in p.block and (active is None or name in active)

    def _decide(
        self,
        plat: Platform,
        pat: Pattern,
        names: tuple[str, ...],
        ident: str | None,
        active: Collection[str] | None,
    ) -> Verdict:
        def verdict(block: bool, reason: str, name: str) -> Verdict:
            return Verdict(
                block,
                reason,
                person=name,
                platform=plat.name,
                surface=pat.surface,
                kind=pat.kind,
                pattern=pat.label,
                identifier=ident,
                targeted=True,
            )

        for name in names:
            if self._blocks(name, pat.surface, active):
                by = f" ({ident})" if ident else ""
                return verdict(True, f"{_what(plat, pat.surface)} {name}{by}: matched {pat.text}", name)
        name = names[0]
        why = (
            "their block is not in force now"
            if active is not None and name not in active
            else f"'{pat.surface}' is not in their block list"
        )
        return verdict(False, f"{_what(plat, pat.surface)} {name}, but {why}", name)

    def _match(
        self,
        plat: Platform,
        pat: Pattern,
        req: Request,
        active: Collection[str] | None,
        depth: int,
        known: int = 0,
    ) -> tuple[tuple[str, ...], str | None] | Verdict | None:
        """None: no structural match. Otherwise the people it names (maybe none) or a nested verdict.
        ``known``: how many leading path segments, all literals, are already known to match."""
        if pat.hosts and not any(req.host == h or req.host.endswith("." + h) for h in pat.hosts):
            return None
        if pat.method and req.method.upper() != pat.method:
            return None
        if pat.operation and not (pat.operation & req.operations):
            return None
        if pat.require and not self._required(pat, req):
            return None
        values: list[tuple[Template, str]] = []
        if pat.path is not None:
            segs = req.segments
            if len(segs) < len(pat.path) or (pat.exact and len(segs) != len(pat.path)):
                return None
            for i in range(known, len(pat.path)):
                t, s = pat.path[i], segs[i]
                got = t.capture(s)
                if got is None or (i == 0 and t.kind and s.lower() in plat.reserved):
                    return None
                if t.kind:
                    values.append((t, got))
        if not pat.has_sources:
            return self._members.get(plat.name, ()) if pat.owner == "request" else (), None
        declared = False
        present = False
        for spec, field in (
            (pat.query, "query"),
            (pat.form, "form"),
            (pat.json, "json_index"),
            (pat.variables, "variables_index"),
        ):
            if not spec:
                continue  # a field no key names is not decoded for this pattern
            data: dict[str, list[str]] = getattr(req, field)
            for key, t in spec:
                declared = True
                for raw in values_for(data, key):
                    present = True
                    for item in raw.split(pat.split) if pat.split else (raw,):
                        if t.kind:
                            values.extend((t, got) for got in t.captures(item.strip()))
        # A pattern that names request fields applies only when one of them is there at all.
        if declared and not present and not values:
            return None
        for t, v in values:
            if t.kind == "url":
                if depth < 3 and v.startswith(("http://", "https://", "/")):
                    url = v if not v.startswith("/") else f"https://{req.host}{v}"
                    inner = self.judge(Request("GET", url), active, depth + 1)
                    if inner.person or inner.needs_response:
                        return inner
                continue
            if t.kind == "any":
                continue
            if t.kind == "query":
                hit = self._search_hit(plat, v)
                if hit:
                    return hit
                continue
            names = self.lookup(plat.name, v)
            if names:
                return names, v
        if pat.owner == "response":
            return (), None
        return None

    def _search_hit(self, plat: Platform, query: str) -> tuple[tuple[str, ...], str] | None:
        """Who a search query looks for: the whole query, an operator token (from:x), or its words."""
        names = self._searched(plat.name, query)
        if names or not plat.search_operators:
            return (names, query) if names else None
        tokens = query_tokens(query)
        words = []
        for tok in tokens:
            for op in plat.search_operators:
                got = op.capture(tok)
                if got and (names := self._searched(plat.name, got.strip('"'), whole=True)):
                    return names, tok
            if not _OPERATOR.fullmatch(tok):
                words.append(tok)
        # Filters (lang:en, since:…, subreddit:x) narrow a search; the words left are what is searched
        # for: "samexample lang:en" looks for samexample.
        if words and len(words) < len(tokens):
            text = " ".join(words).strip('"')
            if names := self._searched(plat.name, text, whole=True):
                return names, text
        return None

    def _searched(self, platform: str, text: str, whole: bool = False) -> tuple[str, ...]:
        q = norm_search(text)
        if whole:
            return tuple(sorted(self._whole.get(platform, {}).get(q, ())))
        terms = self._search.get(platform)
        return tuple(sorted(terms.beginning(q))) if terms else ()

    @staticmethod
    def _required(pat: Pattern, req: Request) -> bool:
        """Every ``require`` key is there with a value of one of its forms (in any request field)."""
        wanted: dict[str, list[Template]] = {}
        for key, t in pat.require:
            wanted.setdefault(key, []).append(t)
        fields = (req.query, req.form, req.json_index, req.variables_index)
        for key, forms in wanted.items():
            if not any(t.captures(v) for data in fields for v in values_for(data, key) for t in forms):
                return False
        return True

    # -- responses ---------------------------------------------------------------------------------
    def learn_from(
        self, platform: str, objects: Iterable[Any], dicts: list[dict[str, Any]] | None = None
    ) -> list[tuple[str, str]]:
        """Learn ids next to a target's handle in allowed JSON (``username`` beside ``pk``…).
        ``dicts``: the objects already walked (``all_dicts``), when more than one check reads them."""
        plat = self.platforms.get(platform)
        if plat is None or not plat.learn:
            return []
        firsts = _first_keys(tuple(hp for spec in plat.learn for hp in spec.handle))
        plan = [(spec, _firsts_of(spec.handle)) for spec in plat.learn]
        table = self._ids.get(platform, {})
        new: list[tuple[str, str]] = []
        for d in all_dicts(objects) if dicts is None else dicts:
            if d.keys().isdisjoint(firsts):
                continue  # no handle key here: nothing to learn from this object (most of them)
            for spec, handles in plan:
                for hp, first in handles:
                    if first not in d:
                        continue
                    for h in resolve(d, hp):
                        if spec.handle_forms:
                            h = next((x for f in spec.handle_forms for x in f.captures(h)), "")
                        for name in table.get(norm(h), ()):
                            for ip in spec.ids:
                                for v in resolve(d, ip):
                                    # forms: only what a known wrapper holds (highlight:<id>)
                                    got = [x for f in spec.forms for x in f.captures(v)]
                                    for value in got if spec.forms else [v]:
                                        if self.learn(platform, value, name):
                                            new.append((value, name))
        return new

    def owner_in(
        self, platform: str, objects: Iterable[Any], dicts: list[dict[str, Any]] | None = None
    ) -> tuple[str, str] | None:
        """The first target found as the owner of a response's content: (person, identifier)."""
        plat = self.platforms.get(platform)
        if plat is None:
            return None
        firsts, keys = _first_keys(plat.owner_keys), _firsts_of(plat.owner_keys)
        for d in all_dicts(objects) if dicts is None else dicts:
            if d.keys().isdisjoint(firsts):
                continue
            for key, first in keys:
                if first not in d:
                    continue
                for v in resolve(d, key):
                    names = self.lookup(platform, v)
                    if names:
                        return names[0], v
        return None

    def blocks(self, person: str, surface: str, active: Collection[str] | None) -> bool:
        return self._blocks(person, surface, active)

    def client_closed(self, host: str, active: Collection[str] | None) -> tuple[str, str] | None:
        """Whose block closes the whole client of ``host``'s platform (``client`` among the blocked
        surfaces, and in force): (person, platform), or None. For apps that cannot be decrypted,
        which can only be let through or refused whole."""
        for plat in self.platforms_for(host):
            for name in self._members.get(plat.name, ()):
                if self._blocks(name, "client", active):
                    return name, plat.name
        return None

    def frame_target(self, platform: str, objects: Iterable[Any]) -> tuple[str, str, str] | None:
        """A websocket message naming a target: (person, surface, identifier)."""
        plat = self.platforms.get(platform)
        if plat is None:
            return None
        firsts = _first_keys(tuple(rule.key for rule in plat.frames))
        for d in all_dicts(objects):
            if d.keys().isdisjoint(firsts):
                continue
            for rule in plat.frames:
                for v in resolve(d, rule.key):
                    got = rule.template.capture(v)
                    if got:
                        names = self.lookup(platform, got)
                        if names:
                            return names[0], rule.surface, got
        return None


@lru_cache(maxsize=256)
def _first_keys(dotted: tuple[str, ...]) -> frozenset[str]:
    """The keys an object must have for any of these dotted paths to find something in it."""
    return frozenset(first for _, first in _firsts_of(dotted))


@lru_cache(maxsize=256)
def _firsts_of(dotted: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Each dotted path with the key it starts with, in order."""
    return tuple((k, k.split(".", 1)[0]) for k in dotted)


def _what(plat: Platform, surface: str) -> str:
    joiner = {"search": "a search for", "messages": "messages with", "client": "client, blocked for"}
    return f"{plat.title} {joiner.get(surface, surface + ' of')}"
