"""swarmkit's default timings, and the lab's time scale that shrinks them.

Each value is swarmkit's (moby/swarmkit at 3e72cb64da35):

- heartbeat period 5 s and its epsilon 0.5 s: ``manager/dispatcher/dispatcher.go``,
  ``DefaultHeartBeatPeriod`` and ``defaultHeartBeatEpsilon``; each period is
  chosen uniformly in period ± epsilon (``manager/dispatcher/period.go``,
  ``periodChooser.Choose``);
- grace multiplier 3: ``defaultGracePeriodMultiplier``; a node is marked down
  when no heartbeat came for (chosen period) × 3 (``nodeStore.Heartbeat`` in
  ``manager/dispatcher/nodes.go`` arms the timer, whose expiry calls
  ``markNodeNotReady(nodeID, NodeStatus_DOWN, "heartbeat failure")``);
- restart delay 5 s: ``api/defaults/service.go`` (``Restart.Delay``), applied by
  the restart supervisor (``manager/orchestrator/restart/restart.go``,
  ``Supervisor.Restart``) to every restart but those of a drained node's tasks.

A time scale of 0.1 makes every one of them ten times shorter (for demos and
tests); it is printed wherever times are shown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from netlab.manager.gossip import PROBE_TIMEOUT

HEARTBEAT_PERIOD = 5.0
HEARTBEAT_EPSILON = 0.5
GRACE_MULTIPLIER = 3
RESTART_DELAY = 5.0
#: The swarm executor's wait between a task's weight 0 and its stop (moby
#: ``daemon/cluster/executor/container/controller.go``, ``defaultGossipConvergeDelay``).
GOSSIP_DELAY = 2.0
#: The range ``--time-scale`` accepts: from a hundred times faster to ten times slower.
SCALE_MIN, SCALE_MAX = 0.01, 10.0


@dataclass(frozen=True)
class Timings:
    """The manager's timings in seconds, already scaled."""

    heartbeat_period: float = HEARTBEAT_PERIOD
    heartbeat_epsilon: float = HEARTBEAT_EPSILON
    grace_multiplier: int = GRACE_MULTIPLIER
    restart_delay: float = RESTART_DELAY
    scale: float = 1.0
    gossip_delay: float = GOSSIP_DELAY

    @classmethod
    def scaled(cls, scale: float) -> Timings:
        """swarmkit's defaults times ``scale``; raises ValueError outside the range."""
        check_scale(scale)
        return cls(HEARTBEAT_PERIOD * scale, HEARTBEAT_EPSILON * scale, GRACE_MULTIPLIER,
                   RESTART_DELAY * scale, scale, GOSSIP_DELAY * scale)

    @property
    def tick(self) -> float:
        """How often the manager looks: a tenth of a heartbeat period, and at least twice
        in a NetworkDB probe timeout (memberlist's 0.5 s, scaled); at most 0.5 s."""
        return min(self.heartbeat_period / 10, PROBE_TIMEOUT * self.scale / 2, 0.5)


def check_scale(scale: object) -> float:
    """``scale`` as a time scale; raises ValueError naming the range."""
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) \
            or not math.isfinite(scale) or not SCALE_MIN <= scale <= SCALE_MAX:
        raise ValueError(f"a time scale is a number from {SCALE_MIN:g} to {SCALE_MAX:g}, "
                         f"not {scale!r}")
    return float(scale)
