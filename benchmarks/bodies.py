"""Origin bodies shaped like what Instagram really sends, built deterministically (our own data).

Shapes follow the recorded responses described in /work/shared/research/fixtures (a feed's
``items[]`` with nested ``user`` / ``caption.user`` / ``preview_comments[].user`` objects, 17–19
digit ids as JSON numbers, ``<media>_<owner>`` string ids, CDN URLs full of digits and hex); the
values are generated here. Serialised the way Meta's servers do: ``\\uXXXX`` for every non-ASCII
character (emoji as surrogate pairs) and ``\\/`` for every slash, so the prefilter sees real escapes.
"""

from __future__ import annotations

import json
import random
from typing import Any

TARGET_HANDLE = "sam.example"
TARGET_PK = 4242424242  # learned from the "mention" feed: Sam's comment carries it next to the handle
_WORDS = [
    "sunset",
    "beach",
    "coffee",
    "morning",
    "city",
    "lights",
    "weekend",
    "friends",
    "trip",
    "mountains",
    "lake",
    "summer",
    "winter",
    "autumn",
    "pasta",
    "pizza",
    "brunch",
    "concert",
    "festival",
    "museum",
    "gallery",
    "street",
    "art",
    "vintage",
    "neon",
    "sign",
    "tram",
    "harbour",
    "market",
    "bakery",
    "garden",
    "hike",
    "river",
    "bridge",
    "rooftop",
    "skyline",
    "train",
    "station",
]
_EXTRA = ("café", "crème", "Zürich", "São Paulo", "naïve", "smörgåsbord", "🌅", "☕️", "🎉", "❤️", "😂", "✨")


def _meta_json(obj: Any) -> str:
    """JSON as Meta's PHP/Hack backends write it: ASCII only (``\\u`` escapes) and escaped slashes."""
    return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).replace("/", "\\/")


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def _b64(rng: random.Random, n: int) -> str:
    return "".join(
        rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for _ in range(n)
    )


def _cdn(rng: random.Random, size: str) -> str:
    a, b, c = rng.randrange(10**14, 10**15), rng.randrange(10**14, 10**15), rng.randrange(10**18, 10**19)
    return (
        f"https://scontent-fra5-{rng.randint(1, 2)}.cdninstagram.com/v/t51.2885-15/{a}_{b}_{c}_n.jpg"
        f"?stp=dst-jpg_e35_{size}&_nc_ht=scontent-fra5-1.cdninstagram.com&_nc_cat={rng.randint(1, 111)}"
        f"&_nc_ohc={_b64(rng, 20)}&edm=AABBvjUBAAAA&ccb=7-5&oh=00_{_b64(rng, 40)}&oe={_hex(rng, 8).upper()}"
        f"&_nc_sid={_hex(rng, 6)}"
    )


def _user(rng: random.Random, handle: str | None = None, pk: int | None = None) -> dict[str, Any]:
    pk = pk or rng.randrange(10**9, 10**11)
    handle = handle or f"{rng.choice(_WORDS)}.{rng.choice(_WORDS)}{rng.randint(1, 999)}"
    return {
        "pk": pk,
        "pk_id": str(pk),
        "username": handle,
        "full_name": f"{rng.choice(_WORDS).title()} {rng.choice(_EXTRA)}",
        "is_private": rng.random() < 0.2,
        "profile_pic_url": _cdn(rng, "s150x150"),
        "profile_pic_id": f"{rng.randrange(10**18, 10**19)}_{pk}",
        "friendship_status": {
            "following": rng.random() < 0.5,
            "outgoing_request": False,
            "is_bestie": False,
            "is_restricted": False,
            "is_feed_favorite": False,
        },
        "is_verified": rng.random() < 0.05,
        "has_anonymous_profile_picture": False,
        "latest_reel_media": rng.randrange(1_700_000_000, 1_760_000_000) if rng.random() < 0.3 else 0,
        "account_badges": [],
        "fan_club_info": {"fan_club_id": None, "fan_club_name": None},
    }


def _text(rng: random.Random, words: int) -> str:
    parts = [rng.choice((*_WORDS, *_EXTRA)) for _ in range(words)]
    return " ".join(parts) + " #" + rng.choice(_WORDS) + " #" + rng.choice(_WORDS)


def _comment(rng: random.Random, user: dict[str, Any], media_pk: int) -> dict[str, Any]:
    return {
        "pk": rng.randrange(10**16, 10**17),
        "user_id": user["pk"],
        "text": _text(rng, rng.randint(3, 14)),
        "type": 0,
        "created_at": rng.randrange(1_700_000_000, 1_760_000_000),
        "content_type": "comment",
        "status": "Active",
        "bit_flags": 0,
        "did_report_as_spam": False,
        "share_enabled": False,
        "user": {
            k: user[k] for k in ("pk", "pk_id", "username", "full_name", "is_private", "profile_pic_url")
        },
        "is_covered": False,
        "media_id": media_pk,
        "has_liked_comment": False,
        "comment_like_count": rng.randint(0, 40),
    }


def _post(
    rng: random.Random,
    commenter: dict[str, Any] | None = None,
    mention: bool = False,
    owner: dict[str, Any] | None = None,
) -> dict[str, Any]:
    owner = owner or _user(rng)
    pk = rng.randrange(10**18, 3 * 10**18)
    caption = _text(rng, rng.randint(10, 60))
    if mention:
        caption = f"with @{TARGET_HANDLE} " + caption  # a tag in a caption: no owner, nothing to learn
    comments = [_comment(rng, _user(rng), pk) for _ in range(rng.randint(0, 3))]
    if commenter is not None:
        comments.append(_comment(rng, commenter, pk))
    w, h = rng.choice(((1080, 1350), (1080, 1080), (1440, 1800)))
    return {
        "taken_at": rng.randrange(1_700_000_000, 1_760_000_000),
        "pk": pk,
        "id": f"{pk}_{owner['pk']}",
        "device_timestamp": rng.randrange(10**15, 10**16),
        "media_type": rng.choice((1, 1, 2, 8)),
        "code": _b64(rng, 11),
        "client_cache_key": _b64(rng, 26) + "==.2",
        "filter_type": 0,
        "lat": round(rng.uniform(-60, 60), 6),
        "lng": round(rng.uniform(-120, 120), 6),
        "caption_is_edited": False,
        "like_and_view_counts_disabled": False,
        "commerciality_status": "not_commercial",
        "comment_likes_enabled": True,
        "has_more_comments": rng.random() < 0.5,
        "max_num_visible_preview_comments": 2,
        "preview_comments": comments,
        "comment_count": rng.randint(len(comments), 400),
        "image_versions2": {
            "candidates": [
                {"width": w // d, "height": h // d, "url": _cdn(rng, f"p{w // d}x{h // d}")}
                for d in (1, 2, 3)
            ]
        },
        "original_width": w,
        "original_height": h,
        "user": owner,
        "can_viewer_reshare": True,
        "like_count": rng.randint(0, 50_000),
        "has_liked": False,
        "top_likers": [],
        "photo_of_you": False,
        "caption": {
            "pk": rng.randrange(10**16, 10**17),
            "user_id": owner["pk"],
            "text": caption,
            "type": 1,
            "created_at": rng.randrange(1_700_000_000, 1_760_000_000),
            "content_type": "comment",
            "status": "Active",
            "user": {k: owner[k] for k in ("pk", "pk_id", "username", "full_name", "is_private")},
            "media_id": pk,
        },
        "can_viewer_save": True,
        "organic_tracking_token": _b64(rng, 120),
        "product_type": "feed",
        "music_metadata": None,
        "is_artist_pick": False,
    }


def feed(
    size: int,
    seed: int = 1,
    commenter_at: int | None = None,
    mention_at: int | None = None,
    owned_at: tuple[int, ...] = (),
) -> bytes:
    """A timeline page (``items[]`` of posts) of about ``size`` bytes.

    ``commenter_at``: the post (by index) that gets a comment by the target, ``user.pk`` next to
    ``user.username``: the shape learning reads. ``mention_at``: the post whose caption tags them.
    ``owned_at``: the posts that are theirs (what the feed surface takes out)."""
    rng = random.Random(seed)
    sam = _user(rng, TARGET_HANDLE, TARGET_PK)
    items: list[dict[str, Any]] = []
    total = 100
    while total < size or len(items) <= max(commenter_at or 0, mention_at or 0, *owned_at):
        i = len(items)
        items.append(
            _post(rng, sam if i == commenter_at else None, i == mention_at, sam if i in owned_at else None)
        )
        total += len(_meta_json(items[-1])) + 1
    doc = {"num_results": len(items), "more_available": True, "items": items, "next_max_id": _b64(rng, 40)}
    return _meta_json({**doc, "status": "ok"}).encode()


def small(size: int = 2048, seed: int = 2) -> bytes:
    """A small API answer (a comment thread page) of about ``size`` bytes."""
    rng = random.Random(seed)
    media = rng.randrange(10**18, 3 * 10**18)
    doc: dict[str, Any] = {"comments": [], "comment_count": 0, "status": "ok"}
    while len(_meta_json(doc)) < size:
        doc["comments"].append(_comment(rng, _user(rng), media))
        doc["comment_count"] = len(doc["comments"])
    return _meta_json(doc).encode()


def html_page(size: int = 500_000, seed: int = 3) -> bytes:
    """A profile-like HTML page of about ``size`` bytes: markup, CSS, plain scripts and JSON islands
    (``<script type="application/json">`` ServerJS payloads and a ``window.__additionalData = {…}``)."""
    rng = random.Random(seed)
    head = [
        '<!DOCTYPE html><html class="_9dls" lang="en" dir="ltr"><head><meta charset="utf-8" />',
        '<meta name="viewport" content="width=device-width, initial-scale=1" />',
    ]
    for _ in range(40):
        head.append(
            f'<link rel="preload" href="https://static.cdninstagram.com/rsrc.php/v3/{_b64(rng, 2)}/r/'
            f'{_b64(rng, 11)}.js" as="script" crossorigin="anonymous" nonce="{_b64(rng, 8)}" />'
        )
    head.append(
        "<style>"
        + "".join(
            f".x{_hex(rng, 5)}{{margin:{rng.randint(0, 20)}px;color:#{_hex(rng, 6)}}}" for _ in range(900)
        )
    )
    head.append("</style></head><body><div id='mount_0_0_x1'>")
    parts = head
    n = 0
    while sum(len(p) for p in parts) < size:
        n += 1
        kind = n % 4
        if kind == 0:
            island = {
                "require": [
                    [
                        "ScheduledServerJS",
                        "handle",
                        None,
                        [
                            {
                                "__bbox": {
                                    "result": {
                                        "data": {
                                            "xdt_api__v1__feed__timeline__connection": {
                                                "edges": [{"node": {"media": _post(rng)}} for _ in range(3)]
                                            }
                                        }
                                    }
                                }
                            }
                        ],
                    ]
                ]
            }
            parts.append(
                f'<script type="application/json" data-content-len="1" data-sjs>{_meta_json(island)}</script>'
            )
        elif kind == 1:
            rc = f'{{"__rc":[null,"{_b64(rng, 40)}"]}}'
            parts.append(
                '<script>requireLazy(["TimeSliceImpl","ServerJS"],function(TimeSlice,ServerJS){'
                f'var s=new ServerJS();s.handle({{"define":[["cr:{rng.randint(1000, 9999)}",[],{rc},-1]]}});'
                "});</script>"
            )
        elif kind == 2:
            data = {
                "user": _user(rng),
                "viewer": None,
                "qe": {_b64(rng, 6): _b64(rng, 12) for _ in range(30)},
            }
            parts.append(f"<script>window.__additionalData = {_meta_json(data)};</script>")
        else:
            parts.append(
                "".join(
                    f'<div class="x{_hex(rng, 5)} x{_hex(rng, 5)}">'
                    f'<span dir="auto">{rng.choice(_WORDS)}</span>'
                    f'<img alt="" src="{_cdn(rng, "s320x320").replace("&", "&amp;")}" /></div>'
                    for _ in range(12)
                )
            )
    parts.append("</div></body></html>")
    return "".join(parts).encode()
