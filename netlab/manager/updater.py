"""The rolling updater: a service's out-of-date tasks replaced batch by batch (pure:
the service's tasks in, slot updates and status changes out).

swarmkit ``manager/orchestrator/update/updater.go`` (moby/swarmkit at
3e72cb64da35; see docs/swarmkit-manager.md §6):

* ``Run``: the dirty slots (tasks not of the current spec) are updated
  ``parallelism`` at a time (0: all at once); after each batch the updater
  waits ``delay``;
* each updated task is watched for ``monitor`` seconds after it runs; a task
  that fails in that window (or before it runs) is a failure, and when
  failures / dirty slots exceeds ``max_failure_ratio`` the ``failure_action``
  applies: ``pause`` (state ``paused``, "update paused due to failure or
  early termination of task …"), ``continue``, or ``rollback`` (the previous
  spec, with ``rollback_config``; a rollback that fails again pauses:
  ``rollback_paused``);
* once every slot is updated and the last monitor window has passed, the
  state is ``completed`` ("update completed") or ``rollback_completed``.

``order: stop-first`` (the default): the old task is shut down (weight 0,
the gossip delay, stopped) and then the new one starts. ``start-first``: the
new one starts beside the old (``updateTask``: ``useExistingTask`` false, the
old one kept), and once it runs (healthy, its binding active) the old one is
shut down (``removeOldTasks``); a new one that fails leaves the old in place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from netlab.model import UpdateConfig


@dataclass(frozen=True)
class UpdateSlot:
    """Replace the task of ``service``'s ``slot`` at ``address`` by a task of the current
    spec (stop-first)."""

    service: str
    slot: int
    address: str
    gossip_delay: float
    order: str = "stop-first"


@dataclass(frozen=True)
class RetireTask:
    """Start-first: the new task of ``service``'s ``slot`` runs; shut down the old one
    at ``address`` (weight 0, the gossip delay, stopped)."""

    service: str
    slot: int
    address: str
    gossip_delay: float


@dataclass(frozen=True)
class SetUpdateState:
    """Record ``service``'s update state (``paused``, ``completed``, ``rollback_started``…)."""

    service: str
    state: str
    message: str


@dataclass
class Updater:
    """One service's update (or rollback) under way. Times: the manager's monotonic clock."""

    service: str
    config: UpdateConfig
    rollback: bool
    todo: list[int]                         # dirty slots not yet asked for, in slot order
    total: int                              # the dirty slots at the start
    gossip_delay: float
    in_flight: dict[int, float] = field(default_factory=dict)    # slot -> asked at
    monitoring: dict[int, float] = field(default_factory=dict)   # slot -> watched until
    failed: list[str] = field(default_factory=list)              # tasks that failed
    replacing: dict[int, str] = field(default_factory=dict)      # start-first: slot -> old address
    next_batch: float = 0.0
    finished: bool = False

    def task_failed(self, slot: int, task: str) -> None:
        """A task of the current spec in ``slot`` failed (exited or unhealthy)."""
        if slot in self.in_flight or slot in self.monitoring:
            self.failed.append(task)
            self.in_flight.pop(slot, None)
            self.monitoring.pop(slot, None)
            self.replacing.pop(slot, None)      # start-first: the old one stays

    def step(self, now: float, tasks: dict[int, str],
             current: set[int]) -> list[UpdateSlot | RetireTask | SetUpdateState]:
        """One look: ``tasks`` maps each slot that has a task to its address (the old
        one's, where a start-first slot holds two), ``current`` is the slots whose
        task of the current spec runs (healthy and bound). Returns the actions due."""
        if self.finished:
            return []
        acts: list[UpdateSlot | RetireTask | SetUpdateState] = []
        for slot in [s for s in self.in_flight if s in current]:
            del self.in_flight[slot]
            self.monitoring[slot] = now + self.config.monitor
            if slot in self.replacing:
                acts.append(RetireTask(self.service, slot, self.replacing.pop(slot),
                                       self.gossip_delay))
        if self.failed and len(self.failed) / max(self.total, 1) > self.config.max_failure_ratio \
                and self.config.failure_action != "continue":
            self.finished = True
            task = self.failed[-1]
            if self.config.failure_action == "rollback" and not self.rollback:
                return acts + [SetUpdateState(self.service, "rollback_started",
                                       "update rolled back due to failure or early "
                                       f"termination of task {task}")]
            what = "rollback" if self.rollback else "update"
            return acts + [SetUpdateState(self.service, "rollback_paused" if self.rollback else "paused",
                                   f"{what} paused due to failure or early termination of "
                                   f"task {task}")]
        if not self.in_flight and self.next_batch == float("inf"):
            self.next_batch = now + self.config.delay       # the batch is done: the delay
        if not self.in_flight and self.todo and now >= self.next_batch:
            size = self.config.parallelism or len(self.todo)
            batch, self.todo = self.todo[:size], self.todo[size:]
            for slot in batch:
                self.in_flight[slot] = now
                if self.config.order == "start-first":
                    self.replacing[slot] = tasks.get(slot, "")
                acts.append(UpdateSlot(self.service, slot, tasks.get(slot, ""),
                                       self.gossip_delay, self.config.order))
            self.next_batch = float("inf")                  # until this batch is done
        self.monitoring = {s: until for s, until in self.monitoring.items() if until > now}
        if not self.todo and not self.in_flight and not self.monitoring:
            self.finished = True
            acts.append(SetUpdateState(self.service, "rollback_completed", "rollback completed")
                        if self.rollback else
                        SetUpdateState(self.service, "completed", "update completed"))
        return acts
