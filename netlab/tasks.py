"""Changes to one task of a running lab: a fault a user makes (``netlab task``), and
what the lab's manager does about tasks (a task failed, a slot restarted, a
task found healthy and added to the load balancers).

Each runs under the lab's change lock and converges as a scale does (see
:mod:`netlab.converge`); the state file stays the one memory.
"""

from __future__ import annotations

import time
from dataclasses import replace

from typing import TYPE_CHECKING

from netlab import changelog
from netlab.errors import BadInput
from netlab.lifecycle import (
    APP_READY_TIMEOUT, Host, Progress, _endpoints_of, endpoints, hidden, loaded, resolvers,
    supervisor_serves, unbound, weighted,
)
from netlab.model import beside, fill_slot, without_task
from netlab.plan.build import build_plan, node_namespaces
from netlab.state import LabState, StateStore, check_lab
from netlab.updates import ACTIVE, SETTLED, UpdateStatus
from netlab.workload import faults as task_faults

if TYPE_CHECKING:     # the converge machinery is imported by what runs it (update starts fast)
    from netlab.converge import ScaleResult

FAULTS = ("kill", "hang", "unhealthy", "healthy")
KILL_EXIT_CODE = 137      # docker kill: SIGKILL, 128 + 9


def _task_of(state: LabState, task: str):
    for t in state.model.tasks:
        if t.name == task:
            return t
    names = ", ".join(t.name for t in state.model.tasks) or "none runs"
    raise BadInput(f"TASK: lab {state.lab} runs no task {task!r} (hint: one of {names})")


def fault(lab_name: str, task: str, what: str, store: StateStore, exit_code: int | None = None,
          host: Host = Host()) -> str:
    """``netlab task LAB TASK kill|hang|unhealthy|healthy``: make a task's app exit
    (with ``exit_code``, 137 by default as ``docker kill``), stop answering, fail
    its health check, or answer again. Returns what was done, in words. The
    supervisor applies it before this returns; the lab's manager notices what
    a Swarm would (see :mod:`netlab.workload.faults`).

    Raises BadInput (exit 2) for an unknown lab, task or fault, ``unhealthy`` on
    a service without a health check, an exit code out of 0-255, or when the
    lab's task apps are not running; nothing is changed then."""
    check_lab(lab_name)
    if what not in FAULTS:
        raise BadInput(f"FAULT: {what!r} is not one of {', '.join(FAULTS)} "
                       f"(hint: netlab task {lab_name} {task} kill)")
    if exit_code is not None and not 0 <= exit_code <= 255:
        raise BadInput(f"--exit-code: {exit_code} is not an exit code (hint: 0-255)")
    if exit_code is not None and what != "kill":
        raise BadInput("--exit-code: only a kill has an exit code "
                       f"(hint: netlab task {lab_name} {task} kill --exit-code 1)")
    with store.locked(lab_name):
        state = loaded(lab_name, store)
        t = _task_of(state, task)
        service = state.model.service(t.service)
        if what == "unhealthy" and service.healthcheck is None:
            raise BadInput(f"TASK: service {service.name} has no healthcheck, so a task of it "
                           "cannot fail one (hint: kill or hang it, or give the service a "
                           "healthcheck: in the scenario)")
        if not host.is_root():
            raise BadInput("netlab task must run as root (hint: sudo netlab task …)")
        if not supervisor_serves(state, store, host.process):
            raise BadInput(f"LAB: the task apps of {lab_name} are not running "
                           f"(hint: netlab up {state.scenario} restarts them)")
        path = task_faults.faults_path_for(_endpoints_of(lab_name, store))
        address = str(state.allocations.primary_ip(task, state.model))
        addresses = {x.name: str(state.allocations.primary_ip(x.name, state.model))
                     for x in state.model.tasks}
        now = task_faults.current(task_faults.read(path), addresses)
        had = now.get(task)
        if had is not None and had.mode == "exited":
            raise BadInput(f"TASK: {task} has exited already (exit code {had.exit_code}); "
                           f"its slot is the manager's to restart (hint: netlab events {lab_name})")
        if what == "healthy":
            now.pop(task, None)
            said = f"{task} answers again"
        elif what == "kill":
            code = KILL_EXIT_CODE if exit_code is None else exit_code
            now[task] = task_faults.Fault("exited", address, time.time(), exit_code=code)
            said = f"{task} exited with code {code}"
        elif what == "hang":
            now[task] = task_faults.Fault("hung", address, time.time())
            said = f"{task} answers nothing more (hung)"
        else:
            assert service.healthcheck is not None
            now[task] = task_faults.Fault("unhealthy", address, time.time(),
                                          path=service.healthcheck.path)
            said = f"{task} fails its health check (503 on {service.healthcheck.path})"
        task_faults.write(path, now)
        pid = state.supervisor_pid
        assert pid is not None
        host.update_supervisor(pid, endpoints(state.model, state.allocations,
                                              state.tasks == "containers"),
                               timeout=APP_READY_TIMEOUT,
                               dns=resolvers(state.model, state.allocations))
        return said


def exited(lab_name: str, store: StateStore) -> dict[str, task_faults.Fault]:
    """The faults of ``lab_name``'s tasks that still run (what the manager's agents
    watch); {} when the lab has none or the file cannot be read."""
    try:
        state = store.require(lab_name)
        path = task_faults.faults_path_for(_endpoints_of(lab_name, store))
        found = task_faults.read(path)
    except Exception:  # noqa: BLE001 (the lab going down under the manager: nothing to watch)
        return {}
    addresses = {x.name: str(state.allocations.primary_ip(x.name, state.model))
                 for x in state.model.tasks}
    return task_faults.current(found, addresses)


def fail(lab_name: str, task: str, address: str, end_state: str, message: str,
         store: StateStore, gossip_delay: float = 0.0, progress: Progress = lambda _m: None,
         host: Host = Host()) -> ScaleResult | None:
    """Take task ``task`` (the one at ``address``; None when it is gone already or
    another task has its slot now) out of the lab: weight 0 on every load
    balancer, ``gossip_delay`` s, its app stopped, its namespace removed; its
    history keeps ``end_state`` (``failed``, ``complete``) and ``message``. The
    slot stays empty until :func:`start_slot`. Under the change lock."""
    check_lab(lab_name)
    with store.locked(lab_name, progress):
        state = loaded(lab_name, store)
        if task not in {t.name for t in state.model.tasks} or \
                str(state.allocations.primary_ip(task, state.model)) != address:
            return None
        after = without_task(state.model, task)
        from netlab.converge import Ending, _converge
        return _converge(state, after, store, progress, host, ("task", f"{task} {end_state}"),
                         {task: Ending(end_state, message)}, gossip_delay)


def start_slot(lab_name: str, service: str, slot: int, store: StateStore,
               progress: Progress = lambda _m: None, host: Host = Host()) -> ScaleResult | None:
    """Start a new task in ``service``'s ``slot`` (placed as a scale places one, with
    new addresses); None when the slot is taken again (a scale filled it) or the
    service is gone. Raises BadInput when no node may run it. Under the change lock."""
    return _add_in_slot(lab_name, service, slot, store, progress, host, fill_slot, "restarted")


def _add_in_slot(lab_name: str, service: str, slot: int, store: StateStore,
                 progress: Progress, host: Host, place, what: str) -> ScaleResult | None:
    """A new task of ``service`` in ``slot`` as ``place(lab, service, slot)`` puts it
    (the lab itself when it puts none: None), converged; ``what`` names the change.
    Raises BadInput when no node may run it. Under the change lock."""
    check_lab(lab_name)
    with store.locked(lab_name, progress):
        state = loaded(lab_name, store)
        if service not in {s.name for s in state.model.services}:
            return None
        try:
            after = place(state.model, service, slot)
        except ValueError:
            raise BadInput(f"SERVICE: no node may run a new task of {service}") from None
        if after is state.model:
            return None
        from netlab.converge import _converge
        return _converge(state, after, store, progress, host,
                         ("task", f"{service}.{slot} {what}"))


def bind(lab_name: str, task: str, address: str, store: StateStore,
         host: Host = Host()) -> bool:
    """Task ``task`` (at ``address``) is healthy: its IPVS destinations get weight 1 on
    every sandbox and its record goes from ``starting`` to ``running`` (the swarm
    executor's ``activateServiceBinding``). False when that task is not starting
    any more (gone, or bound already). Under the change lock."""
    check_lab(lab_name)
    with store.locked(lab_name):
        state = loaded(lab_name, store)
        if task not in {t.name for t in state.model.tasks} or \
                str(state.allocations.primary_ip(task, state.model)) != address:
            return False
        records = state.actual_tasks
        if not any(r.name == task and r.state == "starting" for r in records):
            return False
        # Only the load balancers are built (the nodes' namespaces; no task's).
        scope = frozenset(ns for n in state.model.nodes
                          for ns in node_namespaces(state.model, n.name))
        plan = hidden(build_plan(state.model, state.allocations, scope=scope), state.model,
                      state.allocations, state.gossip_failed)
        host.kernel.set_weights(plan, {str(ip) for ip in state.allocations.addresses_of(task)}, 1)
        state.actual_tasks = tuple(replace(r, state="running")
                                   if r.name == task and r.state == "starting" else r
                                   for r in records)
        state.changes = changelog.converged(changelog.begin(state.changes, "task",
                                                            f"{task} healthy"))
        store.save(state)
        return True


def gossip_view(lab_name: str, failed: dict[str, tuple[str, ...]], store: StateStore,
                progress: Progress = lambda _m: None, host: Host = Host()) -> bool:
    """Each node's NetworkDB now holds ``failed`` (node -> the peers it holds failed;
    see :mod:`netlab.manager.gossip`): in the load balancers of each node, the
    tasks of the peers it holds failed are taken out, and those of the peers it
    holds alive again are put back. Only those nodes' sandboxes are read and
    written. False when the state already says so. Under the change lock."""
    check_lab(lab_name)
    with store.locked(lab_name):
        state = loaded(lab_name, store)
        nodes = {n.name for n in state.model.nodes}
        failed = {v: tuple(sorted(p for p in set(peers) if p in nodes and p != v))
                  for v, peers in failed.items() if v in nodes}
        failed = {v: p for v, p in sorted(failed.items()) if p}
        if failed == state.gossip_failed:
            return False
        viewers = set(failed) | set(state.gossip_failed)
        scope = frozenset(ns for v in viewers for ns in node_namespaces(state.model, v))
        plan = weighted(build_plan(state.model, state.allocations, scope=scope),
                        unbound(state.actual_tasks, state.model, state.allocations), 0)
        before = hidden(plan, state.model, state.allocations, state.gossip_failed)
        after = hidden(plan, state.model, state.allocations, failed)
        host.kernel.apply(after, state.iptables, [], progress, before=before)
        state.gossip_failed = failed
        store.save(state)
        return True


# -- rolling updates (the manager's updater carries them out; see netlab.manager.updater)

def update_slot(lab_name: str, service: str, slot: int, address: str, store: StateStore,
                gossip_delay: float = 0.0, progress: Progress = lambda _m: None,
                host: Host = Host(), order: str = "stop-first") -> ScaleResult | None:
    """Update ``service``'s ``slot``, whose task is at ``address``.

    stop-first: that task is shut down (weight 0, ``gossip_delay`` s, stopped;
    its history says which spec replaced it), then a task of the service's
    current spec starts in the slot (new address; with a health check, no
    traffic until healthy). start-first: the new task starts beside it (the
    slot's other instance); the updater retires the old one (:func:`retire`)
    once the new one runs. None when the slot's task is not that one any more
    (stop-first) or the slot already holds two (start-first)."""
    if order == "start-first":
        return start_beside(lab_name, service, slot, store, progress, host)
    if address and retire(lab_name, service, slot, address, store, gossip_delay, progress,
                          host) is None:
        return None
    return start_slot(lab_name, service, slot, store, progress, host)


def start_beside(lab_name: str, service: str, slot: int, store: StateStore,
                 progress: Progress = lambda _m: None,
                 host: Host = Host()) -> ScaleResult | None:
    """Start-first: a task of ``service``'s current spec starts in ``slot`` beside the one
    there (named ``<service>.<slot>.1`` or ``<service>.<slot>``, whichever is free;
    placed with the old one counted). None when the slot is empty or holds two.
    Raises BadInput when no node may run it. Under the change lock."""
    return _add_in_slot(lab_name, service, slot, store, progress, host, beside, "started first")


def task_at(state: LabState, service: str, slot: int, address: str) -> str | None:
    """The name of ``service``'s task in ``slot`` at ``address`` (None: none is there)."""
    return next((t.name for t in state.model.tasks_of(service) if t.slot == slot and
                 str(state.allocations.primary_ip(t.name, state.model)) == address), None)


def retire(lab_name: str, service: str, slot: int, address: str, store: StateStore,
           gossip_delay: float = 0.0, progress: Progress = lambda _m: None,
           host: Host = Host()) -> ScaleResult | None:
    """Shut down ``service``'s task in ``slot`` at ``address`` for an update (weight 0,
    ``gossip_delay`` s, stopped; its history says which spec replaced it). None
    when no task of the slot is at that address any more."""
    state = loaded(lab_name, store)
    task = task_at(state, service, slot, address)
    if task is None:
        return None
    return fail(lab_name, task, address, "shutdown",
                f"updated: replaced by a task of {state.model.service(service).image}", store,
                gossip_delay, progress, host)


def set_update_state(lab_name: str, service: str, state_name: str, message: str,
                     store: StateStore, clock=time.time) -> UpdateStatus | None:
    """Record ``service``'s update state. ``rollback_started`` also puts the previous
    spec (image, env) back as the service's, keeping the one rolled back from as
    the previous (``docker service rollback``). None when the service has no
    update. Under the change lock."""
    check_lab(lab_name)
    with store.locked(lab_name):
        state = loaded(lab_name, store)
        now = state.updates.get(service)
        if now is None:
            return None
        if state_name == "rollback_started":
            svc = state.model.service(service)
            state.model = _respec(state.model, service, now.previous_image, now.previous_env)
            new = UpdateStatus("rollback_started", clock(), None, message, svc.image, svc.env)
        else:
            settled = state_name in SETTLED
            new = replace(now, state=state_name, message=message,  # type: ignore[arg-type]
                          completed=clock() if settled else None)
        state.updates = {**state.updates, service: new}
        store.save(state)
        return new


def _respec(lab, service: str, image: str, env: tuple[tuple[str, str], ...]):
    return replace(lab, services=tuple(replace(s, image=image, env=env) if s.name == service
                                       else s for s in lab.services))


def begin_update(lab_name: str, service: str, store: StateStore, image: str | None = None,
                 env: dict[str, str] | None = None, config: dict | None = None,
                 host: Host = Host(), clock=time.time) -> UpdateStatus | None:
    """``netlab update``: the service's new spec (``image``, ``env`` added to its
    environment, ``config`` replacing update_config fields) is recorded with the
    old as the previous spec and the update ``updating``; the manager's updater
    replaces the tasks. None when nothing would change (no task to replace).

    Raises BadInput (exit 2, nothing changed) for an unknown lab or service, an
    update of a service whose update is under way, when not root, or without a
    running manager."""
    check_lab(lab_name)
    with store.locked(lab_name):
        state = loaded(lab_name, store)
        svc = _service_of(state, service)
        _refuse_busy(state, service)
        cfg = replace(svc.update_config, **(config or {}))
        new_env = dict(svc.env)
        new_env.update(env or {})
        new_image = image or svc.image
        _ready_for_change(state, store, host)
        new_svc = replace(svc, image=new_image, env=tuple(sorted(new_env.items())),
                          update_config=cfg)
        state.model = replace(state.model, services=tuple(
            new_svc if s.name == service else s for s in state.model.services))
        if all(t.runs(new_svc) for t in state.model.tasks_of(service)) and \
                (new_svc.image, new_svc.env) == (svc.image, svc.env):
            store.save(state)           # the config may have changed: kept
            return None
        status = UpdateStatus("updating", clock(), None, "update in progress", svc.image, svc.env)
        state.updates = {**state.updates, service: status}
        state.changes = changelog.converged(changelog.begin(
            state.changes, "update", f"{service} to {new_image}"))
        store.save(state)
        _event(store, lab_name, service, "updating",
               f"netlab update: {svc.image} -> {new_image}"
               + (f", env {' '.join(f'{k}={v}' for k, v in sorted((env or {}).items()))}"
                  if env else ""))
        return status


def begin_rollback(lab_name: str, service: str, store: StateStore, host: Host = Host(),
                   clock=time.time) -> UpdateStatus:
    """``netlab rollback``: back to the service's previous spec, with its
    rollback_config. Raises BadInput when the service has no previous spec, its
    update is under way, or no manager runs."""
    check_lab(lab_name)
    with store.locked(lab_name):
        state = loaded(lab_name, store)
        svc = _service_of(state, service)
        _refuse_busy(state, service)
        now = state.updates.get(service)
        if now is None:
            raise BadInput(f"SERVICE: service {service} has no previous spec to roll back to "
                           f"(hint: netlab update {lab_name} {service} --image …)")
        _ready_for_change(state, store, host)
        state.model = _respec(state.model, service, now.previous_image, now.previous_env)
        status = UpdateStatus("rollback_started", clock(), None, "manually requested rollback",
                              svc.image, svc.env)
        state.updates = {**state.updates, service: status}
        state.changes = changelog.converged(changelog.begin(
            state.changes, "update", f"{service} rollback to {now.previous_image}"))
        store.save(state)
        _event(store, lab_name, service, "rollback-started",
               f"netlab rollback: {svc.image} -> {now.previous_image}")
        return status


def _event(store: StateStore, lab: str, service: str, action: str, message: str) -> None:
    from netlab.manager.events import event
    from netlab.manager.process import events_name
    store.append_file(lab, events_name(lab), event("service", service, action, message).to_line())


def _service_of(state: LabState, service: str):
    names = [s.name for s in state.model.services]
    if service not in names:
        raise BadInput(f"SERVICE: lab {state.lab} has no service {service!r} "
                       f"(hint: one of {', '.join(names)})")
    return state.model.service(service)


def _refuse_busy(state: LabState, service: str) -> None:
    now = state.updates.get(service)
    if now is not None and now.state in ACTIVE:
        raise BadInput(f"SERVICE: {service}'s {now.state.replace('_', ' ')} is under way "
                       f"(hint: netlab events {state.lab} --follow, then try again)")


def _ready_for_change(state: LabState, store: StateStore, host: Host) -> None:
    from netlab.lifecycle import manager_runs
    if not host.is_root():
        raise BadInput("netlab update must run as root (hint: sudo netlab update …)")
    if not manager_runs(state, store, host.process):
        raise BadInput(f"LAB: the manager of {state.lab} is not running; it carries out updates "
                       f"(hint: netlab up {state.scenario} starts it)")
