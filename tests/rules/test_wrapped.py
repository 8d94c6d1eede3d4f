"""Identifiers inside values whose grammar is known (base64 text, protobuf fields, signed bodies, Rest.li),
search-grammar tokens, key globs, required view fields and learned wrapped ids: read exactly, never by
substring search."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from zerocontact.rules import Matcher, Request, load
from zerocontact.rules.matcher import query_tokens, values_for
from zerocontact.rules.platforms import PresetError, compile_template, pb_fields, unbase64

IDS = {"id": "[0-9]{3,20}"}


def _pb(field: int, data: bytes) -> bytes:
    key, out = field << 3 | 2, b""
    for n in (key, len(data)):
        while True:
            b, n = n & 0x7F, n >> 7
            out += bytes([b | 0x80]) if n else bytes([b])
            if not n:
                break
    return out + data


def test_base64_template_reads_only_its_wrapper() -> None:
    t = compile_template("base64:app_collection:{id}:*", IDS, "t")
    wrapped = base64.b64encode(b"app_collection:100064860875397:2305272732:5").decode()
    assert t.captures(wrapped) == ["100064860875397"]
    assert t.captures(wrapped.rstrip("=")) == ["100064860875397"]  # unpadded
    assert t.captures(wrapped.replace("=", "%3D")) == ["100064860875397"]
    # the id in the clear, or inside another wrapper, is not this template's business
    assert t.captures("app_collection:100064860875397:2305272732:5") == []
    assert t.captures(base64.b64encode(b"app_section:100064860875397:1").decode()) == []
    assert t.captures("not base64 at all!") == []


def test_protobuf_field_path() -> None:
    inner = _pb(2, b"UCa1b2c3d4e5f6g7h8i9j0kL") + _pb(3, b"EgZ2aWRlb3M%3D")
    token = base64.urlsafe_b64encode(_pb(80226972, inner)).decode()
    t = compile_template("base64:pb:80226972.2:{id}", {"id": "UC[A-Za-z0-9_-]{22}"}, "t")
    assert t.captures(token) == ["UCa1b2c3d4e5f6g7h8i9j0kL"]
    # the same bytes at another field are not the channel id
    other = base64.urlsafe_b64encode(_pb(80226972, _pb(3, b"UCa1b2c3d4e5f6g7h8i9j0kL"))).decode()
    assert t.captures(other) == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_protobuf_reader_never_raises_on_garbage(data: bytes) -> None:
    assert isinstance(pb_fields(data, 2), list)
    t = compile_template("base64:pb:2:{id}", IDS, "t")
    t.captures(base64.b64encode(data).decode())


def test_unbase64_and_wrapper_order() -> None:
    assert unbase64("aGVsbG8") == b"hello"
    assert unbase64("aGVs bG8=") is None
    try:
        compile_template("pb:2:{id}", IDS, "t")
    except PresetError as e:
        assert "base64" in str(e)
    else:
        raise AssertionError("a pb: wrapper without base64: is a preset bug")


def test_query_tokens_and_key_globs() -> None:
    assert query_tokens('(from:sam OR to:sam) -from:ann "a b" from:"sam example"') == [
        "from:sam",
        "OR",
        "to:sam",
        '"a b"',
        'from:"sam example"',
    ]
    data = {"route_urls[0]": ["/a"], "route_urls[12]": ["/b"], "route_urlsX": ["/c"]}
    assert values_for(data, "route_urls[*]") == ["/a", "/b"]
    assert values_for(data, "route_urls[0]") == ["/a"]


M = Matcher(
    load(
        """
[[person]]
name = "Sam"
accounts = { x = ["samexample", "2244994945"], instagram = ["sam.example", "1234567"],
             youtube = "@sam.example", linkedin = "sam-example", facebook = "100064860875397" }
"""
    )
)


def _judge(method: str, url: str, body: str = "", ctype: str = "") -> str | None:
    headers = {"content-type": ctype} if ctype else {}
    v = M.judge(Request(method, url, headers, body.encode()))
    return v.surface if v.block else None


def test_search_operators_and_their_limits() -> None:
    q = "https://x.com/search?q="
    assert _judge("GET", q + quote("from:samexample lang:en")) == "search"
    assert _judge("GET", q + quote("cats to:SamExample")) == "search"
    assert _judge("GET", q + quote("@samexample birthday")) == "search"
    assert _judge("GET", q + quote("samexample since:2024-01-01")) == "search"
    assert _judge("GET", q + quote("-from:samexample cats")) is None  # looking away
    assert _judge("GET", q + quote("from:samexample_fan")) is None  # whole values only
    assert _judge("GET", q + quote("from:nasa samexamplex")) is None
    assert _judge("GET", q + quote("same lang:en")) is None  # a submitted search, not typeahead: no prefixes
    assert _judge("GET", q + quote("from:samex")) is None
    assert _judge("GET", q + quote("samex")) == "search"  # typeahead of the handle itself


def test_signed_body_and_restli_query_values() -> None:
    body = "signed_body=SIGNATURE." + quote(json.dumps({"target_user_id": "1234567"}))
    form = "application/x-www-form-urlencoded"
    assert _judge("POST", "https://i.instagram.com/api/v1/clips/user/", body, form) == "posts"
    assert (
        _judge("POST", "https://i.instagram.com/api/v1/clips/user/", "signed_body=SIGNATURE.{broken", form)
        is None
    )
    url = "https://www.linkedin.com/voyager/api/search/dash/clusters?q=all&query=(keywords:sam-example,x:y)"
    assert _judge("GET", url) == "search"


def test_require_narrows_a_shared_endpoint() -> None:
    url = "https://www.youtube.com/youtubei/v1/browse"
    videos = json.dumps({"browseId": "UCa1b2c3d4e5f6g7h8i9j0kL", "params": "EgZ2aWRlb3PyBgQKAjoA"})
    about = json.dumps({"browseId": "UCa1b2c3d4e5f6g7h8i9j0kL", "params": "EgVhYm91dPIGBAoCEgA%3D"})
    M.learn("youtube", "UCa1b2c3d4e5f6g7h8i9j0kL", "Sam")
    assert _judge("POST", url, videos, "application/json") == "posts"
    assert _judge("POST", url, about, "application/json") == "profile"


def test_learn_forms_take_the_id_out_of_its_wrapper() -> None:
    m = Matcher(
        load('[[person]]\nname = "Sam"\naccounts = { linkedin = "sam-example", youtube = "@sam.example" }\n')
    )
    member = "ACoAAB2xYz0Bc1dEf2gHi3jKl4mNo5pQr6sTu7v"
    got = m.learn_from(
        "linkedin", [{"publicIdentifier": "sam-example", "entityUrn": f"urn:li:fsd_profile:{member}"}]
    )
    assert {v for v, _ in got} == {f"urn:li:fsd_profile:{member}", member}
    page = {
        "channelMetadataRenderer": {
            "vanityChannelUrl": "http://www.youtube.com/@Sam.Example",
            "externalId": "UCz",
        }
    }
    assert m.learn_from("youtube", [page]) == [("UCz", "Sam")]
    other = {
        "channelMetadataRenderer": {
            "vanityChannelUrl": "http://www.youtube.com/@sam.example2",
            "externalId": "UCy",
        }
    }
    assert m.learn_from("youtube", [other]) == []
