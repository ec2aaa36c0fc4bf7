"""A task's health as dockerd tracks it (pure: probe results in, status changes out).

moby ``daemon/health.go`` (Docker 20.10 and today's alike, but for
``start_interval``, which 20.10 lacks and netlab does not model):

* ``monitor``: the first probe runs one ``interval`` after the task started,
  then one ``interval`` after each probe ended (``intervalTimer.Reset``);
* ``handleProbeResult``: exit 0 makes the task ``healthy`` and clears the
  failing streak; a failure (exit != 0, or -1 past the timeout) adds one to the
  streak, except while the task is still ``starting`` inside its
  ``start_period``; ``retries`` failures in a row make it ``unhealthy``;
* each change of status is an event (``health_status: healthy``), which the
  swarm executor waits for (see :mod:`netlab.manager.tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass

STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"


@dataclass
class Health:
    """One task's health monitor. Times are the manager's monotonic clock, already
    scaled (see :class:`netlab.manager.timings.Timings`)."""

    interval: float
    timeout: float
    retries: int
    start_period: float
    started: float                # when the task started
    status: str = STARTING
    failing_streak: int = 0
    next_probe: float = 0.0
    probing: bool = False
    last_output: str = ""

    def __post_init__(self) -> None:
        if self.next_probe == 0.0:
            self.next_probe = self.started + self.interval

    def due(self, now: float) -> bool:
        """True when a probe should start now (none is running)."""
        return not self.probing and now >= self.next_probe

    def result(self, exit_code: int, output: str, start: float, end: float) -> str | None:
        """Take one probe's result (``start``/``end`` when it ran); returns the new status
        when it changed, else None. The next probe is one interval after ``end``."""
        self.probing = False
        self.next_probe = end + self.interval
        self.last_output = output
        before = self.status
        if exit_code == 0:
            self.failing_streak = 0
            self.status = HEALTHY
        elif not (self.status == STARTING and start - self.started < self.start_period):
            self.failing_streak += 1
            if self.failing_streak >= self.retries:
                self.status = UNHEALTHY
        return self.status if self.status != before else None
