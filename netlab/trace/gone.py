"""Requests to a task that went away: what IPVS skipped, and why a request died.

A living swarm changes under a request: a scale-down sets a destination's
weight to 0 and then removes it, a node fails and its tasks restart
elsewhere. Each of these leaves kernel evidence that names it, read after
the request (see :mod:`netlab.trace.evidence`):

- a destination of weight 0 in a sandbox's IPVS table: IPVS skips it, which
  is draining, not a failure (:func:`skipped`);
- IPVS chose a destination whose task is gone: its namespace no longer
  exists, or the lab's history says it was shut down, and when and by which
  change: a stale backend (moby/moby#33790, #26060);
- the request went into VXLAN (or across the LAN) towards a node whose LAN
  link is down: the node is down (``netlab node … down``) or cut by hand.

Pure: a builder of hops in, a :class:`~netlab.trace.model.Cause` out.
"""

from __future__ import annotations

from typing import Any

from netlab.plan import names
from netlab.trace.evidence import IpvsDestination, LinkState
from netlab.trace.flows import Seen
from netlab.trace.hoplog import HopLog
from netlab.trace.model import Cause

DOCKER_NOTE = "Docker's analogue: stale IPVS backends after task removal (moby/moby#33790)"


def _table(b: HopLog, ns: str) -> tuple[IpvsDestination, ...]:
    snap = b.obs.after.get(ns)
    return snap.ipvs_table if snap else ()


def _who(b: HopLog, ip: str) -> str:
    """"hello-a.1 on node1" for a task's address (running or in the history), else ""."""
    if ip in b.facts.tasks_by_ip:
        task, node = b.facts.tasks_by_ip[ip]
        return f"{task} on {node}"
    ended = b.facts.ended_by_ip.get(ip)
    return f"{ended.name} on {ended.node}, {ended.state}" if ended else ""


def skipped(b: HopLog, ns: str, fwmark: int | None) -> list[IpvsDestination]:
    """The destinations of ``fwmark`` in sandbox ``ns`` that IPVS skips: weight 0 (draining)."""
    return [d for d in _table(b, ns) if d.fwmark == fwmark and d.weight == 0]


def skipped_note(b: HopLog, ns: str, dests: list[IpvsDestination]) -> str:
    """One line: which weight-0 destinations IPVS skipped in ``ns``, and why: a task still
    starting (its health check not passed yet), or one being drained; no failure."""
    def listed(ds: list[IpvsDestination]) -> str:
        return ", ".join(f"{d.addr}:{d.port}" + (f" ({_who(b, d.addr)})" if _who(b, d.addr)
                                                  else "") for d in ds)
    where = b.facts.target.get(ns, ns)
    starting = [d for d in dests if d.addr in b.facts.starting]
    drained = [d for d in dests if d.addr not in b.facts.starting]
    said = []
    if starting:
        said.append(f"IPVS skipped {listed(starting)} in {where}: weight 0, a task starting "
                    "whose health check has not passed yet (Docker activates a task's service "
                    "binding only once it is healthy)")
    if drained:
        said.append(f"IPVS skipped {listed(drained)} in {where}: weight 0, a destination "
                    "being drained (a scale-down deweights before it removes), not a failure")
    return "; ".join(said)


def _link(b: HopLog, target: str, name: str) -> LinkState | None:
    snap = b.obs.after.get(b.facts.netns_of.get(target, ""))
    return next((lk for lk in snap.links if lk.name == name), None) if snap else None


def _neighbour(b: HopLog, target: str, ip: str) -> str | None:
    snap = b.obs.after.get(b.facts.netns_of.get(target, ""))
    if snap is None:
        return None
    return next((f"{target}'s ARP entry for {ip} is {state}" for _dev, addr, state in
                 snap.neighbours if addr == ip), None)


def _last(request: list[Seen]) -> str:
    if not request:
        return "no packet of the request was captured"
    s = request[-1]
    return f"last seen at {s.point.label} {'out' if s.frame.outgoing else 'in'}"


def _stale(b: HopLog, request: list[Seen]) -> Cause | None:
    """IPVS chose a destination whose task is gone."""
    for ns, conn in b.chain.ipvs.items():
        ip = conn.dest.rsplit(":", 1)[0]
        sandbox = b.facts.target.get(ns, ns)
        dest = next((d for d in _table(b, ns) if d.addr == ip), None)
        listed = (f"IPVS FWM {dest.fwmark} in {sandbox} still lists {ip}:{dest.port} weight "
                  f"{dest.weight}" if dest else f"IPVS in {sandbox} had {ip} as a destination")
        arp = _neighbour(b, sandbox, ip)
        evidence: tuple = ("ipvs-conn",) + (("ipvs-table",) if dest else ()) + (
            ("neigh",) if arp else ())
        observed: tuple[str, ...] = (conn.text,) + ((dest.text,) if dest else ()) + (
            (arp,) if arp else ())
        common: dict[str, Any] = {"ip": ip, "sandbox": sandbox,
                                  "fwmark": dest.fwmark if dest else None,
                                  "weight": dest.weight if dest else None}
        fix = (f"netlab up {b.facts.scenario or 'SCENARIO'} converges every sandbox and removes "
               f"the destination; {DOCKER_NOTE}")
        if ip in b.facts.tasks_by_ip:
            task, node = b.facts.tasks_by_ip[ip]
            task_ns = b.facts.netns_of.get(task)
            if task_ns not in b.obs.missing:
                continue
            summary = (f"{task} on {node} is gone: its namespace {task_ns} no longer exists "
                       f"(removed outside netlab: the lab's history has no end for it), yet "
                       f"{listed} and chose it; {_last(request)}")
            return Cause("stale-backend", summary, f"netlab up {b.facts.scenario or 'SCENARIO'} "
                         f"recreates {task} (its namespace, links and app); {DOCKER_NOTE}",
                         task=task, node=node, evidence=evidence, observed=observed + (
                             f"namespace {task_ns} missing",), **common)
        ended = b.facts.ended_by_ip.get(ip)
        if ended is not None:
            when = (f"{ended.state} at {ended.ended_at}" if ended.ended_at else ended.state) + (
                f" by `netlab {ended.ended_by}`" if ended.ended_by else "")
            summary = (f"{ended.name} on {ended.node} is gone ({when}), yet {listed} and chose "
                       f"it: a stale backend; {_last(request)}" + (f"; {arp}" if arp else ""))
            return Cause("stale-backend", summary, fix, task=ended.name, node=ended.node,
                         ended_at=ended.ended_at, ended_by=ended.ended_by,
                         evidence=evidence + ("history",),
                         observed=observed + (f"history: {ended.name} on {ended.node} {when}",),
                         **common)
        summary = (f"no task of the lab has or had {ip}, yet {listed} and chose it: a "
                   f"destination added outside netlab; {_last(request)}")
        return Cause("stale-backend", summary, fix, evidence=evidence, observed=observed, **common)
    return None


def _towards(b: HopLog, request: list[Seen]) -> list[tuple[str, str]]:
    """(node, why the request went there) for the nodes the request was heading to."""
    out: list[tuple[str, str]] = []
    outers = [s.outer for s in request if s.outer is not None]
    if outers:
        dst = outers[-1].dst
        out.append((b.facts.node_of_lan_ip.get(dst, dst), f"the VXLAN packet to {dst}"))
    if request and request[-1].frame.outgoing and request[-1].point.iface.startswith("vxlan"):
        last = request[-1]
        planned = b.facts.planned_fdb.get((last.point.netns, last.dst_mac))
        if planned:
            out.append((b.facts.node_of_lan_ip.get(planned, planned), f"the VXLAN packet to {planned}"))
    node = b.obs.request.node
    out.append((node, f"the request to {b.obs.request.dst}"))
    return out


def _cut(b: HopLog, request: list[Seen]) -> Cause | None:
    """The request went towards a node that is down or whose LAN link is down."""
    for node, what in _towards(b, request):
        if node not in b.facts.node_state:
            continue
        port = names.lan_port(node)
        links = [(f"lan/{port}", _link(b, "lan", port)), (f"{node}/eth0", _link(b, node, "eth0"))]
        dead = [f"{where} {lk.text.split()[-1]}" for where, lk in links
                if lk is not None and not (lk.up and lk.carrier)]
        down = b.facts.node_state[node] == "down"
        if not dead and not down:
            continue
        # Its LAN port set down (netlab node … down) while the lab still has it ready:
        # the window before its peers and the manager notice.
        lan_port = links[0][1]
        unnoticed = not down and lan_port is not None and not lan_port.up
        lan_ip = b.facts.lan_ip.get(node, "?")
        sender = request[-1].point.node if request else b.obs.request.from_
        arp = _neighbour(b, sender, lan_ip)
        observed = tuple(f"link {d}" for d in dead) + ((arp,) if arp else ())
        evidence: tuple = (("link",) if dead else ()) + (("neigh",) if arp else ()) + (
            ("history",) if down else ())
        state = ("down (netlab node … down: it is cut off the LAN and its tasks restart "
                 "elsewhere)" if down else
                 "cut off the LAN (netlab node … down) and not noticed yet: its tasks stay in "
                 "the other nodes' load balancers until their NetworkDB holds it failed "
                 "(memberlist: a probe, then 4 s suspect) and restart elsewhere once the "
                 "manager marks it down (3 missed heartbeats)" if unnoticed else
                 "cut off the LAN, though the lab has it ready")
        summary = (f"{node} is {state}" + (f": {', '.join(dead)}" if dead else "")
                   + f"; {what} ({node}) went nowhere, {_last(request)}"
                   + (f"; {arp}" if arp else ""))
        lab = b.obs.request.lab
        fix = (f"send to a live node, or netlab node {lab} {node} up" if down else
               f"wait for the other nodes and the manager to notice (netlab events {lab} "
               f"--follow), or netlab node {lab} {node} up" if unnoticed else
               f"bring the link up again (ip link set eth0 up in {node}), or netlab node "
               f"{b.obs.request.lab} {node} down so its tasks restart elsewhere")
        return Cause("node-down" if down else "node-cut", summary, fix, node=node, ip=lan_ip,
                     link=", ".join(dead) or None, evidence=evidence, observed=observed)
    return None


def cause(b: HopLog, request: list[Seen]) -> Cause | None:
    """Why the request died on its way to a task that went away, or None when nothing says so."""
    return _stale(b, request) or _cut(b, request)
