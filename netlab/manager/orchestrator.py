"""What the manager decides when a node's state changes (pure: transitions in,
events and due actions out).

swarmkit (moby/swarmkit at 3e72cb64da35): a node seen DOWN has its tasks
restarted (``manager/orchestrator/replicated/tasks.go``, ``handleNodeChange``
→ ``restartTasksByNodeID``); the restart supervisor shuts each down and
creates its replacement in the same slot, started after the restart policy's
delay (``manager/orchestrator/restart/restart.go``, ``Supervisor.Restart``,
``DelayStart``; not waiting for the old one to stop since its node is down).
A node that reports again is READY; its old tasks are not brought back
(Swarm does not rebalance).
"""

from __future__ import annotations

from dataclasses import dataclass

from netlab.manager.dispatcher import DOWN, READY, Transition
from netlab.manager.events import Event, event
from netlab.manager.timings import Timings


@dataclass(frozen=True)
class RestartTasks:
    """Restart every task of ``node`` elsewhere (the node marked down in the lab), at ``due``."""

    node: str
    due: float
    tasks: tuple[str, ...]


@dataclass(frozen=True)
class NodeReady:
    """Mark ``node`` ready in the lab again (it reports)."""

    node: str


Action = RestartTasks | NodeReady


class Orchestrator:
    """Turns the dispatcher's transitions into events and actions; holds the restarts
    waiting for their delay. Times: ``mono`` on the dispatcher's clock, ``wall``
    epoch seconds for the events."""

    def __init__(self, timings: Timings) -> None:
        self.timings = timings
        self._waiting: dict[str, RestartTasks] = {}

    def noticed(self, t: Transition, wall: float, down_in_lab: bool,
                tasks_on_node: list[str]) -> tuple[list[Event], list[Action]]:
        """Events and immediate actions for transition ``t``. ``down_in_lab``: the lab
        already has the node down (a restart done before); ``tasks_on_node``: the
        lab's tasks placed there now."""
        evs: list[Event] = []
        acts: list[Action] = []
        if t.after == DOWN:
            evs.append(event("node", t.node, "down", t.message, wall))
            if tasks_on_node and not down_in_lab and t.node not in self._waiting:
                delay = self.timings.restart_delay
                self._waiting[t.node] = RestartTasks(t.node, t.at + delay, tuple(tasks_on_node))
                for task in tasks_on_node:
                    evs.append(event("task", task, "shutdown",
                                     f"its node {t.node} is down: desired state shutdown, a "
                                     f"replacement in slot {task.rsplit('.', 1)[-1]} starts "
                                     f"after the restart delay ({delay:g} s)", wall))
        elif t.after == READY:
            evs.append(event("node", t.node, "ready", t.message
                             + ("" if t.before != "unknown" else " (after the manager started)"),
                             wall))
            # A restart already waiting still happens, as swarmkit's replacements were
            # created at once with a delayed start; the process marks the node ready
            # after it (see netlab.manager.process).
            if down_in_lab and t.node not in self._waiting:
                acts.append(NodeReady(t.node))
        return evs, acts

    def due(self, now: float) -> list[RestartTasks]:
        """The restarts whose delay has passed by ``now`` (then forgotten)."""
        ready = [r for r in self._waiting.values() if r.due <= now]
        for r in ready:
            del self._waiting[r.node]
        return sorted(ready, key=lambda r: r.due)

    def waiting(self) -> list[RestartTasks]:
        return sorted(self._waiting.values(), key=lambda r: r.due)
