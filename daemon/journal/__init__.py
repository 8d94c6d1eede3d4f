"""The blocked-attempts journal: the only code that opens the SQLite file.

One SQLite file (WAL) holds every attempt, note, learned id and daemon event. Each part of this
package owns one way of touching it, so that a change to the file is made in one place:

- ``schema``: the tables, indexes, meta keys and time format; migrations of older journals.
- ``files``: opening the file for writing or reading, refusing one that is not ours, file modes.
- ``writer``: ``Journal``, the writer thread the proxy and the process watcher hand attempts to.
- ``reader``: attempts with filters, counts, learned ids, people and every figure ``stats`` needs.
- ``forget``: deleting old attempts (``zerocontact forget`` and retention), the other writer.

What the journal promises, because a log that loses entries is a real harm: an attempt reported
committed is on disk (it survives SIGKILL or power loss); a file it cannot write holds up nothing
(entries wait in memory and are written when it can); a file that is not a zerocontact journal of
this or an older version is never changed; older journals are upgraded in place, in one
transaction; the journal and its ``-wal``/``-shm`` files are 0600, a directory it creates 0700.
The review code (``daemon/review/``) computes over what ``reader`` returns and never writes SQL.
"""

from __future__ import annotations

from .errors import JournalError
from .reader import count_since, learned_ids
from .writer import Attempt, Journal

__all__ = ["Attempt", "Journal", "JournalError", "count_since", "learned_ids"]
