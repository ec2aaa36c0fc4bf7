"""The hop log of one trace: the hops found so far and what finding them needs.

Pure. :mod:`netlab.trace.correlate` walks a request's sightings into it;
:mod:`netlab.trace.diagnose` and :mod:`netlab.trace.gone` read its evidence,
add the hop that explains a failure and set its cause.
"""

from __future__ import annotations

from dataclasses import dataclass

from netlab.kernel.iptables import RuleCounter
from netlab.trace import rules
from netlab.trace.capture import Frame
from netlab.trace.evidence import Flow, NsSnapshot
from netlab.trace.facts import LabFacts
from netlab.trace.flows import FlowChain
from netlab.trace.model import Cause, Direction, Event, Evidence, Hop, Leg, Request
from netlab.trace.probe import ProbeResult


@dataclass(frozen=True)
class Observation:
    """Everything collected around one traced request."""

    request: Request
    orig: Flow
    probe: ProbeResult
    frames: tuple[Frame, ...]
    before: dict[str, NsSnapshot]
    after: dict[str, NsSnapshot]
    capture_points: tuple[str, ...]
    missing: tuple[str, ...] = ()      # namespaces of the path that no longer exist


def ep(ip: str, port: int) -> str:
    return f"{ip}:{port}"


class HopLog:
    """The hops of one trace as they are found, and what finding them needs: the
    observation, the facts, the rule counters' deltas and the flow chain.

    Shared on purpose: the correlator walks the sightings into it, and the
    diagnosis (:mod:`netlab.trace.diagnose`, :mod:`netlab.trace.gone`) adds the
    hop that explains a failure and sets ``cause``.
    """

    def __init__(self, obs: Observation, facts: LabFacts, chain: FlowChain, t0: float,
                 deltas: dict[str, list[tuple[RuleCounter, int]]]):
        self.obs, self.facts, self.chain, self.t0, self.deltas = obs, facts, chain, t0, deltas
        self.hops: list[Hop] = []
        self.notes: list[str] = []
        self.cause: Cause | None = None

    # -- helpers -------------------------------------------------------------
    def add(self, ns: str, leg: Leg, event: Event, flow: Flow, detail: str, *,
            iface: str | None = None, dir: Direction | None = None, rule: RuleCounter | None = None,  # noqa: A002
            evidence: tuple[Evidence, ...] = (), observed: tuple[str, ...] = (),
            t: float | None = None, src: str | None = None, dst: str | None = None,
            proto: str | None = None) -> None:
        self.hops.append(Hop(
            seq=len(self.hops) + 1, node=self.facts.node.get(ns, ns),
            netns=self.facts.target.get(ns, ns), iface=iface, dir=dir,
            src=src or ep(flow.src, flow.sport), dst=dst or ep(flow.dst, flow.dport),
            proto=proto or flow.proto, event=event, detail=detail,
            rule=rule.text if rule else None, evidence=evidence, leg=leg,
            t_ms=None if t is None else round((t - self.t0) * 1000, 3),
            observed=observed, object=rules.obj(rule.text) if rule else None))

    def counted(self, ns: str, pred) -> list[tuple[RuleCounter, int]]:
        return [(c, n) for c, n in self.deltas.get(ns, []) if pred(c)]

    def counter_note(self, c: RuleCounter, n: int) -> str:
        where = f"{c.table} {c.chain} " + ("policy" if c.index == 0 else f"rule {c.index}")
        return f"counter +{n} packet{'s' if n > 1 else ''}: {where}"

    def ct_note(self, ns: str) -> tuple[tuple[Evidence, ...], tuple[str, ...]]:
        entry = self.chain.conntrack.get(ns)
        return (("conntrack",), (entry.text,)) if entry else ((), ())
