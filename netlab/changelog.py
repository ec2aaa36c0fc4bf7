"""A lab's change log: when each change (``up``, ``scale``, ``node``, ``task``) started and converged.

Every change is recorded in the state file before it touches the kernel
(``converged`` still None) and stamped when every node is programmed and the
task apps serve the new tasks. ``netlab load`` reads it to attribute failed
requests to the change that was converging while they ran. Times are wall
clock, epoch seconds, so another process (a load generator) can compare its
own request times with them. The log keeps the last :data:`KEEP` changes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

KINDS = ("up", "scale", "node", "task", "update")   # task: the manager failed, restarted or bound one
KEEP = 200
_WHAT_MAX = 400


class Invalid(ValueError):
    """A change log in a state file fails its checks (the message names the field)."""


@dataclass(frozen=True)
class Change:
    """One change of a lab: its kind, what was asked, when it started and converged."""

    kind: str                       # one of KINDS
    what: str                       # "hello-a=5", "node2 down", the scenario of an up
    started: float                  # epoch seconds
    converged: float | None = None  # None while converging (or when it was interrupted)

    @property
    def label(self) -> str:
        return f"{self.kind} {self.what}"


def begin(log: tuple[Change, ...], kind: str, what: str,
          clock: Callable[[], float] = time.time) -> tuple[Change, ...]:
    """``log`` with a new change of ``kind`` started now (the oldest dropped past KEEP)."""
    if kind not in KINDS:
        raise ValueError(f"unknown change kind {kind!r}")
    return (*log, Change(kind, what[:_WHAT_MAX], clock()))[-KEEP:]


def converged(log: tuple[Change, ...],
              clock: Callable[[], float] = time.time) -> tuple[Change, ...]:
    """``log`` with its last change stamped converged now (re-stamped if it already was)."""
    if not log:
        return log
    return (*log[:-1], replace(log[-1], converged=clock()))


def to_json(log: tuple[Change, ...]) -> list[dict[str, Any]]:
    return [{"kind": c.kind, "what": c.what, "started": c.started, "converged": c.converged}
            for c in log]


def from_json(value: Any, path: str = "changes") -> tuple[Change, ...]:
    """The change log in ``value``; raises Invalid naming the first bad field."""
    if not isinstance(value, list):
        raise Invalid(f"{path} must be a list")
    if len(value) > KEEP:
        raise Invalid(f"{path} holds {len(value)} changes, more than {KEEP}")
    out = []
    for i, item in enumerate(value):
        where = f"{path}[{i}]"
        if not isinstance(item, dict) or set(item) != {"kind", "what", "started", "converged"}:
            raise Invalid(f"{where} must be an object with kind, what, started and converged")
        if item["kind"] not in KINDS:
            raise Invalid(f"{where}.kind must be one of {', '.join(KINDS)}")
        if not isinstance(item["what"], str) or len(item["what"]) > _WHAT_MAX:
            raise Invalid(f"{where}.what must be a string of at most {_WHAT_MAX} characters")
        started = _time(item["started"], f"{where}.started")
        done = item["converged"]
        if done is not None:
            done = _time(done, f"{where}.converged")
            if done < started:
                raise Invalid(f"{where}.converged is before its start")
        out.append(Change(item["kind"], item["what"], started, done))
    return tuple(out)


def _time(value: Any, path: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value < 0:
        raise Invalid(f"{path} must be a time in epoch seconds")
    return float(value)
