"""Changes to a running lab: ``scale`` and ``node``, converged task by task.

Both work from the lab's state file alone. The new model comes from
:mod:`netlab.model` (swarmkit's rules), the addresses from
:mod:`netlab.ipam`, and :func:`_converge` moves every node there as
libnetwork does: removed tasks' IPVS destinations go to weight 0 on every
sandbox (the ingress_sbox and each user network's ``lb-<net>``) before
their apps and namespaces go; new tasks' destinations get weight 1 only
once their apps serve.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from netlab import changelog, ipam
from netlab.docker import tasks as ctasks
from netlab.errors import BadInput
from netlab.ipam import Allocations
from netlab.kernel import apply as kernel_apply
from netlab.lifecycle import (
    ACTIVE_STATES, APP_READY_TIMEOUT, Host, Progress, _cut, _kept_resolvers, endpoints, loaded,
    resolvers, running, state_for, supervisor_serves, task_records, unbound, weighted, hidden,
)
from netlab.model import Lab, Node, TaskRecord, restart_off, task_name
from netlab.model import scale as model_scale
from netlab.plan import names, size
from netlab.plan.build import build_plan, netns_of
from netlab.plan.scope import change_scope
from netlab.plan.types import Plan
from netlab.scenario.services import REPLICAS_MAX
from netlab.state import LabState, StateStore, check_lab


@dataclass(frozen=True)
class TaskChange:
    """A task a change started or shut down: where it ran and its address."""

    service: str
    slot: int
    node: str
    address: str                                  # its eth0's (its first network's)
    addresses: tuple[str, ...] = ()               # every overlay address (IPVS destinations)
    instance: int = 0

    @property
    def task(self) -> str:
        return task_name(self.service, self.slot, self.instance)


@dataclass(frozen=True)
class ScaleResult:
    lab: Lab
    allocations: Allocations
    plan: Plan                  # what the change touched: the new plan in those namespaces
    added: tuple[TaskChange, ...]
    removed: tuple[TaskChange, ...]
    stats: kernel_apply.ApplyStats | None     # None when nothing changed


def _changes(lab: Lab, a: Allocations, other: Lab) -> tuple[TaskChange, ...]:
    """The tasks of ``lab`` (addressed by ``a``) that ``other`` does not run: a task is
    its name on its node (moved to another node, it is a new task)."""
    theirs = {(t.name, t.node) for t in other.tasks}
    return tuple(TaskChange(t.service, t.slot, t.node, str(a.primary_ip(t.name, lab)),
                            tuple(str(ip) for ip in a.addresses_of(t.name)), t.instance)
                 for t in lab.tasks if (t.name, t.node) not in theirs)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a change runs (then as it was): the lab's
    model, allocations and plans are some million objects that every collection
    walks, about a third of a change's CPU at 1,000 tasks; a change makes few
    cycles, and reference counting frees the rest as it goes."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass(frozen=True)
class Ending:
    """How a change ends a task when it is not a plain shutdown: the end state
    (``failed``, ``complete``) and Docker's message (``task: non-zero exit (137)``)
    the task's history keeps."""

    state: str
    message: str


def _converge(state: LabState, after: Lab, store: StateStore, progress: Progress,
              host: Host, change: tuple[str, str], ending: dict[str, Ending] | None = None,
              gossip_delay: float = 0.0) -> ScaleResult:
    """See :func:`_changed` (run with the cycle collector paused; the caller holds
    the lab's change lock and loaded ``state`` under it)."""
    with _collector_paused():
        return _changed(state, after, store, progress, host, change, ending or {},
                        gossip_delay)


def _changed(state: LabState, after: Lab, store: StateStore, progress: Progress,
             host: Host, change: tuple[str, str], ending: dict[str, Ending] | None = None,
             gossip_delay: float = 0.0) -> ScaleResult:
    """Move the lab of ``state`` to the model ``after`` (same nodes and services,
    tasks changed), task by task as Swarm and libnetwork do; see :func:`scale`.
    ``change`` (kind, what) goes to the lab's change log, stamped converged at the
    end, and names the change in the history of the tasks it ends (``ending``
    gives a task's end state and message instead). ``gossip_delay`` seconds pass
    between the removed tasks' weight 0 and their apps' stop (the swarm
    executor's ``Shutdown``: ``defaultGossipConvergeDelay``). A new task of a
    service with a health check keeps weight 0 and is recorded ``starting``: the
    manager adds it to the load balancers once it is healthy (:func:`bind`).

    Raises BadInput when the lab's task apps are not running or a subnet has no
    address left for a new task (naming the change's field); kernel refusals and
    supervisor errors propagate.
    """
    before, old_alloc = state.model, state.allocations
    try:
        allocations = ipam.allocate(after, old_alloc)
    except ipam.AddressSpaceExhausted as err:   # before any change: name what was asked
        field = {"scale": "SERVICE=N", "node": "NODE"}.get(change[0], "LAB")
        raise BadInput(f"{field}: {err}") from None
    added = _changes(after, allocations, before)
    removed = _changes(before, old_alloc, after)
    # A change cut short (killed) left the state incomplete: this one converges
    # every namespace, whatever the earlier one reached.
    resume = not state.complete
    state.changes = changelog.begin(state.changes, *change)
    if not added and not removed and not resume:
        state.model, state.allocations = after, allocations
        state.changes = changelog.converged(state.changes)
        store.save(state)
        return ScaleResult(after, allocations, Plan(after.name), (), (), None)
    pid = state.supervisor_pid
    if not supervisor_serves(state, store, host.process):
        raise BadInput(f"LAB: the task apps of {state.lab} are not running "
                       f"(hint: netlab up {state.scenario} restarts them)")
    in_containers = state.tasks == "containers"
    runtime = host.containers(state.docker) if in_containers else None
    # Only the namespaces the change can touch are built, before and after; their
    # overlay entries shared (see netlab.plan.scope and kernel.apply.diff).
    scope = None if resume else change_scope(before, old_alloc, after, allocations)
    memo: dict = {}
    # The peers each node's NetworkDB holds failed stay hidden from its load balancers.
    failed = state.gossip_failed
    plan = hidden(build_plan(after, allocations, scope=scope, memo=memo), after, allocations,
                  failed)
    old_plan = hidden(build_plan(before, old_alloc, scope=scope, memo=memo), before, old_alloc,
                      failed)
    every_netns = netns_of(after)
    new_state = state_for(after, allocations, state.scenario, Plan(after.name, netns=every_netns))
    new_state.iptables, new_state.supervisor_pid = state.iptables, state.supervisor_pid
    new_state.supervisor_started = state.supervisor_started
    new_state.tasks, new_state.docker = state.tasks, state.docker
    new_state.manager_pid, new_state.manager_started = state.manager_pid, state.manager_started
    new_state.time_scale, new_state.updates = state.time_scale, dict(state.updates)
    new_state.gossip_failed = dict(failed)
    new_state.containers = dict(state.containers)
    # Record every namespace we may own before creating any.
    new_state.netns = sorted(set(state.netns) | set(new_state.netns))
    new_state.actual_tasks = state.actual_tasks
    new_state.changes = state.changes
    store.save(new_state)
    gone = {ip for c in removed for ip in c.addresses}
    if gone:
        progress(f"deweighting {len(gone)} IPVS destinations (weight 0) on every sandbox")
        host.kernel.set_weights(old_plan, gone, 0)
        if gossip_delay > 0:
            progress(f"waiting {gossip_delay:g} s for the weight 0 to spread (gossip delay)")
            time.sleep(gossip_delay)
        progress("stopping the removed tasks' apps")
        ended = {(c.task, c.node) for c in removed}
        host.update_supervisor(pid, [e for e in endpoints(before, old_alloc, in_containers)
                                     if (e.task, e.node) not in ended],
                               timeout=APP_READY_TIMEOUT,
                               dns=_kept_resolvers(before, after, allocations, ended))
        # Their namespaces go now: a task restarted on another node keeps its
        # name, and so its namespace's name, which must not be reused as it is.
        gone_ns = [names.task_ns(state.lab, c.task) for c in removed]
        if runtime is not None:
            progress(f"removing {len(removed)} task containers")
            ctasks.remove(gone_ns, new_state.containers, runtime, lambda: store.save(new_state))
        progress(f"removing {len(removed)} task namespaces")
        host.kernel.teardown(gone_ns)
    fresh = {ip for c in added for ip in c.addresses}
    planned = {ns.name for ns in every_netns}
    stale = [n for n in state.netns if n not in planned]
    started: list[ctasks.TaskContainer] = []
    if runtime is not None:
        started = ctasks.start(ctasks.specs(after, allocations), new_state.containers,
                               set(host.listed(names.lab_prefix(state.lab))), runtime,
                               host.kernel, lambda: store.save(new_state), progress)
    # Only what differs from the plan the kernel holds is read and written.
    waiting = unbound(state.actual_tasks, before, old_alloc)   # starting: not bound yet
    stats = host.kernel.apply(_cut(weighted(plan, fresh | waiting, 0), after), state.iptables,
                              stale, progress,
                              before=None if resume else _cut(weighted(old_plan, waiting, 0), before))
    if fresh or resume:
        progress("starting the new tasks' apps")
        host.update_supervisor(pid, endpoints(after, allocations, in_containers),
                               timeout=APP_READY_TIMEOUT, dns=resolvers(after, allocations))
        if started:
            progress("waiting for the new task containers to serve")
            ctasks.wait_serving(started, host.kernel, APP_READY_TIMEOUT)
        checked = {c.task for c in added if after.service(c.service).healthcheck is not None}
        host.kernel.set_weights(plan, {ip for c in added if c.task not in checked
                                       for ip in c.addresses}, 1)
    ended_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    why = " ".join(change)         # "scale hello-a=1", "node node2 down": in the task history
    ending = ending or {}
    history = tuple(TaskRecord(c.service, c.slot, c.node,
                               ending[c.task].state if c.task in ending else "shutdown",  # type: ignore[arg-type]
                               c.address, ended_at,
                               ending[c.task].message if c.task in ending else why,
                               c.instance)
                    for c in removed)
    earlier = tuple(t for t in state.desired_tasks if t.state not in ACTIVE_STATES)
    # A task still starting (waiting to be healthy) stays so; a new checked one starts so.
    actual = task_records(after, state.actual_tasks)
    new_state.netns = [ns.name for ns in every_netns]
    new_state.desired_tasks = earlier + history + running(after)
    new_state.actual_tasks = earlier + history + actual
    new_state.complete = True
    new_state.changes = changelog.converged(new_state.changes)
    store.save(new_state)
    return ScaleResult(after, allocations, plan, added, removed, stats)


def check_size(lab: Lab, field: str, replicas: dict[str, int]) -> None:
    """Refuse, before any task is placed, a change whose plan would pass
    :data:`netlab.plan.size.MAX_PLAN_ITEMS` (the scenario loader's limit): raises
    BadInput naming ``field``, with the most replicas the first service may have."""
    networks = [n.name for n in lab.networks]
    found = size.estimate(len(lab.nodes), lab.services, networks, replicas)
    if found.fits:
        return
    hint = "netlab down, and up a smaller scenario"
    for service in replicas:
        most = size.most_replicas(len(lab.nodes), lab.services, networks, replicas, service,
                                  REPLICAS_MAX)
        if most > 0:
            hint = (f"at most {service}={most} with the other counts as asked, on "
                    f"{len(lab.nodes)} nodes")
            break
    else:
        if replicas:
            hint = "fewer replicas of every service named: each alone passes the limit"
    raise BadInput(f"{field}: {size.too_big(found)} (hint: {hint})")


def scale(lab_name: str, replicas: dict[str, int], store: StateStore,
          progress: Progress = lambda _m: None, host: Host = Host()) -> ScaleResult:
    """See :func:`_scale`; run under the lab's change lock (one change at a time)."""
    check_lab(lab_name)
    with store.locked(lab_name, progress):
        return _scale(lab_name, replicas, store, progress, host)


def node(lab_name: str, node_name: str, action: str, store: StateStore,
         progress: Progress = lambda _m: None, host: Host = Host()) -> ScaleResult:
    """See :func:`_node`; run under the lab's change lock (one change at a time)."""
    check_lab(lab_name)
    with store.locked(lab_name, progress):
        return _node(lab_name, node_name, action, store, progress, host)


def _scale(lab_name: str, replicas: dict[str, int], store: StateStore,
           progress: Progress, host: Host) -> ScaleResult:
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
        if type(count) is not int or not 0 <= count <= REPLICAS_MAX:
            raise BadInput(f"SERVICE=N: {service}={count!r} is not a number of replicas "
                           f"(hint: a whole number from 0 to {REPLICAS_MAX:,})")
    check_size(before, "SERVICE=N", replicas)
    if not host.is_root():
        raise BadInput("netlab scale must run as root (hint: sudo netlab scale …)")
    host.require_features(state.iptables)
    try:
        after = model_scale(before, replicas)
    except ValueError as err:
        raise BadInput(f"SERVICE: no node may run a new task of {err} "
                       "(hint: check its constraints and the nodes' availability)") from None
    what = " ".join(f"{s}={n}" for s, n in replicas.items())
    return _converge(state, after, store, progress, host, ("scale", what))


NODE_ACTIONS = ("down", "up", "drain", "active")


def cut(lab_name: str, node_name: str, action: str, store: StateStore,
        progress: Progress = lambda _m: None, host: Host = Host()) -> str:
    """``netlab node LAB NODE down|up`` on a lab with a manager: only the node's LAN
    port goes down (or up); the manager notices its heartbeats stop (or come
    back) and acts (see :mod:`netlab.manager`). Returns the port's name; the
    step goes to the event log. Raises BadInput for an unknown lab or node or
    when not root. Under the change lock."""
    from netlab.manager.events import event
    from netlab.manager.process import events_name
    check_lab(lab_name)
    with store.locked(lab_name, progress):
        state = loaded(lab_name, store)
        if node_name not in {n.name for n in state.model.nodes}:
            raise BadInput(f"NODE: lab {lab_name} has no node {node_name!r} "
                           f"(hint: one of {', '.join(n.name for n in state.model.nodes)})")
        if not host.is_root():
            raise BadInput("netlab node must run as root (hint: sudo netlab node …)")
        lan, port = names.lan_ns(lab_name), names.lan_port(node_name)
        host.kernel.set_link(lan, port, action == "up")
        what = "cut off the LAN" if action == "down" else "back on the LAN"
        store.append_file(lab_name, events_name(lab_name), event(
            "node", node_name, "cut" if action == "down" else "uncut",
            f"{what}: lan/{port} {action} (netlab node {action})").to_line())
        return f"lan/{port}"


def noticed(lab_name: str, node_name: str, action: str, why: str, store: StateStore,
            progress: Progress = lambda _m: None, host: Host = Host()) -> ScaleResult:
    """What the lab's manager does once it noticed a node's state (see
    :mod:`netlab.manager`): ``down`` restarts its tasks elsewhere and marks it
    down, ``up`` marks it ready again; the node's LAN port is left as it is
    (whatever cut it). ``why`` goes to the change log. Under the change lock."""
    check_lab(lab_name)
    with store.locked(lab_name, progress):
        return _node(lab_name, node_name, action, store, progress, host, link=False, why=why)


def _node(lab_name: str, node_name: str, action: str, store: StateStore,
          progress: Progress, host: Host, link: bool = True, why: str = "") -> ScaleResult:
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
    check_size(before, "NODE", {})
    if not host.is_root():
        raise BadInput("netlab node must run as root (hint: sudo netlab node …)")
    host.require_features(state.iptables)
    changes: dict[str, Callable[[Node], Node]] = {
        "down": lambda n: replace(n, state="down"), "up": lambda n: replace(n, state="ready"),
        "drain": lambda n: replace(n, availability="drain"),
        "active": lambda n: replace(n, availability="active")}
    change = changes[action]
    nodes = tuple(change(n) if n.name == node_name else n for n in before.nodes)
    try:
        after = restart_off(replace(before, nodes=nodes))
    except ValueError as err:
        raise BadInput(f"NODE: no other node may run the tasks of {err} "
                       f"(hint: netlab node {lab_name} {node_name} up|active)") from None
    lan, port = names.lan_ns(lab_name), names.lan_port(node_name)
    if action == "down" and link:
        progress(f"cutting {node_name} off the LAN ({port} down)")
        host.kernel.set_link(lan, port, False)
    result = _converge(state, after, store, progress, host,
                       ("node", f"{node_name} {action}" + (f": {why}" if why else "")))
    if action == "up" and link:
        progress(f"bringing {node_name} back on the LAN ({port} up)")
        host.kernel.set_link(lan, port, True)
        back = loaded(lab_name, store)   # converged once the node is back on the LAN
        back.changes = changelog.converged(back.changes)
        store.save(back)
    return result
