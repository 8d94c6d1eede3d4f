"""The watcher tests' fixtures (a signal spy, a running watcher); helpers in zctest.watcher."""

from zctest.watcher import h, spy

__all__ = ["h", "spy"]
