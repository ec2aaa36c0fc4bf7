"""Strict readers of JSON values: each checks one value's type and range and
returns it, or raises :class:`Invalid` naming the value's path
(``model.services[0].replicas``). :mod:`netlab.codec` reads the lab's state
file with them; nothing here knows a lab."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?")
NAME_MAX = 63


class Invalid(ValueError):
    """A value read back fails its check; the message starts with its path."""


def obj(value: Any, path: str, keys: tuple[str, ...],
        optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """``value`` as an object with exactly ``keys``, and maybe the ``optional`` ones
    (added after version 2 was first written: east-west networks); raises Invalid."""
    if not isinstance(value, dict):
        raise Invalid(f"{path} must be an object")
    for key in value:
        if key not in keys and key not in optional:
            raise Invalid(f"{path} has an unknown key {str(key)[:40]!r}")
    for key in keys:
        if key not in value:
            raise Invalid(f"{path}.{key} is missing")
    return value


def array(value: Any, path: str) -> list[Any]:
    if not isinstance(value, list):
        raise Invalid(f"{path} must be a list")
    return value


def mapping(value: Any, path: str, key_ok: Callable[[str], bool], what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"{path} must be an object")
    for key in value:
        if not key_ok(key):
            raise Invalid(f"{path} has a key {key[:40]!r} that is not {what}")
    return value


def integer(value: Any, path: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise Invalid(f"{path} must be an integer from {low} to {high}")
    return value


def number(value: Any, path: str, low: float, high: float) -> float:
    """An integer or decimal number (not a boolean) from ``low`` to ``high``, as a float."""
    if type(value) not in (int, float) or not low <= value <= high:    # NaN fails too
        raise Invalid(f"{path} must be a number from {low:g} to {high:g}")
    return float(value)


def text(value: Any, path: str, max_len: int = 200) -> str:
    """A non-empty printable string of at most ``max_len`` characters."""
    if not isinstance(value, str) or not value or len(value) > max_len or not value.isprintable():
        raise Invalid(f"{path} must be a line of text of at most {max_len} characters")
    return value


def boolean(value: Any, path: str) -> bool:
    if type(value) is not bool:
        raise Invalid(f"{path} must be true or false")
    return value


def choice(value: Any, path: str, choices: tuple[str, ...]) -> str:
    if value not in choices or not isinstance(value, str):
        raise Invalid(f"{path} must be one of {', '.join(choices)}")
    return value


def is_name(value: Any) -> bool:
    """True for a lab, node, service or network name: a DNS label."""
    return isinstance(value, str) and len(value) <= NAME_MAX and _LABEL.fullmatch(value) is not None


def name(value: Any, path: str) -> str:
    if not is_name(value):
        raise Invalid(f"{path} is {str(value)[:40]!r}, not a name (a DNS label)")
    return value


def is_task_name(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    service, _, rest = value.partition(".")
    slot, _, instance = rest.partition(".")
    return is_name(service) and slot.isascii() and slot.isdigit() and slot[0] != "0" and \
        instance in ("", "1")


def ipv4(value: Any, path: str) -> ipaddress.IPv4Address:
    try:
        if not isinstance(value, str):
            raise ValueError
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise Invalid(f"{path} is {str(value)[:40]!r}, not an IPv4 address") from None


def subnet(value: Any, path: str) -> ipaddress.IPv4Network:
    try:
        if not isinstance(value, str):
            raise ValueError
        return ipaddress.IPv4Network(value)
    except ValueError:
        raise Invalid(f"{path} is {str(value)[:40]!r}, not an IPv4 subnet") from None
