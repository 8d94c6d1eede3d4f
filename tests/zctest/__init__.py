"""Test helpers shared across the suite, importable as ``zctest`` (``tests/`` is on pytest's path,
the repository root is not: the bare source folders must never shadow another module)."""
