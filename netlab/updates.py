"""A service's update status and previous spec, as ``docker service inspect`` shows them
(``UpdateStatus``: State, StartedAt, CompletedAt, Message; ``PreviousSpec``), kept in
the lab's state file (pure: plain data and its JSON).

States are swarmkit's (``api.UpdateStatus_UpdateState``): ``updating``,
``paused``, ``completed``, ``rollback_started``, ``rollback_paused``,
``rollback_completed``. ``previous_image``/``previous_env`` are the spec before the
last update, what ``netlab rollback`` goes back to (Docker's ``PreviousSpec``,
of which netlab changes only these).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

UpdateState = Literal["updating", "paused", "completed", "rollback_started", "rollback_paused",
                      "rollback_completed"]
STATES: tuple[str, ...] = ("updating", "paused", "completed", "rollback_started",
                           "rollback_paused", "rollback_completed")
#: The states in which the manager's updater works on the service.
ACTIVE: tuple[str, ...] = ("updating", "rollback_started")
#: The states a ``netlab update``/``rollback`` that waits returns at.
SETTLED: tuple[str, ...] = ("paused", "completed", "rollback_paused", "rollback_completed")


class Invalid(ValueError):
    """An update status in a state file fails its checks (the message names the field)."""


@dataclass(frozen=True)
class UpdateStatus:
    """One service's update: its state, when it started and ended (epoch s), what the
    updater said last, and the spec before it."""

    state: UpdateState
    started: float
    completed: float | None
    message: str
    previous_image: str
    previous_env: tuple[tuple[str, str], ...] = ()

    @property
    def rollback(self) -> bool:
        return self.state.startswith("rollback")


def to_json(updates: dict[str, UpdateStatus]) -> dict[str, Any]:
    return {name: {"state": u.state, "started": u.started, "completed": u.completed,
                   "message": u.message, "previous_image": u.previous_image,
                   "previous_env": dict(u.previous_env)}
            for name, u in sorted(updates.items())}


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid(f"{path} must be a number")
    return float(value)


def from_json(value: Any, path: str = "updates") -> dict[str, UpdateStatus]:
    """The updates in ``value``; raises Invalid naming the field."""
    if not isinstance(value, dict):
        raise Invalid(f"{path} must be an object")
    out = {}
    keys = {"state", "started", "completed", "message", "previous_image", "previous_env"}
    for name, raw in value.items():
        p = f"{path}[{name!r}]"
        if not isinstance(raw, dict) or set(raw) != keys:
            raise Invalid(f"{p} must be an object with {', '.join(sorted(keys))}")
        if raw["state"] not in STATES:
            raise Invalid(f"{p}.state must be one of {', '.join(STATES)}")
        completed = raw["completed"]
        env = raw["previous_env"]
        if not isinstance(env, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in env.items()):
            raise Invalid(f"{p}.previous_env must map names to strings")
        for key in ("message", "previous_image"):
            if not isinstance(raw[key], str):
                raise Invalid(f"{p}.{key} must be a string")
        out[name] = UpdateStatus(raw["state"], _number(raw["started"], f"{p}.started"),
                                 None if completed is None
                                 else _number(completed, f"{p}.completed"),
                                 raw["message"], raw["previous_image"],
                                 tuple(sorted(env.items())))
    return out
