"""A real Swarm node against its part of a plan, namespace by namespace: ``netlab swarm diff``.

Pure: the real namespaces come in read (:class:`~netlab.diff.drift.NetnsSeen`
by the target they play, see :mod:`netlab.docker.snapshot`), the plan is
the scenario's adopted to the Swarm's placement and addresses
(:mod:`netlab.docker.adopt`). Each namespace of the plan that belongs to the
node (its host, ingress_sbox, overlays, load balancer sandboxes and its
tasks) is compared with :mod:`netlab.diff.compare`'s functions (links,
addresses, routes, neighbours, FDB, sysctls, iptables rule by rule in
order, IPVS services and weights) after :mod:`netlab.docker.normalize` took
out what legitimately differs, and each difference names the object behind
it. What is set aside is listed as known, with why; it is not counted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from netlab.diff import drift as d
from netlab.diff.compare import planned_tables
from netlab.diff.drift import Allowance, Drift, NetnsSeen
from netlab.diff.ruledrift import table_drift
from netlab.docker import normalize as nz
from netlab.docker.snapshot import Snapshot
from netlab.plan.types import Netns, Plan

#: What netlab leaves out on purpose, each with why (printed as "known", not counted).
HOST_LAN = ("the node's LAN interface (netlab's eth0, a veth on its simulated LAN) is the "
            "machine's own; its name, address and routes are the underlay, not the Swarm's")
DEFAULT_BRIDGE = ("Docker's default bridge docker0 and its rules: netlab leaves the default "
                  "bridge out (README, 'left out'); Swarm services do not use it")
NOT_MODELLED = "a namespace Docker keeps for something that is not a Swarm object netlab models"
FORWARD_POLICY = ("filter FORWARD's policy ACCEPT where netlab has DROP: Docker sets DROP only when "
                  "it turns net.ipv4.ip_forward on itself; on a machine that forwarded already it "
                  "leaves the policy as it was")
SANDBOX_DNS = ("the embedded DNS's rules (127.0.0.11) in a load balancer sandbox: Docker puts them "
               "in every sandbox it makes, netlab only in tasks, where a process resolves names")


@dataclass(frozen=True)
class Difference:
    """One difference: where (plan target, real namespace file), what, the plan's and
    the real value, and the Swarm object behind it."""

    target: str
    path: str
    kind: str
    object: str
    plan: str
    real: str
    behind: str
    detail: str


@dataclass(frozen=True)
class Compared:
    """A namespace of the node that was compared: its plan target, its real file,
    what Docker made it for, and how many differences it has."""

    target: str
    path: str
    what: str
    differences: int


@dataclass(frozen=True)
class NodeDiff:
    """The comparison of one real node with the plan of the scenario node it plays."""

    node: str                       # the scenario node
    real_node: str                  # the real node's scenario name
    hostname: str
    differences: tuple[Difference, ...]
    known: tuple[nz.Known, ...]
    notes: tuple[str, ...] = ()
    namespaces: tuple[Compared, ...] = ()

    @property
    def equal(self) -> bool:
        return not self.differences


def node_namespaces(plan: Plan, node: str) -> tuple[Netns, ...]:
    """The plan's namespaces on ``node``: its host, sandboxes, overlays and tasks."""
    return tuple(ns for ns in plan.netns if ns.node == node)


def real_target(target: str, node: str, real_node: str) -> str:
    """A plan target in the real node's names (``node1/ingress_sbox`` -> ``<real>/ingress_sbox``)."""
    if target == node:
        return real_node
    if target.startswith(node + "/"):
        return real_node + target[len(node):]
    return target


_IP = re.compile(r"\b(\d+\.\d+\.\d+\.\d+)\b")
_MAC = re.compile(r"\b02:42:([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2}):([0-9a-f]{2})\b")


def _owner(obj: str, owners: dict[str, str]) -> str | None:
    """The Swarm object holding an address (or a libnetwork MAC) named in ``obj``."""
    ips = _IP.findall(obj) + [".".join(str(int(x, 16)) for x in m) for m in _MAC.findall(obj)]
    return next((owners[ip] for ip in ips if ip in owners), None)


def _behind(snap: Snapshot, target: str, what: str, rule: str | None) -> str:
    """The Swarm object behind a difference in ``target``: the rule's scenario object
    when the plan's rule names one, else what Docker made the namespace for."""
    obj = nz.comment_of(rule) if rule else None
    task = next((t for t in snap.tasks if t.name == target), None)
    if task is not None:
        what = f"task {task.name} ({what})"
    return f"{obj}; {what}" if obj else what


def _planned_rules(plan: Plan, netns: str) -> dict[str, str]:
    """The plan's tables in ``netns`` with netlab's comments taken out."""
    return {t: nz.strip_comments(text) for t, text in planned_tables(plan, netns).items()}


def _rule_comments(plan: Plan, netns: str) -> dict[str, str]:
    """Each planned rule (comment stripped) -> its full text, to name the object behind it."""
    return {nz.mask_dns_port(nz.strip_comments(r)): r
            for text in planned_tables(plan, netns).values()
            for r in text.splitlines() if r.startswith("-A ")}


def compare_namespace(plan: Plan, ns: Netns, seen: NetnsSeen, host: bool) -> tuple[list[Drift], list[str]]:
    """Drift of one namespace, normalised; the second value is what was set aside
    (each a short description). ``host``: the node's own namespace."""
    items, name, target = plan.items_in(ns.name), ns.name, ns.target
    aside: list[str] = []
    wants = d.planned_links(name, items, Allowance())
    addresses, routes = items.addresses, items.routes
    if host:
        lan = [w for w in wants if w.kind == "veth" and w.master is None]
        wants = [w for w in wants if w not in lan]
        lan_names = {w.name for w in lan}
        aside += [f"link {w.name} (LAN)" for w in lan]
        addresses = tuple(a for a in addresses if a.ifname not in lan_names)
        aside += [f"address {a.cidr} dev {a.ifname} (LAN)" for a in items.addresses
                  if a.ifname in lan_names]
        seen = nz.only_links(seen, {w.name for w in wants})
        routes_seen = tuple(r for r in seen.routes if any(p.dst == r.dst for p in routes))
        seen = replace(seen, routes=routes_seen)
        filt = seen.tables.get("filter", "")
        if ":FORWARD ACCEPT" in filt.splitlines() and any(
                p.table == "filter" and p.chain == "FORWARD" and p.policy == "DROP"
                for p in items.policies):
            seen = replace(seen, tables={**seen.tables,
                                         "filter": filt.replace(":FORWARD ACCEPT", ":FORWARD DROP")})
            aside.append("policy filter FORWARD ACCEPT")
    tables, dropped = nz.drop_default_bridge(seen.tables)
    aside += [f"rule {line}" for line in dropped]
    if ns.role == "sandbox":
        tables, dropped = nz.drop_sandbox_dns(tables)
        aside += [f"dns rule {line}" for line in dropped]
    out = d.link_drift(name, target, wants, seen.links)
    out += d.address_drift(name, target, addresses, seen.addresses)
    out += d.route_drift(name, target, routes, seen.routes)
    out += d.peer_drift(name, target, items, seen)
    out += d.sysctl_drift(name, target, {s.key: s.value for s in items.sysctls}, seen.sysctls)
    want = {t: nz.mask_dns_port(text) for t, text in _planned_rules(plan, name).items()}
    tables = {t: nz.mask_dns_port(text) for t, text in tables.items()}
    for table in list(want) + [t for t in tables if t not in want]:
        out += table_drift(name, target, table, want.get(table, ""), tables.get(table, ""))
    if seen.ipvs is not None:
        out += d.ipvs_drift(name, target, items.ipvs, seen.ipvs, Allowance())
    return out, aside


def compare_node(plan: Plan, node: str, snap: Snapshot, seen: dict[str, NetnsSeen],
                 notes: tuple[str, ...] = (), owners: dict[str, str] | None = None) -> NodeDiff:
    """The real node of ``snap`` (its namespaces ``seen`` by real target, veths not yet
    renamed) against the plan's namespaces of scenario node ``node``; ``owners``
    names the object holding each address (see ``Adopted.owners``)."""
    owners = owners or {}
    seen = nz.rename_veths(seen)
    this = snap.this_node
    diffs: list[Difference] = []
    known: list[nz.Known] = []
    compared: list[Compared] = []
    planned = node_namespaces(plan, node)
    wanted_real = {real_target(ns.target, node, this) for ns in planned}
    for ns in planned:
        rt = real_target(ns.target, node, this)
        sb = snap.sandbox(rt)
        path = sb.path if sb else ""
        what = sb.what if sb else ns.target
        if sb is None or rt not in seen:
            diffs.append(Difference(ns.target, path, "netns", f"namespace of {ns.target}",
                                    "present", "absent", _behind(snap, ns.target, what, None),
                                    f"{ns.target}: the Swarm node has no namespace for it"))
            continue
        drifts, aside = compare_namespace(plan, ns, seen[rt], ns.role == "host")
        compared.append(Compared(ns.target, path, what, len(drifts)))
        comments = _rule_comments(plan, ns.name)
        for x in drifts:
            rule = comments.get(x.plan) or comments.get(x.detail.split(": ", 2)[-1])
            behind = _behind(snap, ns.target, what, rule)
            if (owner := _owner(x.object, owners)) is not None:
                behind = f"{owner}; {behind}"
            diffs.append(Difference(ns.target, path, x.kind, x.object, x.plan, x.kernel,
                                    behind, x.detail))
        for a in aside:
            why = (SANDBOX_DNS if a.startswith("dns rule ") else
                   DEFAULT_BRIDGE if a.startswith("rule ") else
                   FORWARD_POLICY if a.startswith("policy ") else HOST_LAN)
            known.append(nz.Known(ns.target, path, a.removeprefix("dns "), why))
    for sb in snap.sandboxes:
        if sb.target in wanted_real:
            continue
        if sb.target:
            diffs.append(Difference(sb.target, sb.path, "netns", f"namespace of {sb.target}",
                                    "absent", "present", sb.what,
                                    f"{sb.target}: the Swarm node has it, the plan does not"))
        else:
            known.append(nz.Known("", sb.path, sb.what, NOT_MODELLED))
    host = snap.node(this).hostname
    return NodeDiff(node, this, host, tuple(diffs), tuple(known), notes, tuple(compared))
