"""The installer tests' fixtures (a staging root, a rules file); helpers in zctest.installer."""

from zctest.installer import rules_file, staging

__all__ = ["rules_file", "staging"]
