"""The embedded DNS server's sockets in the app: what to open, and serving them non-blocking.

Each task gets a UDP socket and a TCP listener at ``127.0.0.11:<port>`` in
its namespace, as dockerd's resolver opens them in every container (the
task's ``DOCKER_OUTPUT`` DNAT brings port 53 there). The app's one select
loop drives them: :func:`answer_datagrams` for UDP, :class:`DnsConn` for each
TCP connection (2-byte length framing, several queries per connection).
What is answered comes from :mod:`netlab.workload.dns`.
"""

from __future__ import annotations

import logging
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from netlab.workload.dns import RESOLVER_IP, Resolver, frame, split_frames
from netlab.workload.endpoints import DnsEndpoint

IDLE_TIMEOUT = 10.0   # seconds a TCP DNS connection may sit idle before it is closed
MAX_PENDING = 1 << 20  # bytes of unsent replies before a client that never reads is dropped

log = logging.getLogger("netlab.workload")


@dataclass(frozen=True)
class DnsSocket:
    """One socket of a task's DNS server: ``protocol`` is ``udp`` or ``tcp``."""

    server: DnsEndpoint
    protocol: str

    @property
    def key(self) -> tuple[str, str, int]:
        """(netns, ``dns/<protocol>``, port): never equal to an app endpoint's key."""
        return (self.server.netns, f"dns/{self.protocol}", self.server.port)

    @property
    def netns_path(self) -> str:
        return self.server.netns_path

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return RESOLVER_IP

    def __str__(self) -> str:
        return f"{self.server.task} dns {self.protocol}/{self.port} at {RESOLVER_IP} in {self.server.netns}"

    def to_dict(self) -> dict[str, Any]:
        return {"netns": self.server.netns, "task": self.server.task, "node": self.server.node,
                "port": self.port, "protocol": f"dns/{self.protocol}",
                "records": len(self.server.records)}


def dns_sockets(servers: list[DnsEndpoint]) -> list[DnsSocket]:
    """The UDP and TCP socket of every server."""
    return [DnsSocket(s, p) for s in servers for p in ("udp", "tcp")]


def answer_datagrams(sock: socket.socket, resolver: Resolver, batch: int) -> None:
    """Answer up to ``batch`` queries waiting on the UDP ``sock``; never raises."""
    for _ in range(batch):
        try:
            data, peer = sock.recvfrom(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            log.warning("dns recv: %s", exc)
            return
        reply = resolver.answer(data)
        if reply is None:
            continue
        try:
            sock.sendto(reply, peer)
        except OSError as exc:
            log.warning("dns reply to %s: %s", peer, exc)


def accept_dns(sock: socket.socket, resolver: Resolver, sel: selectors.BaseSelector,
               conns: set[DnsConn], limit: int, batch: int) -> None:
    """Accept up to ``batch`` TCP clients on ``sock`` into ``conns`` (at most ``limit``)."""
    for _ in range(batch):
        try:
            client, _peer = sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:  # EMFILE, ECONNABORTED...
            log.warning("dns accept: %s", exc)
            return
        if len(conns) >= limit:
            client.close()
            continue
        client.setblocking(False)
        conn = DnsConn(client, resolver, time.monotonic() + IDLE_TIMEOUT)
        conns.add(conn)
        sel.register(client, selectors.EVENT_READ, ("dnsconn", conn))


@dataclass(eq=False)  # hashed by identity: kept in a set
class DnsConn:
    """One TCP DNS client: reads framed queries, writes framed answers, until EOF or idle."""

    sock: socket.socket
    resolver: Resolver
    deadline: float
    inbuf: bytes = b""
    out: bytes = b""
    peer_closed: bool = False
    closed: bool = field(default=False)

    def on_ready(self, sel: selectors.BaseSelector, mask: int) -> None:
        """Serve one readiness event; closes (and unregisters) itself when done."""
        if mask & selectors.EVENT_READ and not self.peer_closed:
            try:
                data = self.sock.recv(65537)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.close(sel)
                return
            if data == b"":
                self.peer_closed = True
            elif data:
                self.inbuf += data
                messages, self.inbuf = split_frames(self.inbuf)
                for message in messages:
                    reply = self.resolver.answer(message, max_size=None)
                    if reply is not None:
                        self.out += frame(reply)
                self.deadline = time.monotonic() + IDLE_TIMEOUT
        self._flush(sel)

    def _flush(self, sel: selectors.BaseSelector) -> None:
        if self.out:
            try:
                sent = self.sock.send(self.out)
                self.out = self.out[sent:]
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.close(sel)
                return
        if (self.peer_closed and not self.out) or len(self.out) > MAX_PENDING:
            self.close(sel)
            return
        events = selectors.EVENT_WRITE if self.out else 0
        events |= 0 if self.peer_closed else selectors.EVENT_READ
        sel.modify(self.sock, events, ("dnsconn", self))

    def close(self, sel: selectors.BaseSelector) -> None:
        if not self.closed:
            self.closed = True
            sel.unregister(self.sock)
            self.sock.close()
