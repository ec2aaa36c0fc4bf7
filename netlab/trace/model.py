"""What a trace is: typed records, shared by the collector, the correlator and the renderers.

A :class:`Trace` is the contract of ``netlab trace --json`` (ARCHITECTURE.md):
``{request, backend, verdict, hops: [...]}``. Field names are part of that
contract; add fields, never rename them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal, get_args

# "resolve" (east-west: the name's answer, the first hop) extends the kinds.
Event = Literal["rx", "tx", "dnat", "mark", "ipvs", "snat", "encap", "decap", "redirect",
                "deliver", "un-nat", "drop", "reject", "rst", "resolve"]
Verdict = Literal["delivered", "dropped", "refused"]
Leg = Literal["request", "reply"]
Direction = Literal["in", "out"]
# "fdb" (a forwarding table read back, for drops at VXLAN) extends the four kinds;
# so do "ipvs-table" (a sandbox's IPVS services and weights, as ``ipvsadm -Ln``), "link"
# (an interface's UP/NO-CARRIER state), "neigh" (an ARP entry) and "history" (the
# lab's task history: when and why a task ended), "records" (the service records of
# the lab's plan, what the embedded DNS answers: an east-west name's resolution) and
# "dns" (the embedded DNS's answer to the A query the task really sent).
Evidence = Literal["capture", "counter", "conntrack", "ipvs-conn", "fdb", "ipvs-table", "link",
                   "neigh", "history", "records", "dns"]
# Why a request to a task that went away died (Trace.cause.kind):
#   stale-backend: IPVS still lists a destination whose task is gone;
#   node-down:     the request went towards a node the lab has down (netlab node … down);
#   node-cut:      … towards a node the lab thinks ready, whose LAN link is down.
CauseKind = Literal["stale-backend", "node-down", "node-cut"]

EVIDENCE_KINDS: tuple[str, ...] = get_args(Evidence)


@dataclass(frozen=True)
class Request:
    """What was sent: from which namespace, to which node's published port."""

    lab: str
    target: str            # "node2:5000" as the user wrote it
    node: str
    dst: str               # "192.168.56.12:5000"
    proto: str             # "tcp" | "udp"
    src: str               # "192.168.56.2:40123" (the source port is chosen, so it is known)
    from_: str             # the sending target, e.g. "client"
    service: str | None    # the service publishing the port, or None when nothing does


@dataclass(frozen=True)
class Backend:
    """The task that answered (or that IPVS chose, when the answer never came)."""

    task: str
    node: str
    ip: str


@dataclass(frozen=True)
class Hop:
    """One step of the packet: seen on an interface, or changed by the kernel.

    ``src``/``dst`` are ``ip:port`` as the packet is at this point (the outer
    addresses for an ``encap`` hop). ``evidence`` names what the hop rests on;
    ``observed`` says it in words (the captured packet, the counter delta,
    the conntrack entry) for a human reading the JSON.
    """

    seq: int
    node: str
    netns: str             # the target name: "node2/ingress_sbox", "hello-a.1", "client", "lan"
    iface: str | None
    dir: Direction | None
    src: str
    dst: str
    proto: str
    event: Event
    detail: str
    rule: str | None
    evidence: tuple[Evidence, ...]
    leg: Leg = "request"
    t_ms: float | None = None          # time since the first captured packet
    observed: tuple[str, ...] = ()
    object: str | None = None          # the scenario object behind the rule (its netlab: comment)


@dataclass(frozen=True)
class Cause:
    """What made a request die on its way to a task that went away, and the fix.

    Names what the evidence names: the task, its node and its address; the
    sandbox, firewall mark and weight of the IPVS destination still listing
    it; when and by which change the task ended (the state's history); the
    node and the link that is down.
    """

    kind: CauseKind
    summary: str                       # one line, also the trace's reason
    fix: str
    task: str | None = None
    node: str | None = None
    ip: str | None = None
    sandbox: str | None = None         # "node2/ingress_sbox"
    fwmark: int | None = None
    weight: int | None = None
    ended_at: str | None = None
    ended_by: str | None = None
    link: str | None = None            # "lan/veth-node1 NO-CARRIER"
    evidence: tuple[Evidence, ...] = ()
    observed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Trace:
    """One traced request: the path there and back, and how it ended."""

    request: Request
    backend: Backend | None
    verdict: Verdict
    reason: str                        # one line: why the verdict (the last hop's story)
    hops: tuple[Hop, ...]
    reply: dict | None = None          # the task app's JSON answer, when there was one
    capture_points: tuple[str, ...] = ()   # "node2/ingress_sbox/eth1", ...
    packets: int = 0                   # packets of this flow captured, all points together
    elapsed_ms: float = 0.0
    cause: Cause | None = None         # a request that died on its way to a task gone
    # what is worth knowing but no failure (IPVS skipped a weight-0 destination)
    notes: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()      # targets of the path whose namespace no longer exists

    def to_json(self) -> dict:
        """The ``--json`` document (``from_`` is spelled ``from``)."""
        doc = asdict(self)
        doc["notes"], doc["missing"] = list(self.notes), list(self.missing)
        if doc["cause"] is not None:
            doc["cause"]["evidence"] = list(doc["cause"]["evidence"])
            doc["cause"]["observed"] = list(doc["cause"]["observed"])
        doc["request"]["from"] = doc["request"].pop("from_")
        for hop in doc["hops"]:
            hop["evidence"] = list(hop["evidence"])
            hop["observed"] = list(hop["observed"])
        doc["capture_points"] = list(doc["capture_points"])
        return doc


@dataclass(frozen=True)
class RepeatSummary:
    """``--repeat N``: which backend IPVS picked for each request, in order."""

    target: str
    picks: tuple[str | None, ...]      # task name per request (None: no backend reached)
    verdicts: tuple[str, ...]
    causes: tuple[str | None, ...] = ()   # per request: the cause's summary when it died
    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for task in self.picks:
            key = task or "(none)"
            out[key] = out.get(key, 0) + 1
        return out
