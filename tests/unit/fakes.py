"""Fakes of the machine for unit tests: a kernel and a host that record what they are asked."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from netlab import lifecycle
from netlab.kernel import netns
from netlab.kernel.apply import ApplyStats
from netlab.kernel.capture import RawFrame
from netlab.kernel.records import NsReading, NsWants
from netlab.kernel.procs import ProcessInfo
from netlab.plan.types import Plan
from netlab.workload import supervisor


@dataclass(frozen=True)
class Recorded:
    """What the kernel saw of one request sent from a given source port: the frames
    captured, each namespace's reading before and after it, and the server's answer
    (``refused``: the connection is refused instead)."""

    frames: tuple[RawFrame, ...]
    before: dict[str, NsReading]
    after: dict[str, NsReading]
    answer: bytes = b""
    refused: bool = False


def only_wanted(r: NsReading, w: NsWants) -> NsReading:
    """``r`` with only the kinds ``w`` asks for, as the real reader reads only those."""
    return NsReading(r.counters if w.counters else (), r.conntrack if w.conntrack else (),
                     r.ipvs_conns if w.ipvs_conns else (), r.ipvs_table if w.ipvs_table else (),
                     r.fdb if w.fdb else (), r.links if w.links else (),
                     r.neighbours if w.neighbours else (), r.notes if w.conntrack else ())


@dataclass
class FakeCapture:
    """A :class:`netlab.kernel.capture.CaptureSession` that hands back the frames recorded
    for the request sent while it was open, on the interfaces it was asked for."""

    kernel: FakeKernel
    ifaces: dict[str, frozenset[str]]
    entered: bool = False
    closed: bool = False

    def __enter__(self) -> FakeCapture:
        for ns in self.ifaces:
            if ns not in self.kernel.namespaces:
                raise netns.NetnsError(f"network namespace {ns} does not exist")
        self.entered = True
        return self

    def stop(self) -> list[RawFrame]:
        rec = self.kernel.request()
        frames = rec.frames if rec else ()
        return sorted((f for f in frames if f.iface in self.ifaces.get(f.netns, ())),
                      key=lambda f: f.time)

    def __exit__(self, *exc) -> None:
        self.closed = True


@dataclass
class FakeSocket:
    """A socket made in a fake namespace: bound, connected, it plays the recorded answer."""

    kernel: FakeKernel
    netns: str
    kind: int
    bound: tuple[str, int] | None = None
    peer: tuple[str, int] | None = None
    sent: bytes = b""
    closed: bool = False
    _answer: bytes = b""

    def bind(self, addr: tuple[str, int]) -> None:
        if addr[1] in self.kernel.ports_in_use:
            raise OSError(errno.EADDRINUSE, "Address already in use")
        self.bound = addr

    def settimeout(self, timeout: float) -> None:
        pass

    def connect(self, addr: tuple[str, int]) -> None:
        assert self.bound is not None, "the probe binds its source port before connecting"
        self.peer = addr
        self.kernel.sent_from = self.bound[1]
        rec = self.kernel.request()
        if rec is not None and rec.refused:
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        self._answer = rec.answer if rec else b""

    def sendall(self, data: bytes) -> None:
        self.sent += data

    send = sendall

    def recv(self, size: int) -> bytes:
        if not self._answer and self.kind == socket.SOCK_STREAM:
            return b""
        if not self._answer:
            raise TimeoutError("timed out")
        data, self._answer = self._answer[:size], self._answer[size:]
        return data

    def close(self) -> None:
        self.closed = True


@dataclass
class FakeKernel:
    """A :class:`netlab.kernel.interface.Kernel` that holds plans in memory, and a
    :class:`netlab.kernel.reader.KernelReader` that replays a recorded request.

    ``applied`` lists each plan it was asked to apply with the stale
    namespaces; ``namespaces`` is what exists. ``drift`` reports the planned
    namespaces that do not exist, and ``diffs`` given by the test. As a
    reader, ``recorded(port)`` says what the kernel saw of a request from that
    source port; ``reads``, ``captures`` and ``sockets`` keep what a trace asked.
    """

    namespaces: set[str] = field(default_factory=set)
    applied: list[tuple[Plan, str, list[str]]] = field(default_factory=list)
    torn_down: list[str] = field(default_factory=list)
    diffs: list = field(default_factory=list)
    # Every call in order: ("apply", plan) or ("weight", netns, fwmark, addr, weight).
    steps: list[tuple] = field(default_factory=list)
    weights: dict[tuple[str, int, str], int] = field(default_factory=dict)
    links_down: set[tuple[str, str]] = field(default_factory=set)
    allowed: list = field(default_factory=list)     # the Allowance of each drift call
    adopted: dict[str, int] = field(default_factory=dict)      # netns -> pid it was taken from
    serving: dict[str, set[int]] = field(default_factory=dict)  # netns -> TCP ports listening
    # The reader's half (netlab.kernel.reader.KernelReader), for trace collection:
    # ``recorded(port)`` is what the kernel saw of a request from that source port.
    recorded: Callable[[int], Recorded] | None = None
    ports_in_use: set[int] = field(default_factory=set)
    sent_from: int | None = None                    # the source port of the request in flight
    reads: list[dict[str, NsWants]] = field(default_factory=list)
    captures: list[FakeCapture] = field(default_factory=list)
    sockets: list[FakeSocket] = field(default_factory=list)
    ran_in: list[str] = field(default_factory=list)        # namespaces run_in entered
    before: list = field(default_factory=list)      # the plan each apply was told the kernel holds

    def apply(self, plan: Plan, backend: str, stale: list[str], progress,
              before=None) -> ApplyStats:
        self.applied.append((plan, backend, list(stale)))
        self.before.append(before)
        self.steps.append(("apply", plan))
        # The real apply brings up every link of the plan.
        self.links_down -= {(v.a.netns, v.a.name) for v in plan.veths}
        wanted = {(s.netns, s.fwmark, d.addr): d.weight for s in plan.ipvs for d in s.dests}
        if before is None:
            self.weights = wanted
        else:           # a change's apply: only the sandboxes of its plans are written
            touched = {s.netns for s in (*plan.ipvs, *before.ipvs)}
            self.weights = {k: w for k, w in self.weights.items() if k[0] not in touched}
            self.weights.update(wanted)
        planned = {ns.name for ns in plan.netns}
        removed = [n for n in stale if n in self.namespaces and n not in planned]
        created = planned - self.namespaces
        self.namespaces = (self.namespaces - set(removed)) | planned
        return ApplyStats(netns_created=len(created), netns_removed=len(removed))

    def set_weights(self, plan: Plan, addresses: set[str], weight: int) -> int:
        done = 0
        for svc in plan.ipvs:
            for d in svc.dests:
                if d.addr in addresses:
                    key = (svc.netns, svc.fwmark, d.addr)
                    assert key in self.weights, f"no IPVS destination {key} to set"
                    self.weights[key] = weight
                    self.steps.append(("weight", *key, weight))
                    done += 1
        return done

    def set_link(self, netns: str, ifname: str, up: bool) -> None:
        assert netns in self.namespaces, f"no namespace {netns}"
        self.links_down = (self.links_down - {(netns, ifname)}) if up \
            else self.links_down | {(netns, ifname)}
        self.steps.append(("link", netns, ifname, up))

    def teardown(self, names: list[str]) -> int:
        for name in names:
            netns.path(name)   # the real confinement check
        self.torn_down += names
        self.steps.append(("teardown", list(names)))
        gone = [n for n in names if n in self.namespaces]
        self.namespaces -= set(gone)
        return len(gone)

    def adopt(self, name: str, pid: int) -> None:
        netns.path(name)   # the real confinement check
        assert name not in self.namespaces, f"{name} exists already"
        self.namespaces.add(name)
        self.adopted[name] = pid
        self.steps.append(("adopt", name, pid))

    def listening(self, name: str) -> set[int]:
        assert name in self.namespaces, f"no namespace {name}"
        return set(self.serving.get(name, set()))

    def request(self) -> Recorded | None:
        """What was recorded for the request in flight, if one was sent."""
        if self.recorded is None or self.sent_from is None:
            return None
        return self.recorded(self.sent_from)

    def present(self, ns: str) -> bool:
        return ns in self.namespaces

    def read(self, wants: Mapping[str, NsWants], backend: str) -> dict[str, NsReading]:
        """The recorded readings before the request, or after it once one was sent (the
        request is then over: the next read is the next request's "before")."""
        for ns in wants:
            if ns not in self.namespaces:
                raise netns.NetnsError(f"network namespace {ns} does not exist")
        self.reads.append(dict(wants))
        self.steps.append(("read", sorted(wants)))
        rec = self.recorded(self.sent_from or 0) if self.recorded else None
        held = {} if rec is None else rec.after if self.sent_from is not None else rec.before
        self.sent_from = None
        return {ns: only_wanted(held.get(ns, NsReading()), w) for ns, w in wants.items()}

    def capture(self, ifaces: Mapping[str, frozenset[str]]) -> FakeCapture:
        cap = FakeCapture(self, dict(ifaces))
        self.captures.append(cap)
        return cap

    def socket_in(self, ns: str, family: int = socket.AF_INET,
                  kind: int = socket.SOCK_STREAM) -> FakeSocket:
        if ns not in self.namespaces:
            raise netns.NetnsError(f"network namespace {ns} does not exist")
        sock = FakeSocket(self, ns, kind)
        self.sockets.append(sock)
        return sock

    def run_in(self, ns: str, fn):
        """``fn()`` in this process's own namespace (its sockets are real, on loopback),
        once ``ns`` is one of the fake's; the namespaces asked for are kept in ``ran_in``."""
        if ns not in self.namespaces:
            raise netns.NetnsError(f"network namespace {ns} does not exist")
        self.ran_in.append(ns)
        return fn()

    def drift(self, plan: Plan, backend: str, allow=None, memory=None) -> list:
        from netlab.diff.drift import Drift
        self.allowed.append(allow)
        return [Drift(ns.name, "netns", "namespace is missing", ns.target) for ns in plan.netns
                if ns.name not in self.namespaces] + list(self.diffs)


@dataclass
class FakeRuntime:
    """A :class:`netlab.docker.tasks.ContainerRuntime` in memory: containers by id, each
    serving its ports in the kernel's namespace of its name once it is adopted there."""

    kernel: FakeKernel
    images: set[str] = field(default_factory=lambda: {"netlab/task:latest"})
    containers: dict[str, object] = field(default_factory=dict)   # id -> its TaskContainer
    running: dict[str, int] = field(default_factory=dict)         # id -> pid
    removed: list[str] = field(default_factory=list)
    strays: dict[str, str] = field(default_factory=dict)          # id -> lab, made outside netlab's sight
    serve: bool = True            # False: its servers never listen
    next_pid: int = 7000

    def check_image(self, image: str) -> None:
        from netlab.errors import MissingFeature
        if image not in self.images:
            raise MissingFeature(f"--tasks: the image {image} is missing")

    def create(self, spec) -> str:
        cid = f"{len(self.containers) + len(self.removed) + 1:064x}"
        self.containers[cid] = spec
        self.kernel.steps.append(("create", spec.name))
        return cid

    def start(self, container_id: str) -> int:
        self.next_pid += 1
        self.running[container_id] = self.next_pid
        spec = self.containers[container_id]
        if self.serve:
            self.kernel.serving[spec.netns] = set(spec.ports)
        return self.next_pid

    def remove(self, container_id: str) -> bool:
        self.running.pop(container_id, None)
        gone = self.containers.pop(container_id, None) or self.strays.pop(container_id, None)
        if gone is None:
            return False
        self.removed.append(container_id)
        self.kernel.steps.append(("remove", getattr(gone, "name", container_id)))
        return True

    def of_lab(self, lab: str) -> list[str]:
        return [cid for cid, s in self.containers.items() if s.lab == lab] \
            + [cid for cid, owner in self.strays.items() if owner == lab]


@dataclass
class FakeHost:
    """The machine as ``up`` and ``down`` see it: a fake kernel and fake supervisors."""

    kernel: FakeKernel = field(default_factory=FakeKernel)
    supervisors: dict[int, str] = field(default_factory=dict)   # pid -> endpoints file
    started_at: dict[int, int] = field(default_factory=dict)   # pid -> start time (default: pid*10)
    others: dict[int, ProcessInfo] = field(default_factory=dict)   # pids that are no supervisor of ours
    stopped: list[int] = field(default_factory=list)
    started: list[list] = field(default_factory=list)          # the apps of each start
    updated: list[tuple[int, list]] = field(default_factory=list)
    dns: list[list] = field(default_factory=list)              # the DNS servers of each start/update
    root: bool = True
    next_pid: int = 4000
    runtime: FakeRuntime | None = None          # made on first use, on this kernel
    docker_urls: list = field(default_factory=list)   # the URL of each connection
    docker_down: bool = False                   # no Docker daemon answers
    managers: dict[int, str] = field(default_factory=dict)     # pid -> state file
    managers_stopped: list[int] = field(default_factory=list)

    def containers(self, url):
        from netlab.errors import MissingFeature
        self.docker_urls.append(url)
        if self.docker_down:
            raise MissingFeature("--docker: no Docker daemon answers at unix:///var/run/docker.sock")
        if self.runtime is None:
            self.runtime = FakeRuntime(self.kernel)
        return self.runtime

    @property
    def namespaces(self) -> set[str]:
        return self.kernel.namespaces

    @namespaces.setter
    def namespaces(self, value: set[str]) -> None:
        self.kernel.namespaces = value

    @property
    def torn_down(self) -> list[str]:
        return self.kernel.torn_down

    def host(self) -> lifecycle.Host:
        return lifecycle.Host(
            is_root=lambda: self.root,
            listed=lambda prefix: sorted(n for n in self.namespaces if n.startswith(prefix)),
            kernel=self.kernel,
            require_features=lambda _backend: None,
            find_supervisors=lambda path: [p for p, ep in self.supervisors.items()
                                           if ep.startswith(path)],
            process=self.process,
            stop_supervisor=self._stop,
            start_supervisor=self._start,
            update_supervisor=self._update,
            containers=self.containers,
            start_manager=self._start_manager,
            stop_manager=self._stop_manager,
            find_managers=lambda path: [p for p, f in self.managers.items() if f == path])

    def _start_manager(self, store, lab: str) -> int:
        from netlab.manager import control
        self.next_pid += 1
        self.managers[self.next_pid] = control.state_file(store, lab)
        return self.next_pid

    def _stop_manager(self, pid: int) -> None:
        self.managers_stopped.append(pid)
        self.managers.pop(pid, None)

    def process(self, pid: int) -> ProcessInfo | None:
        """``/proc/<pid>`` as the fake machine shows it: a supervisor started with its
        endpoints file, one of ``others``, or None."""
        if pid in self.supervisors:
            argv = ("python3", "-m", supervisor.APP_MODULE, "--endpoints", self.supervisors[pid])
            return ProcessInfo(pid, argv, "S", self.started_at.get(pid, pid * 10))
        if pid in self.managers:
            argv = ("python3", "-m", "netlab.manager", "--state", self.managers[pid])
            return ProcessInfo(pid, argv, "S", self.started_at.get(pid, pid * 10))
        return self.others.get(pid)

    def _stop(self, pid: int, identity=None) -> None:
        self.stopped.append(pid)
        self.supervisors.pop(pid)

    def _start(self, apps: list, log_path, ready_timeout: float = 0, dns: list = ()) -> int:
        self.next_pid += 1
        self.supervisors[self.next_pid] = str(supervisor.endpoints_path_for(Path(log_path).absolute()))
        self.started.append(list(apps))
        self.dns.append(list(dns))
        return self.next_pid

    def _update(self, pid: int, apps: list, timeout: float = 0, dns: list = ()) -> None:
        self.updated.append((pid, list(apps)))
        self.dns.append(list(dns))
        self.kernel.steps.append(("update", sorted({a.task for a in apps})))


class ManagerClock:
    """A manager's monotonic clock that a test moves by hand (``clock.t += 0.1``)."""

    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class InstantHeartbeats:
    """Every node's heartbeat arrives at once (no node is cut)."""

    def __init__(self) -> None:
        self.inbox: list[str] = []

    def send(self, node: str) -> bool:
        self.inbox.append(node)
        return True

    def receive(self) -> list[str]:
        out, self.inbox = self.inbox, []
        return out
