"""Heartbeats and node states, as swarmkit's dispatcher keeps them (pure: times in, states out).

swarmkit (moby/swarmkit at 3e72cb64da35), ``manager/dispatcher``:

- every heartbeat re-arms the node's timer for (a period chosen in period ±
  epsilon) × the grace multiplier (``nodes.go``, ``nodeStore.Heartbeat``;
  ``period.go``, ``periodChooser.Choose``); when it fires the node is marked
  DOWN with the message "heartbeat failure" (``dispatcher.go``, the
  ``expireFunc`` of ``register`` calling ``markNodeNotReady``);
- a manager that starts (or restarts) marks every node it knows UNKNOWN and
  gives it twice that grace to report (``markNodesUnknown``,
  ``gracePeriodMultiplierUnknown``); one that does not is marked DOWN with
  'heartbeat failure for node in "unknown" state';
- a node that reports again registers anew and is READY (``markNodeReady``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from netlab.manager.timings import Timings

READY, DOWN, UNKNOWN = "ready", "down", "unknown"
HEARTBEAT_FAILURE = "heartbeat failure"
UNKNOWN_FAILURE = 'heartbeat failure for node in "unknown" state'


@dataclass(frozen=True)
class Transition:
    """A node's state as the dispatcher changed it, when and why."""

    node: str
    before: str
    after: str
    at: float
    message: str


@dataclass
class _Node:
    state: str
    deadline: float
    last_beat: float | None = None


class Dispatcher:
    """The manager's view of which nodes report. ``now`` values are seconds of one
    monotonic clock; ``rng`` chooses the periods (seed it for a repeatable run)."""

    def __init__(self, timings: Timings, nodes: list[str], now: float,
                 rng: random.Random | None = None) -> None:
        self.timings = timings
        self._rng = rng or random.Random()
        grace = self._period() * timings.grace_multiplier * 2
        self._nodes = {name: _Node(UNKNOWN, now + grace) for name in nodes}

    def _period(self) -> float:
        eps = self.timings.heartbeat_epsilon
        return self.timings.heartbeat_period + (self._rng.uniform(-eps, eps) if eps > 0 else 0.0)

    def state(self, node: str) -> str:
        """``ready``, ``down`` or ``unknown``; raises KeyError for a node it does not know."""
        return self._nodes[node].state

    def states(self) -> dict[str, str]:
        return {name: n.state for name, n in self._nodes.items()}

    def last_beat(self, node: str) -> float | None:
        """When ``node``'s last heartbeat came (None: none since the manager started)."""
        return self._nodes[node].last_beat

    def deadline(self, node: str) -> float:
        """When ``node`` is marked down if no heartbeat comes before."""
        return self._nodes[node].deadline

    def beat(self, node: str, now: float) -> Transition | None:
        """A heartbeat from ``node`` at ``now``: its timer re-armed; a transition when
        it was not ready (it registers again). Heartbeats from a node the lab does
        not have are ignored (None)."""
        seen = self._nodes.get(node)
        if seen is None:
            return None
        seen.deadline = now + self._period() * self.timings.grace_multiplier
        seen.last_beat = now
        if seen.state == READY:
            return None
        before, seen.state = seen.state, READY
        return Transition(node, before, READY, now, "heartbeat received: the node is ready")

    def shift(self, seconds: float) -> None:
        """Move every timer and last heartbeat of a node not down on by ``seconds``:
        time in which the nodes could not send (their agents' loop was held up)
        counts for none of them."""
        for seen in self._nodes.values():
            if seen.state != DOWN:
                seen.deadline += seconds
                if seen.last_beat is not None:
                    seen.last_beat += seconds

    def expire(self, now: float) -> list[Transition]:
        """Nodes whose timer fired by ``now``, marked down (in deadline order); each
        transition is stamped with its deadline, when swarmkit's timer would fire."""
        out = []
        for name, seen in sorted(self._nodes.items(), key=lambda kv: kv[1].deadline):
            if seen.state != DOWN and seen.deadline <= now:
                message = UNKNOWN_FAILURE if seen.state == UNKNOWN else HEARTBEAT_FAILURE
                out.append(Transition(name, seen.state, DOWN, seen.deadline, message))
                seen.state = DOWN
        return out
