"""Enforcement and the service. Each part has one owner, and the tree says which:

- ``app``: the lifecycle (``Daemon``, ``Lifecycle``): starts the parts below in order on one asyncio
  loop and stops them in reverse; ``enforcement`` builds what is in force (rules + trusted time +
  learned ids → matcher, app rules, state) in one place; ``schedule`` holds the timers.
- ``proxy`` (the only module that touches mitmproxy's master internals), ``blocker`` (the addon that
  judges, answers and learns), ``blockpage`` and ``templates/``, ``attempts`` (one look, one attempt),
  ``pac``, ``ca`` (the name-constrained CA; the installer uses it too), ``clientproc``.
- ``clock`` (trusted time), ``commitment`` (cooling-off state on disk), ``reloader`` (the rules-file
  watcher), ``paths`` (every state file's name), ``status`` (what the daemon publishes), ``sdnotify``,
  ``installation`` (the installer's record, read so ``run`` refuses a second daemon beside it).
- ``journal/``: the only code that touches the SQLite file; ``review/``: stats, report and export,
  pure over what the journal reads; ``watcher/``: the process watcher, by job.
- ``cli/``: the ``zerocontact`` command, one module per family, one table of commands.

Imports run one way: installer → daemon → rules (``tests/test_architecture.py``).
"""
