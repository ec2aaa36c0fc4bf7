"""The kernel as a trace reads it: one small reader interface, the Linux one behind it.

:class:`KernelReader` is what trace collection (the real and the lab's
tracer) asks of the machine: whether a namespace is there; what a set of
namespaces holds at one moment (rule counters, conntrack, the IPVS tables,
remote FDB entries, link states, neighbours, one :class:`NsWants` each);
a packet capture on interfaces of namespaces; and a socket made inside a
namespace. :class:`LinuxReader` is the real thing (needs root);
unit tests pass a fake that returns recorded readings and frames.

Namespaces are names under /var/run/netns, or real Docker namespaces'
paths (:func:`netlab.kernel.netns.locate`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Protocol, TypeVar

from netlab.kernel import netns
from netlab.kernel.capture import CaptureSession, PacketCapture
from netlab.kernel.iptables import CounterRead
from netlab.kernel.records import NsReading, NsWants
from netlab.kernel.xtables import Backend

T = TypeVar("T")


class KernelReader(Protocol):
    """What reading namespaces around a request needs from the kernel."""

    def present(self, ns: str) -> bool:
        """True when the namespace ``ns`` exists."""
        ...

    def read(self, wants: Mapping[str, NsWants], backend: Backend) -> dict[str, NsReading]:
        """What each namespace of ``wants`` holds now, of the kinds asked for (counters
        from ``backend``'s save tool). Raises NetnsError when a namespace is missing or
        cannot be read, IptablesError when iptables-save fails."""
        ...

    def capture(self, ifaces: Mapping[str, frozenset[str]]) -> CaptureSession:
        """A capture of the interfaces ``ifaces`` (netns -> interface names), opened when
        entered; raises NetnsError then when a namespace cannot be opened."""
        ...

    def socket_in(self, ns: str, family: int = socket.AF_INET,
                  kind: int = socket.SOCK_STREAM) -> socket.socket:
        """A socket made inside namespace ``ns``; raises NetnsError when it is missing."""
        ...

    def run_in(self, ns: str, fn: Callable[[], T]) -> T:
        """``fn()`` run by a thread inside namespace ``ns`` (every socket it makes lives
        there: ``netlab load``'s engine); its result, or what it raised. Raises
        NetnsError when ``ns`` is missing or cannot be entered."""
        ...


def _inside(wants: Mapping[str, NsWants]):
    def read_one(name: str) -> NsReading:
        from netlab.kernel.nsread import read_here
        return read_here(name, wants[name])
    return read_one


class LinuxReader:
    """The running kernel's namespaces, read from outside and from inside them."""

    def present(self, ns: str) -> bool:
        return os.path.exists(netns.locate(ns))

    def read(self, wants: Mapping[str, NsWants], backend: Backend) -> dict[str, NsReading]:
        """The counters are read by one iptables-save per namespace, all at once, while
        one forked child visits the namespaces for the rest."""
        # pyroute2 is imported here, once, and inherited by the forked child.
        from pyroute2 import Conntrack, IPRoute  # noqa: F401
        counting = CounterRead({n: netns.locate(n) for n, w in wants.items() if w.counters},
                               backend)
        inside = {n: netns.locate(n) for n, w in wants.items() if w.inside}
        rest = netns.run_in_each_path(inside, _inside(wants)) if inside else {}
        counters = counting.result()
        return {n: replace(rest.get(n, NsReading()), counters=tuple(counters.get(n, ())))
                for n in wants}

    def capture(self, ifaces: Mapping[str, frozenset[str]]) -> CaptureSession:
        return PacketCapture(ifaces)

    def socket_in(self, ns: str, family: int = socket.AF_INET,
                  kind: int = socket.SOCK_STREAM) -> socket.socket:
        return netns.in_thread_path(netns.locate(ns), lambda: socket.socket(family, kind), ns)

    def run_in(self, ns: str, fn: Callable[[], T]) -> T:
        return netns.in_thread_path(netns.locate(ns), fn, ns)
