"""The sockets NetworkDB's gossip crosses the LAN on: one datagram socket per node,
made in that node's namespace and bound to its LAN address, port 7946
(memberlist's, which Swarm opens on every node).

A message is a datagram ``nlg <from> <to> <word>...``: it crosses the lab's LAN
as a real one does, so a node cut off the LAN (its port down, a DROP rule, a
route removed) neither hears nor is heard, whatever cut it. Stdlib only.
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from netlab.kernel import netns
from netlab.kernel.heartbeat import bound_datagram

PORT = 7946
_PREFIX = b"nlg "


class GossipSockets:
    """One bound socket per node (``nodes``: node -> (its namespace, its LAN address)).
    Raises OSError (or NetnsError) when a namespace cannot be entered or a port
    cannot be bound; close() frees them."""

    def __init__(self, nodes: dict[str, tuple[str, str]], port: int = PORT) -> None:
        self._addr = {node: (ip, port) for node, (_ns, ip) in nodes.items()}
        self.socks: dict[str, socket.socket] = {}
        try:
            for node, (ns, ip) in nodes.items():
                self.socks[node] = netns.in_thread(ns, _maker(ip, port))
        except BaseException:
            self.close()
            raise

    def fileno(self) -> list[int]:
        """Every socket's descriptor (for a select)."""
        return [s.fileno() for s in self.socks.values()]

    def send(self, sender: str, to: str, message: tuple[str, ...]) -> None:
        """Send ``message`` from ``sender``'s socket to ``to``'s; a datagram the kernel
        refused at once (no route, link down) is lost, as on the wire."""
        data = _PREFIX + " ".join((sender, to, *message)).encode()
        try:
            self.socks[sender].sendto(data, self._addr[to])
        except (OSError, KeyError):
            pass

    def receive(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(to, from, message) of every datagram waiting on the nodes' sockets."""
        out = []
        for node, sock in self.socks.items():
            while True:
                try:
                    data = sock.recv(512)
                except OSError:      # nothing more waiting (BlockingIOError), or closed
                    break
                words = data[len(_PREFIX):].decode(errors="replace").split()
                if data.startswith(_PREFIX) and len(words) >= 3 and words[1] == node:
                    out.append((node, words[0], tuple(words[2:])))
        return out

    def close(self) -> None:
        for sock in self.socks.values():
            sock.close()
        self.socks = {}


def _maker(ip: str, port: int) -> Callable[[], socket.socket]:
    return lambda: bound_datagram(ip, port)
