"""The restart supervisor: whether and when a task that ended is replaced in its slot
(pure: the task's end in, a delayed start out).

swarmkit ``manager/orchestrator/restart/restart.go`` (moby/swarmkit at
3e72cb64da35; see docs/swarmkit-manager.md §3):

* ``shouldRestart``: condition ``none`` never restarts; ``on-failure`` restarts
  unless the task COMPLETED (exit 0); ``any`` always. ``max_attempts`` 0 is
  unlimited; otherwise the slot's restarts are counted, all of them with no
  ``window``, or only those inside ``[end - window, end)`` with one
  (``RecordRestartHistory``, the restarts' times on the manager's clock).
* ``Restart`` creates the replacement at once (same slot, new task, new
  address) and ``DelayStart`` starts it after the policy's ``delay``
  (5 s by default, ``api/defaults/service.go``).
* A task whose slot is not restarted stays in its end state, and its slot
  stays taken (``replicated/slot.go``, ``updatableAndDeadSlots``): the service
  runs fewer replicas until it is scaled or updated.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.model import RestartPolicy


@dataclass(frozen=True)
class StartSlot:
    """Start a new task of ``service`` in ``slot`` at ``due`` (monotonic), replacing
    ``replaces`` (the task that ended, for the events)."""

    service: str
    slot: int
    due: float
    replaces: str


@dataclass
class RestartSupervisor:
    """The restarts waiting for their delay and each slot's restart history."""

    _waiting: dict[tuple[str, int], StartSlot] = field(default_factory=dict)
    _history: dict[tuple[str, int], list[float]] = field(default_factory=dict)

    def should_restart(self, policy: RestartPolicy, end_state: str, service: str, slot: int,
                       now: float) -> tuple[bool, str]:
        """(restart?, why) for a task of ``service``/``slot`` that ended in
        ``end_state`` (``failed`` or ``complete``) at ``now``."""
        if policy.condition == "none":
            return False, "restart_policy condition none: the slot stays empty"
        if policy.condition == "on-failure" and end_state == "complete":
            return False, "exit 0 under restart_policy condition on-failure: not restarted"
        if policy.max_attempts == 0:
            return True, "restart_policy condition " + policy.condition
        past = self._history.get((service, slot), [])
        if policy.window > 0:
            past = [t for t in past if now - policy.window <= t < now]
        if len(past) >= policy.max_attempts:
            within = f" within {policy.window:g} s" if policy.window > 0 else ""
            return False, (f"max_attempts {policy.max_attempts} reached ({len(past)} "
                           f"restart(s){within}): the slot stays empty")
        return True, (f"restart {len(past) + 1} of max_attempts {policy.max_attempts}"
                      + (f" within {policy.window:g} s" if policy.window > 0 else ""))

    def restart(self, service: str, slot: int, now: float, delay: float,
                replaces: str) -> StartSlot:
        """Record a restart of ``slot`` at ``now`` and wait ``delay`` to start it."""
        self._history.setdefault((service, slot), []).append(now)
        start = StartSlot(service, slot, now + delay, replaces)
        self._waiting[(service, slot)] = start
        return start

    def forget(self, service: str, slot: int) -> None:
        """Drop a slot's history (a new spec version: ``restart.go`` clears it)."""
        self._history.pop((service, slot), None)

    def due(self, now: float) -> list[StartSlot]:
        """The starts whose delay has passed (then forgotten), oldest first."""
        ready = [s for s in self._waiting.values() if s.due <= now]
        for s in ready:
            del self._waiting[(s.service, s.slot)]
        return sorted(ready, key=lambda s: s.due)

    def waiting(self) -> list[StartSlot]:
        return sorted(self._waiting.values(), key=lambda s: s.due)

    def is_waiting(self, service: str, slot: int) -> bool:
        return (service, slot) in self._waiting
