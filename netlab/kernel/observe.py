"""Read the kernel back and compare it with the plan: what ``status`` calls drift.

Each difference is one :class:`Drift` naming the namespace, the kind of
object and what differs. iptables tables are compared as save text (counters
aside), IPVS as ``ipvsadm -Ln`` text, FDB and neighbour entries as sets.
"""

from __future__ import annotations

from dataclasses import dataclass

from netlab.kernel import etcnetns, ipvs, netns
from netlab.kernel.apply import table_specs
from netlab.kernel.iptables import read_tables, user_rules, with_user_rules
from netlab.kernel.xtables import Backend
from netlab.kernel.links import NUD_PERMANENT, Netlink
from netlab.plan.render import ipvsadm
from netlab.plan.types import Plan


@dataclass(frozen=True)
class Drift:
    netns: str
    kind: str        # netns, link, iptables, ipvs, fdb, neigh, etc; user-rule: not drift, a note
    detail: str


def _links(nl: Netlink, plan: Plan, present: set[str]) -> list[Drift]:
    wanted: list[tuple[str, str]] = [(b.netns, b.name) for b in plan.bridges]
    wanted += [(v.netns, v.name) for v in plan.vxlans]
    for veth in plan.veths:
        wanted += [(veth.a.netns, veth.a.name), (veth.b.netns, veth.b.name)]
    return [Drift(ns, "link", f"{name} is missing") for ns, name in wanted
            if ns in present and nl.index(ns, name) is None]


def _peers(nl: Netlink, plan: Plan, present: set[str]) -> list[Drift]:
    out = []
    for vx in plan.vxlans:
        if vx.netns not in present:
            continue
        idx = nl.index(vx.netns, vx.name)
        if idx is None:
            continue
        want_fdb = {(f.mac, f.dst) for f in plan.items_in(vx.netns).fdb}
        have_fdb = {(f.get_attr("NDA_LLADDR"), f.get_attr("NDA_DST"))
                    for f in nl(vx.netns).fdb("dump", ifindex=idx)
                    if f["ifindex"] == idx and f.get_attr("NDA_DST")}
        out += [Drift(vx.netns, "fdb", f"missing {m} dst {d}") for m, d in sorted(want_fdb - have_fdb)]
        out += [Drift(vx.netns, "fdb", f"unexpected {m} dst {d}") for m, d in sorted(have_fdb - want_fdb)]
        want_n = {(n.ip, n.mac) for n in plan.items_in(vx.netns).neighbours}
        have_n = {(n.get_attr("NDA_DST"), n.get_attr("NDA_LLADDR"))
                  for n in nl(vx.netns).get_neighbours(ifindex=idx, family=2)
                  if n["state"] & NUD_PERMANENT}
        out += [Drift(vx.netns, "neigh", f"missing {i} lladdr {m}") for i, m in sorted(want_n - have_n)]
        out += [Drift(vx.netns, "neigh", f"unexpected {i} lladdr {m}") for i, m in sorted(have_n - want_n)]
    return out


def drift(plan: Plan, backend: Backend) -> list[Drift]:
    """Every difference between ``plan`` and the kernel (rules read from
    ``backend``); empty when they agree."""
    out: list[Drift] = []
    present = {ns.name for ns in plan.netns if netns.exists(ns.name)}
    out += [Drift(ns.name, "netns", "namespace is missing") for ns in plan.netns
            if ns.name not in present]
    nl = Netlink()
    try:
        out += _links(nl, plan, present)
        out += _peers(nl, plan, present)
    finally:
        nl.close()
    for ns in plan.netns:
        if ns.name not in present:
            continue
        specs = table_specs(plan, ns.name)
        if specs:
            have = netns.run_in(ns.name, read_tables, backend, tuple(s.table for s in specs))
            for spec in specs:
                kept = user_rules(have[spec.table])
                out += [Drift(ns.name, "user-rule", line) for line in kept]
                want_lines = with_user_rules(spec.save_text(), kept).splitlines()
                have_lines = have[spec.table].splitlines()
                for line in want_lines:
                    if line not in have_lines:
                        out.append(Drift(ns.name, "iptables", f"{spec.table}: missing {line}"))
                for line in have_lines:
                    if line not in want_lines:
                        out.append(Drift(ns.name, "iptables", f"{spec.table}: unexpected {line}"))
                if sorted(want_lines) == sorted(have_lines) and want_lines != have_lines:
                    out.append(Drift(ns.name, "iptables", f"{spec.table}: rules are out of order"))
        files = plan.items_in(ns.name).etc_files
        if files:
            have_files = etcnetns.read(ns.name)
            out += [Drift(ns.name, "etc", f"/etc/netns/{ns.name}/{f.name} "
                          + ("is missing" if f.name not in have_files else "differs"))
                    for f in files if have_files.get(f.name) != f.content]
        if ns.role == "sandbox":
            want = ipvsadm(plan.items_in(ns.name).ipvs)
            have_text = ipvsadm(ipvs.read(ns.name))
            if want != have_text:
                out.append(Drift(ns.name, "ipvs", "IPVS services differ:\nwant:\n" + want
                                 + "\nhave:\n" + have_text))
    return out
