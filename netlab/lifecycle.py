"""A lab's life: ``up`` (build or converge) and ``down`` (remove everything it owns).

``up`` records the namespaces it is about to create in the state file *before*
creating them, so ``down`` can finish the job after an ``up`` that was killed
halfway. ``down`` also sweeps the ``nl-<lab>-`` prefix, leaving out namespaces
that another lab's state file claims.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from collections.abc import Callable

from netlab.errors import BadInput
from netlab.kernel import apply as kernel_apply
from netlab.kernel import features, netns
from netlab.model import Lab
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.plan.types import Plan
from netlab.state import LabState, StateStore
from netlab.workload import supervisor
from netlab.workload.endpoints import AppEndpoint

Progress = Callable[[str], None]
# Python starts slowly under plain emulation (netlab vm without KVM).
APP_READY_TIMEOUT = 600.0


@dataclass(frozen=True)
class UpResult:
    plan: Plan
    stats: kernel_apply.ApplyStats
    supervisor_pid: int


@dataclass(frozen=True)
class DownResult:
    netns_removed: int
    supervisor_stopped: bool
    state_removed: bool


def endpoints(lab: Lab, plan: Plan) -> list[AppEndpoint]:
    """The app each task runs: one listener per (protocol, target port).

    Two published ports may lead to one target (``["8080:80", "8081:80"]``,
    which Swarm accepts): both REDIRECT to the same socket.
    """
    addressing = plan.meta["addressing"]
    out = []
    for task in lab.tasks:
        service = lab.service(task.service)
        targets = dict.fromkeys((p.protocol, p.target) for p in service.ingress_ports)
        for protocol, target in targets:
            out.append(AppEndpoint(
                netns=names.task_ns(lab.name, task.name), service=service.name, task=task.name,
                node=task.node, task_ip=str(addressing.tasks[task.name].ingress_ip),
                port=target, protocol=protocol))
    return out


def state_for(lab: Lab, plan: Plan, scenario: str) -> LabState:
    addressing = plan.meta["addressing"]
    return LabState(
        lab=lab.name, scenario=scenario,
        netns=[ns.name for ns in plan.netns],
        targets={ns.target: ns.name for ns in plan.netns},
        lan={n: str(a.lan_ip) for n, a in addressing.nodes.items()},
        client_ip=str(addressing.client_ip),
    )


def up(lab: Lab, scenario: str, store: StateStore, progress: Progress = lambda _m: None) -> UpResult:
    """Build ``lab`` or converge it to its scenario.

    Raises MissingFeature (exit 3) before changing anything when the kernel
    lacks IPVS, VXLAN or a needed match; kernel refusals propagate.
    """
    features.require_lab_features()
    plan = build_plan(lab)
    previous = store.load(lab.name)
    state = state_for(lab, plan, scenario)
    owned_before = previous.netns if previous else []
    # Record every namespace we may own before creating any.
    state.netns = sorted(set(owned_before) | set(state.netns))
    state.supervisor_pid = previous.supervisor_pid if previous else None
    store.save(state)
    stale = [n for n in owned_before if n not in {ns.name for ns in plan.netns}]
    stats = kernel_apply.apply(plan, stale=stale, progress=progress)
    apps = endpoints(lab, plan)
    pid = state.supervisor_pid
    if pid and supervisor.is_running(pid):
        progress("updating the task apps")
        supervisor.update(pid, apps, timeout=APP_READY_TIMEOUT)
    else:
        progress("starting the task apps")
        pid = supervisor.start(apps, store.log_path(lab.name), ready_timeout=APP_READY_TIMEOUT)
    state.netns = [ns.name for ns in plan.netns]
    state.supervisor_pid = pid
    state.complete = True
    store.save(state)
    return UpResult(plan, stats, pid)


def _claimed_by_others(lab: str, store: StateStore) -> set[str]:
    claimed: set[str] = set()
    for other in store.labs():
        if other != lab:
            st = store.load(other)
            if st:
                claimed |= set(st.netns)
    return claimed


def _orphan_supervisors(lab: str | None, store: StateStore) -> list[int]:
    """Supervisor pids of ``lab`` (of any lab of this store when None), for
    when the state file is lost."""
    return supervisor.find(str(supervisor.endpoints_path_for(store.log_path(lab))) if lab
                           else str(store.root) + "/")


def down(lab: str, store: StateStore) -> DownResult:
    """Remove everything ``lab`` owns; succeeds on leftovers and on nothing."""
    if os.geteuid() != 0:
        raise BadInput("netlab down must run as root (hint: sudo netlab down …)")
    state = store.load(lab)
    stopped = False
    pids = ([state.supervisor_pid] if state and state.supervisor_pid else [])
    pids += [p for p in _orphan_supervisors(lab, store) if p not in pids]
    for pid in pids:
        if supervisor.is_running(pid):
            supervisor.stop(pid)
            stopped = True
    owned = set(state.netns if state else [])
    owned |= set(netns.listed(names.lab_prefix(lab))) - _claimed_by_others(lab, store)
    # Tasks first, the LAN last: fewer links die with a still-used peer.
    removed = kernel_apply.teardown(sorted(owned, key=lambda n: (n.endswith("-lan"), n)))
    # The log, the apps' endpoints and status files: everything named <lab>.*
    # but the state file, which goes last.
    for leftover in store.root.glob(f"{lab}.*") if store.root.exists() else []:
        if leftover != store.path(lab):
            leftover.unlink(missing_ok=True)
    return DownResult(removed, stopped, store.remove(lab))


def down_all(store: StateStore) -> tuple[list[tuple[str, DownResult]], int]:
    """``down`` every lab with a state file, then sweep every other ``nl-``
    namespace and task-app supervisor of this store; returns the per-lab
    results and how many stray namespaces were removed."""
    results = [(lab, down(lab, store)) for lab in store.labs()]
    for pid in _orphan_supervisors(None, store):
        if supervisor.is_running(pid):
            supervisor.stop(pid)
    return results, kernel_apply.teardown(netns.listed(names.PREFIX))
