"""The app's listening sockets, opened inside a task's network namespace.

A short-lived helper thread joins the namespace with ``setns(2)`` (which
moves only the calling thread), creates and binds the socket there and hands
it back; sockets stay in the namespace they were created in.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

from netlab.nsenter import in_thread
from netlab.workload.dnsio import DnsSocket
from netlab.workload.endpoints import AppEndpoint

IP_PKTINFO = 8  # linux/in.h; the socket module of Python 3.11 lacks it
T = TypeVar("T")


def run_in_netns(netns_fd: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread inside the namespace ``netns_fd`` (see :func:`netlab.nsenter.in_thread`)."""
    return in_thread(netns_fd, fn)


def open_socket(ep: AppEndpoint | DnsSocket) -> socket.socket:
    """A non-blocking socket bound to ``0.0.0.0:port`` (listening for TCP) in the current netns.

    Bound to the wildcard because the task's REDIRECT rewrites the destination
    to the primary address of the interface the packet came in on. A DNS
    socket binds ``127.0.0.11:port``, where the task's DNAT sends port 53.
    """
    kind = socket.SOCK_STREAM if ep.protocol == "tcp" else socket.SOCK_DGRAM
    dns = isinstance(ep, DnsSocket)
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if ep.protocol == "udp" and not dns:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind((ep.address if isinstance(ep, DnsSocket) else "0.0.0.0", ep.port))
        if ep.protocol == "tcp":
            sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
