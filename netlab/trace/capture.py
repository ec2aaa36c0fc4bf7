"""Packet capture in many namespaces at once, with one scapy sniffer.

scapy reads interfaces at import and does not follow ``setns``, so the
``AF_PACKET`` sockets are opened by a thread that enters each namespace, and
handed to one :class:`scapy.sendrecv.AsyncSniffer` through thin
:class:`NsSocket` wrappers. One socket per namespace hears all its
interfaces; frames on interfaces that are not capture points are dropped. Each
packet keeps the kernel's receive timestamp (``SO_TIMESTAMPNS``: one clock for
every namespace of the kernel, so packets order across namespaces) and its
direction (``PACKET_OUTGOING`` or not).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from netlab.kernel import netns
from netlab.trace.points import CapturePoint

if TYPE_CHECKING:
    from scapy.sendrecv import AsyncSniffer

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
RCVBUF = 1 << 20
SNAPLEN = 65535


@dataclass(frozen=True)
class Frame:
    """One captured frame: where, when (kernel time, seconds), which way, the bytes."""

    point: CapturePoint
    time: float
    outgoing: bool
    data: bytes


def _open() -> socket.socket:
    """Runs inside the namespace: one timestamping AF_PACKET socket for all its interfaces.

    Unbound on purpose: binding re-registers the socket's packet hook, and
    each (un)registration waits for an RCU grace period (~10 ms). The
    receive address names the interface, so one socket serves them all.
    """
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


@dataclass(frozen=True)
class NsCapture:
    """The capture socket of one namespace and its capture points by interface name."""

    netns: str
    sock: socket.socket
    points: dict[str, CapturePoint]


def open_sockets(points: Iterable[CapturePoint]) -> list[NsCapture]:
    """A capturing socket per namespace of ``points`` (a name under /var/run/netns, or
    a real Docker namespace's path: :func:`netlab.kernel.netns.locate`); raises
    NetnsError when one is missing."""
    by_ns: dict[str, dict[str, CapturePoint]] = {}
    for p in points:
        by_ns.setdefault(p.netns, {})[p.iface] = p
    opened: list[NsCapture] = []
    try:
        for name, pts in by_ns.items():
            opened.append(NsCapture(name, netns.in_thread_path(netns.locate(name), _open, name), pts))
    except BaseException:
        close_all([c.sock for c in opened])
        raise
    return opened


def close_all(socks: list[socket.socket]) -> None:
    """Close sockets side by side: each close waits for a grace period, so overlap them."""
    threads = [threading.Thread(target=s.close, daemon=True) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def read_frame(cap: NsCapture) -> Frame | Literal[False] | None:
    """The next frame waiting on the namespace's socket: a Frame, False for a frame on an
    interface that is not a capture point (a bridge, lo), None when nothing is waiting."""
    try:
        data, anc, _flags, addr = cap.sock.recvmsg(SNAPLEN, socket.CMSG_SPACE(16))
    except (BlockingIOError, InterruptedError):
        return None
    point = cap.points.get(addr[0])
    if point is None:
        return False
    ts = None
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            sec, nsec = struct.unpack("qq", value[:16])
            ts = sec + nsec / 1e9
    return Frame(point, ts if ts is not None else time.time(), addr[2] == PACKET_OUTGOING, data)


class Capture:
    """Capture on many points with one scapy AsyncSniffer; a context manager.

    ``with Capture(points) as cap: send(); frames = cap.stop()``. Sockets are
    opened (capture has started) when ``__enter__`` returns. Raises NetnsError
    when a point cannot be opened.
    """

    def __init__(self, points: Iterable[CapturePoint]):
        self.points = tuple(points)
        self._opened: list[NsCapture] = []
        self._sniffer: AsyncSniffer | None = None
        self._frames: list[Frame] = []

    def __enter__(self) -> Capture:
        from scapy.sendrecv import AsyncSniffer

        from netlab.trace.nssocket import NsSocket

        self._opened = open_sockets(self.points)
        self._wrapped = {NsSocket(c, self._frames): c.netns for c in self._opened}
        self._sniffer = AsyncSniffer(opened_socket=self._wrapped, store=False)
        self._sniffer.start()
        return self

    def stop(self) -> list[Frame]:
        """Stop sniffing, take what the sockets still hold, and return every frame by time."""
        if self._sniffer is not None:
            try:
                self._sniffer.stop(join=True)
            except Exception:  # noqa: BLE001 - a sniffer that already ended is fine
                pass
            self._sniffer = None
        for cap in self._opened:
            while (frame := read_frame(cap)) is not None:
                if frame:
                    self._frames.append(frame)
        return sorted(self._frames, key=lambda f: f.time)

    def __exit__(self, *exc) -> None:
        if self._sniffer is not None:
            self.stop()
        close_all([c.sock for c in self._opened])
        self._opened = []
