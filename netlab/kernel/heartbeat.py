"""The manager's heartbeat sockets: one datagram socket per node's agent, made in
that node's namespace, and the dispatcher's, bound in the manager node's
namespace to its LAN address, port 2377 (Swarm's cluster management port).

A heartbeat is a datagram ``hb <node>`` from the node's namespace to the
manager's LAN address: it crosses the lab's LAN as a real one does, so a node
cut off the LAN (its port down, a DROP rule, a route removed) stops
reporting, whatever cut it. Stdlib only.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from netlab.kernel import netns

PORT = 2377
_PREFIX = b"hb "


class Heartbeats:
    """The dispatcher's socket and every agent's. Raises OSError (or NetnsError) when
    a namespace cannot be entered or the port cannot be bound; close() frees them."""

    def __init__(self, manager_netns: str, manager_ip: str, agents: dict[str, str],
                 port: int = PORT) -> None:
        self.address = (manager_ip, port)
        self._tx: dict[str, socket.socket] = {}
        self.rx = self._in(manager_netns, lambda: bound_datagram(manager_ip, port))
        try:
            for node, ns in agents.items():
                self._tx[node] = self._in(ns, _sender)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _in(name: str, make: Callable[[], socket.socket]) -> socket.socket:
        return netns.in_thread(name, make)

    def send(self, node: str) -> bool:
        """Send ``node``'s heartbeat; False when its kernel refused it at once (no
        route, link down); a datagram lost on the way is not known here."""
        try:
            self._tx[node].sendto(_PREFIX + node.encode(), self.address)
        except OSError:
            return False
        return True

    def receive(self) -> list[str]:
        """The node names of every heartbeat waiting on the dispatcher's socket."""
        out: list[str] = []
        while True:
            try:
                data = self.rx.recv(256)
            except (BlockingIOError, InterruptedError):
                return out
            except OSError:
                return out
            if data.startswith(_PREFIX):
                out.append(data[len(_PREFIX):].decode(errors="replace"))

    def close(self) -> None:
        for sock in [*self._tx.values(), getattr(self, "rx", None)]:
            if sock is not None:
                sock.close()
        self._tx = {}


def bound_datagram(ip: str, port: int) -> socket.socket:
    """A non-blocking datagram socket bound to ``ip``:``port`` (in the calling thread's
    namespace); raises OSError."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _sender() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    return sock
