"""The byte-level prefilter: never misses an identifier the matcher would find, however JSON spells it,
and rejects real-shaped bodies that name no one.

Every test runs twice: with the compiled searcher (Hyperscan, installed on x86-64 Linux and so in
CI) and with the pure path that runs where it is not, which must give the same answers."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zctest.support import benchmark_module

from zerocontact.rules import Matcher, load, prefilter
from zerocontact.rules.matcher import norm
from zerocontact.rules.prefilter import MAX_IDENTIFIERS, Prefilter
from zerocontact.rules.response import json_objects

bodies = benchmark_module("bodies")  # the platform-shaped bodies the benchmarks use

HANDLE_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789._"


@pytest.fixture(autouse=True, scope="module", params=["compiled", "pure"])
def engine(request: pytest.FixtureRequest) -> Iterator[str]:
    installed = prefilter.hyperscan
    if request.param == "compiled" and installed is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hyperscan is not installed: the compiled prefilter must be tested in CI")
        pytest.skip("hyperscan is not installed here (only its x86-64 Linux wheels are a dependency)")
    if request.param == "pure":
        prefilter.hyperscan = None
    prefilter._scanner.cache_clear()
    yield request.param
    prefilter.hyperscan = installed
    prefilter._scanner.cache_clear()


def test_the_engine_under_test_is_the_one_answering(engine: str) -> None:
    pf = Prefilter(["sam.example"], ["4242424242"])
    assert (pf._scanner is not None) == (engine == "compiled")
    assert pf.mentions(b'{"username":"SAM.Example"}') and not pf.mentions(b'{"username":"sam.exampl"}')


def spell(value: str, rng: random.Random, escape: float) -> str:
    """``value`` as a JSON string literal with each character, at random, escaped any way JSON allows."""
    out = ['"']
    for ch in value:
        r = rng.random()
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch < " ":
            out.append({"\n": "\\n", "\t": "\\t"}.get(ch) if r < 0.5 else f"\\u{ord(ch):04x}")
        elif ch == "/" and r < 0.5:
            out.append("\\/")
        elif r < escape:
            code = f"{ord(ch):04x}" if ord(ch) < 0x10000 else None
            if code is None:  # outside the BMP: a surrogate pair
                o = ord(ch) - 0x10000
                code = f"{0xD800 + (o >> 10):04x}\\u{0xDC00 + (o & 0x3FF):04x}"
            out.append("\\u" + "".join(c.upper() if rng.random() < 0.5 else c for c in code))
        else:
            out.append(ch)
    return "".join(out) + '"'


def variant(ident: str, rng: random.Random) -> str:
    """A value the matcher reads as ``ident``: any case, maybe ``@`` in front, maybe whitespace around."""
    v = "".join(c.upper() if rng.random() < 0.5 else c for c in ident)
    if rng.random() < 0.3:
        v = "@" + v
    if rng.random() < 0.3:
        v = " " + v + "\n"
    assert norm(v) == ident
    return v


def embed(literal: str, rng: random.Random) -> bytes:
    """A feed-shaped document with the literal as one user's handle, somewhere in the middle."""
    feed = json.loads(bodies.feed(20_000, seed=rng.randrange(100)))
    post = feed["items"][rng.randrange(len(feed["items"]))]
    post["user"]["username"] = "__HERE__"
    text = json.dumps(feed, ensure_ascii=rng.random() < 0.5)
    return text.replace('"__HERE__"', literal).encode()


@settings(max_examples=150, deadline=None)
@given(
    ident=st.text(HANDLE_CHARS, min_size=1, max_size=30),
    seed=st.integers(0, 2**32),
    escape=st.sampled_from([0.0, 0.1, 0.5, 1.0]),
)
def test_an_identifier_is_found_in_any_case_and_any_escape(ident: str, seed: int, escape: float) -> None:
    rng = random.Random(seed)
    body = embed(spell(variant(ident, rng), rng, escape), rng)
    assert ident in {norm(str(p["user"]["username"])) for p in json.loads(body)["items"]}
    assert Prefilter([ident]).mentions(body)
    assert Prefilter([f"zz{ident}q", ident.upper()], []).mentions(body)  # any group, any case given


def test_real_shaped_bodies_that_name_no_one_are_rejected() -> None:
    pf = Prefilter(["sam.example", "52222405344"], ["4242424242"])
    for body in (bodies.small(), bodies.feed(20_000), bodies.feed(200_000), bodies.html_page(200_000)):
        assert b"\\u" in body and b"\\/" in body  # real escapes, none of them spelling an identifier
        assert not pf.mentions(body)
    assert pf.mentions(bodies.feed(200_000, commenter_at=3))
    assert pf.mentions(bodies.feed(20_000, mention_at=1))


@pytest.mark.parametrize(
    "body",
    [
        b'{"username":"sam\\u002eexample"}',
        b'{"username":"\\u0053AM.example"}',
        b'{"username":"sam.e\\u0078ample"}',
        b'{"u":{"username":"s\\u0061m.ex\\u0061mple"}}',
        b'{"pk":"4242\\u003424242"}',
        b'{"pk":4242424242}',
        b'[{"caption":{"text":"with @Sam.Example"}}]',
        b'<script type="application/json">{"user":{"username":"sam\\u002Eexample"}}</script>',
    ],
)
def test_escaped_and_cased_spellings_are_inspected(body: bytes) -> None:
    assert Prefilter(["sam.example"], ["4242424242"]).mentions(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"username":"sam.exampl"}',
        b'{"username":"sam\\u00e9example"}',  # an escape, but of a character no identifier has
        b'{"url":"https:\\/\\/x.example\\/a\\u0026b"}',
        b'{"pk":424242424}',
        b"",
    ],
)
def test_near_misses_are_rejected(body: bytes) -> None:
    assert not Prefilter(["sam.example"], ["4242424242"]).mentions(body)


def test_the_kelvin_sign_lower_cases_to_k() -> None:
    body = '{"username":"\u212aim.example"}'.encode()
    assert norm(json.loads(body)["username"]) == "kim.example"
    assert Prefilter(["kim.example"]).mentions(body)
    assert Prefilter(["kim.example"]).mentions(b'{"username":"\\u212Aim.example"}')
    assert not Prefilter(["sam.example"]).mentions(body)


def test_identifiers_that_are_not_ascii_are_searched_as_text() -> None:
    pf = Prefilter(["müller-anna"])
    assert pf.mentions('{"vanityName":"MÜLLER-Anna"}'.encode())
    assert pf.mentions(b'{"vanityName":"M\\u00dcller-anna"}')
    assert pf.mentions('{"vanityName":"müller\\u002danna"}'.encode())
    assert not pf.mentions('{"vanityName":"müller-anne"}'.encode())
    astral = Prefilter(["sam😀"])
    assert astral.mentions(b'{"h":"SAM\\ud83d\\ude00"}')
    assert not astral.mentions(b'{"h":"sam\\ud83d\\ude01"}')


def test_json_in_utf16_is_always_inspected() -> None:
    body = json.dumps({"username": "sam.example"}).encode("utf-16")
    assert b"sam.example" not in body.lower()
    assert Prefilter(["sam.example"]).mentions(body)


def test_many_identifiers_are_each_searched_for() -> None:
    rng = random.Random(7)
    idents = {"".join(rng.choice(HANDLE_CHARS) for _ in range(rng.randint(4, 16))) for _ in range(20)}
    idents |= {str(rng.randrange(10**8, 10**12)) for _ in range(MAX_IDENTIFIERS - len(idents))}
    pf = Prefilter(sorted(idents)[:30], sorted(idents)[30:])
    assert pf.exhaustive
    base = bodies.feed(20_000, seed=99)
    for ident in sorted(idents):
        assert pf.mentions(embed(json.dumps(ident.upper()), rng))
    # the generated feed's own handles and ids can collide with random short ones: compare with `in`
    present = [i for i in idents if i.encode() in base.lower()]
    assert pf.mentions(base) == bool(present)


def test_beyond_the_limit_every_body_is_inspected_as_before() -> None:
    idents = [f"person{i}.example" for i in range(MAX_IDENTIFIERS + 1)]
    pf = Prefilter(idents[:10], idents[10:])
    assert not pf.exhaustive
    assert pf.mentions(bodies.small())  # searching would cost what decoding does: it is decoded
    assert not Prefilter(idents[:MAX_IDENTIFIERS]).mentions(bodies.small())


def test_an_identifier_that_is_a_prefix_of_another_still_counts() -> None:
    pf = Prefilter(["sam", "samantha", "sam.example"])
    assert pf.mentions(b'{"u":"sam"}')
    assert pf.mentions(b'{"u":"SAMANTHA"}')
    assert not pf.mentions(b'{"u":"sa"}')


def test_empty_prefilter_mentions_nothing() -> None:
    assert not Prefilter()
    assert not Prefilter([], [""]).mentions(b'{"a":"b"}')


RULES = '[[person]]\nname = "Sam"\naccounts = { instagram = ["sam.example"], threads = "sam.threads" }\n'


def test_matcher_identifiers_cover_rules_learned_and_shared_accounts() -> None:
    m = Matcher(load(RULES))
    gen = m.generation
    rules_ids, learned = m.identifiers("instagram")
    assert rules_ids == {"sam.example"} and learned == frozenset()
    assert m.learn("instagram", "4242424242", "Sam")
    assert m.generation > gen
    assert m.identifiers("instagram")[1] == {"4242424242"}
    # Threads shares Instagram's accounts, and ids learned on Instagram hold there too
    t_rules, t_learned = m.identifiers("threads")
    assert {"sam.example", "sam.threads"} <= t_rules and "4242424242" in t_learned
    assert m.lookup("threads", "4242424242") == ("Sam",)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32), escape=st.sampled_from([0.0, 0.3, 1.0]))
def test_whatever_the_matcher_finds_in_a_body_the_prefilter_lets_through(seed: int, escape: float) -> None:
    """The property the proxy relies on, checked against the matcher itself: if learning or the owner
    check finds anything in a body, ``mentions`` is True for it."""
    rng = random.Random(seed)
    m = Matcher(load(RULES))
    m.learn("instagram", "4242424242", "Sam")
    pf = Prefilter(*m.identifiers("instagram"))
    doc = json.loads(bodies.feed(5_000, seed=seed % 50))
    user = doc["items"][0]["user"]
    if rng.random() < 0.5:
        user["username"] = "__HERE__"
        literal = spell(variant("sam.example", rng), rng, escape)
    else:
        user["pk"] = "__HERE__"
        literal = spell(variant("4242424242", rng), rng, escape) if rng.random() < 0.7 else "4242424242"
    body = json.dumps(doc).replace('"__HERE__"', literal).encode()
    objs = json_objects(body, "application/json")
    assert m.owner_in("instagram", objs) is not None
    assert pf.mentions(body)


@settings(max_examples=100, deadline=None)
@given(
    ident=st.text(HANDLE_CHARS, min_size=2, max_size=20),
    seed=st.integers(0, 2**32),
    escape=st.sampled_from([0.0, 0.1, 1.0]),
    cut=st.booleans(),
)
def test_both_engines_give_the_same_answer(ident: str, seed: int, escape: float, cut: bool) -> None:
    """The same body, the same identifiers: the compiled scan and the pure passes agree, whether the
    body holds the identifier (any case, any escape) or only a near miss of it."""
    if prefilter.hyperscan is None:
        return  # under the "pure" run (or where Hyperscan is absent) there is nothing to compare
    rng = random.Random(seed)
    written = ident[:-1] if cut else ident  # a near miss: one character short
    body = embed(spell(variant(written, rng) if written else "x", rng, escape), rng)
    ids = ([ident], [str(rng.randrange(10**9, 10**10))])
    compiled = Prefilter(*ids)
    installed, prefilter.hyperscan = prefilter.hyperscan, None
    try:
        pure = Prefilter(*ids)
    finally:
        prefilter.hyperscan = installed
    assert compiled._scanner is not None and pure._scanner is None
    assert compiled.mentions(body) == pure.mentions(body)
    assert compiled.offsets(body) == pure.offsets(body)


def test_other_ascii_escapes_before_a_mention_do_not_hide_it() -> None:
    """Meta's HTML writes ``\\u0040`` and ``\\u003C``: escapes of characters no identifier has. The
    compiled scan stops at the first of them and answers with its exact pass, which must still see
    a plain or escaped mention further on, and nothing where there is none."""
    pf = Prefilter(["sam.example"], ["4242424242"])
    lead = b'{"bio":"\\u0040home \\u003Cb\\u003E","items":[' + b'{"text":"caf\\u00e9"},' * 2000
    assert pf.mentions(lead + b'{"username":"Sam.Example"}]}')
    assert pf.mentions(lead + b'{"username":"s\\u0061m.ex\\u0041mple"}]}')
    assert pf.mentions(lead + b'{"pk":"4242\\u003424242"}]}')
    assert not pf.mentions(lead + b'{"username":"sam.exampl"}]}')
    assert not pf.mentions(b'{"a":"\\u0040\\u003c\\u0026"}')


@settings(max_examples=100, deadline=None)
@given(ident=st.text(HANDLE_CHARS, min_size=2, max_size=20), seed=st.integers(0, 2**32))
def test_offsets_point_into_every_mention_written_plainly(ident: str, seed: int) -> None:
    """Decoding only around the mentions (``response.json_around``) is as good as the places it is
    given: one inside each occurrence, whatever its case, and the same from both engines."""
    rng = random.Random(seed)
    body = embed(spell(variant(ident, rng), rng, 0.0), rng)
    if "\\" in json.dumps(ident):  # (handles have no character JSON must escape)
        return
    pf = Prefilter([ident], ["4242424242"])
    got = pf.offsets(body)
    low = body.lower()
    starts = [i for i in range(len(low)) if low.startswith(ident.encode(), i)]
    assert starts
    if len(starts) > prefilter.MAX_OFFSETS:  # a short id inside many numbers: decoding all is cheaper
        assert got is None
        return
    assert got is not None
    for s in starts:
        assert any(s <= o < s + len(ident) for o in got)
    assert all(body[o : o + 1].lower() in ident.encode() + b"4242424242" for o in got)


def test_offsets_are_none_where_an_escape_could_hide_a_mention() -> None:
    pf = Prefilter(["sam.example"], ["4242424242"])
    plain = b'{"a":"\\u00e9","user":{"username":"Sam.Example","pk":4242424242}}'
    assert pf.offsets(plain) == [plain.index(b"Sam.Example") + 10, plain.index(b"4242424242") + 9]
    assert pf.offsets(b'{"user":{"username":"sam\\u002eexample"}}') is None
    assert pf.offsets(b'{"user":{"username":"sam.example","x":"\\u0073"}}') is None  # an "s" elsewhere
    assert Prefilter(["kate"]).offsets('{"username":"\u212aate"}'.encode()) is None  # the Kelvin sign
    assert Prefilter(["zoë"]).offsets(b'{"username":"zo\xc3\xab"}') is None  # not ASCII: only as text
    many = json.dumps({"u": ["sam.example"] * 100}).encode()
    assert pf.offsets(many) is None  # more than MAX_OFFSETS: decoding the whole is cheaper
    assert pf.offsets(b'{"user":{"username":"someone"}}') == []


def test_offsets_are_the_same_beside_escaped_quotes() -> None:
    body = json.dumps({"a": 'say "hi"', "b": "dir\\", "user": {"username": "sam.example"}}).encode()
    assert Prefilter(["sam.example"]).offsets(body) == [body.index(b"sam.example") + 10]


def test_scans_from_two_threads_at_once_give_each_its_own_answer() -> None:
    """The daemon's loop and its inspection thread search at the same time (each with scratch space
    of its own): neither waits for the other, and every answer is the one a lone scan gives."""
    import threading

    pf = Prefilter(["sam.example"], ["4242424242"])
    with_her, without = bodies.feed(400_000, commenter_at=3), bodies.feed(400_000)
    expect = {id(with_her): (True, pf.offsets(with_her)), id(without): (False, pf.offsets(without))}
    assert expect[id(with_her)][1] and expect[id(without)][1] == []
    wrong: list[object] = []
    start = threading.Barrier(2)

    def work(first: bytes, second: bytes) -> None:
        start.wait()
        try:
            for _ in range(40):
                for body in (first, second):
                    got = (pf.mentions(body), pf.offsets(body))
                    if got != expect[id(body)]:
                        wrong.append(got)
        except Exception as e:  # a scratch space in use would raise here
            wrong.append(e)

    threads = [threading.Thread(target=work, args=p) for p in ((with_her, without), (without, with_her))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not wrong
