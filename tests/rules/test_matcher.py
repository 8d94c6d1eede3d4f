"""Matcher properties: whole-value identifiers, cost independent of rule count, learned aliases."""

from __future__ import annotations

import string

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from zerocontact.rules import Matcher, Request, load
from zerocontact.rules.platforms import presets

HANDLE = st.text(string.ascii_lowercase + string.digits + "._", min_size=3, max_size=14).filter(
    lambda h: h[0].isalpha() and not h.endswith(".")
)
AFFIX = st.text(string.ascii_lowercase + string.digits + "._", min_size=1, max_size=5)


def matcher_for(handle: str) -> Matcher:
    x = handle.replace(".", "_")[:15]
    return Matcher(load(f'[[person]]\nname = "T"\naccounts = {{ instagram = "{handle}", x = "{x}" }}\n'))


@settings(max_examples=200, deadline=None)
@given(HANDLE, AFFIX, AFFIX, st.sampled_from(["instagram", "x"]))
def test_no_substring_false_positives(handle: str, pre: str, post: str, platform: str) -> None:
    if platform == "x":
        handle = handle.replace(".", "_")[:15]
        pre, post = pre.replace(".", "_"), post.replace(".", "_")
    assume(handle.lower() not in presets()[platform].reserved)  # the platform's own routes are no one's
    other = pre + handle + post
    m = matcher_for(handle)
    host = {"instagram": "www.instagram.com", "x": "x.com"}[platform]
    assert m.judge(Request("GET", f"https://{host}/{handle}/")).block
    for o in (other, pre + handle, handle + post):
        assume(o.lower() != handle.lower())
        for path in (f"/{o}/", f"/stories/{o}/", f"/{o}/tagged/"):
            v = m.judge(Request("GET", f"https://{host}{path}"))
            assert not v.block, (path, v.reason)


def test_same_verdicts_with_10_and_10000_handles() -> None:
    few = "\n".join(f'[[person]]\nname = "p{i}"\naccounts = {{ instagram = "user{i}" }}' for i in range(10))
    many = "\n".join(
        f'[[person]]\nname = "p{i}"\naccounts = {{ instagram = "user{i}" }}' for i in range(10_000)
    )
    m1, m2 = Matcher(load(few)), Matcher(load(many))
    for url in (
        "https://www.instagram.com/user3/",
        "https://www.instagram.com/user30/",
        "https://www.instagram.com/stories/user9999/",
        "https://www.instagram.com/explore/",
    ):
        v1, v2 = m1.judge(Request("GET", url)), m2.judge(Request("GET", url))
        assert (v1.block, v1.person) == (v2.block, v2.person) or "user30" in url or "9999" in url
    assert m2.judge(Request("GET", "https://www.instagram.com/user9999/")).person == "p9999"
    assert not m1.judge(Request("GET", "https://www.instagram.com/user9999/")).block


def test_learned_alias_blocks_id_only_calls() -> None:
    m = matcher_for("sam.example")
    url = "https://i.instagram.com/api/v1/feed/user/424242/story/"
    assert not m.judge(Request("GET", url)).block
    learned = m.learn_from("instagram", [{"data": {"user": {"username": "Sam.Example", "id": "424242"}}}])
    assert learned == [("424242", "T")]
    assert m.judge(Request("GET", url)).block
    assert m.learn_from("instagram", [{"user": {"username": "someone", "id": "777"}}]) == []


def test_owner_in_response() -> None:
    m = matcher_for("sam.example")
    post = {"items": [{"code": "Chm_", "user": {"pk": "5", "username": "sam.example"}}]}
    assert m.owner_in("instagram", [post]) == ("T", "sam.example")
    assert m.owner_in("instagram", [{"items": [{"user": {"username": "other"}}]}]) is None


def test_schedule_inactive_person_is_allowed_with_reason() -> None:
    m = matcher_for("sam.example")
    v = m.judge(Request("GET", "https://www.instagram.com/sam.example/"), active=frozenset())
    assert not v.block and v.person == "T" and "not in force" in v.reason


def test_surfaces_not_chosen_are_allowed() -> None:
    m = Matcher(load('[[person]]\nname = "T"\naccounts = { instagram = "sam" }\nblock = ["stories"]\n'))
    assert m.judge(Request("GET", "https://www.instagram.com/stories/sam/")).block
    v = m.judge(Request("GET", "https://www.instagram.com/sam/"))
    assert not v.block and "not in their block list" in v.reason


def test_untargeted_platform_is_not_touched() -> None:
    m = matcher_for("sam")
    v = m.judge(Request("GET", "https://www.example.org/sam"))
    assert not v.block and not v.targeted
    assert "example.org" not in " ".join(m.target_hosts())


def test_presets_compile_and_have_examples() -> None:
    for name, p in presets().items():
        assert p.hosts and p.patterns, name
        assert p.examples, f"{name}: add [examples] with a valid identifier"
        for kind, value in p.examples.items():
            assert p.classify(value) is not None, (name, kind, value)


def test_whose_block_closes_a_whole_client() -> None:
    m = Matcher(
        load(
            '[[person]]\nname = "T"\naccounts = { instagram = "sam" }\n'
            '[[person]]\nname = "U"\naccounts = { instagram = "kim", x = "kim" }\nblock = ["client"]\n'
        )
    )
    assert m.client_closed("i.instagram.com", None) == ("U", "instagram")
    assert m.client_closed("api.x.com", None) == ("U", "x")
    assert m.client_closed("i.instagram.com", frozenset({"T"})) is None  # U's block is not in force
    assert m.client_closed("www.example.org", None) is None
    assert matcher_for("sam").client_closed("i.instagram.com", None) is None  # "client" is opt-in


def test_all_dicts_walks_depth_first_to_sixty_levels() -> None:
    from zerocontact.rules.request import all_dicts

    inner = {"c": 3}
    doc = {"a": 1, "items": [{"b": 2, "sub": inner}, [[{"d": 4}]], "text"], "last": {"e": 5}}
    assert [sorted(d) for d in all_dicts([doc, {"second": True}])] == [
        ["a", "items", "last"],
        ["b", "sub"],
        ["c"],
        ["d"],
        ["e"],
        ["second"],
    ]
    deep: dict[str, object] = {"level": 0}
    node = deep
    for i in range(1, 80):
        child: dict[str, object] = {"level": i}
        node["next"] = child
        node = child
    assert [d["level"] for d in all_dicts([deep])] == list(range(61))  # as deep as JSON here nests


def test_owner_and_learning_find_dotted_keys_only_where_their_first_key_is() -> None:
    m = Matcher(load('[[person]]\nname = "T"\naccounts = { instagram = "sam.example" }\n'))
    caption_only = {"items": [{"caption": {"text": "sam.example"}, "user": {"username": "other", "pk": "1"}}]}
    assert m.owner_in("instagram", [caption_only]) is None
    owned = {"items": [{"id": "9", "owner": {"username": "Sam.Example"}}]}
    assert m.owner_in("instagram", [owned]) == ("T", "Sam.Example")
    nested = {"data": [{"x": {"user": {"username": "sam.example", "id": "515151"}}}]}
    assert m.learn_from("instagram", [nested]) == [("515151", "T")]
