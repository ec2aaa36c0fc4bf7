"""Plan → text: ``iptables-save`` per table, ``ipvsadm -Ln``, links and addresses, JSON.

The iptables text is exactly what ``iptables-save`` (either backend) prints for the
same rules, minus counters and the ``#`` header lines, so a test can compare
the kernel with the plan line by line (see :func:`normalize_save`).
"""

from __future__ import annotations

import dataclasses
import json
import re

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from netlab.plan.types import BUILTIN_CHAINS, ChainPolicy, IpvsDest, Plan, Rule

IPVS_HEADER = (
    "IP Virtual Server version 1.2.1 (size=4096)\n"
    "Prot LocalAddress:Port Scheduler Flags\n"
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
)


def _quote(value: str) -> str:
    """Quote like iptables-save: only values with spaces or quotes."""
    if value == "" or re.search(r"[\s\"']", value):
        return '"' + value.replace('"', '\\"') + '"'
    return value


def _cidr(addr: str) -> str:
    return addr if "/" in addr else f"{addr}/32"


def rule_spec(rule: Rule) -> str:
    """The rule as ``iptables-save`` prints it after ``-A CHAIN``."""
    parts: list[str] = []
    for flag, value, is_addr in (("-s", rule.src, True), ("-d", rule.dst, True),
                                 ("-i", rule.in_iface, False), ("-o", rule.out_iface, False),
                                 ("-p", rule.proto, False)):
        if not value:
            continue
        if value.startswith("!"):  # negated, printed as iptables-save does: "! -o IF"
            parts.append("!")
            value = value[1:]
        parts += [flag, _cidr(value) if is_addr else value]
    for match in rule.matches:
        parts += ["-m", match.name]
        for key, value in match.options:
            parts.append(f"--{key}")
            if value:
                parts.append(_quote(value))
    # libxt_comment always quotes its value in iptables-save output.
    parts += ["-m", "comment", "--comment", '"' + rule.comment.replace('"', '\\"') + '"']
    parts += ["-j", rule.target.name]
    for key, value in rule.target.options:
        parts.append(f"--{key}")
        if value:
            parts.append(_quote(value))
    return " ".join(parts)


def save_table(table: str, policies: dict[str, str], user_chains: Iterable[str],
               rules: Iterable[Rule]) -> str:
    """One table as ``iptables-legacy-save -t TABLE`` prints it (without counters
    and ``#`` lines): built-in chains with their policies, user chains sorted,
    then each chain's rules in order."""
    builtin, user, rules = BUILTIN_CHAINS[table], sorted(user_chains), list(rules)
    lines = [f"*{table}"]
    lines += [f":{c} {policies.get(c, 'ACCEPT')}" for c in builtin]
    lines += [f":{c} -" for c in user]
    for chain in (*builtin, *user):
        lines += [f"-A {chain} {rule_spec(r)}" for r in rules if r.chain == chain]
    lines.append("COMMIT")
    return "\n".join(lines)


def iptables_save(plan: Plan, netns: str, table: str) -> str:
    """One table of one namespace of ``plan``, as :func:`save_table` prints it."""
    items = plan.items_in(netns)
    return save_table(
        table,
        {p.chain: p.policy for p in items.policies if p.table == table},
        (c for _, t, c in items.user_chains if t == table),
        plan.rules_in(netns, table))


@dataclass(frozen=True)
class TableSpec:
    """What one table of one namespace must hold."""

    table: str
    policies: tuple[ChainPolicy, ...]
    user_chains: tuple[str, ...]
    rules: tuple[Rule, ...]

    def save_text(self) -> str:
        """The table as ``iptables-save`` prints it (no counters, no ``#`` lines)."""
        return save_table(self.table, {p.chain: p.policy for p in self.policies},
                          self.user_chains, self.rules)


def table_specs(plan: Plan, ns: str) -> tuple[TableSpec, ...]:
    """What each table of namespace ``ns`` must hold in ``plan``."""
    items = plan.items_in(ns)
    return tuple(
        TableSpec(
            table=t,
            policies=tuple(p for p in items.policies if p.table == t),
            user_chains=tuple(c for _, tt, c in items.user_chains if tt == t),
            rules=plan.rules_in(ns, t),
        )
        for t in plan.tables_in(ns)
    )


USER_CHAIN = "DOCKER-USER"
_NETLAB_COMMENT = re.compile(r'-m comment --comment "?netlab:')


def user_rules(table_text: str) -> list[str]:
    """The ``-A DOCKER-USER`` lines of a table's save text that netlab did not write."""
    return [line for line in table_text.splitlines()
            if line.startswith(f"-A {USER_CHAIN} ") and not _NETLAB_COMMENT.search(line)]


def with_user_rules(want_text: str, kept: list[str]) -> str:
    """``want_text`` with ``kept`` user rules at the top of DOCKER-USER, where
    ``iptables -I DOCKER-USER`` puts them, above netlab's ``-j RETURN``."""
    if not kept:
        return want_text
    lines = want_text.splitlines()
    at = next((i for i, line in enumerate(lines) if line.startswith(f"-A {USER_CHAIN} ")), None)
    if at is None:
        return want_text
    return "\n".join(lines[:at] + kept + lines[at:])


def normalize_save(text: str) -> str:
    """Strip what varies from real ``iptables-save`` output: ``#`` lines and counters."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        out.append(re.sub(r" \[\d+:\d+\]$", "", line))
    return "\n".join(out)


class FwmarkService(Protocol):
    """What :func:`ipvsadm` needs of a service: planned or read from the kernel."""

    @property
    def fwmark(self) -> int: ...
    @property
    def scheduler(self) -> str: ...
    @property
    def dests(self) -> tuple[IpvsDest, ...]: ...


def ipvsadm(services: Iterable[FwmarkService]) -> str:
    """The services as ``ipvsadm -Ln`` prints them (connection counts 0)."""
    lines = [IPVS_HEADER]
    for svc in sorted(services, key=lambda s: s.fwmark):
        lines.append(f"FWM  {svc.fwmark} {svc.scheduler}")
        for d in sorted(svc.dests, key=lambda d: tuple(int(x) for x in d.addr.split("."))):
            lines.append(f"  -> {d.addr + ':' + str(d.port):<28} {d.forward:<7} {d.weight:<6} "
                         f"{0:<10} {0:<10}".rstrip())
    return "\n".join(lines)


def normalize_ipvsadm(text: str) -> str:
    """Drop the connection counters and trailing blanks of ``ipvsadm -Ln`` output."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^(\s+-> \S+)\s+(\S+)\s+(\d+)\s+\d+\s+\d+\s*$", line)
        out.append(f"{m.group(1)} {m.group(2)} {m.group(3)}" if m else " ".join(line.split()))
    return "\n".join(out)


def namespace_text(plan: Plan, netns: str) -> str:
    """Links, addresses, routes, neighbours, FDB and sysctls of one namespace."""
    items = plan.items_in(netns)
    out: list[str] = []
    for b in items.bridges:
        out.append(f"link {b.name} type bridge mtu {b.mtu}")
    for v in items.vxlans:
        out.append(f"link {v.name} type vxlan id {v.vni} dstport {v.port} mtu {v.mtu} "
                   f"master {v.master} (created in {v.underlay_netns})"
                   + (" learning" if v.learning else " nolearning")
                   + (" proxy" if v.proxy else "")
                   + (" l2miss" if v.l2miss else "") + (" l3miss" if v.l3miss else ""))
    for veth in items.veths:
        for end, peer in ((veth.a, veth.b), (veth.b, veth.a)):
            if end.netns == netns:
                out.append(f"link {end.name} type veth peer {peer.netns}/{peer.name} mtu {veth.mtu}"
                           + (f" address {end.mac}" if end.mac else "")
                           + (f" master {end.master}" if end.master else ""))
    out += [f"addr {a.cidr}" + (f" brd {a.broadcast}" if a.broadcast else "") + f" dev {a.ifname}"
            for a in items.addresses]
    out += [f"route {r.dst}" + (f" via {r.gateway}" if r.gateway else "") + f" dev {r.ifname}"
            for r in items.routes]
    out += [f"neigh {n.ip} lladdr {n.mac} dev {n.ifname} nud permanent"
            for n in items.neighbours]
    out += [f"fdb {f.mac} dev {f.ifname} dst {f.dst} self permanent" for f in items.fdb]
    out += [f"sysctl {s.key}={s.value}" for s in items.sysctls]
    out += [f"file /etc/netns/{f.netns}/{f.name}: " + "; ".join(f.content.splitlines())
            for f in items.etc_files]
    return "\n".join(out)


def plan_text(plan: Plan) -> str:
    """The whole plan, namespace by namespace, as ``netlab plan`` prints it."""
    blocks: list[str] = []
    for ns in plan.netns:
        block = [f"## {ns.name}  ({ns.target}, {ns.role})", namespace_text(plan, ns.name)]
        for table in plan.tables_in(ns.name):
            block.append(iptables_save(plan, ns.name, table))
        services = plan.items_in(ns.name).ipvs
        if services:
            block.append(ipvsadm(services))
        blocks.append("\n".join(b for b in block if b))
    return "\n\n".join(blocks) + "\n"


def plan_json(plan: Plan) -> str:
    """The plan as one JSON document, with the rendered iptables/ipvsadm text per netns."""
    doc = dataclasses.asdict(plan)
    doc["rendered"] = {
        ns.name: {
            "iptables": {t: iptables_save(plan, ns.name, t) for t in plan.tables_in(ns.name)},
            "ipvsadm": ipvsadm(services) if (services := plan.items_in(ns.name).ipvs) else None,
        }
        for ns in plan.netns
    }
    return json.dumps(doc, indent=2)
