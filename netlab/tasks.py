"""Changes to one task of a running lab: a fault a user makes (``netlab task``), and
what the lab's manager does about tasks (a task failed, a slot restarted, a
task found healthy and added to the load balancers).

Each runs under the lab's change lock and converges as a scale does (see
:mod:`netlab.converge`); the state file stays the one memory.
"""

from __future__ import annotations

import time

from netlab import changelog
from netlab.converge import Ending, ScaleResult, _converge
from netlab.errors import BadInput
from netlab.lifecycle import (
    APP_READY_TIMEOUT, Host, Progress, _endpoints_of, endpoints, loaded, resolvers,
    supervisor_serves,
)
from netlab.model import fill_slot, without_task
from netlab.plan.build import build_plan
from netlab.state import LabState, StateStore, check_lab
from netlab.workload import faults as task_faults

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
        return _converge(state, after, store, progress, host, ("task", f"{task} {end_state}"),
                         {task: Ending(end_state, message)}, gossip_delay)


def start_slot(lab_name: str, service: str, slot: int, store: StateStore,
               progress: Progress = lambda _m: None, host: Host = Host()) -> ScaleResult | None:
    """Start a new task in ``service``'s ``slot`` (placed as a scale places one, with
    new addresses); None when the slot is taken again (a scale filled it) or the
    service is gone. Raises BadInput when no node may run it. Under the change lock."""
    check_lab(lab_name)
    with store.locked(lab_name, progress):
        state = loaded(lab_name, store)
        if service not in {s.name for s in state.model.services}:
            return None
        try:
            after = fill_slot(state.model, service, slot)
        except ValueError:
            raise BadInput(f"SERVICE: no node may run a new task of {service}") from None
        if after is state.model:
            return None
        return _converge(state, after, store, progress, host,
                         ("task", f"{service}.{slot} restarted"))


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
        plan = build_plan(state.model, state.allocations)
        host.kernel.set_weights(plan, {str(ip) for ip in state.allocations.addresses_of(task)}, 1)
        from dataclasses import replace
        state.actual_tasks = tuple(replace(r, state="running")
                                   if r.name == task and r.state == "starting" else r
                                   for r in records)
        state.changes = changelog.converged(changelog.begin(state.changes, "task",
                                                            f"{task} healthy"))
        store.save(state)
        return True
