"""Decoding only around a mention (``json_around``) hands the checks every object the whole decode
would, where a key path can reach a mention: the same ones, in the same order.

Bodies are random JSON documents whose strings hold what breaks naive scanning (braces, quotes,
backslashes, colons, the identifier itself inside text), with targets put at the key paths the
presets use, written compactly or spaced, ASCII-escaped or not."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from zctest.support import benchmark_module

from zerocontact.rules import Matcher, load
from zerocontact.rules.matcher import norm
from zerocontact.rules.prefilter import Prefilter
from zerocontact.rules.request import all_dicts, resolve
from zerocontact.rules.response import json_around, json_objects, json_text

bodies = benchmark_module("bodies")

HANDLE, ID = "sam.example", "4242424242"
PATHS = [
    "username",
    "user.username",
    "owner.id",
    "user.pk",
    "thread.users.pk",
    "node.media.user.username",
    "tags",
]
KEYS = [
    "user",
    "users",
    "thread",
    "username",
    "pk",
    "owner",
    "id",
    "node",
    "media",
    "items",
    "text",
    "x",
    "tags",
]
TRICKY = ["{", "}", "[", "]", '"', "\\", ":", ",", '\\"', '{"user":{"username":"', "é", "☃", " "]


def text(rng: random.Random) -> str:
    parts = [rng.choice([*TRICKY, "a", "b", "hello", HANDLE, ID]) for _ in range(rng.randrange(6))]
    return "".join(parts)


def value(rng: random.Random, depth: int) -> Any:
    r = rng.random()
    if depth > 5 or r < 0.35:
        return rng.choice([text(rng), rng.randrange(10**12), True, None, 1.5, ""])
    if r < 0.55:
        return [value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(KEYS) + rng.choice(["", "", "_", "s"]): value(rng, depth + 1)
        for _ in range(rng.randrange(5))
    }


def target(rng: random.Random) -> Any:
    """A target where a preset's key path finds it (or nearly: a key one letter off)."""
    handle = rng.choice([HANDLE, HANDLE.upper(), "@" + HANDLE, " Sam.Example "])
    pk: Any = rng.choice([int(ID), ID])
    return rng.choice(
        [
            {"username": handle, "pk": 1},
            {"user": {"pk": pk, "full_name": text(rng)}},
            {"thread": {"users": [{"pk": 7}, {"pk": pk}]}},
            {"thread": {"user": [{"pk": pk}]}},  # "thread.users.pk" does not reach this one
            {"node": {"media": {"user": {"username": handle}}}},
            {"node": {"medias": {"user": {"username": handle}}}},
            {"owner": {"id": pk}},
            {"owners": [{"id": pk}]},
            {"tags": [text(rng), handle, pk]},  # an array of them at a key a path ends in
            {"tags": [[handle]]},  # an array inside an array: no path reads that far
            {handle: {"username": text(rng)}, "pk": pk},  # in a key, which no path reads
        ]
    )


def document(rng: random.Random) -> Any:
    doc = value(rng, 0)
    if not isinstance(doc, (dict, list)):
        doc = {"x": doc}
    containers = [d for d in all_dicts([doc])] + ([doc] if isinstance(doc, list) else [])
    for _ in range(rng.randrange(1, 4)):
        c = rng.choice(containers)
        t = target(rng)
        if isinstance(c, dict):
            c[rng.choice(KEYS)] = t
        else:
            c.insert(rng.randrange(len(c) + 1), t)
    return doc


def written(doc: Any, rng: random.Random) -> bytes:
    seps = rng.choice([(",", ":"), (", ", ": ")])
    out = json.dumps(doc, ensure_ascii=rng.random() < 0.5, separators=seps)
    return (rng.choice(["", " ", "for (;;);"]) + out + rng.choice(["", " "])).encode()


def reached(objs: list[Any]) -> list[str]:
    """The objects a check of ``PATHS`` finds a target in, in the order it meets them."""
    targets = {HANDLE, ID}
    return [
        json.dumps(d, sort_keys=True)
        for d in all_dicts(objs)
        if any(norm(v) in targets for p in PATHS for v in resolve(d, p))
    ]


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_the_objects_around_the_mentions_are_those_the_whole_decode_finds(seed: int) -> None:
    rng = random.Random(seed)
    body = written(document(rng), rng)
    offsets = Prefilter([HANDLE, ID]).offsets(body)
    assert offsets is not None  # nothing here escapes a character of the identifiers
    whole = reached(json_objects(body, "application/json"))
    doc = json_text(body, "application/json")
    assert doc is not None
    around = doc.around(offsets, PATHS)
    if around is not None:  # it may decline (then the whole body is decoded): not on most bodies
        assert reached(around) == whole


def with_a_list_of_theirs(rng: random.Random) -> tuple[bytes, list[int]]:
    """A random body, half the time with a list whose entry a list rule takes out; its mentions."""
    doc = document(rng)
    if rng.random() < 0.5:
        c = rng.choice(all_dicts([doc]))
        c[rng.choice(["items", "users"])] = [rng.choice([{"user": {"pk": int(ID)}}, ID, {"pk": ID}, 5])]
    body = written(doc, rng)
    offsets = Prefilter([HANDLE, ID]).offsets(body)
    assert offsets is not None
    return body, offsets


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_walks_over_one_text_answer_as_the_whole_decode(seed: int) -> None:
    """``around``, then ``may_reach``, then ``around`` again on one ``JsonText``, as the response
    hook asks: each walk keeps what it found for the next, and every answer stays that of the
    whole decode (a later walk may answer where a first one alone would have declined)."""
    body, offsets = with_a_list_of_theirs(random.Random(seed))
    whole = json_objects(body, "application/json")
    text = json_text(body, "application/json")
    assert text is not None
    for _ in range(2):
        around = text.around(offsets, PATHS)
        assert around is None or reached(around) == reached(whole)
        if text.may_reach(offsets[::-1], LISTS) is False:
            assert owned_entries(whole) == 0


LISTS = ["items.user.pk", "items.user.username", "users", "users.pk", "thread.owner.id"]


def owned_entries(objs: list[Any]) -> int:
    """What stripping would take out: entries of a list under the first key whose value at the rest
    of the path (or, for a bare key, the entry itself) is a target."""
    targets = {HANDLE, ID}
    n = 0
    for d in all_dicts(objs):
        for chain in LISTS:
            key, _, rest = chain.partition(".")
            if not isinstance(d.get(key), list):
                continue
            for item in d[key]:
                if not rest:
                    n += (
                        isinstance(item, (str, int))
                        and not isinstance(item, bool)
                        and norm(str(item)) in targets
                    )
                elif isinstance(item, dict):
                    n += any(norm(v) in targets for v in resolve(item, rest))
    return n


@settings(max_examples=400, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_a_body_said_to_hold_no_entry_of_theirs_holds_none(seed: int) -> None:
    """``JsonText.may_reach`` False lets the daemon skip stripping: it must never say so of a body with
    an entry a list rule would take out. (And it must say so of most bodies that have none.)"""
    body, offsets = with_a_list_of_theirs(random.Random(seed))
    if may_reach(body, offsets) is False:
        assert owned_entries(json_objects(body, "application/json")) == 0


def may_reach(body: bytes, offsets: list[int]) -> bool | None:
    """What ``JsonText.may_reach`` says of ``body`` and the list rules' paths."""
    doc = json_text(body, "application/json")
    return None if doc is None else doc.may_reach(offsets, LISTS)


def seeded(n: int) -> Iterator[tuple[bytes, list[int]]]:
    """``n`` random bodies, the same every run, with where they mention a target."""
    for seed in range(n):
        rng = random.Random(seed)
        body = written(document(rng), rng)
        offsets = Prefilter([HANDLE, ID]).offsets(body)
        assert offsets is not None
        yield body, offsets


def test_it_tells_most_bodies_without_an_entry_of_theirs() -> None:
    told = 0
    for body, offsets in seeded(300):
        if owned_entries(json_objects(body, "application/json")) == 0:
            told += may_reach(body, offsets) is False
    assert told > 150


def test_it_decodes_around_the_mentions_of_most_bodies() -> None:
    """The first test would pass if ``json_around`` always declined: it must not, and must decode
    less than the whole body where the mention sits deep inside it."""
    declined = 0
    for body, offsets in seeded(300):
        declined += json_around(body, "application/json", offsets, PATHS) is None
    assert declined < 30
    feed = bodies.feed(200_000, seed=5, commenter_at=5)  # her comment in the fifth post of a feed
    offsets = Prefilter([HANDLE, ID]).offsets(feed)
    assert offsets
    around = json_around(feed, "application/json", offsets, ["username", "user.username"])
    assert around is not None and len(json.dumps(around)) < 2_000
    assert reached(around) == reached(json_objects(feed, "application/json"))


def test_learning_and_owners_read_the_same_from_the_objects_around() -> None:
    """Her comment in a feed, read as the daemon reads a post: learn, then look for the learned id too."""
    rules = load('[[person]]\nname = "Sam"\naccounts = { instagram = ["sam.example"] }\n')
    body = bodies.feed(200_000, seed=5, commenter_at=5)
    whole, partial = Matcher(rules), Matcher(rules)
    objs = json_objects(body, "application/json")
    paths = partial.mention_paths("instagram", True)
    offsets = Prefilter(*partial.identifiers("instagram")).offsets(body)
    assert offsets is not None
    near = json_around(body, "application/json", offsets, paths)
    assert near is not None and len(json.dumps(near)) < len(body) / 4
    assert whole.learn_from("instagram", objs) == partial.learn_from("instagram", near) != []
    assert whole.learned() == partial.learned()
    offsets = Prefilter(*partial.identifiers("instagram")).offsets(body)  # now with the learned id
    assert offsets is not None
    near = json_around(body, "application/json", offsets, paths)
    assert near is not None
    assert whole.owner_in("instagram", objs) == partial.owner_in("instagram", near) is not None


def test_mentions_nested_in_each_other_are_decoded_whole_once() -> None:
    """Her reply at every level of a thread: around each mention is the whole rest of the thread,
    so decoding around each would decode it again and again. Past one whole decode's worth it
    declines, and the whole body is decoded once instead."""
    doc: Any = {"pad": [{"n": i} for i in range(2_000)]}
    for _ in range(20):
        doc = {"author": HANDLE, "replies": {"data": doc}}
    body = json.dumps({"data": doc}, separators=(",", ":")).encode()
    offsets = Prefilter([HANDLE]).offsets(body)
    assert offsets is not None and len(offsets) == 20
    doc_text = json_text(body, "application/json")
    assert doc_text is not None
    assert doc_text.around(offsets, ["author"]) is None
    # with a few levels it decodes around them, the same objects as the whole decode
    shallow = json.dumps({"data": {"author": HANDLE, "replies": {"data": {"pad": [1] * 2_000}}}}).encode()
    got = json_around(shallow, "application/json", Prefilter([HANDLE]).offsets(shallow) or [], ["author"])
    assert got is not None and reached_by(got, "author") == reached_by(
        json_objects(shallow, "application/json"), "author"
    )


def reached_by(objs: list[Any], path: str) -> list[str]:
    return [json.dumps(d, sort_keys=True) for d in all_dicts(objs) if HANDLE in resolve(d, path)]


@pytest.mark.parametrize(
    "body",
    [
        b'{"a":1}\n{"user":{"username":"sam.example"}}',  # several documents: read line by line
        b'<html><script>{"username":"sam.example"}</script></html>',
        b'window.x = {"username":"sam.example"};',
        b"",
    ],
)
def test_what_is_not_one_json_document_is_decoded_whole(body: bytes) -> None:
    offsets = Prefilter([HANDLE]).offsets(body) or [0]
    assert json_around(body, "application/json", offsets, PATHS) is None


def test_a_page_is_decoded_whole_and_a_body_without_mention_gives_nothing() -> None:
    body = b'{"user":{"username":"sam.example"}}'
    assert json_around(body, "text/html", [30], PATHS) is None
    assert json_around(body, "application/json", [], PATHS) == []


def test_a_body_that_is_not_valid_json_is_answered_without_error() -> None:
    """Cut short, the whole decode finds nothing; around the mention the objects that closed are
    still read (finding more there is only ever stricter)."""
    body = b'{"items":[{"user":{"username":"sam.example","pk":1}},{"text":"{\\"'
    offsets = Prefilter([HANDLE]).offsets(body)
    assert offsets is not None
    assert json_objects(body, "application/json") == []
    assert reached(json_around(body, "application/json", offsets, PATHS) or []) != []


@pytest.mark.parametrize(
    ("body", "inside"),
    [
        (b'[{"a":"b"},4242424242]', 0),  # after a closing quote and "}"
        (b'{"t":":4242424242,"}', 1),  # what could be structure, in a string
        (b'{"a":"x","pk":4242424242,"b":":"}', 0),
        (b'{"k":"a\\"4242424242\\""}', 1),  # between escaped quotes
        (b'{"k":"a\\\\","pk":4242424242}', 0),  # after an escaped backslash: the quote is real
        (b'{"k":[1,4242424242]}', 0),
        (b'{"k":" 4242424242 "}', 1),
        (b'["x", 4242424242 , "y"]', 0),
    ],
)
def test_whether_a_mention_is_in_a_string_is_told_right(body: bytes, inside: int) -> None:
    """``JsonText`` tells from the quotes nearest a mention whether it sits in a string (counting
    every quote before it only where those cannot tell): the answer is the count's."""
    at = body.index(ID.encode()) + len(ID) - 1
    doc = json_text(body, "application/json")
    assert doc is not None
    assert doc._parity(at, [10**6]) == doc._quotes_before(at, [10**6]) % 2 == inside


def test_whether_mentions_are_in_strings_is_told_as_counting_tells() -> None:
    """The same over random bodies (ASCII-escaped ones, whose offsets are the text's)."""
    told = 0
    for body, offsets in seeded(1_500):
        doc = json_text(body, "application/json")
        assert doc is not None
        if len(doc.text) != len(body.strip().removeprefix(b"for (;;);")):
            continue
        lead = len(body) - len(body.lstrip().removeprefix(b"for (;;);"))
        for at in sorted({off - lead for off in offsets}):
            steps = [10**6]
            assert doc._parity(at, steps) == doc._quotes_before(at, steps) % 2, (body, at)  # type: ignore[operator]
            told += 1
    assert told > 1_000
