"""The error types users can cause: ``UserFacingError`` is the base every layer's own error derives
from (the CLI turns any of them into one line and exit 1); ``RulesError`` carries every rules problem."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a rules file, located as precisely as the text allows."""

    file: str
    key: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class UserFacingError(Exception):
    """A failure the user can cause and fix (bad rules, a damaged journal, a busy port): the message
    is written for them, and the CLI prints it without a traceback."""


class RulesError(UserFacingError):
    """Raised when a rules file cannot be used; lists every problem, never just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
