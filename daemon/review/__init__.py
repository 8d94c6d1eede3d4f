"""Reviewing the journal for the person it belongs to: periods, stats, the HTML report and export.

Pure over the rows and counts the journal's readers hand over (``daemon/journal/reader.py``): this
package never opens the SQLite file nor writes SQL, so the figures are reproducible in tests (every
function takes ``now`` and a time zone instead of reading the clock).

- ``periods``: dates as users write them, time zones, local days and clock hours.
- ``stats``: the figures (``compute_stats``, ``Stats``).
- ``words``: how the figures are said, in the terminal and in the report.
- ``report``: the self-contained HTML report.
- ``export``: ``log --json`` records, CSV and JSON export.
"""
