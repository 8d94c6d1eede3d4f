"""The error types users can cause: ``UserFacingError`` is the base every layer's own error derives
from (the CLI turns any of them into one line and exit 1); ``RulesError`` carries every rules problem."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rules file, located as precisely as the text allows.

    ``key`` is the machine path (``person[2].accounts.x``); ``label`` is how a person reads it, with
    entries named by their own name (``person "Jordan", accounts.x``)."""

    file: str
    key: str
    message: str
    line: int | None = None
    column: int | None = None
    label: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = self.label if self.label is not None else self.key
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


def in_file_order(problems: list[Problem]) -> list[Problem]:
    """Problems as one reads the file: by line and column; unlocated ones last, in their order."""
    return sorted(
        problems, key=lambda p: (p.line is None, p.line or 0, p.column if p.column is not None else -1)
    )


class UserFacingError(Exception):
    """A failure the user can cause and fix (bad rules, a damaged journal, a busy port): the message
    is written for them, and the CLI prints it without a traceback."""


class RulesError(UserFacingError):
    """Raised when a rules file cannot be used; lists every problem, never just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = in_file_order(problems)
        super().__init__("\n".join(str(p) for p in self.problems))
