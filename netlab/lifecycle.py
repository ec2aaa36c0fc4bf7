"""A lab's life: ``up`` (build or converge) and ``down`` (remove everything it owns).

``up`` records the namespaces it is about to create in the state file *before*
creating them, so ``down`` can finish the job after an ``up`` that was killed
halfway. ``down`` also sweeps the ``nl-<lab>.`` prefix, which no other lab's
namespace can share (see netlab/plan/names.py), and stops the lab's
supervisor found by its command line, so a lost or corrupt state file never
stops it. ``down_all`` removes only the labs this store holds a valid state
file for; other ``nl-`` namespaces are reported, not removed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from collections.abc import Callable

from netlab import ipam
from netlab.errors import BadInput
from netlab.ipam import Allocations
from netlab.kernel import apply as kernel_apply
from netlab.kernel import features, netns
from netlab.kernel.interface import Kernel, LinuxKernel
from netlab.kernel.xtables import Backend
from netlab.model import Lab, TaskRecord, reschedule
from netlab.model import restart_off
from netlab.model import scale as model_scale
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.plan.types import Plan
from netlab.state import CorruptState, LabState, StateStore, check_lab
from netlab.workload import supervisor
from netlab.workload.app import status_path_for
from netlab.workload.endpoints import AppEndpoint

Progress = Callable[[str], None]
# Python starts slowly under plain emulation (netlab vm without KVM).
APP_READY_TIMEOUT = 600.0


@dataclass(frozen=True)
class UpResult:
    lab: Lab                    # the lab as applied: placed after what ran before
    allocations: Allocations
    plan: Plan
    stats: kernel_apply.ApplyStats
    supervisor_pid: int


@dataclass(frozen=True)
class DownResult:
    netns_removed: int
    supervisor_stopped: bool
    state_removed: bool
    corrupt: str | None = None      # the report of a corrupt state file, moved aside


@dataclass(frozen=True)
class DownAllResult:
    downed: tuple[tuple[str, DownResult], ...]
    corrupt: tuple[str, ...]        # one report per corrupt state file (those labs stay)
    unowned: tuple[str, ...]        # nl- namespaces no valid state file here claims


def _is_root() -> bool:
    return os.geteuid() == 0


def _require_features(backend: Backend) -> None:
    features.require_lab_features(backend)


def _listed(prefix: str) -> list[str]:
    return netns.listed(prefix)


@dataclass(frozen=True)
class Host:
    """What ``up`` and ``down`` ask of the machine: the kernel and the processes.

    The defaults are the real thing; tests pass fakes (a fake :class:`Kernel`
    among them) to exercise ``up`` and ``down`` without root.
    """

    is_root: Callable[[], bool] = _is_root
    listed: Callable[[str], list[str]] = _listed
    kernel: Kernel = LinuxKernel()
    require_features: Callable[[Backend], None] = _require_features
    find_supervisors: Callable[[str], list[int]] = supervisor.find
    supervisor_running: Callable[[int], bool] = supervisor.is_running
    stop_supervisor: Callable[[int], None] = supervisor.stop
    start_supervisor: Callable[..., int] = supervisor.start
    update_supervisor: Callable[..., None] = supervisor.update


def endpoints(lab: Lab, allocations: Allocations) -> list[AppEndpoint]:
    """The app each task runs: one listener per (protocol, target port).

    Two published ports may lead to one target (``["8080:80", "8081:80"]``,
    which Swarm accepts): both REDIRECT to the same socket. Host-mode ports
    listen too: the app binds every address, the node DNATs to the gwbridge one.
    """
    out = []
    for task in lab.tasks:
        service = lab.service(task.service)
        targets = dict.fromkeys((p.protocol, p.target) for p in service.ports)
        for protocol, target in targets:
            out.append(AppEndpoint(
                netns=names.task_ns(lab.name, task.name), service=service.name, task=task.name,
                node=task.node, task_ip=str(allocations.tasks[task.name].ingress_ip),
                port=target, protocol=protocol))
    return out


def running(lab: Lab) -> tuple[TaskRecord, ...]:
    """The tasks of ``lab`` as records in the ``running`` state."""
    return tuple(TaskRecord(t.service, t.slot, t.node, "running") for t in lab.tasks)


def state_for(lab: Lab, allocations: Allocations, scenario: str,
              plan: Plan | None = None) -> LabState:
    """The state of ``lab`` applied with ``allocations`` (``plan`` is built when not
    given): its model, allocations, namespaces, and its tasks desired running."""
    plan = plan if plan is not None else build_plan(lab, allocations)
    return LabState(
        lab=lab.name, scenario=scenario, model=lab, allocations=allocations,
        netns=[ns.name for ns in plan.netns],
        targets={ns.target: ns.name for ns in plan.netns},
        lan={n: str(a.lan_ip) for n, a in allocations.nodes.items()},
        client_ip=str(allocations.client_ip),
        desired_tasks=running(lab),
    )


def next_lab(lab: Lab, previous: LabState | None) -> tuple[Lab, Allocations]:
    """``lab`` (fresh from its scenario) placed and allocated after ``previous``.

    Tasks that ran stay on their node and keep their addresses; new ones go
    by Swarm's rules and get the next free addresses (see :mod:`netlab.ipam`).
    Nodes that ``netlab node … down`` took down stay down.
    Raises ipam.AddressSpaceExhausted, or BadInput when a task can be placed nowhere.
    """
    if previous is None:
        return lab, ipam.allocate(lab)
    # A node that is down stays down (the scenario cannot say; netlab node can).
    down = {n.name for n in previous.model.nodes if n.state == "down"}
    lab = replace(lab, nodes=tuple(replace(n, state="down") if n.name in down else n
                                   for n in lab.nodes))
    try:
        lab = reschedule(lab, previous.model.tasks)
    except ValueError as err:
        raise BadInput(f"services.{err}: no node may run one of its tasks now (hint: check its "
                       "constraints, host-mode ports and the nodes' state; netlab status)") from None
    return lab, ipam.allocate(lab, previous.allocations)


def up(lab: Lab, scenario: str, store: StateStore, backend: Backend,
       progress: Progress = lambda _m: None, host: Host = Host()) -> UpResult:
    """Build ``lab`` or converge it to its scenario, its rules in ``backend``.

    A lab that is up changes incrementally from its state: its tasks stay
    where they run with their addresses (see :func:`next_lab`). Raises
    MissingFeature (exit 3) before changing anything when the kernel lacks
    IPVS, VXLAN, the backend or a needed match; BadInput (exit 2) when the
    lab is up with another backend, or its state file is corrupt; kernel
    refusals propagate.
    """
    host.require_features(backend)
    previous = store.load(lab.name)
    if previous and previous.iptables != backend:
        raise BadInput(f"--iptables: lab {lab.name} is up with the {previous.iptables} backend "
                       f"(hint: netlab down {lab.name} first, or pass --iptables {previous.iptables})")
    _refuse_unclaimed(lab.name, previous, host.listed(names.lab_prefix(lab.name)))
    lab, allocations = next_lab(lab, previous)
    plan = build_plan(lab, allocations)
    state = state_for(lab, allocations, scenario, plan)
    state.iptables = backend
    owned_before = previous.netns if previous else []
    # Record every namespace we may own before creating any.
    state.netns = sorted(set(owned_before) | set(state.netns))
    state.supervisor_pid = previous.supervisor_pid if previous else None
    state.actual_tasks = previous.actual_tasks if previous else ()
    store.save(state)
    stale = [n for n in owned_before if n not in {ns.name for ns in plan.netns}]
    stats = host.kernel.apply(_cut(plan, lab), backend, stale, progress)
    apps = endpoints(lab, allocations)
    pid = state.supervisor_pid
    if pid and host.supervisor_running(pid):
        progress("updating the task apps")
        host.update_supervisor(pid, apps, timeout=APP_READY_TIMEOUT)
    else:
        progress("starting the task apps")
        pid = host.start_supervisor(apps, store.log_path(lab.name),
                                    ready_timeout=APP_READY_TIMEOUT)
    state.netns = [ns.name for ns in plan.netns]
    state.supervisor_pid = pid
    state.actual_tasks = running(lab)
    state.complete = True
    store.save(state)
    return UpResult(lab, allocations, plan, stats, pid)


def _refuse_unclaimed(lab: str, previous: LabState | None, existing: list[str]) -> None:
    """Raise BadInput when namespaces of ``lab`` exist that its state file does not list.

    They are left from a lab of the same name whose state is lost (or from
    another store): ``up`` would otherwise adopt and rewire them.
    """
    claimed = set(previous.netns) if previous else set()
    unclaimed = [n for n in existing if n not in claimed]
    if unclaimed:
        raise BadInput(f"LAB: {len(unclaimed)} namespaces named {names.lab_prefix(lab)}* exist "
                       f"that no state file of this store claims ({', '.join(unclaimed[:3])}"
                       f"{', …' if len(unclaimed) > 3 else ''}) (hint: netlab down {lab}, "
                       "or pick another name with --name)")


def _supervisors_of(lab: str, store: StateStore, host: Host) -> list[int]:
    """Pids of ``lab``'s supervisors, found by the endpoints file in their command line."""
    return host.find_supervisors(str(supervisor.endpoints_path_for(store.log_path(lab))))


def _files_of(lab: str, store: StateStore) -> list[str]:
    """The names of ``lab``'s files in the store besides its state: the log,
    the apps' endpoints and status files."""
    log = store.log_path(lab)
    endpoints = supervisor.endpoints_path_for(log)
    return [log.name, endpoints.name, status_path_for(endpoints).name]


def down(lab: str, store: StateStore, host: Host = Host()) -> DownResult:
    """Remove everything ``lab`` owns; succeeds on leftovers.

    Raises BadInput when ``lab`` is not a lab name, when not root, and when
    there is nothing of ``lab`` at all (no state file, no ``nl-<lab>.``
    namespace, no supervisor, no file). A corrupt state file is moved aside,
    reported in the result, and the lab is removed all the same.
    """
    check_lab(lab)
    if not host.is_root():
        raise BadInput("netlab down must run as root (hint: sudo netlab down …)")
    corrupt = None
    try:
        state = store.load(lab)
    except CorruptState as err:
        state, corrupt = None, str(err)
    pids = ([state.supervisor_pid] if state and state.supervisor_pid else [])
    pids += [p for p in _supervisors_of(lab, store, host) if p not in pids]
    prefix = names.lab_prefix(lab)
    owned = set(state.netns if state else []) | set(host.listed(prefix))
    # Names from the state file were checked when it was read; check again
    # what is about to be deleted.
    owned = {n for n in owned if names.owned_by(lab, n)}
    files = _files_of(lab, store)
    if state is None and corrupt is None and not owned and not pids \
            and not store.has_files(lab, files):
        known = store.labs()
        raise BadInput(f"LAB: no lab named {lab!r} here: no state file, no {prefix}* namespace, "
                       "no task apps (hint: " + (f"known labs: {', '.join(known)})" if known
                                                 else "no lab is up)"))
    stopped = False
    for pid in pids:
        if host.supervisor_running(pid):
            host.stop_supervisor(pid)
            stopped = True
    # Tasks first, the LAN last: fewer links die with a still-used peer.
    lan = names.lan_ns(lab)
    removed = host.kernel.teardown(sorted(owned, key=lambda n: (n == lan, n)))
    # The log, the apps' endpoints and status files, by their exact names;
    # the state file goes last (a corrupt one was moved aside and is kept).
    store.remove_files(lab, files)
    return DownResult(removed, stopped, store.remove(lab) if corrupt is None else False, corrupt)


def down_all(store: StateStore, host: Host = Host()) -> DownAllResult:
    """``down`` every lab this store holds a valid state file for.

    A corrupt state file is reported and moved aside, and its lab left alone
    (``netlab down LAB`` removes it). ``nl-`` namespaces that no valid state
    file claims are listed in the result, never removed: netlab cannot prove
    they are its own. Raises BadInput when not root.
    """
    if not host.is_root():
        raise BadInput("netlab down must run as root (hint: sudo netlab down …)")
    downed, corrupt = [], []
    for lab in store.labs():
        try:
            state = store.load(lab)
        except CorruptState as err:
            corrupt.append(str(err))
            continue
        if state is not None:
            downed.append((lab, down(lab, store, host)))
    return DownAllResult(tuple(downed), tuple(corrupt), tuple(host.listed(names.PREFIX)))


@dataclass(frozen=True)
class TaskChange:
    """A task a change started or shut down: where it ran and its address."""

    service: str
    slot: int
    node: str
    address: str

    @property
    def task(self) -> str:
        return f"{self.service}.{self.slot}"


@dataclass(frozen=True)
class ScaleResult:
    lab: Lab
    allocations: Allocations
    plan: Plan
    added: tuple[TaskChange, ...]
    removed: tuple[TaskChange, ...]
    stats: kernel_apply.ApplyStats | None     # None when nothing changed


def _weighted(plan: Plan, addresses: set[str], weight: int) -> Plan:
    """``plan`` with its IPVS destinations at ``addresses`` given ``weight``."""
    return replace(plan, ipvs=tuple(
        replace(s, dests=tuple(replace(d, weight=weight) if d.addr in addresses else d
                               for d in s.dests))
        for s in plan.ipvs))


def _changes(lab: Lab, a: Allocations, other: Lab) -> tuple[TaskChange, ...]:
    """The tasks of ``lab`` (addressed by ``a``) that ``other`` does not run: a task is
    its name on its node (moved to another node, it is a new task)."""
    theirs = {(t.name, t.node) for t in other.tasks}
    return tuple(TaskChange(t.service, t.slot, t.node, str(a.tasks[t.name].ingress_ip))
                 for t in lab.tasks if (t.name, t.node) not in theirs)


def loaded(lab_name: str, store: StateStore) -> LabState:
    """The state of the lab ``lab_name``; raises BadInput when it is not a lab name or
    no such lab is up, CorruptState for a corrupt state file."""
    check_lab(lab_name)
    state = store.load(lab_name)
    if state is None:
        known = store.labs()
        raise BadInput(f"LAB: no lab named {lab_name!r} is up (hint: "
                       + (f"known labs: {', '.join(known)})" if known else "netlab up SCENARIO)"))
    return state


def _cut(plan: Plan, lab: Lab) -> Plan:
    """``plan`` without the LAN ports of nodes that are down: applying it leaves
    them down (the kernel's apply brings up every port it is given)."""
    down = {names.lan_port(n.name) for n in lab.nodes if n.state == "down"}
    if not down:
        return plan
    lan = names.lan_ns(lab.name)
    return replace(plan, veths=tuple(v for v in plan.veths
                                     if not (v.a.netns == lan and v.a.name in down)))


def _converge(state: LabState, after: Lab, store: StateStore, progress: Progress,
              host: Host, why: str) -> ScaleResult:
    """Move the lab of ``state`` to the model ``after`` (same nodes and services,
    tasks changed), task by task as Swarm and libnetwork do; see :func:`scale`.
    ``why`` names the change (``scale hello-a=1``) in the history of the tasks it ends.

    Raises BadInput when the lab's task apps are not running; kernel
    refusals and supervisor errors propagate.
    """
    before, old_alloc = state.model, state.allocations
    allocations = ipam.allocate(after, old_alloc)
    plan = build_plan(after, allocations)
    added = _changes(after, allocations, before)
    removed = _changes(before, old_alloc, after)
    if not added and not removed:
        state.model, state.allocations = after, allocations
        store.save(state)
        return ScaleResult(after, allocations, plan, (), (), None)
    pid = state.supervisor_pid
    if not (pid and host.supervisor_running(pid)):
        raise BadInput(f"LAB: the task apps of {state.lab} are not running "
                       f"(hint: netlab up {state.scenario} restarts them)")
    old_plan = build_plan(before, old_alloc)
    new_state = state_for(after, allocations, state.scenario, plan)
    new_state.iptables, new_state.supervisor_pid = state.iptables, state.supervisor_pid
    # Record every namespace we may own before creating any.
    new_state.netns = sorted(set(state.netns) | set(new_state.netns))
    new_state.actual_tasks = state.actual_tasks
    store.save(new_state)
    gone = {c.address for c in removed}
    if gone:
        progress(f"deweighting {len(gone)} IPVS destinations (weight 0) on every sandbox")
        host.kernel.set_weights(old_plan, gone, 0)
        progress("stopping the removed tasks' apps")
        ended = {(c.task, c.node) for c in removed}
        host.update_supervisor(pid, [e for e in endpoints(before, old_alloc)
                                     if (e.task, e.node) not in ended],
                               timeout=APP_READY_TIMEOUT)
        # Their namespaces go now: a task restarted on another node keeps its
        # name, and so its namespace's name, which must not be reused as it is.
        progress(f"removing {len(removed)} task namespaces")
        host.kernel.teardown([names.task_ns(state.lab, c.task) for c in removed])
    fresh = {c.address for c in added}
    stale = [n for n in state.netns if n not in {ns.name for ns in plan.netns}]
    stats = host.kernel.apply(_cut(_weighted(plan, fresh, 0), after), state.iptables, stale,
                              progress)
    if fresh:
        progress("starting the new tasks' apps")
        host.update_supervisor(pid, endpoints(after, allocations), timeout=APP_READY_TIMEOUT)
        host.kernel.set_weights(plan, fresh, 1)
    ended_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    history = tuple(TaskRecord(c.service, c.slot, c.node, "shutdown", c.address, ended_at, why)
                    for c in removed)
    earlier = tuple(t for t in state.desired_tasks if t.state != "running")
    new_state.netns = [ns.name for ns in plan.netns]
    new_state.desired_tasks = earlier + history + running(after)
    new_state.actual_tasks = earlier + history + running(after)
    new_state.complete = True
    store.save(new_state)
    return ScaleResult(after, allocations, plan, added, removed, stats)


def scale(lab_name: str, replicas: dict[str, int], store: StateStore,
          progress: Progress = lambda _m: None, host: Host = Host()) -> ScaleResult:
    """``docker service scale``: set each service's replicas and converge every node.

    Works from the state file alone (never the scenario). The new model comes
    from :func:`netlab.model.scale` (swarmkit's scale-down and slot rules),
    the addresses from :func:`netlab.ipam.allocate` (tasks that stay keep
    theirs, new ones take the next free ones). Steps, as libnetwork:

    1. removed tasks' IPVS destinations are set to weight 0 in every sandbox
       (``rmLBBackend`` deweighting: no new connection goes to them);
    2. the supervisor stops serving the removed tasks;
    3. the removed tasks' namespaces go; the kernel converges to the new
       plan, new tasks' destinations at weight 0: the removed tasks' FDB and
       neighbour entries go on every node, then their IPVS destinations;
    4. the supervisor starts serving the new tasks, and only then are their
       destinations given weight 1 (``addLBBackend`` once the task runs).

    The state records the new model and allocations, the tasks desired and
    running, and each removed task as history in state ``shutdown``. Raises
    BadInput (exit 2) for an unknown lab or service, a negative count, when
    not root, or when no node may run a new task; MissingFeature (exit 3)
    when the kernel lacks what the lab needs; kernel refusals propagate.
    """
    state = loaded(lab_name, store)
    before = state.model
    for service, count in replicas.items():
        if service not in {s.name for s in before.services}:
            raise BadInput(f"SERVICE: lab {lab_name} has no service {service!r} "
                           f"(hint: one of {', '.join(s.name for s in before.services)})")
        if type(count) is not int or count < 0:
            raise BadInput(f"SERVICE=N: {service}={count!r} is not a number of replicas "
                           "(hint: a whole number, 0 or more)")
    if not host.is_root():
        raise BadInput("netlab scale must run as root (hint: sudo netlab scale …)")
    host.require_features(state.iptables)
    try:
        after = model_scale(before, replicas)
    except ValueError as err:
        raise BadInput(f"SERVICE: no node may run a new task of {err} "
                       "(hint: check its constraints and the nodes' availability)") from None
    why = "scale " + " ".join(f"{s}={n}" for s, n in replicas.items())
    return _converge(state, after, store, progress, host, why)


NODE_ACTIONS = ("down", "up", "drain", "active")


def node(lab_name: str, node_name: str, action: str, store: StateStore,
         progress: Progress = lambda _m: None, host: Host = Host()) -> ScaleResult:
    """``netlab node LAB NODE down|up|drain|active``: a node fails, comes back, is drained.

    - ``down``: the node's port on the LAN bridge (``veth-<node>`` in the
      ``lan`` namespace) goes down, a crash as the other nodes see it; the
      node is marked down and its tasks restart elsewhere;
    - ``drain``: the node stays on the LAN (its mesh still answers) and its
      tasks restart elsewhere;
    - ``up`` / ``active``: undo; no task moves back (Swarm does not rebalance).

    As swarmkit's replicated orchestrator (``manager/orchestrator/replicated/
    tasks.go``, ``handleNodeChange``): a node drained or seen DOWN has its
    tasks restarted (``restartTasksByNodeID``): each is shut down and a new
    task of the same slot is placed by the scheduler's rules (see
    :func:`netlab.model.place_tasks`) on a ready, active node, with new
    addresses. The task namespaces of a down node are removed here (on a real
    Swarm they are shut down when the node comes back). The change then
    converges as a scale does (see :func:`scale`). Raises BadInput for an
    unknown lab, node or action, when not root, or when no node may run a
    moved task.
    """
    state = loaded(lab_name, store)
    before = state.model
    if action not in NODE_ACTIONS:
        raise BadInput(f"ACTION: {action!r} is not one of {', '.join(NODE_ACTIONS)} "
                       f"(hint: netlab node {lab_name} {node_name} down)")
    if node_name not in {n.name for n in before.nodes}:
        raise BadInput(f"NODE: lab {lab_name} has no node {node_name!r} "
                       f"(hint: one of {', '.join(n.name for n in before.nodes)})")
    if not host.is_root():
        raise BadInput("netlab node must run as root (hint: sudo netlab node …)")
    host.require_features(state.iptables)
    change = {"down": {"state": "down"}, "up": {"state": "ready"},
              "drain": {"availability": "drain"}, "active": {"availability": "active"}}[action]
    nodes = tuple(replace(n, **change) if n.name == node_name else n for n in before.nodes)
    try:
        after = restart_off(replace(before, nodes=nodes))
    except ValueError as err:
        raise BadInput(f"NODE: no other node may run the tasks of {err} "
                       f"(hint: netlab node {lab_name} {node_name} up|active)") from None
    lan, port = names.lan_ns(lab_name), names.lan_port(node_name)
    if action == "down":
        progress(f"cutting {node_name} off the LAN ({port} down)")
        host.kernel.set_link(lan, port, False)
    result = _converge(state, after, store, progress, host, f"node {node_name} {action}")
    if action == "up":
        progress(f"bringing {node_name} back on the LAN ({port} up)")
        host.kernel.set_link(lan, port, True)
    return result
