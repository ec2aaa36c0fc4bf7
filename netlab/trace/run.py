"""Run one trace against a lab that is up: capture, snapshot, send, snapshot, correlate.

Order matters and is the point: the capture sockets are open and the rule
counters read *before* the request leaves; conntrack, the IPVS connection
table and the counters are read again after the answer (or the timeout).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from netlab.client import parse_target
from netlab.errors import BadInput
from netlab.ipam import Allocations
from netlab.kernel.reader import KernelReader, LinuxReader
from netlab.kernel.xtables import Backend
from netlab.model import Lab, TaskRecord
from netlab.plan.types import Plan
from netlab.state import LabState
from netlab.trace import eastwest, probe
from netlab.trace.capture import Capture, Frame
from netlab.trace.correlate import Observation, correlate
from netlab.trace.eastwest import EastWest
from netlab.trace.evidence import Flow, NsSnapshot, snapshot
from netlab.trace.facts import LabFacts, lab_facts
from netlab.trace.model import Request, Trace
from netlab.trace.points import CapturePoint, TracePath, trace_path

SETTLE_S = 0.02   # after the answer: let the last frames of the exchange reach the sockets


@dataclass(frozen=True)
class TraceTarget:
    """A parsed ``NODE:PORT[/PROTO]`` plus the sender."""

    node: str
    node_ip: str
    port: int
    proto: str
    sender: str
    sender_ns: str
    sender_ip: str
    text: str
    east_west: EastWest | None = None    # SERVICE:PORT or VIP:PORT from a task


def sender_address(state: LabState, sender: str) -> tuple[str, str]:
    """(netns, source IP) of a sender: ``client``, a node, or a task; raises BadInput.

    A task sends from its docker_gwbridge address (its default route), as a
    container calling a published port does; its node masquerades it.
    """
    addr = state.allocations
    if sender == "client":
        ip = str(addr.client_ip)
    elif sender in addr.nodes:
        ip = str(addr.nodes[sender].lan_ip)
    elif sender in addr.tasks:
        ip = str(addr.tasks[sender].gw_ip)
    else:
        choices = ["client", *addr.nodes, *addr.tasks]
        raise BadInput(f"--from: {sender!r} cannot send a trace (hint: one of {', '.join(choices)})")
    if sender not in state.targets:
        raise BadInput(f"--from: {sender!r} is not in lab {state.lab}'s state (hint: netlab up again)")
    return state.targets[sender], ip


def parse(state: LabState, text: str, sender: str, reader: KernelReader) -> TraceTarget:
    """``node2:5000`` or ``node2:5000/udp`` (``/`` with no protocol is refused, never read as
    tcp), or SERVICE:PORT from a task (resolved by its DNS, asked through ``reader``);
    raises BadInput naming the problem."""
    spec, sep, proto = text.partition("/")
    proto = proto if sep else "tcp"
    if proto not in ("tcp", "udp"):
        raise BadInput(f"NODE:PORT: {text!r} is not NODE:PORT[/tcp|udp] (hint: node2:5000/udp)")
    if spec.rpartition(":")[0] not in state.lan and sender in state.allocations.tasks:
        ew = eastwest.parse(state, sender, spec, reader)
        node = next(t.node for t in state.model.tasks if t.name == sender)
        return TraceTarget(node, ew.ip, ew.port, proto, sender, state.targets[sender],
                           ew.sender_ip, text, ew)
    node, node_ip, port = parse_target(state, spec)
    ns, ip = sender_address(state, sender)
    return TraceTarget(node, node_ip, port, proto, sender, ns, ip, text)


class Tracer:
    """Traces requests into one lab; holds what does not change between requests."""

    def __init__(self, lab: Lab, allocations: Allocations, plan: Plan, target: TraceTarget,
                 backend: Backend, history: tuple[TaskRecord, ...] = (), scenario: str = "",
                 reader: KernelReader | None = None):
        """``reader``: the kernel the trace reads (the running one when None)."""
        self.lab, self.target, self.backend = lab, target, backend
        self.reader: KernelReader = reader if reader is not None else LinuxReader()
        self.path: TracePath = (
            eastwest.path(lab, plan, target.sender, target.east_west) if target.east_west else
            trace_path(lab, plan, target.node, target.port, target.proto, target.sender))
        self.facts: LabFacts = lab_facts(lab, allocations, plan, history, scenario)
        # The LAN has no rules or NAT, but its ports say which node is cut off.
        self.snap_roles = {n: self.facts.role[n] for n in self.path.namespaces}
        self.phases: dict[str, float] = {}

    def once(self, timeout: float) -> tuple[Trace, list[Frame]]:
        """One request, traced; returns the trace and every frame captured.

        ``self.phases`` then holds the seconds each phase took (for the benchmark).
        """
        t = self.target
        clock = _Clock()
        seen = collect(self.path.points, self.snap_roles, self.backend, clock,
                       lambda: probe.send(self.reader, t.sender_ns, t.sender_ip, t.node_ip,
                                          t.port, t.proto, t.text, timeout), self.reader)
        result, points, frames, missing = seen.result, seen.points, list(seen.frames), seen.missing
        before, after = seen.before, seen.after
        orig = Flow(t.proto, t.sender_ip, result.src[1], t.node_ip, t.port)
        request = Request(self.lab.name, t.text, t.node, f"{t.node_ip}:{t.port}", t.proto,
                          f"{t.sender_ip}:{result.src[1]}", t.sender,
                          self.path.service.name if self.path.service else None)
        obs = Observation(request, orig, result, tuple(frames), before, after,
                          tuple(p.label for p in points), missing)
        trace = correlate(obs, self.facts)
        if t.east_west is not None:
            trace = eastwest.with_resolution(trace, eastwest.resolve_hop(
                t.east_west, t.sender, t.node, request.src))
        clock.lap("correlate")
        self.phases = clock.laps
        return trace, frames


@dataclass(frozen=True)
class Collected:
    """What one traced request left behind: its outcome, the frames, the snapshots."""

    result: probe.ProbeResult
    points: tuple[CapturePoint, ...]       # the capture points that were open
    frames: tuple[Frame, ...]
    before: dict[str, NsSnapshot]
    after: dict[str, NsSnapshot]
    missing: tuple[str, ...]               # namespaces of the path that no longer exist


def collect(points: tuple[CapturePoint, ...], roles: dict[str, str], backend: Backend,
            clock: _Clock, send: Callable[[], probe.ProbeResult],
            reader: KernelReader) -> Collected:
    """Counters before, capture open, ``send()``, capture closed, counters and flows after,
    all read through ``reader``.

    Namespaces are names or real Docker namespaces' paths
    (:func:`netlab.kernel.netns.locate`). A namespace removed behind netlab's
    back (a task gone) is said in ``missing``, not fatal. Raises NetnsError
    and IptablesError as :func:`snapshot` and :class:`Capture` do.
    """
    missing = tuple(n for n in roles if not reader.present(n))
    live = {n: r for n, r in roles.items() if n not in missing}
    open_points = tuple(p for p in points if p.netns not in missing)
    before = snapshot(live, with_flows=False, backend=backend, reader=reader)
    clock.lap("counters before")
    with Capture(open_points, reader) as cap:
        clock.lap("open capture")
        result = send()
        clock.lap("request")
        time.sleep(SETTLE_S)
        frames = cap.stop()
        clock.lap("stop capture")
    after = snapshot(live, with_flows=True, backend=backend, reader=reader)
    clock.lap("counters, conntrack, IPVS after")
    return Collected(result, open_points, tuple(frames), before, after, missing)


class _Clock:
    """Seconds per named phase."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = now - self._last
        self._last = now


def write_pcapng(path: str, frames: list[Frame]) -> int:
    """Every frame in one pcapng, one interface per capture point; returns the count.

    Raises OSError when the file cannot be written.
    """
    from scapy.layers.l2 import Ether
    from scapy.utils import PcapNgWriter

    with PcapNgWriter(path) as out:
        for f in frames:
            pkt = Ether(f.data)
            pkt.time = f.time
            pkt.sniffed_on = f.point.label
            pkt.direction = 2 if f.outgoing else 1
            out.write(pkt)
    return len(frames)
