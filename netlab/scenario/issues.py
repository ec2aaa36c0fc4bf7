"""Problems found in a scenario file: one Issue each, reported all at once.

An :class:`Issue` names the field (``services.hello-a.ports[0].published``),
says what is wrong, gives a hint, and points at the line and column of the
offending text when there is one. :class:`IssueLog` collects them while a file
is validated; :class:`ScenarioError` carries them to the user.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from netlab.errors import BadInput
from netlab.scenario.yamltree import Pos

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Issue:
    """One problem in a scenario: the field path, what is wrong, how to fix it.

    ``line`` and ``column`` are 1-based and None when the problem has no place
    in the file (a missing file, a default value, a ``--name`` override).
    """

    path: str
    message: str
    hint: str
    line: int | None = None
    column: int | None = None


def field(path: str, key: str) -> str:
    """The path of ``key`` inside the mapping at ``path``.

    Keys that are not plain names are written in brackets, JSON-quoted, so the
    path stays unambiguous: ``services["a.b"]``.
    """
    if not _PLAIN_KEY.fullmatch(key):
        return f"{path}[{json.dumps(key)}]"
    return f"{path}.{key}" if path else key


def item(path: str, index: int) -> str:
    """The path of item ``index`` of the list at ``path``: ``ports[0]``."""
    return f"{path}[{index}]"


def format_issue(issue: Issue, source: str) -> str:
    """One line: ``FILE:LINE:COL: FIELD.PATH: message (hint: ...)``.

    Parts that are unknown (no line, no field) are left out.
    """
    where = source
    if issue.line is not None:
        where += f":{issue.line}"
        if issue.column is not None:
            where += f":{issue.column}"
    text = f"{where}: "
    if issue.path:
        text += f"{issue.path}: "
    text += issue.message
    if issue.hint:
        text += f" (hint: {issue.hint})"
    return text


def format_issues(issues: Iterable[Issue], source: str) -> str:
    """Every issue, one per line, in the order given (no trailing newline)."""
    return "\n".join(format_issue(issue, source) for issue in issues)


def sort_issues(issues: Iterable[Issue]) -> list[Issue]:
    """Issues in file order; those without a position keep their order at the end."""
    return sorted(
        issues,
        key=lambda i: (i.line is None, i.line or 0, i.column or 0),
    )


class ScenarioError(BadInput):
    """A scenario file is unusable; ``issues`` lists every problem found.

    ``str()`` of the error is the first issue on one line (as the CLI prints
    for commands other than ``validate``), saying how many more there are;
    :meth:`format` gives them all.
    """

    def __init__(self, source: str, issues: Sequence[Issue]) -> None:
        if not issues:
            raise ValueError("a ScenarioError needs at least one issue")
        self.source = source
        self.issues: list[Issue] = list(issues)
        line = format_issue(self.issues[0], source)
        more = len(self.issues) - 1
        if more:
            line += f" [+{more} more: netlab validate {source}]"
        super().__init__(line)

    def format(self) -> str:
        """All issues, one per line."""
        return format_issues(self.issues, self.source)

    def details(self) -> dict[str, object]:
        """The first issue as ``{"error", "field", "hint", "exit_code"}``, and every issue
        (with ``file``, ``line`` and ``column``) under ``issues``."""
        first = self.issues[0]
        return {
            "error": first.message, "field": first.path or None, "hint": first.hint or None,
            "exit_code": self.exit_code, "file": self.source, "line": first.line,
            "column": first.column,
            "issues": [{"file": self.source, "line": i.line, "column": i.column,
                        "field": i.path or None, "error": i.message, "hint": i.hint or None}
                       for i in self.issues],
        }


class IssueLog:
    """Collects issues while one file is validated (one log per load)."""

    def __init__(self) -> None:
        self._issues: list[Issue] = []

    def add(self, path: str, message: str, hint: str, pos: Pos | None) -> None:
        """Record one problem at ``pos`` (None when it has no place in the file)."""
        self._issues.append(Issue(
            path=path, message=message, hint=hint,
            line=pos.line if pos else None,
            column=pos.column if pos else None,
        ))

    def count(self) -> int:
        """How many issues so far; compare two counts to see if a step added any."""
        return len(self._issues)

    @property
    def issues(self) -> list[Issue]:
        """The issues so far, in file order."""
        return sort_issues(self._issues)
