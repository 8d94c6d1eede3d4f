"""What is enforced at one instant, built in one place from the rules, trusted time and the ids learned.

``Enforcement`` is immutable and swapped whole: the proxy's hooks, the process watcher and the PAC all
read the one the daemon last built, so a reload or a schedule transition is a single assignment.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from zerocontact.rules import Matcher, Ruleset, State, evaluate
from zerocontact.rules.apps import AppRules, compile_apps


@dataclass(frozen=True)
class Enforcement:
    """Everything a hook needs to decide: the rules in force, their compiled matcher, and the state
    (who is blocked, which apps are stopped, when that next changes) at the instant it was built."""

    rules: Ruleset
    matcher: Matcher
    apps: AppRules
    state: State

    @property
    def active(self) -> frozenset[str]:
        return self.state.people


def same_rules(a: Ruleset, b: Ruleset) -> bool:
    """Equal apart from where they were read from (a reload of identical text keeps the matcher)."""
    return dataclasses.replace(a, source="") == dataclasses.replace(b, source="")


def build(
    rules: Ruleset,
    now: dt.datetime,
    started: Mapping[str, dt.datetime] | None,
    *,
    previous: Enforcement | None = None,
    learned: Iterable[tuple[str, str, str]] = (),
) -> Enforcement:
    """The one compile step: the matcher and the app rules are rebuilt only when the rules changed,
    and a new matcher is taught every id the old one (or, at start, the journal) had learned."""
    if previous is not None and same_rules(previous.rules, rules):
        matcher, apps = previous.matcher, previous.apps
    else:
        matcher, apps = Matcher(rules), compile_apps(rules)
        for platform, value, person in previous.matcher.learned() if previous else learned:
            matcher.learn(platform, value, person)
    return Enforcement(rules, matcher, apps, evaluate(rules, now, started))
