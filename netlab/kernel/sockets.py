"""Listening sockets made inside a network namespace: the task apps' door to the kernel.

A short-lived helper thread joins the namespace (:func:`netlab.kernel.nsenter.in_thread`,
which moves only that thread), creates and binds the sockets there and hands them
back; a socket stays in the namespace it was created in. Stdlib only: the task
apps' supervisor imports this and starts cold.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import TypeVar

from netlab.kernel.nsenter import in_thread

IP_PKTINFO = 8  # linux/in.h; the socket module of Python 3.11 lacks it
T = TypeVar("T")


def run_in_netns(netns_fd: int, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread inside the namespace open at ``netns_fd``; raises OSError
    when the namespace cannot be entered, and whatever ``fn`` raises."""
    return in_thread(netns_fd, fn)


def listening_socket(protocol: str, address: str, port: int, pktinfo: bool = False) -> socket.socket:
    """A non-blocking socket bound to ``address:port`` in the calling thread's namespace:
    listening for ``protocol`` "tcp", a datagram socket for "udp" (asking for each
    datagram's destination address with ``pktinfo``). Raises OSError when it cannot be
    bound."""
    kind = socket.SOCK_STREAM if protocol == "tcp" else socket.SOCK_DGRAM
    sock = socket.socket(socket.AF_INET, kind)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if pktinfo:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        sock.bind((address, port))
        if protocol == "tcp":
            sock.listen(socket.SOMAXCONN)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
