"""The verdict of a trace, and, when the request did not get through, where it died and why.

Checked in order, each resting on evidence: the app's answer (delivered);
an RST or ICMP error and where it came from (refused), with the nat rule
that let the packet through untranslated when nothing publishes the port;
a DROP/REJECT rule or DROP policy whose counter moved (dropped); a task
gone or a node down or cut on the way (dropped, with a cause: see
:mod:`netlab.trace.gone`); a VXLAN device asked to send to a MAC it has no
forwarding entry for (dropped); and last, the furthest point the request
was seen (dropped, said as such).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from netlab.trace import gone, rules
from netlab.trace.flows import Seen
from netlab.trace.hoplog import HopLog

if TYPE_CHECKING:
    from netlab.trace.model import Backend, Direction, Evidence, Verdict


def _delivered(b: HopLog, backend: Backend | None) -> tuple[Verdict, str]:
    body = b.obs.probe.body or {}
    who = f"{backend.task} on {backend.node}" if backend else "a task"
    seen = f"; it saw the client as {body['client']}" if body.get("client") else ""
    return "delivered", f"{who} answered{seen}"


def _refused(b: HopLog, reply: list[Seen]) -> tuple[Verdict, str]:
    req = b.obs.request
    origin = reply[0] if reply else None
    if origin is None:
        return "refused", f"the connection was refused ({b.obs.probe.error})"
    ns = origin.point.netns
    target = b.facts.target.get(ns, ns)
    what = "ICMP error" if origin.flags.startswith("ICMP") else "RST"
    idx = next(i for i, h in enumerate(b.hops) if h.leg == "reply")
    rule = None
    returned = b.counted(ns, lambda c: c.table == "nat" and c.target == "RETURN"
                         and c.chain == "DOCKER-INGRESS")
    ev: tuple[Evidence, ...] = ("capture",)
    obs = b.hops[idx].observed
    port = int(req.dst.rsplit(":", 1)[1])
    host_mode = b.facts.host_published.get((req.proto, port))
    if req.service is None and host_mode is not None:
        svc, nodes = host_mode
        why = (f"{svc} publishes {req.proto}/{port} in host mode, only on the nodes running its "
               f"tasks ({', '.join(nodes) or 'none'}); {req.node} runs none, so no DNAT matched")
    elif req.service is None:
        why = (f"nothing publishes {req.proto}/{port} on {req.node}: "
               f"no DOCKER-INGRESS DNAT matched")
    if req.service is None:
        if returned:
            rule = returned[0][0]
            ev += ("counter",)
            obs += (b.counter_note(*returned[0]),)
            why += " (its RETURN rule counted the packet)"
        why += (f", so {target}'s kernel answered {what}: "
                f"nothing listens on {origin.flow.src}:{origin.flow.sport}")
    else:
        why = f"{target} answered {what}: nothing listens on {origin.flow.src}:{origin.flow.sport}"
    back = [h for h in b.hops[idx + 1:] if h.iface]
    if back:
        obs += (f"the {what} was captured on its way back at "
                + ", ".join(f"{h.netns}/{h.iface}" for h in back),)
    # The refusal is the last hop: the way back is evidence, listed in its observations.
    b.hops[idx:] = [replace(b.hops[idx], event="rst" if what == "RST" else "reject", detail=why,
                            rule=rule.text if rule else None, evidence=ev, observed=obs,
                            object=rules.obj(rule.text) if rule else None)]
    return "refused", why


def _dropped(b: HopLog, request: list[Seen]) -> tuple[Verdict, str]:
    last = request[-1] if request else None
    forward = b.chain.forward
    drops = []
    for ns in b.deltas:
        for c, n in b.counted(ns, lambda c: c.target in ("DROP", "REJECT")):
            if c.index == 0 or any(rules.fits(c.text, f) for f in forward):
                drops.append((ns, c, n))
    if drops:
        ns, c, n = next((d for d in drops if last and d[0] == last.point.netns), drops[0])
        target = b.facts.target.get(ns, ns)
        flow = last.flow if last else b.obs.orig
        what = "policy " + c.target if c.index == 0 else f"rule {c.index} ({c.target})"
        detail = f"dropped in {target} by {c.table} {c.chain} {what}"
        b.add(ns, "request", "reject" if c.target == "REJECT" else "drop", flow, detail,
              rule=c, evidence=("counter",), observed=(b.counter_note(c, n),))
        return "dropped", detail
    found = gone.cause(b, request)
    if found is not None:
        b.cause = found
        d: Direction | None
        if last is None:
            ns, flow, iface, d = b.facts.netns_of.get(b.obs.request.from_, ""), b.obs.orig, None, None
        else:
            ns, flow = last.point.netns, last.flow
            iface, d = last.point.iface, "out" if last.frame.outgoing else "in"
        b.add(ns, "request", "drop", flow, found.summary, iface=iface, dir=d,
              evidence=found.evidence, observed=found.observed)
        return "dropped", found.summary
    if last is None:
        detail = f"no packet of the request was captured leaving {b.obs.request.from_}"
        return "dropped", detail
    p = last.point
    if last.frame.outgoing and p.iface.startswith("vxlan"):
        snap = b.obs.after.get(p.netns)
        fdb = {(dev, mac) for dev, mac, _dst in snap.fdb} if snap else set()
        mac = last.dst_mac
        if (p.iface, mac) not in fdb:
            owner = b.facts.owner_of_mac.get(mac, "an unknown endpoint")
            planned = b.facts.planned_fdb.get((p.netns, mac))
            detail = (f"{p.iface} has no FDB entry for {mac} ({owner}): VXLAN has no remote "
                      f"address to send it to, so the kernel drops it"
                      + (f" (the plan has {mac} dst {planned}; `netlab up` restores it)" if planned else ""))
            b.add(p.netns, "request", "drop", last.flow, detail, iface=p.iface, dir="out",
                  evidence=("capture", "fdb"),
                  observed=(f"fdb of {b.facts.target.get(p.netns)}: {len(fdb)} remote entries, "
                            f"none for {mac}",))
            return "dropped", detail
    d = "out" if last.frame.outgoing else "in"
    detail = (f"last seen at {p.label} ({d}); no capture point saw it after that and "
              f"no DROP rule counted it")
    b.add(p.netns, "request", "drop", last.flow, detail, iface=p.iface, dir=d,
          evidence=("capture",), observed=())
    return "dropped", detail


def diagnose(b: HopLog, request: list[Seen], reply: list[Seen],
             backend: Backend | None) -> tuple[Verdict, str]:
    """(verdict, reason); adds or rewrites the last hop through ``b`` when the request failed."""
    outcome = b.obs.probe.outcome
    if outcome == "answered":
        return _delivered(b, backend)
    if outcome in ("refused", "reset") or (reply and reply[0].flags in ("R", "RA")):
        return _refused(b, reply)
    return _dropped(b, request)
