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
