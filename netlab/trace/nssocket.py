"""A scapy SuperSocket around an AF_PACKET socket opened in another namespace.

scapy's own L2 sockets resolve the interface in the namespace scapy started
in; this one takes a socket already bound inside its namespace and only
reads. Every frame it reads is also kept as a :class:`Frame` (kernel
timestamp, direction) for the correlator.
"""

from __future__ import annotations

from scapy.config import conf
from scapy.supersocket import SuperSocket

from netlab.trace.capture import Frame, NsCapture, read_frame


class NsSocket(SuperSocket):
    """Read-only SuperSocket for one namespace's capture; appends each frame to ``sink``."""

    desc = "AF_PACKET socket bound inside a network namespace"
    # Blocking from scapy's point of view: its sniffer then adds a control
    # pipe to select() on, so stop() wakes it at once instead of waiting for
    # the next packet.
    nonblocking_socket = False

    def __init__(self, cap: NsCapture, sink: list[Frame]):
        self.ins = cap.sock
        self.outs = None
        self.cap = cap
        self.iface = cap.netns
        self.sink = sink

    def recv_raw(self, x: int = 65535):
        frame = read_frame(self.cap)
        if not frame:
            return None, None, None
        self.sink.append(frame)
        return conf.raw_layer, frame.data, frame.time

    def close(self) -> None:
        """The Capture owns the socket and closes it; the sniffer must not."""
        self.closed = True

    def send(self, x) -> int:
        raise OSError("a capture socket does not send")
