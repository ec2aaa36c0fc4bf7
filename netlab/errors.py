"""Errors that reach the user as one clear line and an exit code.

Exit codes (contract): 0 ok, 1 failure, 2 bad input, 3 the environment lacks
a kernel feature or tool.
"""

from __future__ import annotations


class NetlabError(Exception):
    """An expected failure: printed as one line, never as a traceback."""

    exit_code = 1


class BadInput(NetlabError):
    """The user's input is wrong (exit 2); nothing was changed."""

    exit_code = 2


class MissingFeature(NetlabError):
    """The kernel or machine lacks something netlab needs (exit 3)."""

    exit_code = 3
