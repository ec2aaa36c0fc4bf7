"""The manager process: ``python -m netlab.manager --state FILE`` (started by ``up``).

A loop on one monotonic clock, every tick (a tenth of a heartbeat period):
each node's agent sends its heartbeat when its period is up (a period chosen
anew each time, as swarmkit's agent is told by the dispatcher); the
dispatcher reads what arrived, marks late nodes, expires the silent ones; the
orchestrator schedules restarts, and a worker thread carries out what is
due, one at a time, under the lab's change lock (:func:`netlab.converge.noticed`),
so the heartbeats go on while the kernel is being changed. Beside them, each
node's NetworkDB probes its peers over the LAN (:mod:`netlab.manager.gossip`)
and hides from its own load balancers the tasks of the peers it holds failed,
long before the manager marks such a node down. The manager's view
(each node's state, the restarts waiting) is written to ``<lab>.manager.json``
in the store at every change of it, and each step to the event log.

SIGTERM stops it (after the change under way); ``kill -9`` stops it at once,
and the lab keeps serving (the kernel holds the mesh); ``up`` starts a new one,
which resumes from the state file: it gives every node twice the grace to
report (as swarmkit after a leader change) and disturbs no running task.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from concurrent.futures import Future, ThreadPoolExecutor

from netlab.kernel.probe import ProbeResult
from netlab.manager import dispatcher as dsp
from netlab.manager.agent import BindTask, FailTask, Probe, TaskView, TaskWatch
from netlab.manager.events import FILE_SUFFIX, Event, event
from netlab.manager.gossip import GossipTimings, NetworkDBs, ViewChange
from netlab.manager.orchestrator import NodeReady, Orchestrator, RestartTasks
from netlab.manager.restart import StartSlot
from netlab.manager.updater import RetireTask, SetUpdateState, Updater, UpdateSlot
from netlab.manager.timings import Timings
from netlab.state import LabState, StateStore
from netlab.workload import faults as task_faults



@dataclass(frozen=True)
class GossipView:
    """Each node's NetworkDB holds ``failed`` (node -> the peers it holds failed)."""

    failed: tuple[tuple[str, tuple[str, ...]], ...]

    def as_dict(self) -> dict[str, tuple[str, ...]]:
        return dict(self.failed)


Action = (RestartTasks | NodeReady | FailTask | BindTask | StartSlot | UpdateSlot
          | RetireTask | SetUpdateState | GossipView)

STATUS_SUFFIX = "manager.json"
CONTAINER_POLL = 0.5      # s between two looks at the lab's exited containers


def status_name(lab: str) -> str:
    return f"{lab}.{STATUS_SUFFIX}"


def events_name(lab: str) -> str:
    return f"{lab}.{FILE_SUFFIX}"


def log(message: str) -> None:
    print(f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} manager: {message}",
          file=sys.stderr, flush=True)


class Manager:
    """One lab's manager loop. ``heartbeats`` is what :class:`netlab.kernel.heartbeat.Heartbeats`
    offers (send, receive, rx, close); ``act`` carries out an action (the real one
    calls :func:`netlab.converge.noticed`); ``clock``/``wall`` are the monotonic and
    epoch clocks (tests pass fakes and call :meth:`step` themselves)."""

    def __init__(self, lab: str, store: StateStore, heartbeats, act: Callable[[Action], None],
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time, rng: random.Random | None = None,
                 probe: Probe | None = None, submit: Callable[..., Future] | None = None,
                 faults_path: Path | None = None,
                 container_exits: Callable[[], dict[str, tuple[str, int]]] | None = None,
                 gossip_net=None):
        self.lab, self.store, self.hb, self.act = lab, store, heartbeats, act
        self.clock, self.wall = clock, wall
        state = store.require(lab)
        self.timings = Timings.scaled(state.time_scale)
        self._submit = submit or _now
        self.watch = TaskWatch(self.timings, self._submit, probe or _no_probe)
        self._faults_path = faults_path
        # --tasks containers: the engine's exited containers, task -> (address, exit
        # code), looked at every CONTAINER_POLL s (one list call, in the pool).
        self._container_exits = container_exits
        self._containers_seen = -CONTAINER_POLL
        self._exits_listing: Future | None = None
        self._state_stamp: tuple | None = None
        self.updaters: dict[str, Updater] = {}
        self._faults_stamp: tuple | None = None
        self.nodes = [n.name for n in state.model.nodes]
        now = clock()
        self._rng = rng or random.Random()
        self.dispatcher = dsp.Dispatcher(self.timings, self.nodes, now, self._rng)
        # Each node's NetworkDB, over ``gossip_net`` (GossipSockets: send, receive);
        # none without one. What the state file last was told they hold failed.
        self._gossip_net = gossip_net
        self.gossip = None if gossip_net is None else NetworkDBs(
            GossipTimings.scaled(state.time_scale), self.nodes, now, gossip_net.send, self._rng)
        self._gossip_told: dict[str, tuple[str, ...]] = dict(state.gossip_failed)
        self.orchestrator = Orchestrator(self.timings)
        # Each agent's first heartbeat at once, then every chosen period.
        self._next_beat = dict.fromkeys(self.nodes, now)
        self._late: set[str] = set()
        self._changed = True
        self._written = now
        self._stepped = now

    # -- one tick
    def step(self) -> list[Action]:
        """One tick: send the heartbeats due, read what came, expire the silent, and
        return the actions due now (in order)."""
        now = self.clock()
        t = self.timings
        stalled = now - self._stepped - t.tick
        self._stepped = now
        if stalled > t.heartbeat_period:
            # The agents' heartbeats are sent from this loop: a loop held up (the
            # host busy) held them back too. A real node's agent beats on its own,
            # so the time lost is no node's silence.
            self.dispatcher.shift(stalled)
            if self.gossip is not None:
                self.gossip.shift(stalled)
            log(f"the loop was held up {stalled:.2f} s: every node's heartbeat timer "
                "moved on by as much")
        for node, due in self._next_beat.items():
            if due <= now:
                self.hb.send(node)
                eps = t.heartbeat_epsilon
                self._next_beat[node] = now + t.heartbeat_period + (
                    self._rng.uniform(-eps, eps) if eps > 0 else 0.0)
        actions: list[Action] = []
        for node in self.hb.receive():
            last = self.dispatcher.last_beat(node) if node in self.nodes else None
            tr = self.dispatcher.beat(node, now)
            if tr is not None:
                actions += self._notice(tr)
            elif node in self._late and last is not None:
                # Late, not down: the window a heartbeat-missed opened closes here.
                self._emit(event("node", node, "heartbeat-resumed",
                                 f"a heartbeat after {now - last:.1f} s; never marked down"
                                 + self._scaled(), self.wall()))
            self._late.discard(node)
        for node in self.nodes:
            last = self.dispatcher.last_beat(node)
            if (self.dispatcher.state(node) == dsp.READY and last is not None
                    and node not in self._late
                    and now - last > t.heartbeat_period + t.heartbeat_epsilon):
                self._late.add(node)
                self._emit(event("node", node, "heartbeat-missed",
                                 f"no heartbeat for {now - last:.1f} s (one every "
                                 f"{t.heartbeat_period:g} s ± {t.heartbeat_epsilon:g}); down at "
                                 f"{self.dispatcher.deadline(node) - last:.1f} s unless one comes"
                                 + self._scaled(), self.wall()))
        for tr in self.dispatcher.expire(now):
            actions += self._notice(tr)
        actions += self._gossip_step(now)
        actions += self.orchestrator.due(now)
        actions += self._watch_tasks(now)
        return actions

    # -- each node's NetworkDB (see netlab.manager.gossip)
    def _gossip_step(self, now: float) -> list[Action]:
        if self.gossip is None or self._gossip_net is None:
            return []
        changes: list[ViewChange] = []
        # What arrived, and what it made the nodes send (a ping's ack; an indirect
        # probe's ping-req, ping, ack and relayed ack): a few rounds, so that an ack
        # on the wire is never late for a probe because of the loop's own order.
        for _round in range(4):
            got = self._gossip_net.receive()
            if not got:
                break
            for to, sender, msg in got:
                changes += self.gossip.received(to, sender, msg, now)
        changes += self.gossip.step(now)
        self._tell_gossip(changes, now)
        want = self.gossip.failed()
        if want == self._gossip_told:
            return []
        self._gossip_told = want
        return [GossipView(tuple(want.items()))]

    def _tell_gossip(self, changes: list[ViewChange], now: float) -> None:
        """One event per peer and new state, naming the nodes that hold it so."""
        grouped: dict[tuple[str, str], list[ViewChange]] = {}
        for c in changes:
            grouped.setdefault((c.peer, c.state), []).append(c)
        t = self.gossip.timings if self.gossip is not None else GossipTimings()
        for (peer, state), cs in grouped.items():
            who = ", ".join(sorted({c.viewer for c in cs}))
            first = min(cs, key=lambda c: c.at)
            wall = self.wall() - (now - first.at)
            if state == "suspect":
                text = (f"{who}'s NetworkDB suspects it: {first.why}; failed unless it "
                        f"refutes within {t.suspicion_mult * t.probe_interval:g} s or more")
            elif state == "dead":
                text = (f"{who}'s NetworkDB holds it failed, {first.why}: its tasks leave "
                        f"{who}'s load balancers")
            else:
                text = f"{who}'s NetworkDB holds it alive again, {first.why}: its tasks are back"
            self._emit(event("node", peer, f"gossip-{state}", text + self._scaled(), wall))

    # -- the tasks: exits and health (see netlab.manager.agent)
    def _watch_tasks(self, now: float) -> list[Action]:
        self._reload_tasks(now)
        actions: list[Action] = []
        for task, fault in self._exits().items():
            evs, acts = self.watch.exited(task, fault.address, fault.exit_code or 0,
                                          self.wall(), now)
            for e in evs:
                self._emit(e)
            actions += acts
        for task, (address, code) in sorted(self._containers_exited(now).items()):
            view = self.watch.tasks.get(task)
            if view is None:
                continue
            evs, acts = self.watch.exited(task, address or view.address, code, self.wall(), now)
            for e in evs:
                self._emit(e)
            actions += acts
        evs, acts = self.watch.step(now, self.wall())
        for e in evs:
            self._emit(e)
        if acts or evs:
            self._changed = True
        actions += acts
        # An updated task that failed is the updater's failure too.
        for act in actions:
            if isinstance(act, FailTask) and act.end_state in ("failed", "complete"):
                view = self.watch.tasks.get(act.task)
                up = self.updaters.get(view.service) if view is not None else None
                if up is not None and view is not None and view.current:
                    up.task_failed(view.slot, act.task)
        for service, up in list(self.updaters.items()):
            mine = [t for t in self.watch.tasks.values() if t.service == service]
            # The old task's address where a start-first slot holds two.
            addresses = {t.slot: t.address for t in mine} | {t.slot: t.address for t in mine
                                                             if not t.current}
            done = up.step(now, addresses,
                           {t.slot for t in mine if t.current and t.state == "running"})
            actions += done
            if up.finished:
                del self.updaters[service]
        return actions

    def _containers_exited(self, now: float) -> dict[str, tuple[str, int]]:
        """--tasks containers: the engine's exited containers (task -> (address,
        exit code)), listed every CONTAINER_POLL s in the pool, so that an engine
        slow to answer (busy starting a container) never holds up the loop and
        with it the agents' heartbeats. {} while a list is under way."""
        if self._container_exits is None:
            return {}
        if self._exits_listing is None and now - self._containers_seen >= CONTAINER_POLL:
            self._containers_seen = now
            self._exits_listing = self._submit(self._container_exits)
        listing = self._exits_listing
        if listing is None or not listing.done():
            return {}
        self._exits_listing = None
        try:
            return listing.result()
        except Exception as exc:   # noqa: BLE001 (the engine away: looked at again later)
            log(f"cannot list the lab's exited containers: {exc}")
            return {}

    def _reload_tasks(self, now: float) -> None:
        """Read the lab's tasks again when its state file changed."""
        stamp = _stamp(self.store.path(self.lab))
        if stamp is None or stamp == self._state_stamp:
            return
        try:
            state = self.store.require(self.lab)
        except Exception as exc:      # noqa: BLE001 (down under way: nothing to watch)
            log(f"cannot read the lab's state: {exc}")
            return
        if not state.complete:
            return        # a change under way: its tasks' records come at its end; look again
        first = self._state_stamp is None
        self._state_stamp = stamp
        # What the load balancers hide is the state file's (an up may have reset it):
        # the next step tells them again when NetworkDB holds otherwise.
        self._gossip_told = dict(state.gossip_failed)
        self.watch.seen(task_views(state), now)
        self._updates_seen(state, now)
        if first:
            self._reconcile(state, now)
        self._changed = True

    def _reconcile(self, state: LabState, now: float) -> None:
        """At the manager's start: a slot left empty (its task failed, or an update
        was cut short, while no manager ran) gets a new task after the restart
        delay, as swarmkit's orchestrator reconciles a service after a leader
        change; unless the slot's last task is one its restart policy keeps ended."""
        for svc in state.model.services:
            mine = state.model.tasks_of(svc.name)
            missing = svc.replicas - len(mine)
            if missing <= 0:
                continue
            taken = {t.slot for t in mine}
            last: dict[int, str] = {}
            for r in state.desired_tasks:             # oldest first: the last one wins
                if r.service == svc.name and r.slot not in taken:
                    last[r.slot] = r.state
            slots = sorted(last, reverse=True) + [n for n in range(1, svc.replicas + 1)
                                                  if n not in taken and n not in last]
            for slot in slots[:missing]:
                ended = last.get(slot)
                again, _why = self.watch.restarts.should_restart(
                    svc.restart_policy, ended if ended in ("failed", "complete") else "failed",
                    svc.name, slot, now)
                if not again and ended in ("failed", "complete"):
                    continue
                delay = svc.restart_policy.delay * self.timings.scale
                self.watch.restarts.restart(svc.name, slot, now, delay, f"{svc.name}.{slot}")
                self._emit(event("task", f"{svc.name}.{slot}", "restart-scheduled",
                                 f"slot {slot} of {svc.name} has no task (the manager was not "
                                 f"running when it ended): a new task starts after the restart "
                                 f"delay ({delay:g} s)", self.wall()))

    def _updates_seen(self, state: LabState, now: float) -> None:
        """An updater for each service whose update (or rollback) is under way, made
        when it starts (or the manager does: it resumes with the slots left)."""
        from netlab.updates import ACTIVE
        for service, status in state.updates.items():
            rollback = status.state == "rollback_started"
            up = self.updaters.get(service)
            if status.state not in ACTIVE:
                self.updaters.pop(service, None)
                continue
            if up is not None and up.rollback == rollback:
                continue
            svc = state.model.service(service)
            dirty = sorted(t.slot for t in state.model.tasks_of(service) if not t.runs(svc))
            config = svc.rollback_config if rollback else svc.update_config
            self.updaters[service] = Updater(service, config, rollback, dirty, len(dirty),
                                             self.timings.gossip_delay)
            what = "rollback" if rollback else "update"
            self._emit(event("service", service, "rollback-plan" if rollback else
                             "update-plan",
                             f"{what} to {svc.image}: {len(dirty)} task(s), {config.parallelism or 'all'} "
                             f"at a time, {config.delay:g} s between batches, each watched "
                             f"{config.monitor:g} s, failure action {config.failure_action}, "
                             f"order {config.order}", self.wall()))

    def _exits(self) -> dict[str, task_faults.Fault]:
        """The task apps that exited since last looked (the engine's die events)."""
        if self._faults_path is None:
            return {}
        stamp = _stamp(self._faults_path)
        if stamp == self._faults_stamp:
            return {}
        self._faults_stamp = stamp
        try:
            found = task_faults.read(self._faults_path)
        except (OSError, ValueError) as exc:
            log(f"cannot read {self._faults_path}: {exc}")
            return {}
        return {t: f for t, f in found.items() if f.mode == "exited"}

    def _scaled(self) -> str:
        return "" if self.timings.scale == 1 else f" (time scale {self.timings.scale:g})"

    def _notice(self, tr: dsp.Transition) -> list[Action]:
        self._changed = True
        try:
            state = self.store.require(self.lab)
        except Exception as exc:      # noqa: BLE001 (down under way, or a bad file: no action)
            log(f"cannot read the lab's state: {exc}")
            return []
        node = next(n for n in state.model.nodes if n.name == tr.node)
        tasks = [task.name for task in state.model.tasks if task.node == tr.node]
        wall = self.wall() - (self.clock() - tr.at)       # when it happened, on the wall clock
        evs, acts = self.orchestrator.noticed(tr, wall, node.state == "down", tasks)
        for e in evs:
            self._emit(e)
        return list(acts)

    def _emit(self, e: Event) -> None:
        self._changed = True
        try:
            self.store.append_file(self.lab, events_name(self.lab), e.to_line())
        except OSError as exc:
            log(f"cannot write the event log: {exc}")

    def carry_out(self, action: Action) -> None:
        """Carry out ``action`` (through ``act``), with its events before and after."""
        if isinstance(action, (FailTask, BindTask, StartSlot, UpdateSlot, RetireTask,
                               SetUpdateState, GossipView)):
            try:
                self._task_action(action)
            except Exception as exc:       # noqa: BLE001 (logged and reported; the loop goes on)
                what = (getattr(action, "task", None) or
                    ("gossip" if isinstance(action, GossipView) else
                     f"{action.service}.{action.slot}"))  # type: ignore[union-attr]
                self._emit(event("manager", self.lab, "error",
                                 f"{type(action).__name__} {what}: {exc}", self.wall()))
                log("".join(traceback.format_exception(exc)).rstrip())
            self._changed = True
            return
        if isinstance(action, RestartTasks):
            self._emit(event("node", action.node, "restarting-tasks",
                             f"restart delay over: restarting {len(action.tasks)} task(s) of "
                             f"{action.node} on the nodes that report" + self._scaled(),
                             self.wall()))
        try:
            self._act_and_tell(action)
        except Exception as exc:       # noqa: BLE001 (logged and reported; the loop goes on)
            self._emit(event("manager", self.lab, "error", f"{type(action).__name__} "
                             f"{action.node}: {exc}", self.wall()))
            log("".join(traceback.format_exception(exc)).rstrip())
        self._changed = True

    def _act_and_tell(self, action: RestartTasks | NodeReady) -> None:
        self.act(action)
        after = self.store.require(self.lab)
        if isinstance(action, RestartTasks):
            moved = {t.name: t.node for t in after.model.tasks if t.name in action.tasks}
            for task, where in sorted(moved.items()):
                self._emit(event("task", task, "running",
                                 f"restarted on {where}: its app serves and every load "
                                 "balancer has it at weight 1", self.wall()))
            if self.dispatcher.state(action.node) == dsp.READY:   # it came back meanwhile
                self.act(NodeReady(action.node))
                self._emit(event("node", action.node, "ready-in-lab", "marked ready again",
                                 self.wall()))
        else:
            self._emit(event("node", action.node, "ready-in-lab",
                             "marked ready: it may take new tasks (none move back)", self.wall()))

    def _task_action(self, action: FailTask | BindTask | StartSlot | UpdateSlot | RetireTask
                     | SetUpdateState | GossipView) -> None:
        if isinstance(action, GossipView):
            was = self.store.require(self.lab).gossip_failed
            self.act(action)
            if self.store.require(self.lab).gossip_failed == was:
                return                  # told again what they held already
            held = "; ".join(f"{v} hides {', '.join(p)}" for v, p in action.failed)
            self._emit(event("manager", self.lab, "load-balancers",
                             f"the load balancers now follow NetworkDB: {held or 'none hides a peer'}",
                             self.wall()))
            return
        if isinstance(action, SetUpdateState):
            self.act(action)
            self._emit(event("service", action.service, action.state.replace("_", "-"),
                             action.message, self.wall()))
            return
        if isinstance(action, UpdateSlot):
            old = self._slot_tasks(action.service, action.slot)
            self._emit(event("task", old.get(action.address, f"{action.service}.{action.slot}"),
                             "updating",
                             f"start-first: a task of the new spec starts beside the one at "
                             f"{action.address}, which is shut down once the new one runs"
                             if action.order == "start-first" else
                             f"stop-first: the task at {action.address} leaves every load "
                             f"balancer (weight 0, the gossip delay {action.gossip_delay:g} s), "
                             "stops, and a task of the new spec starts in its slot",
                             self.wall()))
            self.act(action)
            self._tell_started(action.service, action.slot, set(old))
            return
        if isinstance(action, RetireTask):
            retired = self._slot_tasks(action.service, action.slot).get(action.address)
            self.act(action)
            if retired is not None:
                self._emit(event("task", retired, "shutdown",
                                 "start-first: the new task runs; this one left every load "
                                 f"balancer (weight 0, the gossip delay {action.gossip_delay:g} "
                                 "s) and stopped", self.wall()))
            return
        before = (set(self._slot_tasks(action.service, action.slot))
                  if isinstance(action, StartSlot) else set())
        self.act(action)
        if isinstance(action, FailTask):
            self._emit(event("task", action.task, "shutdown" if action.end_state == "failed"
                             else action.end_state,
                             "its app stopped and its namespace removed; its history keeps "
                             f"{action.end_state}: {action.message}", self.wall()))
            return
        if isinstance(action, BindTask):
            self._emit(event("task", action.task, "running",
                             "every load balancer has it at weight 1 (service binding "
                             "activated once healthy)", self.wall()))
            return
        self._tell_started(action.service, action.slot, before)

    def _slot_tasks(self, service: str, slot: int) -> dict[str, str]:
        """The tasks of ``service``'s ``slot`` now: address -> name."""
        st = self.store.require(self.lab)
        return {str(st.allocations.primary_ip(t.name, st.model)): t.name
                for t in st.model.tasks_of(service) if t.slot == slot}

    def _tell_started(self, service: str, slot: int, before: set[str]) -> None:
        """The events of the task that started in ``slot``: the one at an address not in
        ``before`` (none when there is none; a new task always has a new address)."""
        after = self.store.require(self.lab)
        new = next((t for t in after.model.tasks_of(service) if t.slot == slot and
                    str(after.allocations.primary_ip(t.name, after.model)) not in before), None)
        if new is None:
            return
        name = new.name
        addr = str(after.allocations.primary_ip(name, after.model))
        self._emit(event("task", name, "assigned",
                         f"a new task of {new.image} in slot {slot} on {new.node}, "
                         f"address {addr}", self.wall()))
        svc = after.model.service(service)
        if svc.healthcheck is not None:
            hc = svc.healthcheck
            self._emit(event("task", name, "starting",
                             f"its app serves; no traffic until its health check passes "
                             f"(GET :{hc.port}{hc.path} every "
                             f"{hc.interval * self.timings.scale:g} s)" + self._scaled(),
                             self.wall()))
        else:
            self._emit(event("task", name, "running",
                             "its app serves and every load balancer has it at weight 1",
                             self.wall()))

    def view(self) -> dict:
        """The manager's view, as ``<lab>.manager.json`` holds it."""
        now = self.clock()
        nodes = {}
        for name in self.nodes:
            last = self.dispatcher.last_beat(name)
            nodes[name] = {"state": self.dispatcher.state(name),
                           "last_heartbeat_ago": None if last is None else round(now - last, 2)}
        t = self.timings
        return {"pid": os.getpid(), "time_scale": t.scale,
                "timings": {"heartbeat_period": t.heartbeat_period,
                            "heartbeat_epsilon": t.heartbeat_epsilon,
                            "grace_multiplier": t.grace_multiplier,
                            "restart_delay": t.restart_delay},
                "nodes": nodes,
                "restarts_waiting": [{"node": r.node, "tasks": list(r.tasks),
                                      "in": round(max(0.0, r.due - now), 2)}
                                     for r in self.orchestrator.waiting()],
                "slots_waiting": [{"task": f"{s.service}.{s.slot}", "replaces": s.replaces,
                                   "in": round(max(0.0, s.due - now), 2)}
                                  for s in self.watch.restarts.waiting()],
                "health": self.watch.view(),
                "gossip": self._gossip_view()}

    def _gossip_view(self) -> dict[str, dict[str, str]]:
        """Each node -> the peers its NetworkDB holds suspect or dead (alive ones left out)."""
        if self.gossip is None:
            return {}
        out: dict[str, dict[str, str]] = {}
        for viewer, db in sorted(self.gossip.dbs.items()):
            odd = {p: m.state for p, m in sorted(db.peers.items()) if m.state != "alive"}
            if odd:
                out[viewer] = odd
        return out

    def write_view(self) -> None:
        """Write the view when it changed, and at least every second (its ages)."""
        now = self.clock()
        if not self._changed and now - self._written < 1.0:
            return
        self._changed, self._written = False, now
        try:
            self.store.write_file(self.lab, status_name(self.lab),
                                  (json.dumps(self.view()) + "\n").encode())
        except OSError as exc:
            log(f"cannot write {status_name(self.lab)}: {exc}")


def _stamp(path: Path) -> tuple | None:
    """What tells a file's change: (inode, size, mtime); None when it is missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _now(fn: Callable, *args) -> Future:
    """Run ``fn(*args)`` at once; its result as a done Future (tests, and no pool)."""
    fut: Future = Future()
    try:
        fut.set_result(fn(*args))
    except Exception as exc:  # noqa: BLE001 (handed over in the Future)
        fut.set_exception(exc)
    return fut


def _no_probe(task: str, port: int, path: str, timeout: float) -> ProbeResult:
    raise RuntimeError("no health probe given")


def task_views(state: LabState) -> list[TaskView]:
    """The lab's tasks as the agents watch them: address, state, health check, policy."""
    lab = state.model
    states = {(r.name, r.node): r.state for r in state.actual_tasks
              if r.state in ("running", "starting")}
    out = []
    for t in lab.tasks:
        svc = lab.service(t.service)
        # A task not yet recorded is a new one: with a health check, not bound yet.
        unrecorded = "starting" if svc.healthcheck is not None else "running"
        out.append(TaskView(t.name, t.service, t.slot, t.node,
                            str(state.allocations.primary_ip(t.name, lab)),
                            states.get((t.name, t.node), unrecorded), svc.healthcheck,
                            svc.restart_policy, t.runs(svc)))
    return out


def _real_act(lab: str, store: StateStore, host=None) -> Callable[[Action], None]:
    """The manager's actions carried out on the lab (``host``: the real one unless given)."""
    from netlab import converge
    from netlab import tasks as lab_tasks
    from netlab.lifecycle import Host
    on: dict = {"host": host or Host()}

    def act(action: Action) -> None:
        if isinstance(action, FailTask):
            lab_tasks.fail(lab, action.task, action.address, action.end_state, action.message,
                           store, gossip_delay=action.gossip_delay, **on)
        elif isinstance(action, StartSlot):
            lab_tasks.start_slot(lab, action.service, action.slot, store, **on)
        elif isinstance(action, BindTask):
            lab_tasks.bind(lab, action.task, action.address, store, **on)
        elif isinstance(action, UpdateSlot):
            lab_tasks.update_slot(lab, action.service, action.slot, action.address, store,
                                  gossip_delay=action.gossip_delay, order=action.order, **on)
        elif isinstance(action, RetireTask):
            lab_tasks.retire(lab, action.service, action.slot, action.address, store,
                             gossip_delay=action.gossip_delay, **on)
        elif isinstance(action, SetUpdateState):
            lab_tasks.set_update_state(lab, action.service, action.state, action.message, store)
        elif isinstance(action, GossipView):
            lab_tasks.gossip_view(lab, action.as_dict(), store, **on)
        elif isinstance(action, RestartTasks):
            converge.noticed(lab, action.node, "down", "heartbeat failure", store, **on)
        else:
            converge.noticed(lab, action.node, "up", "heartbeat received", store, **on)
    return act


def run(lab: str, store: StateStore) -> int:
    """The process's loop until SIGTERM; returns the exit code."""
    from netlab.kernel.heartbeat import Heartbeats
    from netlab.plan import names
    state = store.require(lab)
    manager_node = next((n for n in state.model.nodes if n.role == "manager"), state.model.nodes[0])
    hb = Heartbeats(names.node_ns(lab, manager_node.name), str(state.lan[manager_node.name]),
                    {n.name: names.node_ns(lab, n.name) for n in state.model.nodes})
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    # A signal wakes the loop's select at once (down need not wait for a tick).
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    from netlab.kernel.probe import http_check
    from netlab.lifecycle import _endpoints_of
    pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="netlab-health")

    def probe(task: str, port: int, path: str, timeout: float):
        return http_check(names.task_ns(lab, task), port, path, timeout)

    container_exits = None
    if state.tasks == "containers":
        from netlab.docker import engine
        engines: list = []              # made at the first look, again after a failure

        def container_exits() -> dict[str, tuple[str, int]]:
            if not engines:
                engines.append(engine.runtime(state.docker))
            try:
                found = engines[0].exited(lab)
            except Exception:
                engines.clear()
                raise
            return {task: (address, code) for task, address, code in found.values() if task}

    from netlab.kernel.gossipnet import GossipSockets
    try:
        gossip_net: GossipSockets | None = GossipSockets(
            {n.name: (names.node_ns(lab, n.name), str(state.lan[n.name]))
             for n in state.model.nodes})
    except (OSError, KeyError) as exc:
        gossip_net = None
        log(f"no NetworkDB gossip (the nodes' sockets on port 7946: {exc}); a cut node's "
            "tasks leave the load balancers only when the manager marks it down")
    mgr = Manager(lab, store, hb, _real_act(lab, store), probe=probe, submit=pool.submit,
                  faults_path=task_faults.faults_path_for(_endpoints_of(lab, store)),
                  container_exits=container_exits, gossip_net=gossip_net)
    work: queue.Queue[Action | None] = queue.Queue()

    def worker() -> None:
        while (action := work.get()) is not None:
            mgr.carry_out(action)

    thread = threading.Thread(target=worker, name="netlab-manager-actions", daemon=True)
    thread.start()
    t = mgr.timings
    mgr._emit(event("manager", lab, "started",
                    f"pid {os.getpid()}; heartbeats every {t.heartbeat_period:g} s ± "
                    f"{t.heartbeat_epsilon:g} over the LAN to {manager_node.name}:2377, a node "
                    f"down after {t.grace_multiplier} periods without one, tasks restarted "
                    f"after {t.restart_delay:g} s" + mgr._scaled(), time.time()))
    try:
        while not stop.is_set():
            for action in mgr.step():
                work.put(action)
            mgr.write_view()
            select.select([hb.rx.fileno(), wake_r,
                           *(gossip_net.fileno() if gossip_net is not None else [])],
                          [], [], t.tick)
    finally:
        work.put(None)
        thread.join(timeout=60)
        pool.shutdown(wait=False, cancel_futures=True)
        mgr._emit(event("manager", lab, "stopped", f"pid {os.getpid()}", time.time()))
        hb.close()
        if gossip_net is not None:
            gossip_net.close()
        signal.set_wakeup_fd(-1)
        os.close(wake_r)
        os.close(wake_w)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m netlab.manager",
                                     description="A netlab lab's manager (started by netlab up).")
    parser.add_argument("--state", required=True, help="the lab's state file")
    args = parser.parse_args(argv)
    path = Path(args.state)
    lab = path.name.removesuffix(".json")
    try:
        return run(lab, StateStore(path.parent))
    except Exception as exc:      # noqa: BLE001 (the log says why; up reads it)
        log(f"cannot run: {type(exc).__name__}: {exc}")
        return 1
