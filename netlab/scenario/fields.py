"""Typed readers for positioned YAML values; each reports what it rejects.

Every reader takes the value, its field path and the :class:`IssueLog`. It
returns the typed value, or None after recording an issue (a reader never
raises for bad input, so one file's problems are all collected).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection
from collections.abc import Mapping as MappingABC
from typing import TypeVar

import yaml

from netlab.scenario.issues import IssueLog, field
from netlab.scenario.yamltree import Mapping, Scalar, Sequence, Value

_Choice = TypeVar("_Choice", bound=str)

_DECIMAL = re.compile(r"[0-9]+")          # ASCII only: str.isdigit() takes "²" and "８０"
_YAML11_NUMBER = re.compile(r"[-+]?[0-9][0-9a-fA-FxXoO_:]{0,30}")


def is_decimal(text: str) -> bool:
    """True for a whole number written in ASCII digits (``"8080"``, not ``"８０"`` or ``"²"``)."""
    return _DECIMAL.fullmatch(text) is not None


def _yaml11_reading(text: str) -> int | None:
    """What YAML 1.1 makes of a plain ``text`` such as ``1:00`` (60) or ``010`` (8), if a number."""
    if not _YAML11_NUMBER.fullmatch(text):
        return None
    try:
        number = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError):
        return None
    return number if type(number) is int else None


def kind_of(value: Value) -> str:
    """How a value reads to a user: ``a string``, ``true/false``, ``a list``..."""
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, Sequence):
        return "a list"
    v = value.value
    if v is None:
        return "empty (null)"
    if isinstance(v, bool):
        return f"{str(v).lower()} (a boolean)"
    if isinstance(v, int):
        return "a number"
    if isinstance(v, float):
        return "a decimal number"
    if isinstance(v, str):
        return "a string"
    return f"a {type(v).__name__}"


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """``did you mean 'x'? `` when ``word`` is close to one of ``choices``, else ``''``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    if not close and word.lower() in choices:
        close = [word.lower()]
    return f"did you mean {close[0]!r}? " if close else ""


def is_null(value: Value | None) -> bool:
    """True for a missing value or an explicit null (``key:`` with nothing after)."""
    return value is None or (isinstance(value, Scalar) and value.value is None)


def expect_mapping(value: Value, path: str, log: IssueLog, example: str) -> Mapping | None:
    """``value`` as a mapping; a null becomes an empty mapping at its place.

    Records an issue (hint: ``example``) and returns None for anything else.
    """
    if isinstance(value, Mapping):
        return value
    if is_null(value):
        return Mapping((), value.pos)
    log.add(path, f"must be a mapping, not {kind_of(value)}", f"write it as {example}", value.pos)
    return None


def expect_list(value: Value, path: str, log: IssueLog, example: str) -> Sequence | None:
    """``value`` as a list; a null becomes an empty list; else an issue and None."""
    if isinstance(value, Sequence):
        return value
    if is_null(value):
        return Sequence((), value.pos)
    log.add(path, f"must be a list, not {kind_of(value)}", f"write it as {example}", value.pos)
    return None


def check_keys(
    mapping: Mapping,
    path: str,
    log: IssueLog,
    allowed: Collection[str],
    *,
    known_elsewhere: MappingABC[str, str] | None = None,
    extensions: bool = False,
) -> None:
    """Report keys that are not ``allowed``, keys written twice and non-scalar keys.

    ``known_elsewhere`` maps keys a Compose user may write here to a hint
    saying where they belong or why they are not modelled. With
    ``extensions``, Compose-style ``x-`` keys are accepted and ignored.
    """
    allowed_list = ", ".join(allowed)
    for entry in mapping.entries:
        if entry.key is None:
            log.add(path, "a key must be a plain name, not a list or mapping",
                    f"allowed keys: {allowed_list}", entry.key_pos)
            continue
        if entry.key in allowed or (extensions and entry.key.startswith("x-")):
            continue
        hint = _unknown_key_hint(entry.key, allowed, known_elsewhere or {})
        log.add(field(path, entry.key), f"unknown key {entry.key!r}", hint, entry.key_pos)
    check_repeated(mapping, path, log, "key")


def _unknown_key_hint(key: str, allowed: Collection[str], elsewhere: MappingABC[str, str]) -> str:
    """Why ``key`` is not here, or the closest allowed key and the allowed list."""
    if key in elsewhere:
        return elsewhere[key]
    close = difflib.get_close_matches(key, [*allowed, *elsewhere], n=1, cutoff=0.6)
    if close and close[0] in elsewhere:
        return f"did you mean {close[0]!r}? {elsewhere[close[0]]}"
    return f"{did_you_mean(key, allowed)}allowed keys: {', '.join(allowed)}"


def check_repeated(mapping: Mapping, path: str, log: IssueLog, what: str) -> None:
    """Report each key written more than once in ``mapping`` (``what`` names it)."""
    for entry in mapping.repeated:
        assert entry.key is not None
        first = mapping.get(entry.key)
        where = f" (first on line {first.key_pos.line})" if first else ""
        log.add(field(path, entry.key), f"{what} {entry.key!r} is given twice{where}",
                "YAML would silently keep only the last one; remove or rename one",
                entry.key_pos)


def read_int(
    value: Value, path: str, log: IssueLog, what: str, low: int, high: int, range_hint: str,
) -> int | None:
    """An integer in ``low..high``; booleans and quoted numbers are rejected."""
    if not isinstance(value, Scalar) or type(value.value) is not int:
        if isinstance(value, Scalar) and isinstance(value.value, bool):
            hint = f"YAML reads {value.raw} as a boolean; write a number"
        elif (isinstance(value, Scalar) and value.raw == value.value
              and (reading := _yaml11_reading(value.value)) is not None):
            hint = (f"{value.raw} is not a plain decimal number (YAML 1.1 tools read it as "
                    f"{reading}); write the number you mean in decimal digits")
        elif isinstance(value, Scalar) and isinstance(value.value, str) and is_decimal(value.value.strip()):
            hint = f"write it without quotes: {value.value.strip().lstrip('0') or '0'}"
        else:
            hint = range_hint
        log.add(path, f"{what} must be an integer, not {kind_of(value)}", hint, value.pos)
        return None
    number = value.value
    if not low <= number <= high:
        log.add(path, f"{what} {number} is out of range {low}-{high}", range_hint, value.pos)
        return None
    return number


def read_str(value: Value, path: str, log: IssueLog, what: str, example: str) -> str | None:
    """A string (not a number or boolean); otherwise an issue with ``example``."""
    if isinstance(value, Scalar) and isinstance(value.value, str):
        return value.value
    log.add(path, f"{what} must be a string, not {kind_of(value)}", f"for example {example}", value.pos)
    return None


def read_choice(value: Value, path: str, log: IssueLog, what: str,
                choices: Collection[_Choice]) -> _Choice | None:
    """One of ``choices`` (a string, typed as they are); otherwise an issue listing them."""
    listed = ", ".join(choices)
    if not isinstance(value, Scalar) or not isinstance(value.value, str):
        log.add(path, f"{what} must be one of {listed}, not {kind_of(value)}",
                f"write one of: {listed}", value.pos)
        return None
    for choice in choices:
        if choice == value.value:
            return choice
    log.add(path, f"unknown {what} {value.value!r}",
            f"{did_you_mean(value.value, choices)}use one of: {listed}", value.pos)
    return None


#: A duration as Go's ``time.ParseDuration`` reads it (what compose and the Docker CLI
#: take): one or more ``<decimal><unit>`` without separators, e.g. ``1m30s``, ``2.5s``.
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h)")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0,
                 "m": 60.0, "h": 3600.0}
DURATION_HINT = "a duration as compose writes it: 5s, 1m30s, 500ms, 1h, 2.5s, or seconds (30)"


def parse_duration(text: str) -> float | None:
    """``text`` as seconds when it is a Go duration (``1m30s``, ``500ms``, ``0``) or a
    plain decimal number of seconds (``30``, ``2.5``); None otherwise.

    As Go's ``time.ParseDuration`` (compose's ``transformStringToDuration``, docker/cli
    ``cli/compose/loader/loader.go``) without its sign: a negative duration is none.
    """
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        return float(text)
    if len(text) > 64 or not re.fullmatch(f"(?:{_DURATION.pattern})+", text):
        return None
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _DURATION_PART.findall(text))


def read_duration(value: Value, path: str, log: IssueLog, what: str, high: float) -> float | None:
    """A duration in seconds from 0 to ``high``: a string such as ``5s`` or ``1m30s``
    (see :func:`parse_duration`), or a bare number of seconds; otherwise an issue."""
    seconds: float | None = None
    if isinstance(value, Scalar) and isinstance(value.value, int | float) \
            and not isinstance(value.value, bool):
        seconds = float(value.value)
        if not seconds >= 0:            # negative, or NaN
            log.add(path, f"{what} {value.raw} is not a duration",
                    f"a duration is never negative; {DURATION_HINT}", value.pos)
            return None
    elif isinstance(value, Scalar) and isinstance(value.value, str):
        text = value.value.strip()
        seconds = parse_duration(text)
        if seconds is None:
            hint = DURATION_HINT
            if text.startswith("-"):
                hint = f"a duration is never negative; {DURATION_HINT}"
            elif re.fullmatch(r"[0-9.]+\s*[a-zA-Z]+", text):
                hint = f"units are ns, us, ms, s, m and h, written without a space; {DURATION_HINT}"
            log.add(path, f"{what} {value.value!r} is not a duration", hint, value.pos)
            return None
    else:
        log.add(path, f"{what} must be a duration, not {kind_of(value)}", DURATION_HINT,
                value.pos)
        return None
    if seconds > high or seconds == float("inf"):
        log.add(path, f"{what} {value.raw} is longer than {high:g} s",
                f"write a duration of at most {high:g} s", value.pos)
        return None
    return seconds


def read_number(value: Value, path: str, log: IssueLog, what: str, low: float, high: float,
                range_hint: str) -> float | None:
    """A number (integer or decimal, not a boolean or a quoted one) in ``low..high``."""
    if not isinstance(value, Scalar) or isinstance(value.value, bool) \
            or not isinstance(value.value, int | float):
        hint = range_hint
        if isinstance(value, Scalar) and isinstance(value.value, bool):
            hint = f"YAML reads {value.raw} as a boolean; write a number"
        log.add(path, f"{what} must be a number, not {kind_of(value)}", hint, value.pos)
        return None
    number = float(value.value)
    if not low <= number <= high:       # NaN too
        log.add(path, f"{what} {value.raw} is out of range {low:g}-{high:g}", range_hint,
                value.pos)
        return None
    return number
