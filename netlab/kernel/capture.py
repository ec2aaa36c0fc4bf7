"""Packet capture in many namespaces at once, with one scapy sniffer.

scapy reads interfaces at import and does not follow a thread that changes
namespace, so the packet sockets are opened by a thread that enters each
namespace (:func:`netlab.kernel.netns.in_thread_path`), and handed to one
:class:`scapy.sendrecv.AsyncSniffer` through thin
:class:`netlab.kernel.nssocket.NsSocket` wrappers. One socket per namespace
hears all its interfaces; frames on interfaces that were not asked for are
dropped. Each frame keeps the kernel's receive timestamp (``SO_TIMESTAMPNS``:
one clock for every namespace of the kernel, so frames order across
namespaces) and its direction (``PACKET_OUTGOING`` or not).
"""

from __future__ import annotations

import functools
import socket
import struct
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from netlab.kernel import netns

ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
PACKET_OUTGOING = 4
RCVBUF = 1 << 20
SNAPLEN = 65535


@dataclass(frozen=True)
class RawFrame:
    """One captured frame: in which namespace, on which interface, when (kernel time,
    seconds), which way, the bytes."""

    netns: str
    iface: str
    time: float
    outgoing: bool
    data: bytes


class CaptureSession(Protocol):
    """A capture open on interfaces of namespaces; a context manager.

    ``with session: send(); frames = session.stop()``: capture has started when
    ``__enter__`` returns; ``stop`` returns every frame by time.
    """

    def __enter__(self) -> CaptureSession:
        ...

    def stop(self) -> list[RawFrame]:
        ...

    def __exit__(self, *exc) -> None:
        ...


def _open() -> socket.socket:
    """Runs inside the namespace: one timestamping packet socket for all its interfaces.

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
    """The capture socket of one namespace and the interfaces whose frames it keeps."""

    netns: str
    sock: socket.socket
    ifaces: frozenset[str]


def open_sockets(ifaces: Mapping[str, frozenset[str]]) -> list[NsCapture]:
    """A capturing socket per namespace of ``ifaces`` (netns -> interfaces; a name under
    /var/run/netns, or a real Docker namespace's path: :func:`netlab.kernel.netns.locate`);
    raises NetnsError when one is missing."""
    opened: list[NsCapture] = []
    try:
        for name, wanted in ifaces.items():
            opened.append(NsCapture(name, netns.in_thread_path(netns.locate(name), _open, name),
                                    frozenset(wanted)))
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


def read_frame(cap: NsCapture) -> RawFrame | bool | None:
    """The next frame waiting on the namespace's socket: a RawFrame, False for a frame on
    an interface that was not asked for (a bridge, lo), None when nothing is waiting."""
    try:
        data, anc, _flags, addr = cap.sock.recvmsg(SNAPLEN, socket.CMSG_SPACE(16))
    except (BlockingIOError, InterruptedError):
        return None
    if addr[0] not in cap.ifaces:
        return False
    ts = None
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            sec, nsec = struct.unpack("qq", value[:16])
            ts = sec + nsec / 1e9
    return RawFrame(cap.netns, addr[0], ts if ts is not None else time.time(),
                    addr[2] == PACKET_OUTGOING, data)


class PacketCapture:
    """Capture on interfaces of many namespaces with one scapy AsyncSniffer; a
    :class:`CaptureSession`.

    Sockets are opened (capture has started) when ``__enter__`` returns.
    Raises NetnsError when a namespace cannot be opened.
    """

    def __init__(self, ifaces: Mapping[str, frozenset[str]]):
        self.ifaces = dict(ifaces)
        self._opened: list[NsCapture] = []
        self._sniffer: Any = None
        self._frames: list[RawFrame] = []

    def __enter__(self) -> PacketCapture:
        from scapy.sendrecv import AsyncSniffer

        from netlab.kernel.nssocket import NsSocket

        self._opened = open_sockets(self.ifaces)
        wrapped = {NsSocket(c.sock, c.netns, functools.partial(read_frame, c), self._frames): c.netns
                   for c in self._opened}
        self._sniffer = AsyncSniffer(opened_socket=wrapped, store=False)
        self._sniffer.start()
        return self

    def stop(self) -> list[RawFrame]:
        """Stop sniffing, take what the sockets still hold, and return every frame by time."""
        if self._sniffer is not None:
            try:
                self._sniffer.stop(join=True)
            except Exception:  # noqa: BLE001 - a sniffer that already ended is fine
                pass
            self._sniffer = None
        for cap in self._opened:
            while (frame := read_frame(cap)) is not None:
                if isinstance(frame, RawFrame):
                    self._frames.append(frame)
        return sorted(self._frames, key=lambda f: f.time)

    def __exit__(self, *exc) -> None:
        if self._sniffer is not None:
            self.stop()
        close_all([c.sock for c in self._opened])
        self._opened = []
