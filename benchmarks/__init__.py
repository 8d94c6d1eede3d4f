"""Speed measurements (run by hand or in CI as a report; no test asserts a timing)."""
