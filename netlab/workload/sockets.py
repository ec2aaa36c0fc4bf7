"""The app's listening sockets, as the task endpoints want them.

The sockets themselves are made by :mod:`netlab.kernel.sockets` (the one
door to the kernel), inside the task's namespace.
"""

from __future__ import annotations

import socket

from netlab.kernel.sockets import IP_PKTINFO, listening_socket, run_in_netns
from netlab.workload.dnsio import DnsSocket
from netlab.workload.endpoints import AppEndpoint

__all__ = ["IP_PKTINFO", "open_socket", "run_in_netns"]


def open_socket(ep: AppEndpoint | DnsSocket) -> socket.socket:
    """A non-blocking socket bound to ``0.0.0.0:port`` (listening for TCP) in the current netns.

    Bound to the wildcard because the task's REDIRECT rewrites the destination
    to the primary address of the interface the packet came in on. A DNS
    socket binds ``127.0.0.11:port``, where the task's DNAT sends port 53.
    Raises OSError when it cannot be bound.
    """
    if isinstance(ep, DnsSocket):
        return listening_socket(ep.protocol, ep.address, ep.port, pktinfo=False)
    return listening_socket(ep.protocol, "0.0.0.0", ep.port, pktinfo=ep.protocol == "udp")
