"""The kernel as the lab's life sees it: one small interface, the Linux one behind it.

:class:`Kernel` is what :mod:`netlab.lifecycle` and ``status`` ask of the
machine's network stack: make it hold a plan, remove namespaces, and say
how it differs from a plan. What a trace reads (counters, conntrack, IPVS,
FDB, links, neighbours, captures, sockets in a namespace) is the other half,
:class:`netlab.kernel.reader.KernelReader`. :class:`LinuxKernel` is the
real thing for both (needs root and the features of
:mod:`netlab.kernel.features`); unit tests pass a fake that records what it
was asked and returns what the test recorded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from netlab.diff.drift import Allowance
from netlab.kernel import apply as kernel_apply
from netlab.kernel.apply import ApplyStats
from netlab.kernel.nftgen import SaveMemory
from netlab.kernel.reader import LinuxReader
from netlab.kernel.xtables import Backend
from netlab.plan.types import Plan

Progress = Callable[[str], None]


class Kernel(Protocol):
    """What changing and reading a lab needs from the kernel."""

    def apply(self, plan: Plan, backend: Backend, stale: list[str],
              progress: Progress, before: Plan | None = None) -> ApplyStats:
        """Make the kernel hold ``plan`` (rules in ``backend``), removing the ``stale``
        namespaces; with ``before`` (the plan the kernel holds now, a change's), only
        the namespaces whose plan differs are read and written. Raises on kernel refusals."""
        ...

    def set_weights(self, plan: Plan, addresses: set[str], weight: int) -> int:
        """Give the IPVS destinations of ``plan`` at ``addresses`` the ``weight``, in
        every sandbox; returns how many were set. Raises on kernel refusals."""
        ...

    def set_link(self, netns: str, ifname: str, up: bool) -> None:
        """Set the link ``ifname`` of ``netns`` up or down; raises when it is missing."""
        ...

    def teardown(self, names: list[str]) -> int:
        """Delete the namespaces ``names``; returns how many existed."""
        ...

    def adopt(self, name: str, pid: int) -> None:
        """Name the network namespace of process ``pid`` (a task's container) ``name``,
        so that ``apply`` configures it as one it made; raises NetnsError."""
        ...

    def listening(self, name: str) -> set[int]:
        """The TCP ports something listens on in namespace ``name``; raises NetnsError."""
        ...

    def drift(self, plan: Plan, backend: Backend, allow: Allowance = Allowance(),
              memory: SaveMemory | None = None) -> list:
        """Every difference between ``plan`` and the kernel (``drift.Drift`` items), but
        what ``allow`` allows; ``memory`` keeps the rules read for the next time
        (:func:`netlab.kernel.observe.read_view`). Raises MissingFeature when a
        read tool is missing, NetlabError when one fails."""
        ...


class LinuxKernel(LinuxReader):
    """The running kernel, through pyroute2, python-iptables and ipvs (see kernel/apply.py);
    also its :class:`~netlab.kernel.reader.KernelReader` (see kernel/reader.py)."""

    def apply(self, plan: Plan, backend: Backend, stale: list[str],
              progress: Progress, before: Plan | None = None) -> ApplyStats:
        return kernel_apply.apply(plan, backend, stale=stale, progress=progress, before=before)

    def set_weights(self, plan: Plan, addresses: set[str], weight: int) -> int:
        from netlab.kernel import ipvs
        by_netns: dict[str, list] = {}
        for svc in plan.ipvs:
            dests = [d for d in svc.dests if d.addr in addresses]
            if dests:
                by_netns.setdefault(svc.netns, []).append((svc.fwmark, dests))
        # One session per sandbox, all its services through it.
        return sum(ipvs.set_weights_in(ns, services, weight) for ns, services in by_netns.items())

    def set_link(self, netns: str, ifname: str, up: bool) -> None:
        from netlab.kernel.links import set_link_state
        set_link_state(netns, ifname, up)

    def teardown(self, names: list[str]) -> int:
        return kernel_apply.teardown(names)

    def adopt(self, name: str, pid: int) -> None:
        from netlab.kernel import netns
        netns.adopt(name, pid)

    def listening(self, name: str) -> set[int]:
        from netlab.kernel import netns
        return netns.listening_tcp_ports(name)

    def drift(self, plan: Plan, backend: Backend, allow: Allowance = Allowance(),
              memory: SaveMemory | None = None) -> list:
        from netlab.kernel.observe import drift   # reads the kernel back; imported when asked
        return drift(plan, backend, allow, memory)
