"""Scenario files: read YAML, validate it, report every problem at once.

``load_lab(path)`` returns a frozen, placed :class:`netlab.model.Lab` or
raises :class:`ScenarioError` whose ``issues`` name each bad field (such as
``services.hello-a.ports[0].published``) with its line, column and a hint.
"""

from netlab.scenario.issues import Issue, ScenarioError, format_issue, format_issues
from netlab.scenario.loader import load_lab, load_lab_from_text

__all__ = [
    "Issue", "ScenarioError", "format_issue", "format_issues", "load_lab", "load_lab_from_text",
]
