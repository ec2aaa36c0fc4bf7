"""What each node's agent and its engine see of their tasks, and what the manager
decides about it: a task's app that exited, a health check that passed or
failed (pure but for the probes, which a pool runs; the lab is read as plain data).

As Docker's swarm executor (moby ``daemon/cluster/executor/container/
controller.go``) and swarmkit's agent (``agent/exec/controller.go``) do:

* an exit is seen at once (the container's ``die`` event): exit 0 ends the task
  ``complete`` ("finished"), another code ``failed`` ("task: non-zero exit (N)");
* a task with a health check is ``starting`` until its first healthy probe; only
  then is its service binding activated (``(*controller).Start``:
  ``health_status: healthy`` → ``activateServiceBinding``), so it gets no
  traffic before; ``unhealthy`` (``checkHealth``) shuts it down: weight 0,
  the gossip delay, stopped (exit 137), ``failed`` with
  "task: non-zero exit (137): dockerexec: unhealthy container";
* the restart supervisor then decides about the slot (:mod:`netlab.manager.restart`).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from netlab.kernel.probe import ProbeResult
from netlab.manager import health as hl
from netlab.manager.events import Event, event
from netlab.manager.restart import RestartSupervisor, StartSlot
from netlab.manager.timings import Timings
from netlab.model import HealthCheck, RestartPolicy

UNHEALTHY_EXIT = 137
UNHEALTHY_MESSAGE = f"task: non-zero exit ({UNHEALTHY_EXIT}): dockerexec: unhealthy container"


@dataclass(frozen=True)
class TaskView:
    """One task of the lab as the state file has it."""

    name: str
    service: str
    slot: int
    node: str
    address: str
    state: str                         # running | starting
    healthcheck: HealthCheck | None
    restart_policy: RestartPolicy
    current: bool = True               # it runs its service's current spec (image, env)


@dataclass(frozen=True)
class FailTask:
    """Take the task at ``address`` out of the lab, ended in ``end_state`` with
    ``message``, after ``gossip_delay`` s at weight 0."""

    task: str
    address: str
    end_state: str
    message: str
    gossip_delay: float


@dataclass(frozen=True)
class BindTask:
    """The task at ``address`` is healthy: weight 1 on every load balancer, running."""

    task: str
    address: str


Probe = Callable[[str, int, str, float], ProbeResult]   # (task, port, path, timeout)


@dataclass
class TaskWatch:
    """The agents' watch over every task: exits, health monitors, and the restarts
    they lead to. ``probe`` runs one health check (in a pool: ``submit``)."""

    timings: Timings
    submit: Callable[..., Future]
    probe: Probe
    restarts: RestartSupervisor = field(default_factory=RestartSupervisor)
    tasks: dict[str, TaskView] = field(default_factory=dict)
    monitors: dict[tuple[str, str], hl.Health] = field(default_factory=dict)
    _probes: dict[tuple[str, str], Future] = field(default_factory=dict)
    _ended: set[tuple[str, str]] = field(default_factory=set)
    _bound: set[tuple[str, str]] = field(default_factory=set)

    def _scaled(self, seconds: float) -> float:
        return seconds * self.timings.scale

    def seen(self, tasks: list[TaskView], now: float) -> None:
        """The lab's tasks now (after every change of the state file): monitors start
        for new tasks with a health check (a running one counts as healthy, as
        dockerd keeps a container's health across a manager restart) and stop for
        tasks that are gone."""
        self.tasks = {t.name: t for t in tasks}
        keys = {(t.name, t.address) for t in tasks}
        for t in tasks:
            hc = t.healthcheck
            if hc is None or (t.name, t.address) in self.monitors:
                continue
            self.monitors[(t.name, t.address)] = hl.Health(
                interval=self._scaled(hc.interval), timeout=self._scaled(hc.timeout),
                retries=hc.retries, start_period=self._scaled(hc.start_period),
                started=now, status=hl.STARTING if t.state == "starting" else hl.HEALTHY)
        for key in [k for k in self.monitors if k not in keys]:
            del self.monitors[key]
            self._probes.pop(key, None)
        self._ended &= keys
        self._bound &= keys

    def exited(self, task: str, address: str, code: int, wall: float,
               now: float) -> tuple[list[Event], list[FailTask | BindTask | StartSlot]]:
        """The app of ``task`` (at ``address``) exited with ``code``: the task ends."""
        t = self.tasks.get(task)
        if t is None or t.address != address or (task, address) in self._ended:
            return [], []
        if code == 0:
            return self._end(t, "complete", "finished (exit 0)", 0.0, wall, now)
        return self._end(t, "failed", f"task: non-zero exit ({code})", 0.0, wall, now)

    def _end(self, t: TaskView, state: str, message: str, gossip: float, wall: float,
             now: float) -> tuple[list[Event], list[FailTask | BindTask | StartSlot]]:
        self._ended.add((t.name, t.address))
        evs = [event("task", t.name, state, f"{message}; on {t.node} at {t.address}: out of "
                     "every load balancer (weight 0, then removed)"
                     + (f" after the gossip delay ({gossip:g} s)" if gossip else ""), wall)]
        acts: list[FailTask | BindTask | StartSlot] = [
            FailTask(t.name, t.address, state, message, gossip)]
        again, why = self.restarts.should_restart(t.restart_policy, state, t.service, t.slot, now)
        if again and not self.restarts.is_waiting(t.service, t.slot):
            delay = self._scaled(t.restart_policy.delay)
            self.restarts.restart(t.service, t.slot, now, delay, t.name)
            evs.append(event("task", t.name, "restart-scheduled",
                             f"{why}: a new task in slot {t.slot} starts after the restart "
                             f"delay ({delay:g} s)", wall))
        elif not again:
            evs.append(event("task", t.name, "not-restarted", why, wall))
        return evs, acts

    def step(self, now: float, wall: float) -> tuple[list[Event], list[FailTask | BindTask |
                                                                        StartSlot]]:
        """Start the probes due, take the results that came, and return the events and
        actions (bindings, failures, and the restarts whose delay is over)."""
        evs: list[Event] = []
        acts: list[FailTask | BindTask | StartSlot] = []
        for key, mon in self.monitors.items():
            t = self.tasks.get(key[0])
            if t is None or t.healthcheck is None or key in self._ended:
                continue
            fut = self._probes.get(key)
            if fut is not None and fut.done():
                del self._probes[key]
                try:
                    res = fut.result()
                except Exception as exc:  # noqa: BLE001 (a probe that broke is a failed one)
                    changed = mon.result(1, f"probe error: {exc}", now, now)
                else:
                    changed = mon.result(res.exit_code, res.output, res.start, res.end)
                if changed == hl.HEALTHY and t.state == "starting" and key not in self._bound:
                    self._bound.add(key)
                    evs.append(event("task", t.name, "healthy",
                                     f"health check passed ({mon.last_output}): adding it to "
                                     "every load balancer", wall))
                    acts.append(BindTask(t.name, t.address))
                elif changed == hl.HEALTHY:
                    evs.append(event("task", t.name, "healthy",
                                     f"health check passed again ({mon.last_output})", wall))
                elif changed == hl.UNHEALTHY:
                    evs.append(event("task", t.name, "unhealthy",
                                     f"{mon.failing_streak} failed health checks in a row "
                                     f"(retries {t.healthcheck.retries}; last: "
                                     f"{mon.last_output})", wall))
                    e2, a2 = self._end(t, "failed", UNHEALTHY_MESSAGE,
                                       self.timings.gossip_delay, wall, now)
                    evs += e2
                    acts += a2
            elif fut is None and mon.due(now):
                mon.probing = True
                hc = t.healthcheck
                self._probes[key] = self.submit(self.probe, t.name, hc.port, hc.path,
                                                mon.timeout)
        acts += self.restarts.due(now)
        return evs, acts

    def view(self) -> dict[str, dict]:
        """Each monitored task's health, for the manager's view."""
        return {task: {"address": address, "health": mon.status,
                       "failing_streak": mon.failing_streak, "last": mon.last_output}
                for (task, address), mon in sorted(self.monitors.items())}
