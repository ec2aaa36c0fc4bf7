"""Errors that reach the user as one clear line and an exit code.

Exit codes (contract): 0 ok, 1 failure, 2 bad input, 3 the environment lacks
a kernel feature or tool.

A message reads ``FIELD: what is wrong (hint: how to fix it)``, where FIELD
names what the user gave (``LAB``, ``NODE:PORT``, ``--pcap``) and both the
field and the hint may be left out; :meth:`NetlabError.details` splits it
for ``--json`` output.
"""

from __future__ import annotations

import re

_MESSAGE = re.compile(
    r"(?:(?P<field>[A-Z][A-Z0-9_:-]*|--[a-z][a-z0-9-]*): )?(?P<error>.*?)(?: \(hint: (?P<hint>.*)\))?",
    re.DOTALL)


class NetlabError(Exception):
    """An expected failure: printed as one line, never as a traceback."""

    exit_code = 1

    def details(self) -> dict[str, object]:
        """The error as ``{"error", "field", "hint", "exit_code"}`` (field and hint may be None)."""
        match = _MESSAGE.fullmatch(str(self))
        assert match is not None  # every part of the pattern is optional
        return {"error": match["error"], "field": match["field"], "hint": match["hint"],
                "exit_code": self.exit_code}


class BadInput(NetlabError):
    """The user's input is wrong (exit 2); nothing was changed."""

    exit_code = 2


class MissingFeature(NetlabError):
    """The kernel or machine lacks something netlab needs (exit 3)."""

    exit_code = 3
