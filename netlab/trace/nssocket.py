"""A scapy SuperSocket around an AF_PACKET socket opened in another namespace.

scapy's own L2 sockets resolve the interface in the namespace scapy started
in; this one takes a socket already bound inside its namespace and only
reads. Every frame it reads is also kept as a :class:`Frame` (kernel
timestamp, direction) for the correlator.
"""

from __future__ import annotations

import socket

from scapy.config import conf
from scapy.supersocket import SuperSocket

from netlab.trace.capture import Frame, read_frame
from netlab.trace.points import CapturePoint


class NsSocket(SuperSocket):
    """Read-only SuperSocket for one capture point; appends each frame to ``sink``."""

    desc = "AF_PACKET socket bound inside a network namespace"
    # Blocking from scapy's point of view: its sniffer then adds a control
    # pipe to select() on, so stop() wakes it at once instead of waiting for
    # the next packet.
    nonblocking_socket = False

    def __init__(self, point: CapturePoint, sock: socket.socket, sink: list[Frame]):
        self.ins = sock
        self.outs = None
        self.point = point
        self.iface = point.label
        self.sink = sink

    def recv_raw(self, x: int = 65535):
        frame = read_frame(self.point, self.ins)
        if frame is None:
            return None, None, None
        self.sink.append(frame)
        return conf.raw_layer, frame.data, frame.time

    def close(self) -> None:
        """The Capture owns the socket and closes it; the sniffer must not."""
        self.closed = True

    def send(self, x) -> int:
        raise OSError("a capture socket does not send")
