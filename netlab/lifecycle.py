"""A lab's life: ``up`` (build or converge) and ``down`` (remove everything it owns).

Changes to a running lab (``scale``, ``node``) are in :mod:`netlab.converge`.

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
from dataclasses import dataclass, field, replace
from collections.abc import Callable

from netlab import changelog, ipam, savecache
from netlab.docker import connect as dconnect
from netlab.docker import tasks as ctasks
from netlab.docker.tasks import ContainerRuntime
from netlab.errors import BadInput
from netlab.ipam import Allocations
from netlab.kernel import apply as kernel_apply
from netlab.kernel import features, netns, procs
from netlab.kernel.interface import Kernel, LinuxKernel
from netlab.kernel.procs import ProcessInfo
from netlab.kernel.xtables import Backend
from netlab.model import Lab, TaskRecord, new_task, reschedule
from netlab.plan import dns, names
from netlab.plan.build import build_plan, node_namespaces
from netlab.plan.discovery import records_for_task
from netlab.plan.types import Plan
from netlab.state import CorruptState, LabState, StateStore, check_lab
from netlab.updates import UpdateStatus
from netlab.manager import control as manager_control
from netlab.manager import process as manager_process
from netlab.workload import supervisor
from netlab.workload.app import status_path_for
from netlab.workload.faults import faults_path_for
from netlab.workload.endpoints import AppEndpoint, DnsEndpoint

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
    containers_removed: int = 0     # task containers (tasks run as containers)
    containers_left: str | None = None   # why some could not be removed (Docker unreachable)


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


def _docker(url: str | None) -> ContainerRuntime:
    from netlab.docker import engine       # the docker SDK, imported when tasks are containers
    return engine.runtime(url)


@dataclass(frozen=True)
class Host:
    """What ``up`` and ``down`` ask of the machine: the kernel and the processes.

    The defaults are the real thing; tests pass fakes (a fake :class:`Kernel`
    among them) to exercise ``up`` and ``down`` without root.
    """

    is_root: Callable[[], bool] = _is_root
    listed: Callable[[str], list[str]] = _listed
    kernel: Kernel = field(default_factory=LinuxKernel)
    require_features: Callable[[Backend], None] = _require_features
    find_supervisors: Callable[[str], list[int]] = supervisor.find
    process: Callable[[int], ProcessInfo | None] = procs.read   # /proc/<pid>, None if none
    stop_supervisor: Callable[..., None] = supervisor.stop       # (pid, identity=...)
    start_supervisor: Callable[..., int] = supervisor.start
    update_supervisor: Callable[..., None] = supervisor.update
    containers: Callable[[str | None], ContainerRuntime] = _docker   # Docker URL -> runtime
    start_manager: Callable[[StateStore, str], int] = manager_control.start   # (store, lab) -> pid
    stop_manager: Callable[[int], None] = manager_control.stop
    find_managers: Callable[[str], list[int]] = manager_control.find          # state file -> pids


def endpoints(lab: Lab, allocations: Allocations, containers: bool = False) -> list[AppEndpoint]:
    """The app each task runs: one listener per (protocol, target port), and per
    exposed port (tcp) of a service on user networks; with ``containers``, only
    what the tasks' containers do not serve (see :mod:`netlab.docker.tasks`).

    Two published ports may lead to one target (``["8080:80", "8081:80"]``,
    which Swarm accepts): both REDIRECT to the same socket. Host-mode ports
    listen too: the app binds every address, the node DNATs to the gwbridge one.
    The app names its task by the address of its ``eth0`` (its first network),
    and reports its service's image.
    """
    out = []
    for task in lab.tasks:
        service = lab.service(task.service)
        targets = dict.fromkeys([(p.protocol, p.target) for p in service.ports]
                                + [("tcp", port) for port in service.expose])
        for protocol, target in targets:
            if ctasks.serves_in_container(containers, protocol):
                continue
            out.append(AppEndpoint(
                netns=names.task_ns(lab.name, task.name), service=service.name, task=task.name,
                node=task.node, task_ip=str(allocations.primary_ip(task.name, lab)),
                port=target, protocol=protocol, image=task.image,
                failing_health=_failing_health(service, task)))
    return out


#: A task whose environment sets this to ``fail`` fails its health check: a version
#: that cannot pass, to watch an update roll back (``netlab update --env``).
FAIL_HEALTH = "NETLAB_APP_HEALTH"


def _failing_health(service, task) -> str:
    """The health check's path ``task``'s app fails (503), or "" (see FAIL_HEALTH)."""
    if service.healthcheck is None or dict(task.env).get(FAIL_HEALTH) != "fail":
        return ""
    return service.healthcheck.path


def resolvers(lab: Lab, allocations: Allocations) -> list[DnsEndpoint]:
    """Each task's embedded DNS server: its port (as the plan's DNAT names it) and
    records (:func:`netlab.plan.discovery.records_for_task`). Tasks on the same
    networks resolve the same names, so each set of networks is looked up once."""
    tables: dict[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]] = {}
    out = []
    for t in lab.tasks:
        networks = lab.service(t.service).networks
        if networks not in tables:
            tables[networks] = tuple(sorted(records_for_task(lab, allocations, t.name).items()))
        out.append(DnsEndpoint(netns=names.task_ns(lab.name, t.name), task=t.name, node=t.node,
                               port=dns.task_dns_port(lab, t), records=tables[networks]))
    return out


def _kept_resolvers(before: Lab, after: Lab, allocations: Allocations,
                    ended: set[tuple[str, str]]) -> list[DnsEndpoint]:
    """The DNS servers of the tasks that stay, answering ``after``'s records already:
    a removed task's names go before its namespace does."""
    kept = {(t.name, t.node) for t in before.tasks} - ended
    return [d for d in resolvers(after, allocations) if (d.task, d.node) in kept]


def running(lab: Lab) -> tuple[TaskRecord, ...]:
    """The tasks of ``lab`` as records in the ``running`` state."""
    return tuple(TaskRecord(t.service, t.slot, t.node, "running", instance=t.instance)
                 for t in lab.tasks)


# The states of a task that runs: ``starting`` is one with a health check not yet
# healthy, which the load balancers do not have yet (see netlab.manager).
ACTIVE_STATES = ("running", "starting")


def task_records(lab: Lab, previous: tuple[TaskRecord, ...]) -> tuple[TaskRecord, ...]:
    """The actual records of ``lab``'s tasks: ``starting`` for a task with a health check
    that ``previous`` (the actual records before) did not have running on its node,
    or had starting; ``running`` for the rest."""
    was = {(t.name, t.node): t.state for t in previous if t.state in ACTIVE_STATES}
    return tuple(
        replace(r, state="starting")
        if lab.service(r.service).healthcheck is not None and was.get((r.name, r.node)) != "running"
        else r for r in running(lab))


def unbound(state_tasks: tuple[TaskRecord, ...], lab: Lab, allocations: Allocations) -> set[str]:
    """The addresses of the tasks recorded ``starting``: the load balancers give them
    weight 0 until the manager finds them healthy (the swarm executor activates a
    task's service binding only then)."""
    here = {(t.name, t.node) for t in lab.tasks}
    return {str(ip) for t in state_tasks if t.state == "starting" and (t.name, t.node) in here
            for ip in allocations.addresses_of(t.name)}


def weighted(plan: Plan, addresses: set[str], weight: int) -> Plan:
    """``plan`` with its IPVS destinations at ``addresses`` given ``weight``."""
    if not addresses:
        return plan
    return replace(plan, ipvs=tuple(
        replace(s, dests=tuple(replace(d, weight=weight) if d.addr in addresses else d
                               for d in s.dests))
        for s in plan.ipvs))


def hidden(plan: Plan, lab: Lab, allocations: Allocations,
           failed: dict[str, tuple[str, ...]]) -> Plan:
    """``plan`` without, in each node's load balancers (the IPVS services of its
    ingress_sbox and lb-<net> sandboxes), the destinations of the tasks on the
    peers that node's NetworkDB holds failed (``failed``: node -> peers). As
    libnetwork hides a failed node's entries and takes its tasks out of the
    node's load balancers (see :mod:`netlab.manager.gossip`)."""
    drop: dict[str, set[str]] = {}            # sandbox namespace -> addresses it hides
    for viewer, peers in failed.items():
        if viewer not in {n.name for n in lab.nodes}:
            continue
        gone = {str(ip) for t in lab.tasks if t.node in peers
                for ip in allocations.addresses_of(t.name)}
        if gone:
            for ns in node_namespaces(lab, viewer):
                drop.setdefault(ns, set()).update(gone)
    if not drop:
        return plan
    return replace(plan, ipvs=tuple(
        replace(s, dests=tuple(d for d in s.dests if d.addr not in drop[s.netns]))
        if s.netns in drop else s for s in plan.ipvs))


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
    # A task that stays keeps the spec it was made from: a new spec in the scenario is a
    # rolling update the manager carries out (see :func:`updates_of`), as a stack deploy.
    ran = {(t.name, t.node): t for t in previous.model.tasks}
    lab = replace(lab, tasks=tuple(
        replace(t, image=was.image, env=was.env) if (was := ran.get((t.name, t.node))) else t
        for t in lab.tasks))
    return lab, ipam.allocate(lab, previous.allocations)


def respec(lab: Lab, previous: LabState | None, now: float) -> tuple[Lab, dict[str, UpdateStatus]]:
    """``lab`` and its services' update statuses after ``up``. A service whose scenario
    gives it a new image or env (a redeploy, as ``docker stack deploy``) starts an
    update from the spec it had, which the manager carries out; one whose scenario
    still says what a ``netlab update`` replaced keeps the spec it was updated to
    (``up`` restarts a manager without undoing an update)."""
    if previous is None:
        return lab, {}
    out = {k: u for k, u in previous.updates.items() if k in {s.name for s in lab.services}}
    before = {s.name: s for s in previous.model.services}
    services = []
    for svc in lab.services:
        was = before.get(svc.name)
        if was is not None and (was.image, was.env) != (svc.image, svc.env):
            u = out.get(svc.name)
            if u is not None and (svc.image, svc.env) == (u.previous_image, u.previous_env):
                svc = replace(svc, image=was.image, env=was.env)       # updated since: kept
            else:
                out[svc.name] = UpdateStatus("updating", now, None,
                                             "update in progress (netlab up)", was.image, was.env)
        services.append(svc)
    lab = replace(lab, services=tuple(services))
    ran = {(t.name, t.node) for t in previous.model.tasks}
    return replace(lab, tasks=tuple(      # a new task runs the spec its service ends with
        t if (t.name, t.node) in ran else new_task(lab.service(t.service), t.slot, t.node)
        for t in lab.tasks)), out


def up(lab: Lab, scenario: str, store: StateStore, backend: Backend,
       progress: Progress = lambda _m: None, host: Host = Host(),
       tasks: str = "namespaces", docker: str | None = None,
       time_scale: float | None = None) -> UpResult:
    """Build ``lab`` or converge it to its scenario, its rules in ``backend``.

    A lab that is up changes incrementally from its state: its tasks stay
    where they run with their addresses (see :func:`next_lab`). With ``tasks``
    ``containers``, each task is a container of the Docker at ``docker``
    (default: the local socket) whose namespace netlab adopts and wires (see
    :mod:`netlab.docker.tasks`). Raises MissingFeature (exit 3) before
    changing anything when the kernel lacks IPVS, VXLAN, the backend or a
    needed match, or (containers) no Docker answers or the task image is
    missing; BadInput (exit 2) when the lab is up with another backend or
    tasks mode, or its state file is corrupt; kernel refusals propagate.
    """
    host.require_features(backend)
    with store.locked(lab.name, progress):
        return _up(lab, scenario, store, backend, progress, host, tasks, docker, time_scale)


def _up(lab: Lab, scenario: str, store: StateStore, backend: Backend, progress: Progress,
        host: Host, tasks: str, docker: str | None, time_scale: float | None) -> UpResult:
    """:func:`up`, under the lab's change lock."""
    previous = store.load(lab.name)
    if previous and previous.iptables != backend:
        raise BadInput(f"--iptables: lab {lab.name} is up with the {previous.iptables} backend "
                       f"(hint: netlab down {lab.name} first, or pass --iptables {previous.iptables})")
    if previous and previous.tasks != tasks:
        raise BadInput(f"--tasks: lab {lab.name} is up with its tasks as {previous.tasks} "
                       f"(hint: netlab down {lab.name} first, or pass --tasks {previous.tasks})")
    docker = docker or (previous.docker if previous else None)
    runtime = host.containers(docker) if tasks == "containers" else None
    if runtime is not None:
        runtime.check_image(ctasks.TASK_IMAGE)
    _refuse_unclaimed(lab.name, previous, host.listed(names.lab_prefix(lab.name)))
    lab, allocations = next_lab(lab, previous)
    lab, updates = respec(lab, previous, time.time())
    plan = build_plan(lab, allocations)
    state = state_for(lab, allocations, scenario, plan)
    state.iptables = backend
    owned_before = previous.netns if previous else []
    # Record every namespace we may own before creating any.
    state.netns = sorted(set(owned_before) | set(state.netns))
    state.supervisor_pid = previous.supervisor_pid if previous else None
    state.supervisor_started = previous.supervisor_started if previous else None
    state.actual_tasks = previous.actual_tasks if previous else ()
    state.changes = changelog.begin(previous.changes if previous else (), "up", scenario)
    state.tasks, state.docker = tasks, docker
    state.containers = dict(previous.containers) if previous else {}
    state.manager_pid = previous.manager_pid if previous else None
    state.manager_started = previous.manager_started if previous else None
    state.updates = updates
    state.time_scale = (time_scale if time_scale is not None
                        else previous.time_scale if previous else 1.0)
    store.save(state)
    stale = [n for n in owned_before if n not in {ns.name for ns in plan.netns}]
    started: list[ctasks.TaskContainer] = []
    if runtime is not None:
        wanted = ctasks.specs(lab, allocations)
        ctasks.remove([n for n in state.containers if n not in {s.netns for s in wanted}],
                      state.containers, runtime, lambda: store.save(state))
        started = ctasks.start(wanted, state.containers, set(host.listed(names.lab_prefix(lab.name))),
                               runtime, host.kernel, lambda: store.save(state), progress)
    actual = task_records(lab, previous.actual_tasks if previous else ())
    stats = host.kernel.apply(
        _cut(weighted(plan, unbound(actual, lab, allocations), 0), lab), backend, stale, progress)
    apps = endpoints(lab, allocations, runtime is not None)
    pid = state.supervisor_pid
    if supervisor_serves(state, store, host.process):
        progress("updating the task apps")
        assert pid is not None     # supervisor_serves found it running
        host.update_supervisor(pid, apps, timeout=APP_READY_TIMEOUT,
                               dns=resolvers(lab, allocations))
        if state.supervisor_started is None and pid:   # a state from before start times
            running_as = host.process(pid)
            state.supervisor_started = running_as.start_time if running_as else None
    else:
        progress("starting the task apps")
        pid = host.start_supervisor(apps, store.log_path(lab.name),
                                    ready_timeout=APP_READY_TIMEOUT, dns=resolvers(lab, allocations))
        started_as = host.process(pid)
        state.supervisor_started = started_as.start_time if started_as else None
    if started:
        progress("waiting for the task containers to serve")
        ctasks.wait_serving(started, host.kernel, APP_READY_TIMEOUT)
    state.netns = [ns.name for ns in plan.netns]
    state.supervisor_pid = pid
    state.actual_tasks = actual
    state.complete = True
    state.changes = changelog.converged(state.changes)
    store.save(state)
    _ensure_manager(state, previous, store, progress, host)
    return UpResult(lab, allocations, plan, stats, pid)


def manager_runs(state: LabState, store: StateStore,
                 process: Callable[[int], ProcessInfo | None]) -> bool:
    """True when the manager ``state`` records runs: this lab's (its state file on
    its command line) and started when recorded (see :mod:`netlab.manager.control`)."""
    pid = state.manager_pid
    return pid is not None and pid > 0 and manager_control.is_lab_manager(
        process(pid), manager_control.state_file(store, state.lab), state.manager_started)


def _ensure_manager(state: LabState, previous: LabState | None, store: StateStore,
                    progress: Progress, host: Host) -> None:
    """Start the lab's manager unless it runs with the same time scale and nodes (a
    new one resumes from the state file; see :mod:`netlab.manager.process`)."""
    if manager_runs(state, store, host.process):
        if previous is not None and previous.time_scale == state.time_scale \
                and [n.name for n in previous.model.nodes] == [n.name for n in state.model.nodes]:
            return
        progress(f"restarting the manager (time scale {state.time_scale:g}, "
                 f"{len(state.model.nodes)} nodes)")
        assert state.manager_pid is not None
        host.stop_manager(state.manager_pid)
    else:
        progress("starting the manager" + ("" if state.time_scale == 1
                                           else f" (time scale {state.time_scale:g})"))
    pid = host.start_manager(store, state.lab)
    info = host.process(pid)
    state.manager_pid, state.manager_started = pid, info.start_time if info else None
    store.save(state)


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


def _endpoints_of(lab: str, store: StateStore) -> str:
    """The endpoints file ``lab``'s supervisor is started with, as its argv names it."""
    return str(supervisor.endpoints_path_for(store.log_path(lab).absolute()))


def supervisor_identity(state: LabState, store: StateStore) -> supervisor.Identity:
    """What only ``state``'s own supervisor has: its lab's endpoints file and its
    recorded start time."""
    return supervisor.Identity(_endpoints_of(state.lab, store), state.supervisor_started)


def supervisor_serves(state: LabState, store: StateStore,
                      process: Callable[[int], ProcessInfo | None]) -> bool:
    """True when the pid ``state`` records is this lab's supervisor, read through
    ``process`` (the kernel's ``/proc`` reader or a fake). The one check ``up``,
    ``scale``, ``node``, ``down`` and ``status`` make: a stale state whose pid
    another lab's supervisor or any other process reused is never trusted."""
    pid = state.supervisor_pid
    if not pid:
        return False
    return supervisor.is_lab_supervisor(process(pid), supervisor_identity(state, store))


def _supervisors_of(lab: str, store: StateStore, host: Host) -> list[int]:
    """Pids of ``lab``'s supervisors, found by the endpoints file in their command line."""
    return host.find_supervisors(_endpoints_of(lab, store))


def _files_of(lab: str, store: StateStore) -> list[str]:
    """The names of ``lab``'s files in the store besides its state: the log,
    the apps' endpoints, status and faults files, the rules ``status`` read last,
    the manager's view and the event log."""
    log = store.log_path(lab)
    endpoints = supervisor.endpoints_path_for(log)
    return [log.name, endpoints.name, status_path_for(endpoints).name,
            faults_path_for(endpoints).name, savecache.file_name(lab),
            manager_process.status_name(lab), manager_process.events_name(lab)]


def _recorded_runtime(lab: str, state: LabState | None, host: Host) -> ContainerRuntime:
    """The Docker of ``lab``'s task containers: the URL its state records, else
    ``$DOCKER_HOST``, else the local socket. Raises BadInput when the recorded URL
    is no Docker URL (nothing is connected; ``down`` removes the rest and says so)."""
    url = state.docker if state else None
    if url and (problem := dconnect.url_problem(url)) is not None:
        raise BadInput(f"the state file records the Docker URL {url[:100]!r}, unusable: {problem} "
                       f"(hint: docker rm -f $(docker ps -aq --filter label={ctasks.LABEL_LAB}={lab}))")
    return host.containers(url)


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
    with store.locked(lab):
        return _down(lab, store, host)


def _down(lab: str, store: StateStore, host: Host) -> DownResult:
    """:func:`down`, under the lab's change lock."""
    corrupt = None
    try:
        state = store.load(lab)
    except CorruptState as err:
        state, corrupt = None, str(err)
    # The manager first: it must not notice the nodes vanish and act on it.
    managers = host.find_managers(manager_control.state_file(store, lab))
    if state is not None and state.manager_pid and manager_runs(state, store, host.process) \
            and state.manager_pid not in managers:
        managers.append(state.manager_pid)
    for pid in managers:
        host.stop_manager(pid)
    # The recorded pid only when it is this lab's supervisor; others by their argv.
    recorded = state.supervisor_pid if state and supervisor_serves(state, store, host.process) \
        else None
    pids = [recorded] if recorded else []
    pids += [p for p in _supervisors_of(lab, store, host) if p not in pids]
    prefix = names.lab_prefix(lab)
    owned = set(state.netns if state else []) | set(host.listed(prefix))
    # Names from the state file were checked when it was read; check again
    # what is about to be deleted.
    owned = {n for n in owned if names.owned_by(lab, n)}
    files = _files_of(lab, store)
    if state is None and corrupt is None and not owned and not pids and not managers \
            and not store.has_files(lab, files):
        known = store.labs()
        raise BadInput(f"LAB: no lab named {lab!r} here: no state file, no {prefix}* namespace, "
                       "no task apps (hint: " + (f"known labs: {', '.join(known)})" if known
                                                 else "no lab is up)"))
    stopped = False
    endpoints = _endpoints_of(lab, store)
    for pid in pids:
        identity = supervisor.Identity(
            endpoints, state.supervisor_started if state and pid == recorded else None)
        if supervisor.is_lab_supervisor(host.process(pid), identity):
            host.stop_supervisor(pid, identity=identity)
            stopped = True
    removed_containers, left = 0, None
    if state is None or state.tasks == "containers":
        removed_containers, left = ctasks.sweep(
            lab, list(state.containers.values()) if state else [],
            lambda: _recorded_runtime(lab, state, host))
    # Tasks first, the LAN last: fewer links die with a still-used peer.
    lan = names.lan_ns(lab)
    removed = host.kernel.teardown(sorted(owned, key=lambda n: (n == lan, n)))
    # The log, the apps' endpoints and status files, by their exact names;
    # the state file goes last (a corrupt one was moved aside and is kept).
    store.remove_files(lab, files)
    return DownResult(removed, stopped, store.remove(lab) if corrupt is None else False, corrupt,
                      removed_containers, left)


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


def loaded(lab_name: str, store: StateStore) -> LabState:
    """The state of the lab ``lab_name``; raises BadInput when it is not a lab name or
    no such lab is up, CorruptState for a corrupt state file."""
    return store.require(lab_name)


def links_down(lab: Lab) -> frozenset[tuple[str, str]]:
    """(netns, ifname) of the links the lab keeps down: the LAN port of each node
    that is down (``netlab node LAB NODE down``)."""
    lan = names.lan_ns(lab.name)
    return frozenset((lan, names.lan_port(n.name)) for n in lab.nodes if n.state == "down")


def _cut(plan: Plan, lab: Lab) -> Plan:
    """``plan`` without the LAN ports of nodes that are down: applying it leaves
    them down (the kernel's apply brings up every port it is given)."""
    down = links_down(lab)
    if not down:
        return plan
    return replace(plan, veths=tuple(v for v in plan.veths if (v.a.netns, v.a.name) not in down))
