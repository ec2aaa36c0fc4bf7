"""Apply a plan to the kernel, and tear a lab down.

``apply`` converges: it creates what is missing, fixes what differs, and
removes namespaces the plan no longer has. Order: namespaces, links and
addresses (IPVS refuses destinations it has no route to), IPVS services
(loading ip_vs makes ``net.ipv4.vs.*`` appear), then sysctls and one
iptables commit per table that differs, per namespace, with the lab's
backend. A task's /etc/netns files are written once its namespace exists.
``net.ipv6.conf.default.*`` sysctls are written first, right after
the namespaces are made, so that every interface made there inherits them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from netlab.kernel import etcnetns, ipvs, netns
from netlab.kernel.iptables import TableSpec, configure, preload, write_sysctls
from netlab.kernel.links import Netlink, apply_links
from netlab.kernel.xtables import Backend
from netlab.plan.types import Plan


@dataclass
class ApplyStats:
    """What an apply did, for the summary line and the benchmark."""

    netns_created: int = 0
    netns_removed: int = 0
    netlink_requests: int = 0
    iptables_commits: int = 0
    seconds: float = 0.0


def table_specs(plan: Plan, ns: str) -> tuple[TableSpec, ...]:
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


EARLY_SYSCTLS = "net.ipv6.conf.default."


def apply(plan: Plan, backend: Backend, stale: list[str] | None = None,
          progress: Callable[[str], None] = lambda _m: None) -> ApplyStats:
    """Make the kernel hold ``plan``, its rules in ``backend``; ``stale``
    namespaces (owned before, not planned now) are removed. Raises NetnsError /
    NetlinkError / IptablesError / IPTCError on kernel refusals."""
    stats = ApplyStats()
    started = time.monotonic()
    planned = {ns.name for ns in plan.netns}
    fresh: set[str] = set()        # made just now: no table to read before writing
    for name in stale or []:
        if name not in planned and _remove(name):
            stats.netns_removed += 1
    progress(f"namespaces: {len(plan.netns)}")
    for ns in plan.netns:
        if netns.create(ns.name):
            stats.netns_created += 1
            fresh.add(ns.name)
    etcnetns.write(plan.etc_files)
    early: dict[str, tuple[tuple[str, str], ...]] = {}
    for s in plan.sysctls:
        if s.key.startswith(EARLY_SYSCTLS):
            early[s.netns] = early.get(s.netns, ()) + ((s.key, s.value),)
    if early:
        netns.run_in_each(list(early), lambda name: write_sysctls(early[name]))
    nl = Netlink()
    try:
        progress("links, addresses, routes, FDB")
        apply_links(nl, plan)
        stats.netlink_requests += nl.requests
    finally:
        nl.close()
    progress("IPVS services")
    for ns in plan.netns:
        if ns.role == "sandbox":
            stats.netlink_requests += ipvs.sync(ns.name, list(plan.items_in(ns.name).ipvs))
    progress("sysctls and iptables")
    if backend == "legacy":
        preload()
    for ns in plan.netns:
        sysctls = tuple((s.key, s.value) for s in plan.items_in(ns.name).sysctls
                        if not s.key.startswith(EARLY_SYSCTLS))
        specs = table_specs(plan, ns.name)
        if sysctls or specs:
            stats.iptables_commits += netns.run_in(ns.name, configure, backend, sysctls, specs,
                                                   ns.name in fresh)
    stats.seconds = time.monotonic() - started
    return stats


def teardown(names: list[str]) -> int:
    """Delete the namespaces ``names`` (links, rules, IPVS and conntrack go with
    them, and the files under /etc/netns/<name>); returns how many existed.
    Never fails on ones already gone."""
    return sum(1 for name in names if _remove(name))


def _remove(name: str) -> bool:
    """Remove namespace ``name`` and its /etc/netns files; True when the namespace existed."""
    existed = netns.remove(name)
    etcnetns.remove(name)
    return existed
