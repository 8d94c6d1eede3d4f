"""The decision core: rules schema and loader, platform presets, policy over time, the matcher.

Pure: no network, no clock, no disk beyond the package's own preset files.
"""

from .errors import Problem, RulesError
from .loader import load
from .matcher import Matcher, Verdict
from .policy import State, evaluate
from .request import Request
from .schema import Ruleset

__all__ = ["Matcher", "Problem", "Request", "RulesError", "Ruleset", "State", "Verdict", "evaluate", "load"]
