"""Packet capture in many namespaces at once, with one scapy sniffer.

scapy reads interfaces at import and does not follow ``setns``, so the
``AF_PACKET`` sockets are opened by a thread that enters each namespace (one
thread per namespace, all its interfaces), bound by interface name there, and
handed to one :class:`scapy.sendrecv.AsyncSniffer` through thin
:class:`NsSocket` wrappers. Each packet keeps the kernel's receive timestamp
(``SO_TIMESTAMPNS``: one clock for every namespace of the kernel, so packets
order across namespaces) and its direction (``PACKET_OUTGOING`` or not).
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable
from dataclasses import dataclass

from netlab import nsenter
from netlab.kernel import netns
from netlab.trace.points import CapturePoint

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


def _open(point_ifaces: list[str]) -> list[socket.socket]:
    """Runs inside the namespace: one bound, timestamping AF_PACKET socket per interface."""
    out = []
    try:
        for iface in point_ifaces:
            s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
            out.append(s)
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
            s.bind((iface, ETH_P_ALL))
            s.setblocking(False)
    except OSError:
        for s in out:
            s.close()
        raise
    return out


def open_sockets(points: Iterable[CapturePoint]) -> list[tuple[CapturePoint, socket.socket]]:
    """A capturing socket per point; raises NetnsError when a namespace or interface is missing."""
    by_ns: dict[str, list[CapturePoint]] = {}
    for p in points:
        by_ns.setdefault(p.netns, []).append(p)
    opened: list[tuple[CapturePoint, socket.socket]] = []
    try:
        for name, pts in by_ns.items():
            if not netns.exists(name):
                raise netns.NetnsError(f"network namespace {name} does not exist (is the lab up?)")
            fd = os.open(netns.path(name), os.O_RDONLY | os.O_CLOEXEC)
            try:
                socks = nsenter.in_thread(fd, lambda pts=pts: _open([p.iface for p in pts]), name)
            except OSError as exc:
                raise netns.NetnsError(f"cannot capture in {name}: {exc}") from exc
            finally:
                os.close(fd)
            opened += list(zip(pts, socks))
    except BaseException:
        for _p, s in opened:
            s.close()
        raise
    return opened


def read_frame(point: CapturePoint, sock: socket.socket) -> Frame | None:
    """The next frame waiting on ``sock``, or None when none is."""
    try:
        data, anc, _flags, addr = sock.recvmsg(SNAPLEN, socket.CMSG_SPACE(16))
    except (BlockingIOError, InterruptedError):
        return None
    ts = None
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            sec, nsec = struct.unpack("qq", value[:16])
            ts = sec + nsec / 1e9
    if ts is None:
        import time
        ts = time.time()
    return Frame(point, ts, addr[2] == PACKET_OUTGOING, data)


class Capture:
    """Capture on many points with one scapy AsyncSniffer; a context manager.

    ``with Capture(points) as cap: send(); frames = cap.stop()``. Sockets are
    opened (capture has started) when ``__enter__`` returns. Raises NetnsError
    when a point cannot be opened.
    """

    def __init__(self, points: Iterable[CapturePoint]):
        self.points = tuple(points)
        self._opened: list[tuple[CapturePoint, socket.socket]] = []
        self._sniffer = None
        self._frames: list[Frame] = []

    def __enter__(self) -> Capture:
        from scapy.sendrecv import AsyncSniffer

        from netlab.trace.nssocket import NsSocket

        self._opened = open_sockets(self.points)
        self._wrapped = {NsSocket(p, s, self._frames): p.label for p, s in self._opened}
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
        for point, sock in self._opened:
            while True:
                frame = read_frame(point, sock)
                if frame is None:
                    break
                self._frames.append(frame)
        return sorted(self._frames, key=lambda f: f.time)

    def __exit__(self, *exc) -> None:
        if self._sniffer is not None:
            self.stop()
        for _p, s in self._opened:
            s.close()
        self._opened = []
