"""Plan → diagram: the lab's plumbing as Mermaid or Graphviz dot.

Each namespace is a box (subgraph/cluster) holding its interfaces and
bridges; veth pairs are edges between their two ends; each VXLAN device is
joined over the LAN, by a dashed edge naming the VNI and UDP port, to the
devices of the same VNI on the other nodes (the peers its FDB reaches; never
to another network's VNI, nor to a device on its own node). Drawn from the
plan, so it needs no root and no running lab.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from netlab.plan.types import Plan, Vxlan

FORMATS = ("mermaid", "dot")


@dataclass(frozen=True)
class _Graph:
    boxes: dict[str, tuple[str, list[tuple[str, str]]]]   # netns -> (title, [(id, label)])
    edges: list[tuple[str, str, str, bool]]              # (from id, to id, label, dashed)


def _escape(name: str) -> str:
    """``name`` with every character but ASCII letters and digits written as ``_XX`` (hex)."""
    return re.sub(r"[^A-Za-z0-9]", lambda m: "".join(f"_{b:02x}" for b in m[0].encode()), name)


def _id(netns: str, ifname: str) -> str:
    """A Mermaid/dot identifier for one interface, distinct for distinct (netns, ifname).

    Escaping is injective (``a-1`` -> ``a_2d1``, ``a.1`` -> ``a_2e1``), and ``__``
    never comes out of it (``_`` is always followed by a hex digit), so it
    separates the two names unambiguously.
    """
    return f"n_{_escape(netns)}__{_escape(ifname)}"


def _collect(plan: Plan) -> _Graph:
    boxes: dict[str, tuple[str, list[tuple[str, str]]]] = {
        ns.name: (f"{ns.target} ({ns.name})", []) for ns in plan.netns}
    seen: set[str] = set()

    def node(netns: str, ifname: str, label: str | None = None) -> str:
        nid = _id(netns, ifname)
        if nid not in seen:
            seen.add(nid)
            boxes[netns][1].append((nid, label or ifname))
        return nid

    edges: list[tuple[str, str, str, bool]] = []
    addrs: dict[tuple[str, str], list[str]] = {}
    for address in plan.addresses:
        addrs.setdefault((address.netns, address.ifname), []).append(address.cidr)

    def label(netns: str, ifname: str) -> str:
        return " ".join([ifname, *addrs.get((netns, ifname), [])])

    for bridge in plan.bridges:
        node(bridge.netns, bridge.name, f"{label(bridge.netns, bridge.name)} [bridge]")
    for v in plan.vxlans:
        vx = node(v.netns, v.name, f"{v.name} VNI {v.vni}")
        edges.append((vx, _id(v.netns, v.master), "", False))
    for veth in plan.veths:
        a = node(veth.a.netns, veth.a.name, label(veth.a.netns, veth.a.name))
        b = node(veth.b.netns, veth.b.name, label(veth.b.netns, veth.b.name))
        if veth.a.master:
            edges.append((a, _id(veth.a.netns, veth.a.master), "", False))
        edges.append((a, b, "veth", False))
    edges += _vxlan_peers(plan)
    return _Graph(boxes, edges)


def _vxlan_peers(plan: Plan) -> list[tuple[str, str, str, bool]]:
    """The dashed LAN edges between VXLAN devices: one per pair of devices
    that share a VNI and sit on different nodes.

    Devices are grouped by VNI first, so the work is linear in the number of
    networks (each group is at most one device per node); a device's node is
    its namespace's node, or its underlay namespace when the plan names none.
    """
    node_of = {ns.name: ns.node for ns in plan.netns}
    by_vni: dict[int, list[tuple[str, Vxlan]]] = {}
    for v in plan.vxlans:
        node = node_of.get(v.netns) or v.underlay_netns
        by_vni.setdefault(v.vni, []).append((node, v))
    edges: list[tuple[str, str, str, bool]] = []
    for vni, group in by_vni.items():
        for i, (node, v) in enumerate(group):
            for other, w in group[i + 1:]:
                if other != node:
                    edges.append((_id(v.netns, v.name), _id(w.netns, w.name),
                                  f"VXLAN {vni} udp/{v.port} over the LAN", True))
    return edges


def mermaid(plan: Plan) -> str:
    """A Mermaid ``flowchart`` of the plan's plumbing."""
    g = _collect(plan)
    lines = ["flowchart LR"]
    for i, (title, nodes) in enumerate(g.boxes.values()):
        lines.append(f'  subgraph box{i}["{title}"]')
        lines += [f'    {nid}["{label}"]' for nid, label in nodes]
        lines.append("  end")
    for a, b, label, dashed in g.edges:
        arrow = "-.-" if dashed else "---"
        lines.append(f"  {a} {arrow}|{label}| {b}" if label else f"  {a} {arrow} {b}")
    return "\n".join(lines) + "\n"


def dot(plan: Plan) -> str:
    """A Graphviz ``graph`` of the plan's plumbing (one cluster per namespace)."""
    g = _collect(plan)
    lines = [f'graph "{plan.lab}" {{', "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for i, (title, nodes) in enumerate(g.boxes.values()):
        lines.append(f'  subgraph cluster_{i} {{ label="{title}";')
        lines += [f'    {nid} [label="{label}"];' for nid, label in nodes]
        lines.append("  }")
    for a, b, label, dashed in g.edges:
        attrs = [f'label="{label}"'] if label else []
        if dashed:
            attrs.append("style=dashed")
        lines.append(f"  {a} -- {b}" + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(plan: Plan, fmt: str) -> str:
    """The diagram in ``fmt`` (one of FORMATS); raises ValueError otherwise."""
    if fmt == "mermaid":
        return mermaid(plan)
    if fmt == "dot":
        return dot(plan)
    raise ValueError(f"unknown format {fmt!r}")
