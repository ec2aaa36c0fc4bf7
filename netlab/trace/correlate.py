"""Turn what was captured and read into hops: the path there and back, and a verdict.

Pure: no kernel access. The input is an :class:`Observation` (the frames, the
snapshots before and after, the probe's outcome); the output a
:class:`~netlab.trace.model.Trace`. The request's first packet (the SYN) and
the reply's first packet (SYN-ACK, RST or ICMP error) are followed point by
point in kernel-timestamp order. Between two sightings in one namespace
whose tuples differ, the translations are named from the evidence of that
namespace, in netfilter hook order: mangle MARK, nat DNAT/REDIRECT, IPVS,
filter, nat SNAT. A hop without evidence is not printed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from netlab.kernel.iptables import RuleCounter

from netlab.trace import gone, rules
from netlab.trace.diagnose import diagnose
from netlab.trace.evidence import Flow, NsSnapshot, counter_deltas
from netlab.trace.facts import LabFacts
from netlab.trace.flows import FlowChain, Seen, decode, first_packet, flooded, follow
from netlab.trace.hoplog import HopLog, Observation, ep
from netlab.trace.model import Backend, Direction, Event, Evidence, Leg, Trace


def _change(a: Flow, b: Flow) -> str:
    """What a translation changed, in words: "source X → Y, destination Z → W"."""
    parts = []
    if (a.src, a.sport) != (b.src, b.sport):
        parts.append(f"source {a.src}:{a.sport} → {b.src}:{b.sport}")
    if (a.dst, a.dport) != (b.dst, b.dport):
        parts.append(f"destination {a.dst}:{a.dport} → {b.dst}:{b.dport}")
    return ", ".join(parts) or "no change"


class _Builder(HopLog):
    """Walks the sightings of one trace into hops (the log's helpers are :class:`HopLog`'s)."""

    # -- sightings -----------------------------------------------------------
    def sighting(self, s: Seen, prev: Seen | None) -> None:
        p = s.point
        d: Direction = "out" if s.frame.outgoing else "in"
        obs = (f"capture {p.label} {d} +{(s.frame.time - self.t0) * 1000:.3f} ms: {s.summary}",)
        common: dict[str, Any] = {"iface": p.iface, "dir": d, "observed": obs, "t": s.frame.time}
        o = s.outer
        outer: dict[str, Any] = ({"src": ep(o.src, o.sport), "dst": ep(o.dst, o.dport), "proto": "udp"}
                                 if o else {})
        if o is not None and (prev is None or prev.outer is None):
            self.add(p.netns, s.leg, "encap", s.flow,
                     f"VXLAN encap VNI {s.vni} {o.src} → {o.dst} udp/{o.dport}",
                     evidence=("capture",), **common, **outer)
            return
        if o is None and prev is not None and prev.outer is not None:
            self.add(p.netns, s.leg, "decap", s.flow,
                     f"VXLAN decap VNI {prev.vni} from {prev.outer.src} → {p.iface}",
                     evidence=("capture",), **common)
            return
        peer = self.facts.peer.get((p.netns, p.iface))
        what = f"{d} on {p.iface}" + (f" ({'to' if d == 'out' else 'from'} {peer})" if peer else "")
        if o is not None:
            what += f": VXLAN VNI {s.vni} carrying {s.flow.text}"
        elif s.flags:
            what += f" [{s.flags}]"
        rule, note, ev = self.accepting_rule(p.netns, s) if d == "out" and o is None else (None, (), ())
        common["observed"] = obs + note
        self.add(p.netns, s.leg, "tx" if d == "out" else "rx", s.flow, what, rule=rule,
                 evidence=("capture", *ev), **common, **outer)

    def accepting_rule(self, ns: str, s: Seen
                       ) -> tuple[RuleCounter | None, tuple[str, ...], tuple[Evidence, ...]]:
        """A filter ACCEPT rule that counted this packet's direction (e.g. DOCKER-INGRESS)."""
        for c, n in self.counted(ns, lambda c: c.table == "filter" and c.target == "ACCEPT"
                                 and c.index > 0 and rules.option(c.text, "-p")):
            if rules.fits(c.text, s.flow):
                return c, (self.counter_note(c, n),), ("counter",)
        return None, (), ()

    # -- translations inside one namespace ----------------------------------
    def un_nat(self, ns: str, a: Flow, b: Flow, iface_out: str | None) -> None:
        """On the reply: conntrack undoing the request's translations in ``ns``."""
        if a == b:
            return
        ev, ob = self.ct_note(ns)
        conn = self.chain.ipvs.get(ns)
        if conn:
            ev, ob = ev + ("ipvs-conn",), ob + (conn.text,)
        what = ("IPVS and SNAT" if conn else "the REDIRECT" if self.facts.role.get(ns) == "task"
                else "the DNAT")
        by = "conntrack reverses" if ev else ("reversed (the kernel already deleted the conntrack "
                                              "entry, as it does when an RST answers a SYN)")
        self.add(ns, "reply", "un-nat", b, f"{what} {by}: {_change(a, b)}",
                 iface=iface_out, evidence=("capture", *ev), observed=ob)

    def translations(self, ns: str, a: Flow, b: Flow, iface_in: str | None,
                     iface_out: str | None) -> None:
        """On the request, from ``a`` (in) to ``b`` (out): MARK, DNAT/REDIRECT, IPVS, SNAT."""
        leg: Leg = "request"
        jump = lambda c: rules.jump_path(c, self.deltas[ns])  # noqa: E731
        fit = lambda c: rules.fits(c.text, a) or rules.fits(c.text, b)  # noqa: E731
        routed = Flow(a.proto, a.src, a.sport, b.dst, b.dport)   # after DNAT/IPVS, before SNAT
        mark: int | None = None
        for c, n in self.counted(ns, lambda c: c.table == "mangle" and c.target == "MARK"):
            if fit(c):
                mark = int((rules.option(c.text, "--set-xmark") or rules.option(c.text, "--set-mark")
                            or "0").split("/")[0], 16)
                self.add(ns, leg, "mark", a, f"mangle {jump(c)}: MARK {mark:#x} ({mark})",
                         iface=iface_in, rule=c, evidence=("counter",),
                         observed=(self.counter_note(c, n),))
        rewritten = False
        for c, n in self.counted(ns, lambda c: c.table == "nat" and c.target in ("DNAT", "REDIRECT")):
            if not fit(c):
                continue
            ev, ob = self.ct_note(ns)
            event: Event
            if c.target == "DNAT":
                event, detail = "dnat", f"nat {jump(c)}: DNAT → {rules.option(c.text, '--to-destination')}"
            else:
                event, detail = "redirect", (f"nat {jump(c)}: REDIRECT {a.dport} → "
                                             f"{rules.option(c.text, '--to-ports')}")
            rewritten = True
            self.add(ns, leg, event, routed, detail, iface=iface_in, rule=c,
                     evidence=("counter", *ev), observed=(self.counter_note(c, n), *ob))
        conn = self.chain.ipvs.get(ns)
        if conn:
            sched = self.facts.scheduler.get((ns, mark), "?") if mark is not None else "?"
            task = self.facts.tasks_by_ip.get(conn.dest.rsplit(":", 1)[0])
            who = f" ({task[0]} on {task[1]})" if task else ""
            svc = f"FWM {mark} {sched}" if mark else "service"
            ev, ob = self.ct_note(ns)
            detail = f"IPVS {svc} → {conn.dest}{who}"
            drained = gone.skipped(self, ns, mark)
            if drained:
                note = gone.skipped_note(self, ns, drained)
                self.notes.append(note)
                detail += "; " + note
                ev, ob = ("ipvs-table", *ev), tuple(d.text for d in drained) + ob
            self.add(ns, leg, "ipvs", routed, detail,
                     evidence=("ipvs-conn", *ev), observed=(conn.text, *ob))
        elif (a.dst, a.dport) != (b.dst, b.dport) and not rewritten:
            ev, ob = self.ct_note(ns)
            if ev:
                self.add(ns, leg, "dnat", b, f"destination rewritten {a.dst}:{a.dport} → "
                         f"{b.dst}:{b.dport}", evidence=ev, observed=ob)
        if (a.src, a.sport) == (b.src, b.sport):
            return
        ev, ob = self.ct_note(ns)
        snat = self.counted(ns, lambda c: c.table == "nat" and c.target in ("SNAT", "MASQUERADE"))
        found, n = next(((c, n) for c, n in snat
                         if rules.fits(c.text, routed) or rules.fits(c.text, b)), (None, 0))
        if found is not None:
            to = rules.option(found.text, "--to-source") or b.src
            lost = " (client IP lost here)" if a.src == self.obs.orig.src else ""
            self.add(ns, leg, "snat", b, f"nat {jump(found)}: {found.target} → {to}{lost}",
                     iface=iface_out, rule=found, evidence=("counter", *ev),
                     observed=(self.counter_note(found, n), *ob))
        elif ev:
            self.add(ns, leg, "snat", b, f"source rewritten {a.src}:{a.sport} → {b.src}:{b.sport}",
                     iface=iface_out, evidence=ev, observed=ob)

    # -- the end of the request leg in a task --------------------------------
    def arrival(self, last: Seen, answered: bool) -> None:
        """Where the request leg ends: what that namespace did to it, and delivery in a task."""
        ns = last.point.netns
        if self.facts.role.get(ns) != "task":
            if not last.frame.outgoing:
                self.translations(ns, last.flow, last.flow, last.point.iface, None)
            return
        entry = self.chain.conntrack.get(ns)
        after = entry.reply.reversed() if entry else last.flow
        # Always: Docker's REDIRECT counts even when published and target ports are equal.
        self.translations(ns, last.flow, after, last.point.iface, None)
        if answered:
            target = self.facts.target[ns]
            ev, ob = self.ct_note(ns)
            self.add(ns, "request", "deliver", after,
                     f"delivered to {target}: its app on :{after.dport} accepted it",
                     iface=last.point.iface, evidence=("capture", *ev), observed=ob)

    def departure(self, first: Seen) -> None:
        """Before the reply's first sighting in a task: conntrack undoes the REDIRECT."""
        ns = first.point.netns
        entry = self.chain.conntrack.get(ns)
        if self.facts.role.get(ns) == "task" and entry and entry.reply != first.flow:
            self.un_nat(ns, entry.reply, first.flow, first.point.iface)


def _walk(b: _Builder, sights: list[Seen], leg: str) -> None:
    prev: Seen | None = None
    last_in: dict[str, Seen] = {}
    for s in sights:
        ns = s.point.netns
        entered = last_in.get(ns)
        if s.frame.outgoing and entered is not None and entered.outer is None and s.outer is None \
                and entered.flow != s.flow:
            if leg == "request":
                b.translations(ns, entered.flow, s.flow, entered.point.iface, s.point.iface)
            else:
                b.un_nat(ns, entered.flow, s.flow, s.point.iface)
        b.sighting(s, prev)
        if not s.frame.outgoing:
            last_in[ns] = s
        prev = s


def correlate(obs: Observation, facts: LabFacts) -> Trace:
    """The trace of ``obs``: hops of the request and its reply, the backend and a verdict."""
    deltas = {ns: counter_deltas(obs.before.get(ns, NsSnapshot(())), snap)
              for ns, snap in obs.after.items()}
    chain = follow(obs.orig, obs.after, {ns: [c for c, _n in d] for ns, d in deltas.items()})
    decoded = [x for f in obs.frames if (x := decode(f, chain, facts.vxlan_port)) is not None]
    seen = [x for x in decoded if not flooded(x, facts.peer_mac)]
    t0 = seen[0].frame.time if seen else 0.0
    b = _Builder(obs, facts, chain, t0, deltas)
    request = first_packet(seen, "request")
    reply = first_packet(seen, "reply")
    answered = obs.probe.outcome == "answered"
    _walk(b, request, "request")
    if request:
        b.arrival(request[-1], answered or bool(reply))
    if reply:
        b.departure(reply[0])
        _walk(b, reply, "reply")
    backend = _backend(obs, chain, facts)
    verdict, reason = diagnose(b, request, reply, backend)
    missing = tuple(facts.target.get(n, n) for n in obs.missing)
    if verdict == "delivered" and missing:
        b.notes.append(f"no namespace is named for {', '.join(missing)} any more (removed "
                       f"outside netlab), so nothing there was captured; a task that still "
                       f"answers lives on in a namespace its app's socket holds: netlab up "
                       f"{facts.scenario or 'SCENARIO'} recreates it")
    hops = tuple(replace(h, seq=i) for i, h in enumerate(b.hops, 1))
    return Trace(obs.request, backend, verdict, reason, hops, obs.probe.body,
                 obs.capture_points, len(decoded), obs.probe.elapsed_ms, b.cause,
                 tuple(dict.fromkeys(b.notes)), missing)


def _backend(obs: Observation, chain: FlowChain, facts: LabFacts) -> Backend | None:
    body = obs.probe.body or {}
    if body.get("task"):
        return Backend(body["task"], body.get("node", "?"), body.get("task_ip", "?"))
    for conn in chain.ipvs.values():
        ip = conn.dest.rsplit(":", 1)[0]
        if ip in facts.tasks_by_ip:
            task, node = facts.tasks_by_ip[ip]
            return Backend(task, node, ip)
        if ip in facts.ended_by_ip:     # a task gone, which IPVS still chose
            ended = facts.ended_by_ip[ip]
            return Backend(ended.name, ended.node, ip)
    return None
