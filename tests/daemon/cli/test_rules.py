"""rules init/check and explain: clear messages and exit codes, never a traceback; explain's stable JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from zerocontact.daemon.cli import main

ZC = str(Path(sys.executable).with_name("zerocontact"))
RULES = '[[person]]\nname = "Sam"\naccounts = { instagram = "sam.example", x = "samexample" }\n'


def run(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([ZC, *args], capture_output=True, text=True, input=input, timeout=60)


def test_rules_init_then_check(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    r = run("rules", "init", str(path))
    assert r.returncode == 0 and path.exists()
    r = run("rules", "check", str(path))
    assert r.returncode == 0
    assert r.stdout.startswith(f"{path}: ok: 1 person, ") and "instagram" in r.stdout
    r = run("rules", "init", str(path))
    assert r.returncode == 1 and "already exists" in r.stderr


def test_rules_init_default_location_follows_xdg(isolated_home: Path) -> None:
    r = run("rules", "init")
    assert r.returncode == 0
    assert (isolated_home / ".config" / "zerocontact" / "rules.toml").exists()
    assert run("rules", "check").returncode == 0


def mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def test_rules_init_writes_the_file_for_your_eyes_only(isolated_home: Path, tmp_path: Path) -> None:
    """The file holds a person's name and handles and your reasons: 0600, in a 0700 folder."""
    (isolated_home / ".config").mkdir(mode=0o755)
    folder = isolated_home / ".config" / "zerocontact"
    folder.mkdir(mode=0o755)  # made earlier by something else, open to everyone
    assert run("rules", "init").returncode == 0
    assert mode(folder / "rules.toml") == 0o600 and mode(folder) == 0o700
    assert mode(isolated_home / ".config") == 0o755  # not zerocontact's to change
    (folder / "rules.toml").chmod(0o644)
    assert run("rules", "init", "--force").returncode == 0 and mode(folder / "rules.toml") == 0o600
    # a path of your own: new folders private, an existing one left as it is
    mine = tmp_path / "notes" / "deeper" / "rules.toml"
    tmp_path.chmod(0o755)
    assert run("rules", "init", str(mine)).returncode == 0
    assert mode(mine) == 0o600 and mode(mine.parent) == 0o700 and mode(mine.parent.parent) == 0o700
    assert mode(tmp_path) == 0o755


def test_rules_check_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        '[[person]]\nname = "Sam"\naccounts = { instgram = "sam", x = "a/b" }\nblock = ["storys"]\n'
    )
    r = run("rules", "check", str(path))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "3 problems" in r.stderr
    assert (
        f"{path}:3:14: person \"Sam\", accounts.instgram: unknown platform; did you mean 'instagram'?"
        in r.stderr
    )
    assert "person \"Sam\", block[1]: unknown surface 'storys'; did you mean 'stories'?" in r.stderr


def test_rules_check_missing_file(tmp_path: Path) -> None:
    r = run("rules", "check", str(tmp_path / "nope.toml"))
    assert r.returncode == 1 and "no rules file" in r.stderr and "rules init" in r.stderr


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_rules_check_never_tracebacks(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.toml"
    path.write_bytes(data)
    r = CliRunner().invoke(main, ["rules", "check", str(path)])
    assert r.exit_code in (0, 1)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception


def test_explain_arguments_and_json(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text(RULES)
    r = run(
        "explain",
        "--rules",
        str(rules),
        "--json",
        "https://www.instagram.com/sam.example/",
        "POST",
        "https://x.com/someone",
        "https://www.instagram.com/p/ABC/",
    )
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["request"] for x in rows] == [
        "GET https://www.instagram.com/sam.example/",
        "POST https://x.com/someone",
        "GET https://www.instagram.com/p/ABC/",
    ]
    for x in rows:
        assert {"request", "verdict", "person", "platform", "surface", "reason", "certain"} <= set(x)
    assert (rows[0]["verdict"], rows[0]["person"], rows[0]["surface"], rows[0]["certain"]) == (
        "block",
        "Sam",
        "profile",
        True,
    )
    assert rows[1]["verdict"] == "allow" and rows[1]["person"] is None
    assert rows[2]["verdict"] == "allow" and rows[2]["certain"] is False


def test_explain_reads_stdin_with_bodies(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text(RULES)
    body = tmp_path / "body.json"
    body.write_text('{"variables": {"screen_name": "samexample"}}')
    lines = (
        f"https://x.com/samexample\nPOST https://x.com/i/api/graphql/q/UserByScreenName @{body}\n"
        "# a comment\n\nhttps://example.org/\n"
    )
    r = run("explain", "--rules", str(rules), "--json", input=lines)
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [x["verdict"] for x in rows] == ["block", "block", "allow"]
    r = run("explain", "--rules", str(rules), input="POST https://x.com/a @/no/such/file\n")
    assert r.returncode == 1 and "cannot read body file" in r.stderr


def test_explain_readable_output_and_body_option(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text(RULES)
    body = tmp_path / "b.json"
    body.write_text('{"operationName": "UserByScreenName", "variables": {"screen_name": "SamExample"}}')
    r = run("explain", "--rules", str(rules), "--body", str(body), "POST https://x.com/i/api/graphql")
    assert r.returncode == 0 and r.stdout.startswith("BLOCK  POST https://x.com/i/api/graphql")


def test_explain_process_says_what_the_watcher_would_do(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text(RULES + 'apps = ["telegram"]\n[[app]]\nname = "night"\nmatch = ["whatsapp"]\n')
    r = run("explain", "--rules", str(rules), "--process", "Telegram")
    assert r.returncode == 0 and r.stdout.startswith("STOP") and "Sam" in r.stdout
    r = run("explain", "--rules", str(rules), "--json", "--process", "WhatsApp")
    assert json.loads(r.stdout.splitlines()[0])["verdict"] != "allow"
    r = run("explain", "--rules", str(rules), "--process", "999999999")
    assert r.returncode == 1 and "no process with PID" in r.stderr and "Traceback" not in r.stderr


def test_rules_check_refuses_a_fifo_and_a_link_to_dev_zero_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.toml"
    zero.symlink_to("/dev/zero")
    for path, kind in ((fifo, "a FIFO (named pipe)"), (zero, "a character device")):
        for args in (("rules", "check", str(path)), ("run", "--rules", str(path), "--port", "0")):
            # a blocked open or an endless read would run into the timeout (and fail the test)
            r = subprocess.run([ZC, *args], capture_output=True, text=True, timeout=20)
            assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
            assert f"is {kind}: zerocontact reads its rules only from a regular file" in r.stderr
            assert r.stderr.count("\n") == 1, r.stderr  # one clear line


def test_rules_check_and_run_refuse_a_forever_duration(tmp_path: Path) -> None:
    path = tmp_path / "forever.toml"
    path.write_text(RULES + 'for = "9999999d"\n[lock]\ncooling_off = "9999999d"\n')
    for args in (("rules", "check", str(path)), ("run", "--rules", str(path), "--port", "0")):
        r = run(*args)
        assert r.returncode == 1 and "Traceback" not in r.stderr and "OverflowError" not in r.stderr
        assert "2 problems" in r.stderr
        assert "person \"Sam\", for: '9999999d' is longer than 100 years" in r.stderr
        assert "lock.cooling_off: '9999999d' is longer than 100 years" in r.stderr


def test_rules_check_refuses_a_backtracking_site_handle_at_once(tmp_path: Path) -> None:
    path = tmp_path / "redos.toml"
    path.write_text(
        '[[site]]\nname = "forum"\nhosts = ["forum.example.org"]\nhandle = "(a+)+$"\n'
        'pages = { profile = ["/members/{handle}"] }\n'
        f'[[person]]\nname = "S"\naccounts = {{ forum = "{"a" * 40}!" }}\n'
    )
    # before the bound, matching the account against (a+)+$ ran for hours
    r = subprocess.run([ZC, "rules", "check", str(path)], capture_output=True, text=True, timeout=20)
    assert r.returncode == 1 and "site \"forum\", handle: '(a+)+$': groups and alternation" in r.stderr


JORDAN = '[[person]]\nname = "Jordan"\n'
# Words a person who is not a programmer cannot act on: none may reach them.
JARGON = ("TOML", "Illegal", "Cannot declare", "expected ", "got ", " str ", "byte ", "person[", "app[")

# (what went wrong, the file, exit status, words the message must hold)
MISTAKES: list[tuple[str, str | bytes, int, tuple[str, ...]]] = [
    (
        "a pasted share link",
        JORDAN + 'accounts = { instagram = "https://www.instagram.com/jordan.rivers/?igsh=abc123" }\n',
        0,
        (
            "note: ",
            ":3:14: ",
            "took the handle 'jordan.rivers' from the link 'https://www.instagram.com/jordan.rivers/?igsh=abc123'",
        ),
    ),
    (
        "a link to a post, not a profile",
        JORDAN + 'accounts = { instagram = "https://www.instagram.com/p/ABC123/" }\n',
        1,
        ("is a link, but not to someone's Instagram profile", "open their profile and copy its link"),
    ),
    (
        "a link filed under the wrong platform",
        JORDAN + 'accounts = { x = "https://www.instagram.com/jordan.rivers/" }\n',
        1,
        ("is a link to Instagram, not X", "put it under instagram"),
    ),
    ("an empty file", "", 0, ("Nothing is blocked: this file names no one yet", "[[person]]")),
    (
        "an until already past",
        JORDAN + 'accounts = { x = "jordanrivers" }\nuntil = 2020-01-01\n',
        0,
        ("The block on Jordan is over", "has passed, so it blocks nothing now", "Nothing is blocked now."),
    ),
    (
        "an unclosed quote",
        '[[person]]\nname = "Jordan\naccounts = { x = "j" }\n',
        1,
        (":2:15: ", 'a quoted text is not closed: add the closing quote (")'),
    ),
    (
        "[person] with one bracket, twice",
        '[person]\nname = "A"\n[person]\nname = "B"\n',
        1,
        (":3:", "[person] appears twice", "write [[person]] (two brackets)"),
    ),
    (
        "yes for true",
        '[settings]\nshow_name = "yes"\n' + JORDAN + 'accounts = { x = "j" }\n',
        1,
        ('settings.show_name: write true (no quotes), not the text "yes"',),
    ),
    (
        "a file saved as Latin-1",
        b'[[person]]\nname = "Ren\xe9e"\naccounts = { x = "r" }\n',
        1,
        (":2:12: ", "not UTF-8 text", "save the file as UTF-8"),
    ),
    (
        "a search term too short",
        JORDAN + 'accounts = { x = "j" }\nsearch_terms = ["Jo"]\n',
        1,
        ("person \"Jordan\", search_terms[1]: 'Jo' is too short", "at least 3 letters"),
    ),
    (
        "twitter, the old name",
        JORDAN + 'accounts = { twitter = "jordanrivers" }\n',
        1,
        ('person "Jordan", accounts.twitter', "Twitter is called X now: write 'x'"),
    ),
    (
        "online, the everyday word",
        JORDAN + 'accounts = { x = "j" }\nblock = ["online"]\n',
        1,
        ("unknown surface 'online'", "online status is called presence: write 'presence'"),
    ),
    (
        "mute, what the platforms call it",
        JORDAN + 'accounts = { x = "j" }\nblock = ["profile", "mute"]\n',
        1,
        ("unknown surface 'mute'", "(what mute does) is the feed surface: write 'feed'"),
    ),
    (
        "a number for a name",
        '[[person]]\nname = 5\naccounts = { x = "j" }\n',
        1,
        ('person 1, name: should be text in quotes, like "this", not the number 5',),
    ),
    (
        "a second person without a name",
        JORDAN + 'accounts = { x = "j" }\n[[person]]\naccounts = { x = "k" }\n',
        1,
        ("person 2: every person needs a name",),
    ),
    ("a value without quotes", "[[person]]\nname = Jordan\n", 1, (":2:8: ", "text needs quotes")),
    (
        "a setting without =",
        '[[person]]\nname "Jordan"\n',
        1,
        ('a setting needs = and a value, like name = "Sam"',),
    ),
    (
        "a date that does not exist",
        JORDAN + 'accounts = { x = "j" }\nuntil = 2027-02-30\n',
        1,
        ("not a real date or time",),
    ),
    (
        "the same setting twice",
        JORDAN + 'name = "B"\naccounts = { x = "j" }\n',
        1,
        (":3:", "this is set twice"),
    ),
    (
        "a number for a duration",
        "[lock]\ncooling_off = 24\n" + JORDAN + 'accounts = { x = "j" }\n',
        1,
        ('lock.cooling_off: should be a duration like "24h", not the number 24',),
    ),
    (
        "a misspelt setting",
        JORDAN + 'colour = "red"\naccounts = { x = "j" }\n',
        1,
        ('person "Jordan", colour: not a setting zerocontact knows',),
    ),
]


@pytest.mark.parametrize(("mistake", "text", "code", "words"), MISTAKES, ids=[m[0] for m in MISTAKES])
def test_rules_file_mistakes_are_said_plainly(
    tmp_path: Path, mistake: str, text: str | bytes, code: int, words: tuple[str, ...]
) -> None:
    path = tmp_path / "rules.toml"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    r = CliRunner().invoke(main, ["rules", "check", str(path)])
    said = r.output
    assert r.exit_code == code, said
    for w in words:
        assert w in said, f"{mistake}: {w!r} not in\n{said}"
    for jargon in JARGON:
        assert jargon not in said, f"{mistake}: {jargon!r} in\n{said}"


def test_problems_are_listed_in_the_order_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[person]]\nname = "Jordan"\naccounts = { twitter = "j" }\nblock = ["online"]\n'
        '[settings]\nshow_name = "yes"\n'  # checked first by the loader, yet last in the file
    )
    r = CliRunner().invoke(main, ["rules", "check", str(path)])
    lines = [line for line in r.output.splitlines() if line.startswith("  ")]
    assert [int(line.split(":")[1]) for line in lines] == [3, 4, 6], r.output


def test_explain_says_whose_entries_leave_a_feed(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text(JORDAN + 'accounts = { instagram = "jordan.rivers" }\n')
    feed, profile = "https://i.instagram.com/api/v1/feed/timeline/", "https://www.instagram.com/someone.else/"
    r = run("explain", "--rules", str(rules), feed, profile)
    assert r.returncode == 0, r.stderr
    assert (
        "Anything of Jordan's in it (home feed: their posts and reels) is taken out before it reaches you."
        in r.stdout
    )
    assert r.stdout.count("taken out") == 1  # a profile page has no mixed list
    rows = [json.loads(x) for x in run("explain", "--rules", str(rules), "--json", feed).stdout.splitlines()]
    assert rows[0]["out_of_sight"] is True and rows[0]["verdict"] == "allow"
    rules.write_text(JORDAN + 'accounts = { instagram = "jordan.rivers" }\nblock = ["profile"]\n')
    assert "taken out" not in run("explain", "--rules", str(rules), feed).stdout  # feed not chosen


def test_explain_speaks_plainly_and_keeps_the_technical_reason_in_json(tmp_path: Path) -> None:
    rules = tmp_path / "r.toml"
    rules.write_text(
        JORDAN + 'accounts = { instagram = "jordan.rivers", x = "jordanrivers", messenger = "jordan.r" }\n'
        'block = ["profile", "stories", "search", "presence", "messages"]\n'
    )
    urls = {
        "https://x.com/search?q=jordanrivers": "Blocked: an X search for Jordan.",
        "https://www.instagram.com/jordan.rivers/": "Blocked: Jordan's Instagram profile.",
        "https://www.instagram.com/jordan.rivers/reels/": (
            "Allowed: an Instagram post by Jordan, but you did not choose to block posts for Jordan."
        ),
        "https://www.instagram.com/someone.else/": (
            "Allowed: this Instagram address is not about anyone you named."
        ),
        "https://example.org/": "Allowed: zerocontact does not look at this site",
        "https://edge-chat.facebook.com/chat": "Allowed: Messenger's web client stays open",
    }
    r = run("explain", "--rules", str(rules), *urls)
    assert r.returncode == 0, r.stderr
    for url, says in urls.items():
        assert f"  GET {url}\n       {says}" in r.stdout, r.stdout
    for technical in ("MQTT", "edge-chat.instagram", "matched", "{handle}", "pattern", "binary"):
        assert technical not in r.stdout
    rows = [
        json.loads(line)
        for line in run("explain", "--rules", str(rules), "--json", *urls).stdout.splitlines()
    ]
    assert [row["says"].split(":")[0] for row in rows] == [
        "Blocked",
        "Blocked",
        "Allowed",
        "Allowed",
        "Allowed",
        "Allowed",
    ]
    assert "matched" in rows[0]["reason"]  # the technical reason, for tools and bug reports
    assert "MQTT" in rows[3]["reason"]  # what Instagram hides, said where it belongs


def test_explain_says_what_happens_on_the_persons_devices(tmp_path: Path) -> None:
    """With a device added, a targeted host gets one more line: the phone's browser is judged the
    same way, and an app that refuses the certificate is passed through, or refused whole while a
    block includes the whole client. Without devices nothing changes."""
    rules = tmp_path / "r.toml"
    rules.write_text(RULES)
    state = tmp_path / "state"
    url = "https://www.instagram.com/sam.example/"
    before = run("explain", "--rules", str(rules), "--state-dir", str(state), url)
    assert before.returncode == 0 and "on phone" not in before.stdout
    added = run("devices", "add", "phone", "--no-qr", "--endpoint", "192.0.2.10", "--state-dir", str(state))
    assert added.returncode == 0, added.stderr
    r = run("explain", "--rules", str(rules), "--state-dir", str(state), url, "https://www.example.org/")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert (
        lines[2].strip().startswith("on phone: the browser gets the same answer")
        and "passed through" in lines[2]
    )
    assert len(lines) == 5  # the untargeted site: nothing about phones (it is never decrypted there either)
    closing = RULES.replace('name = "Sam"', 'name = "Sam"\nblock = ["profile", "client"]', 1)
    assert closing != RULES
    rules.write_text(closing)
    j = run("explain", "--rules", str(rules), "--state-dir", str(state), "--json", url)
    (row,) = [json.loads(line) for line in j.stdout.splitlines()]
    assert "refused whole now (Sam's block includes the whole client)" in row["on_devices"]
