"""``netlab trace --docker [URL] NODE_ADDRESS:PORT``: one request through a real Swarm node.

The same collection and correlation as a lab's trace
(:func:`netlab.trace.run.collect`, :func:`netlab.trace.correlate.correlate`),
on the node's real namespaces: the request leaves a client namespace netlab
makes for it (:mod:`netlab.kernel.clientns`) and removes afterwards, even
on an error or Ctrl-C. Hops, evidence and verdicts are a lab's; the names
are Swarm's (``hello-a.1``, its container's short id, ``node1/ingress_sbox``).

What happens on another node cannot be sniffed from this one: a request
IPVS sends there is followed to the VXLAN packet leaving this node, and the
hop says so.
"""

from __future__ import annotations

import ipaddress
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from netlab.docker.snapshot import Snapshot
from netlab.docker.tracepath import RealPath, capture_points, real_facts, real_path
from netlab.errors import BadInput, MissingFeature
from netlab.kernel import clientns, realns
from netlab.kernel.clientns import ClientNs
from netlab.kernel.netns import ROOT_NETNS
from netlab.kernel.reader import KernelReader, LinuxReader
from netlab.kernel.realns import RealNs
from netlab.kernel.xtables import Backend
from netlab.trace import probe
from netlab.trace.capture import Frame
from netlab.trace.correlate import Observation, correlate
from netlab.trace.evidence import Flow
from netlab.trace.facts import LabFacts
from netlab.trace.model import Backend as Answered
from netlab.trace.model import Hop, Request, Trace
from netlab.trace.run import _Clock, collect

FIELD = "NODE_ADDRESS:PORT"


@dataclass(frozen=True)
class RealTarget:
    """A parsed ``NODE_ADDRESS:PORT[/PROTO]``."""

    addr: str
    port: int
    proto: str
    text: str


def parse_target(text: str) -> RealTarget:
    """``192.168.77.1:5000`` or ``…:5000/udp``; raises BadInput naming the problem."""
    spec, sep, proto = text.partition("/")
    proto = proto if sep else "tcp"       # "ADDR:PORT/" names no protocol: refused below
    addr, _, port = spec.rpartition(":")
    hint = "(hint: this node's address and a published port, e.g. 192.168.77.1:5000)"
    try:
        ip = ipaddress.IPv4Address(addr)
    except ValueError:
        raise BadInput(f"{FIELD}: {text!r} does not start with an IPv4 address {hint}") from None
    if not (port.isascii() and port.isdigit()) or len(port) > 5 or not 1 <= int(port) <= 65535:
        raise BadInput(f"{FIELD}: {text!r} has no port between 1 and 65535 {hint}")
    if proto not in ("tcp", "udp"):
        raise BadInput(f"{FIELD}: {text!r}: the protocol is tcp or udp (hint: {spec}/udp)")
    return RealTarget(str(ip), int(port), proto, text)


def check_local(target: RealTarget, root: RealNs) -> None:
    """Raises BadInput unless ``target``'s address is one of this machine's (a trace
    goes through this node; another node's mesh is traced on that node)."""
    mine = sorted({a.split("/")[0] for lk in root.links for a in lk.addrs
                   if not a.startswith("127.")})
    if target.addr not in mine:
        raise BadInput(f"{FIELD}: {target.addr} is not an address of this node (hint: one of "
                       f"{', '.join(mine) or 'none'}; trace another node by running netlab there)")


def _container(snap: Snapshot, task: str) -> str:
    """``container 3f2a1b9c0d1e`` for a task's name, or "" when it has none."""
    t = next((t for t in snap.tasks if t.name == task), None)
    return f"container {t.container_id[:12]}" if t and t.container_id else ""


def _remote(hop: Hop, facts: LabFacts, path: RealPath) -> str:
    """The detail of a VXLAN hop to or from another node, saying what cannot be seen here:
    the request leaving towards it, or the reply arriving from it (encapsulated there)."""
    out = hop.leg == "request"
    peer = hop.dst if out else hop.src
    ip = peer.rsplit(":", 1)[0]
    node = facts.node_of_lan_ip.get(ip)
    there = [t.name for t in path.remote_tasks if t.node == node]
    who = f" ({node}" + (f", where {', '.join(there)} run{'s' if len(there) == 1 else ''}" if there
                         else "") + ")" if node else ""
    if out:
        return (f"{hop.detail}; sent over VXLAN to {ip}{who}, not observable here: "
                f"netlab trace --docker on that node sees the rest")
    return (f"the reply over VXLAN VNI {hop.detail.split('VNI ')[1].split()[0]} from {ip}{who}, "
            f"encapsulated there, not observable here")


def named(trace: Trace, snap: Snapshot, path: RealPath, facts: LabFacts) -> Trace:
    """``trace`` in Swarm's words: the backend as ``hello-a.1`` (not the container's
    hostname), containers by short id, and the hops that leave for another node."""
    backend = trace.backend
    by_ip = facts.tasks_by_ip.get(backend.ip) if backend else None
    if backend is not None and by_ip is None:
        # The task app answers with its hostname, hello-a.1.<task id> under --hostname {{.Task.Name}}.
        t = next((t for t in snap.tasks if backend.task in (t.name, f"{t.name}.{t.id}")
                  or backend.task == t.id), None)
        by_ip = (t.name, t.node) if t else None
    reason = trace.reason
    if backend is not None and by_ip is not None:
        ip = backend.ip if backend.ip != "?" else next(
            (ip for ip, (n, _node) in facts.tasks_by_ip.items() if n == by_ip[0]), "?")
        backend = Answered(by_ip[0], by_ip[1], ip)
        if trace.verdict == "delivered":
            box = _container(snap, backend.task)
            reason = f"{backend.task}{f' ({box})' if box else ''} on {backend.node} answered"
    hops = []
    for h in trace.hops:
        if h.event == "deliver" and (box := _container(snap, h.netns)):
            h = replace(h, detail=f"{h.detail} ({box})")
        elif h.event == "encap" and facts.node_of_lan_ip.get(
                (h.dst if h.leg == "request" else h.src).rsplit(":", 1)[0]) not in (None, snap.this_node):
            h = replace(h, detail=_remote(h, facts, path))
        hops.append(h)
    notes = list(trace.notes) + list(path.notes)
    for sb in path.sandboxes:
        notes.append(f"{sb.target} is {sb.what}: {sb.path}")
    if path.remote_tasks and trace.verdict != "delivered" and any(
            h.event == "encap" and h.leg == "request" for h in hops):
        reason += "; what happened on the other node is not observable from this one"
    return replace(trace, backend=backend, reason=reason, hops=tuple(hops),
                   notes=tuple(dict.fromkeys(notes)))


class RealTracer:
    """Traces requests into one real Swarm node from a client namespace made for it."""

    def __init__(self, snap: Snapshot, client: ClientNs, path: RealPath,
                 seen: dict[str, RealNs], target: RealTarget, backend: Backend, url: str,
                 reader: KernelReader | None = None):
        """``path``: :func:`real_path` of ``target``; ``seen``: what each of its real
        namespaces holds (:func:`read_namespaces`); ``reader``: the kernel the trace
        reads (the running one when None)."""
        self.snap, self.client, self.target, self.backend, self.url = snap, client, target, backend, url
        self.reader: KernelReader = reader if reader is not None else LinuxReader()
        self.path = path
        node_addrs = {target.addr} | {n.addr for n in snap.nodes if n.name == snap.this_node}
        self.points = capture_points(path, seen, node_addrs, client, snap.this_node)
        self.facts = real_facts(snap, path, seen)
        self.phases: dict[str, float] = {}

    def once(self, timeout: float) -> tuple[Trace, list[Frame]]:
        """One request, traced; returns the trace and every frame captured."""
        t, c = self.target, self.client
        clock = _Clock()
        got = collect(self.points, self.path.roles, self.backend, clock,
                      lambda: probe.send(self.reader, c.name, c.ip, t.addr, t.port, t.proto,
                                         t.text, timeout), self.reader)
        sport = got.result.src[1]
        request = Request(self.url, t.text, self.snap.this_node, f"{t.addr}:{t.port}", t.proto,
                          f"{c.ip}:{sport}", "client",
                          self.path.service.name if self.path.service else None)
        obs = Observation(request, Flow(t.proto, c.ip, sport, t.addr, t.port), got.result,
                          got.frames, got.before, got.after,
                          tuple(p.label for p in got.points), got.missing)
        trace = named(correlate(obs, self.facts), self.snap, self.path, self.facts)
        clock.lap("correlate")
        self.phases = clock.laps
        return trace, list(got.frames)


def plan_path(snap: Snapshot, client: ClientNs, target: RealTarget) -> RealPath:
    """The namespaces a request to ``target`` may cross on this node."""
    return real_path(snap, client, target.port, target.proto)


def read_namespaces(path: RealPath) -> dict[str, RealNs]:
    """What each real namespace of ``path`` holds (the client's is netlab's own: skipped).
    Raises NetnsError when one cannot be read."""
    return {key: realns.read(key) for key, role in path.roles.items() if role != "client"}


def _interrupted(signum: int, _frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


@contextmanager
def client_namespace(pid: int | None = None) -> Iterator[ClientNs]:
    """``nl-dtrace-<pid>`` and its veth, removed on the way out whatever happens:
    SIGTERM and SIGHUP become KeyboardInterrupt meanwhile, and the removal itself
    is not interrupted (SIGINT, SIGTERM, SIGHUP wait until it is done). Client
    namespaces of earlier runs that were killed outright are removed first."""
    stop = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    clientns.sweep()
    old = {s: signal.getsignal(s) for s in stop}
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _interrupted)
    made: list[ClientNs] = []
    try:
        made.append(clientns.create(os.getpid() if pid is None else pid))
        yield made[0]
    finally:
        for s in stop:
            signal.signal(s, signal.SIG_IGN)
        try:
            if made:
                clientns.remove(made[0].name, made[0].root_if)
        finally:
            for s, handler in old.items():
                signal.signal(s, handler)


def trace_real(url: str | None, text: str, repeat: int, timeout: float,
               manager: str | None = None) -> tuple[list[Trace], list[Frame]]:
    """``repeat`` requests to ``text`` (NODE_ADDRESS:PORT) on the Swarm node whose Engine
    answers at ``url``, each traced; the client namespace lives for all of them. On a
    worker, the Swarm's services and tasks are read from ``manager`` (a manager's Engine).

    Checks everything it can before it changes anything: raises BadInput for
    a bad target or an address that is not this node's, MissingFeature when
    not root, no Engine answers, it is no Swarm manager, or a tool is missing.
    """
    target = parse_target(text)
    from netlab.docker.connect import connect, docker_url
    from netlab.docker.snapshot import read_snapshot
    from netlab.kernel import xtables

    if os.geteuid() != 0:
        raise MissingFeature("tracing a real Swarm node needs root: it makes a client namespace "
                             "and reads the node's own (hint: sudo netlab trace --docker …)")
    local = connect(url)
    snap = read_snapshot(local, manager=connect(manager, "--manager") if manager else None)
    check_local(target, realns.read(ROOT_NETNS))
    backend = xtables.choose(None)
    traces, frames = [], []
    with client_namespace() as c:
        path = plan_path(snap, c, target)
        tracer = RealTracer(snap, c, path, read_namespaces(path), target, backend, docker_url(url))
        for _ in range(repeat):
            t, f = tracer.once(timeout)
            traces.append(t)
            frames += f
    return traces, frames
