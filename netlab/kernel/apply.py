"""Apply a plan to the kernel, and tear a lab down.

``apply`` converges: it creates what is missing, fixes what differs, and
removes namespaces the plan no longer has. Order: namespaces, links and
addresses (IPVS refuses destinations it has no route to), IPVS services
(loading ip_vs makes ``net.ipv4.vs.*`` appear), then sysctls and one
iptables commit per table that differs, per namespace, with the lab's
backend. A task's /etc/netns files are written once its namespace exists.
``net.ipv6.conf.all.*`` and ``net.ipv6.conf.default.*`` sysctls are written
first, right after the namespaces are made, as libnetwork writes
``all.disable_ipv6`` when it makes a sandbox, so that every interface made
there inherits them.

For speed (issue 17): namespaces are made by one thread (no helper forked
per namespace), rtnetlink requests go in batches over one plain socket per
namespace (:mod:`netlab.kernel.links`), and sysctls and tables are written
by a few threads side by side, each entering a namespace in turn (the
``iptables-*-restore`` it starts is born there). With ``touched``, only
those namespaces are read and written: what a change (scale, node) touches.
"""

from __future__ import annotations

import dataclasses
from typing import Any
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from operator import attrgetter

from netlab.kernel import etcnetns, ipvs, netns
from netlab.kernel.iptables import configure, preload, restore_fresh, write_sysctls
from netlab.kernel.links import Sockets, apply_links, remove_entries
from netlab.kernel.xtables import Backend
from netlab.plan.render import TableSpec, table_specs
from netlab.plan.types import IpvsDest, IpvsService, Plan


@dataclass
class ApplyStats:
    """What an apply did, for the summary line and the benchmark."""

    netns_created: int = 0
    netns_removed: int = 0
    netlink_requests: int = 0
    iptables_commits: int = 0
    seconds: float = 0.0


EARLY_SYSCTLS = ("net.ipv6.conf.all.", "net.ipv6.conf.default.")


#: Threads writing sysctls and tables side by side (each waits on a restore tool).
PARALLEL = 8


class _Ahead(threading.Thread):
    """A job run beside the caller's: its result, or the exception it raised."""

    def __init__(self, job: Callable[[], dict]):
        super().__init__(name="netlab-ahead", daemon=True)
        self.job = job
        self.result: dict = {}
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self.result = self.job()
        except BaseException as exc:   # noqa: BLE001 - raised in the caller by apply
            self.error = exc


def restrict(plan: Plan, touched: Collection[str]) -> Plan:
    """``plan`` cut down to what lives in the namespaces ``touched`` (a veth stays
    when either end is in one)."""
    keep = set(touched)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(plan):
        items = getattr(plan, f.name)
        if f.name == "lab":
            continue
        if f.name == "veths":
            out[f.name] = tuple(v for v in items if v.a.netns in keep or v.b.netns in keep)
        elif f.name == "user_chains":
            out[f.name] = tuple(t for t in items if t[0] in keep)
        elif f.name == "netns":
            out[f.name] = tuple(ns for ns in items if ns.name in keep)
        else:
            out[f.name] = tuple(i for i in items if i.netns in keep)
    return dataclasses.replace(plan, **out)


LINK_KINDS = ("bridges", "vxlans", "veths", "addresses", "routes", "neighbours", "fdb")
TABLE_KINDS = ("sysctls", "user_chains", "policies", "rules")


@dataclass(frozen=True)
class Touched:
    """The namespaces a change touches, by layer: what applying ``after`` over
    ``before`` must read and write (a namespace new in ``after`` is in each)."""

    links: frozenset[str]
    tables: frozenset[str]
    ipvs: frozenset[str]
    etc: frozenset[str]

    @property
    def any(self) -> frozenset[str]:
        return self.links | self.tables | self.ipvs | self.etc


def added(before: Plan, after: Plan) -> Plan:
    """What ``after`` holds that ``before`` does not, kind by kind (``after``'s order)."""
    return diff(before, after)[1]


def merged(first: Plan, second: Plan) -> Plan:
    """Every item of ``first`` then those of ``second`` it lacks, kind by kind."""
    out = {}
    for f in dataclasses.fields(first):
        if f.name != "lab":
            a = getattr(first, f.name)
            seen = set(a)
            out[f.name] = a + tuple(i for i in getattr(second, f.name) if i not in seen)
    return dataclasses.replace(first, **out)


def _where(kind: str, item) -> tuple[str, ...]:
    if kind == "veths":
        return (item.a.netns, item.b.netns)
    if kind == "user_chains":
        return (item[0],)
    if kind == "netns":
        return (item.name,)
    return (item.netns,)


_DEST = attrgetter(*(f.name for f in dataclasses.fields(IpvsDest)))


def _value_key(was: tuple, now: tuple) -> Callable[[Any], Any]:
    """A key equal for two items of ``was`` and ``now`` exactly when the items are
    equal, made in C: the tuple of a dataclass's fields when every item is of the one
    class (a dataclass's ``==`` compares those), else the item itself."""
    classes = set(map(type, was)) | set(map(type, now))
    if len(classes) != 1:
        return lambda item: item
    (cls,) = classes
    if cls is IpvsService:      # its destinations too, field by field (IpvsDest's ==)
        return lambda s: (s.netns, s.fwmark, s.scheduler, tuple(map(_DEST, s.dests)), s.service)
    if not dataclasses.is_dataclass(cls):
        return lambda item: item
    params = getattr(cls, "__dataclass_params__", None)
    compared = [f.name for f in dataclasses.fields(cls) if f.compare]
    if params is None or not params.eq or len(compared) < 1:
        return lambda item: item
    return attrgetter(*compared) if len(compared) > 1 else (lambda item: (getattr(item, compared[0]),))


def _split(was: tuple, now: tuple) -> tuple[tuple, tuple]:
    """(the items of ``now`` that ``was`` lacks, those of ``was`` that ``now`` lacks),
    by value, each in its own order.

    An item held by both as one object (the builds of a change share their overlay
    entries) is in both: only the others are looked up by value, against the keys
    of every item of the other side, field tuples hashed in C (a plan of a
    1,000-task lab holds some 70,000 items; hashing each dataclass in Python, on
    both sides, cost a change about 0.2 s)."""
    if not was or not now:
        return tuple(now), tuple(was)
    if was == now:              # the same objects in the same order
        return (), ()
    old_ids, new_ids = set(map(id, was)), set(map(id, now))
    plus = [i for i in now if id(i) not in old_ids]
    minus = [i for i in was if id(i) not in new_ids]
    if not plus and not minus:
        return (), ()
    key = _value_key(was, now)
    if plus:
        had = set(map(key, was))
        plus = [i for i in plus if key(i) not in had]
    if minus:
        has = set(map(key, now))
        minus = [i for i in minus if key(i) not in has]
    return tuple(plus), tuple(minus)


def diff(before: Plan, after: Plan) -> tuple[Touched, Plan, Plan]:
    """In one pass, kind by kind: the namespaces of ``after`` a change touches, by
    layer; what ``after`` adds (a Plan, ``after``'s order); and what it drops
    (a Plan of ``before``'s items that ``after`` does not have)."""
    layer_of = {**dict.fromkeys(LINK_KINDS, "links"), **dict.fromkeys(TABLE_KINDS, "tables"),
                "ipvs": "ipvs", "etc_files": "etc"}
    layers: dict[str, set[str]] = {"links": set(), "tables": set(), "ipvs": set(), "etc": set()}
    plus: dict[str, Any] = {}
    minus: dict[str, Any] = {}
    for f in dataclasses.fields(after):
        if f.name == "lab":
            continue
        was, now = getattr(before, f.name), getattr(after, f.name)
        plus[f.name], minus[f.name] = _split(was, now)
        hit = {n for i in plus[f.name] + minus[f.name] for n in _where(f.name, i)}
        if f.name == "netns":          # a namespace new (or changed role): every layer
            for layer in layers.values():
                layer |= hit
        else:
            layers[layer_of[f.name]] |= hit
    planned = {ns.name for ns in after.netns}
    touched_now = Touched(**{k: frozenset(v & planned) for k, v in layers.items()})
    return (touched_now, dataclasses.replace(after, **plus), dataclasses.replace(before, **minus))


def touched(before: Plan, after: Plan) -> Touched:
    """Which namespaces of ``after`` differ from ``before``, layer by layer."""
    return diff(before, after)[0]


def apply(plan: Plan, backend: Backend, stale: list[str] | None = None,
          progress: Callable[[str], None] = lambda _m: None,
          before: Plan | None = None) -> ApplyStats:
    """Make the kernel hold ``plan``, its rules in ``backend``; ``stale``
    namespaces (owned before, not planned now) are removed. With ``before``
    (the plan the kernel holds now: a change's), only what differs from it is
    read and written, layer by layer (see :func:`touched`); without, every
    namespace is converged. Raises NetnsError / NetlinkError / IptablesError /
    IPTCError on kernel refusals."""
    stats = ApplyStats()
    started = time.monotonic()
    planned = {ns.name for ns in plan.netns}
    for name in stale or []:
        if name not in planned and _remove(name):
            stats.netns_removed += 1
    layers, more, less = diff(before, plan) if before is not None else (None, None, None)
    missing: set[str] = set()
    if layers is not None:
        # Namespaces missing now are made whole, even when the plan says the same
        # of them as before (a task restarted on another node keeps its name).
        missing = {ns.name for ns in plan.netns if not netns.exists(ns.name)}
        plan = restrict(plan, layers.any | missing)
    progress(f"namespaces: {len(plan.netns)}")
    fresh = set(netns.create_many([ns.name for ns in plan.netns]))   # made now: hold nothing
    stats.netns_created = len(fresh)
    full = plan
    _write_etc(plan.etc_files)
    early: dict[str, tuple[tuple[str, str], ...]] = {}
    for s in plan.sysctls:
        if s.key.startswith(EARLY_SYSCTLS):
            early[s.netns] = early.get(s.netns, ()) + ((s.key, s.value),)
    if early:
        netns.in_threads(list(early), lambda name: write_sysctls(early[name]), PARALLEL)
    known: set[str] = set()
    gone = None
    if layers is not None and more is not None and less is not None:
        # A change: write what it adds, remove what it drops from namespaces that
        # stay; the rest is as before.
        plan = merged(restrict(more, layers.links - fresh), restrict(full, fresh))
        gone = restrict(less, set(layers.links) - fresh)
        known = set(layers.links) - fresh
    work: dict[str, tuple[tuple[tuple[str, str], ...], tuple[TableSpec, ...]]] = {}
    for ns in full.netns:
        if layers is not None and ns.name not in layers.tables | fresh:
            continue
        sysctls = tuple((s.key, s.value) for s in full.items_in(ns.name).sysctls
                        if not s.key.startswith(EARLY_SYSCTLS))
        specs = table_specs(full, ns.name)
        if sysctls or specs:
            work[ns.name] = (sysctls, specs)
    # The tables of fresh namespaces with no sysctl left to write (tasks: none
    # names an interface or IPVS) need nothing of the links: their restore
    # tools run while this thread writes the links.
    early_tables = [n for n in work if n in fresh and not work[n][0]]
    ahead = _Ahead(lambda: netns.in_threads(
        early_tables, lambda name: restore_fresh(backend, *work[name]), PARALLEL)) \
        if early_tables else None
    sk = Sockets()
    try:
        progress("links, addresses, routes, FDB")
        if gone is not None:
            remove_entries(sk, gone)
        apply_links(sk, plan, fresh, known)
        plan = full
        progress("IPVS services")
        for ns in plan.netns:
            if ns.role == "sandbox" and (layers is None or ns.name in layers.ipvs | fresh):
                # A change knows what a sandbox that was there holds: the plan before.
                holds = (list(before.items_in(ns.name).ipvs)
                         if before is not None and ns.name not in fresh | missing else None)
                stats.netlink_requests += ipvs.sync(ns.name, list(plan.items_in(ns.name).ipvs),
                                                    holds)
    except BaseException:
        if ahead is not None:
            ahead.join()      # no restore left running behind a refusal
        raise
    finally:
        sk.close()
        stats.netlink_requests += sk.requests
    progress("sysctls and iptables")
    if ahead is not None:
        ahead.join()
        if ahead.error is not None:
            raise ahead.error
        stats.iptables_commits += sum(ahead.result.values())
    # Fresh namespaces, and every one with the nft backend, from threads: the
    # restore (and save) tools they start are born in the namespace. Tables
    # already held by legacy namespaces are rewritten with python-iptables
    # (libiptc) in a forked child each, keeping the user's DOCKER-USER rules.
    threaded = [n for n in work if n not in early_tables and (n in fresh or backend == "nft")]
    done = netns.in_threads(threaded, lambda name: (
        restore_fresh(backend, *work[name]) if name in fresh else
        configure(backend, work[name][0], work[name][1], False)), PARALLEL)
    stats.iptables_commits += sum(done.values())
    forked = [n for n in work if n not in done and n not in early_tables]
    if forked:
        preload()
    for name in forked:
        stats.iptables_commits += netns.run_in(name, configure, backend, *work[name], False)
    stats.seconds = time.monotonic() - started
    return stats


def teardown(names: list[str]) -> int:
    """Delete the namespaces ``names`` (links, rules, IPVS and conntrack go with
    them, and the files under /etc/netns/<name>); returns how many existed.
    Never fails on ones already gone.

    A few threads side by side: unmounting a namespace file and unlinking
    files wait on the filesystem more than on the CPU (the kernel destroys the
    namespaces themselves in the background). The last name goes last, after
    all others (``down`` puts the LAN there).
    """
    if len(names) < 2 * PARALLEL:
        return sum(1 for name in names if _remove(name))
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="netlab-down") as pool:
        removed = sum(pool.map(_remove, names[:-1]))
    return removed + int(_remove(names[-1]))


def _write_etc(files: tuple) -> None:
    """The /etc/netns files, by a few threads side by side (each file is a few
    syscalls on a filesystem that may be slow: an overlay, 9p in the VM)."""
    if len(files) < 4 * PARALLEL:
        etcnetns.write(files)
        return
    from concurrent.futures import ThreadPoolExecutor
    by_ns: dict[str, list] = {}
    for f in files:
        by_ns.setdefault(f.netns, []).append(f)
    groups = list(by_ns.values())
    chunks = [[f for group in groups[i::PARALLEL] for f in group] for i in range(PARALLEL)]
    with ThreadPoolExecutor(max_workers=PARALLEL, thread_name_prefix="netlab-etc") as pool:
        list(pool.map(etcnetns.write, chunks))


def _remove(name: str) -> bool:
    """Remove namespace ``name`` and its /etc/netns files; True when the namespace existed."""
    existed = netns.remove(name)
    etcnetns.remove(name)
    return existed
