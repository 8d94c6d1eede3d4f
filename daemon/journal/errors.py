"""What goes wrong with the journal file, as errors that name the file and say what to do.

One module for the journal's errors because every part raises them: opening (``files``), the
schema check (``schema``), the readers and ``forget``.
"""

from __future__ import annotations

from zerocontact.rules.errors import UserFacingError

MOVE_ASIDE = "move it aside and zerocontact starts a new journal (it has not changed this file)"


class JournalError(UserFacingError):
    """The journal file cannot be used; the message names the file and what to do."""


class BadJournalFile(JournalError):
    """The file itself is the problem (damaged, foreign, newer): retrying helps only once it changes.

    ``what`` is the problem alone; the message adds what the daemon's user can do about it.
    """

    def __init__(self, what: str, hint: str = MOVE_ASIDE) -> None:
        super().__init__(f"{what}; {hint}")
        self.what = what
