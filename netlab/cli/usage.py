"""Click's own usage errors as netlab's errors: one line on stderr, exit 2, and with
``--json`` also the ``{"error", "field", "hint", "exit_code"}`` document on stdout.

Click prints a usage error (a missing argument, ``--count 0``, a bad choice, an
unknown option) as four lines and never as JSON; :func:`document` turns one into
the same shape as :meth:`netlab.errors.NetlabError.details`, naming the
parameter (``LAB``, ``--count``) as the field. Whether ``--json`` was asked for
is read from the raw command line (:func:`asks_for_json`), because the error
may come before Click has seen a ``--json`` that follows the bad parameter.

Imports Click and netlab's errors only: every ``netlab`` command goes through here.
"""

from __future__ import annotations

import difflib
import json
import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from netlab.errors import BadInput

#: The ``ctx.meta`` key under which the group keeps the raw arguments it was given.
RAW_ARGS = "netlab.raw_args"


def field_of(err: click.UsageError) -> str | None:
    """The parameter ``err`` is about, as the user wrote it: ``--count`` (an option's
    first long name), ``LAB`` (an argument's metavar or name), or None."""
    if isinstance(err, click.NoSuchOption | click.BadOptionUsage):
        return err.option_name
    if isinstance(err, click.exceptions.NoSuchCommand):
        return "COMMAND"
    param = getattr(err, "param", None)
    if isinstance(param, click.Option):
        return next((o for o in param.opts if o.startswith("--")), param.opts[0])
    if isinstance(param, click.Argument):
        return param.human_readable_name
    hint = getattr(err, "param_hint", None)
    if isinstance(hint, str):
        return hint
    if isinstance(hint, Sequence) and hint:
        return str(hint[0])
    return None


def _sentence(text: str) -> str:
    """``text`` on one line without its closing period."""
    return " ".join(text.split()).rstrip(".")


def document(err: click.UsageError) -> dict[str, object]:
    """``err`` as ``{"error", "field", "hint", "exit_code"}`` (exit code 2)."""
    ctx = err.ctx
    help_hint = f"see {ctx.command_path} --help" if ctx is not None else "see netlab --help"
    field = field_of(err)
    hint = help_hint
    if isinstance(err, click.MissingParameter):
        kind = err.param_type or (err.param.param_type_name if err.param else "parameter")
        error = f"missing {kind}"
        extra = err.param.type.get_missing_message(err.param, ctx) if err.param else None
        if extra:
            error += f"; {_sentence(extra)}"
    elif isinstance(err, click.NoSuchOption):
        error = "no such option"
        if err.possibilities:
            hint = f"did you mean {' or '.join(err.possibilities[:3])}? {help_hint}"
    elif isinstance(err, click.exceptions.NoSuchCommand):
        error = f"no such command {err.command_name!r}"
        group = ctx.command if ctx is not None else None
        near = (difflib.get_close_matches(err.command_name, group.list_commands(ctx))
                if isinstance(group, click.Group) and ctx is not None else [])
        if near:   # Click's own guesses miss a lazy group's commands
            hint = f"did you mean {' or '.join(near[:3])}? {help_hint}"
    else:   # BadParameter (a bad value, choice, range), BadOptionUsage, the rest
        error = _sentence(err.message)
    return {"error": error, "field": field, "hint": hint, "exit_code": BadInput.exit_code}


def line(doc: dict[str, object]) -> str:
    """The one line a user reads: ``Error: FIELD: what is wrong (hint: how to fix it)``."""
    field = f"{doc['field']}: " if doc.get("field") else ""
    hint = f" (hint: {doc['hint']})" if doc.get("hint") else ""
    return f"Error: {field}{doc['error']}{hint}"


def asks_for_json(ctx: click.Context | None, raw_args: Sequence[str]) -> bool:
    """True when the command ``ctx`` is about has a ``--json`` flag and ``--json``
    is on the command line (before any ``--``), wherever it stands."""
    if ctx is None:
        return False
    has_flag = any(isinstance(p, click.Option) and "--json" in p.opts for p in ctx.command.params)
    args = list(raw_args)
    if "--" in args:
        args = args[:args.index("--")]
    return has_flag and "--json" in args


def fail(doc: dict[str, object], as_json: bool) -> NoReturn:
    """Print ``doc`` (as JSON on stdout when ``as_json``, always as one line on
    stderr) and exit with its exit code; raises SystemExit."""
    if as_json:
        click.echo(json.dumps(doc, indent=2))
    click.echo(line(doc), err=True)
    sys.exit(int(doc["exit_code"]))  # type: ignore[call-overload]  # an int by construction
