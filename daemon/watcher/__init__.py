"""The process watcher: stops the apps the rules name and notices launches that bypass the proxy.

The rules decide (``rules.apps``: presets, ``compile_apps``, ``judge``, all pure); this package only
reads processes and acts on them, on its own thread, off the event loop. One part per job:

- ``procs``: reading processes: the PID list, one process's description, and the ``ProcessTable``
  of (pid, create time) pairs whose polls, rescans and sweeps yield what is new or has exec'd.
- ``safety``: who is never signalled (PID 1, kernel threads, zerocontact, its ancestors and session,
  login shells, ``rules.apps.PROTECTED``, other users in user mode): ``Shield``.
- ``stopping``: acting on them: ``Stopper`` terminates (TERM, then KILL after the grace) or suspends
  (STOP, CONT when the rule ends) each ``Launch`` with its helpers; ``signal_process`` sends it all.
- ``bypass``: launches and direct connections that route around the proxy, logged, never stopped.
- ``process_watcher``: ``ProcessWatcher``, the thread: takes ``update``s from the loop, polls,
  judges, and hands each ``Attempt`` to the loop.
- ``explain``: ``explain --process`` for processes running now (``explain_running``).
"""

from __future__ import annotations

from .explain import explain_running
from .process_watcher import ProcessWatcher

__all__ = ["ProcessWatcher", "explain_running"]
