"""Click parameter types for counts and durations, one of each for every verb.

Python's ``int()`` and ``float()`` accept more than a user means: Unicode
digits (``٣``, ``１０``), underscores (``1_000``), ``nan``, ``inf``,
exponents, signs and surrounding blanks. A count here is ASCII digits only,
within a range; a duration is ASCII digits with at most one decimal point,
finite, more than 0 and at most a sane maximum. A value that is not raises
BadInput (exit 2, a JSON document with ``--json``) naming the option, the
range and an example, as the ``LAB`` callback does.
"""

from __future__ import annotations

import math
import re

import click

from netlab.errors import BadInput

_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+", re.ASCII)


def field_of(param: click.Parameter | None, default: str = "VALUE") -> str:
    """How a message names ``param``: its long option (``--count``), else its metavar
    or upper-cased name (``SERVICE=N``)."""
    if param is None:
        return default
    if isinstance(param, click.Option):
        longs = [o for o in param.opts if o.startswith("--")]
        return (longs or param.opts)[0]
    return param.metavar or (param.name or default).upper()


def count_text(text: str, field: str, low: int, high: int, example: str) -> int:
    """``text`` as a whole number in [low, high]: ASCII digits only (no sign, blank,
    underscore or other script's digits). Raises BadInput naming ``field``."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(high)) \
            or not low <= int(text) <= high:
        raise BadInput(f"{field}: {text[:40]!r} is not a whole number from {low:,} to {high:,} "
                       f"(hint: {example})")
    return int(text)


def seconds_text(text: str, field: str, low: float, high: float, example: str) -> float:
    """``text`` as seconds in [low, high] (low > 0): ASCII digits with at most one
    decimal point, so never nan, inf, an exponent or a sign. Raises BadInput
    naming ``field``."""
    value = float(text) if _DECIMAL.fullmatch(text) and len(text) <= 20 else math.nan
    if not (math.isfinite(value) and low <= value <= high):
        raise BadInput(f"{field}: {text[:40]!r} is not a number of seconds from {low:g} to "
                       f"{high:g} (hint: {example})")
    return value


class Count(click.ParamType):
    """A whole number from ``low`` to ``high`` written in ASCII digits."""

    name = "count"

    def __init__(self, low: int, high: int, example: str):
        self.low, self.high, self.example = low, high, example

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        """The count; raises BadInput (exit 2) naming the option."""
        field = field_of(param)
        if type(value) is int:   # a default given in code; never a bool
            value = str(value)
        if not isinstance(value, str):
            raise BadInput(f"{field}: {value!r} is not a whole number (hint: {field} {self.example})")
        return count_text(value, field, self.low, self.high, f"{field} {self.example}")

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "N"


class Duration(click.ParamType):
    """Seconds, finite, from ``low`` (> 0) to ``high``."""

    name = "seconds"

    def __init__(self, low: float, high: float, example: str):
        if not 0 < low <= high or not math.isfinite(high):
            raise ValueError("a duration's range is finite and above 0")
        self.low, self.high, self.example = low, high, example

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        """The duration in seconds; raises BadInput (exit 2) naming the option."""
        field = field_of(param)
        if type(value) in (int, float):   # a default given in code
            value = repr(value) if math.isfinite(value) else str(value)   # type: ignore[arg-type]
        if not isinstance(value, str):
            raise BadInput(f"{field}: {value!r} is not a number of seconds "
                           f"(hint: {field} {self.example})")
        return seconds_text(value, field, self.low, self.high, f"{field} {self.example}")

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "S"


class TimeScale(Duration):
    """A lab's time scale: a factor from 0.01 to 10 (see :mod:`netlab.manager.timings`)."""

    name = "factor"

    def __init__(self) -> None:
        from netlab.manager.timings import SCALE_MAX, SCALE_MIN
        super().__init__(SCALE_MIN, SCALE_MAX, "0.1")

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "F"


class GoDuration(click.ParamType):
    """A duration as compose and the Docker CLI write it (``2s``, ``1m30s``, ``500ms``,
    ``0``; see :func:`netlab.scenario.fields.parse_duration`), from 0 to a year."""

    name = "duration"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        """The duration in seconds; raises BadInput (exit 2) naming the option."""
        from netlab.scenario.fields import parse_duration
        field = field_of(param)
        seconds = parse_duration(str(value))
        if seconds is None or seconds > 365 * 86400:
            raise BadInput(f"{field}: {value!r} is not a duration (hint: {field} 5s, 1m30s, "
                           "500ms or 0)")
        return seconds

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "S"


class Ratio(click.ParamType):
    """A ratio from 0 to 1, in ASCII digits with at most one decimal point."""

    name = "ratio"

    def convert(self, value: object, param: click.Parameter | None,
                ctx: click.Context | None) -> float:
        """The ratio; raises BadInput (exit 2) naming the option."""
        field = field_of(param)
        text = str(value)
        ratio = float(text) if _DECIMAL.fullmatch(text) and len(text) <= 20 else -1.0
        if not 0.0 <= ratio <= 1.0:
            raise BadInput(f"{field}: {value!r} is not a ratio (hint: {field} 0.5, from 0 to 1)")
        return ratio

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "R"
