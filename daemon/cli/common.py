"""What every command family shares: the user-error type and its one handler, the common options,
and reading the rules file with every problem located."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from zerocontact.rules import RulesError, Ruleset, load
from zerocontact.rules.errors import UserFacingError

from .. import paths as pathmod
from ..rulesfile import RulesFileError, read_rules_file

if TYPE_CHECKING:
    from ..parseahead import ParseAhead


class UserError(click.ClickException):
    """A mistake the user can fix; click prints it without a traceback and exits 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"zerocontact: {self.format_message()}", err=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """The one domain-error handler: any ``UserFacingError`` (rules, journal, review, start, install)
    becomes its own message and exit 1, never a traceback."""
    try:
        yield
    except UserFacingError as e:
        raise UserError(str(e)) from None


def warn(message: str) -> None:
    click.echo(f"zerocontact: {message}", err=True)


def state_dir_option[G: Callable[..., Any]](fn: G) -> G:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where the journal, CA and learned ids live (default: XDG state dir).",
    )(fn)


rules_option = click.option(
    "--rules",
    "rules_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The rules file (default: the user config location).",
)


def local_timezone() -> str:
    """The system's IANA zone name, for rules that do not name one (UTC if it cannot be told)."""
    tz = os.environ.get("TZ", "").lstrip(":")
    if tz and "/" in tz and not tz.startswith("/"):
        return tz
    try:
        link = Path("/etc/localtime").resolve()
        if "zoneinfo" in link.parts:
            return "/".join(link.parts[link.parts.index("zoneinfo") + 1 :])
    except OSError:
        pass
    return "UTC"


def read_rules(path: Path) -> Ruleset:
    """Load a rules file or raise a UserError with every problem, located."""
    return read_rules_and_bytes(path)[0]


def read_rules_and_bytes(path: Path, ahead: ParseAhead | None = None) -> tuple[Ruleset, bytes]:
    """The rules and the exact bytes they came from (the file watcher starts from those); with
    ``ahead`` for this path, the bytes it read and the document its child parsed."""
    document = None
    try:
        if ahead is not None and ahead.path == path:
            data, document = ahead.data, ahead.document()
        else:
            data = read_rules_file(path)
    except (FileNotFoundError, NotADirectoryError):
        raise UserError(f"no rules file at {path}; create one with: zerocontact rules init {path}") from None
    except RulesFileError as e:  # a FIFO, a device, a directory, a huge file: never read
        raise UserError(str(e)) from None
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    try:
        return load(data, str(path), default_timezone=local_timezone(), document=document), data
    except RulesError as e:
        n = len(e.problems)
        raise UserError(
            f"{n} problem{'s' if n != 1 else ''} in {path}:\n" + "\n".join(f"  {p}" for p in e.problems)
        ) from None


def default_rules(rules: Path | None) -> Path:
    return rules if rules is not None else pathmod.resolve().rules
