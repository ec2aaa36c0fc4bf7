"""A scapy SuperSocket around a packet socket opened in another namespace.

scapy's own L2 sockets resolve the interface in the namespace scapy started
in; this one takes a socket already open inside its namespace and only
reads, through the reader it is given (:func:`netlab.kernel.capture.read_frame`).
Every frame it reads is also kept (kernel timestamp, direction) in ``sink``.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from scapy.config import conf
from scapy.supersocket import SuperSocket


class NsSocket(SuperSocket):
    """Read-only SuperSocket for one namespace's capture; appends each frame to ``sink``.

    ``read`` returns the next frame (an object with ``data`` and ``time``), False
    for one to drop, None when nothing waits.
    """

    desc = "packet socket open inside a network namespace"
    # Blocking from scapy's point of view: its sniffer then adds a control
    # pipe to select() on, so stop() wakes it at once instead of waiting for
    # the next packet.
    nonblocking_socket = False

    def __init__(self, sock: socket.socket, name: str, read: Callable[[], Any], sink: list):
        self.ins = sock
        self.outs = None
        self.read = read
        self.iface = name
        self.sink = sink

    def recv_raw(self, x: int = 65535):
        frame = self.read()
        if not frame:
            return None, None, None
        self.sink.append(frame)
        return conf.raw_layer, frame.data, frame.time

    def close(self) -> None:
        """The capture owns the socket and closes it; the sniffer must not."""
        self.closed = True

    def send(self, x) -> int:
        raise OSError("a capture socket does not send")
