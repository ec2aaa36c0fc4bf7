"""Docker's embedded DNS server, answering one task's queries from its records table.

dockerd runs one resolver per container at ``127.0.0.11`` (libnetwork
``resolver.go``); netlab's app does the same, and this module is the part
that turns a query into an answer. It knows nothing of sockets: the app
hands it the bytes of a UDP datagram or of one TCP message and sends back
what it returns. Messages are parsed and built with ``dnslib``.

What it answers, as Docker 20.10 does for a swarm task:

* ``A`` for a name in the table: every address, TTL 600 (``respTTL``),
  shuffled when there are several (``shuffleAddr``: dnsrr's round robin);
* ``AAAA`` for a name in the table: NOERROR with no answer (Docker's reply
  for a name it knows without IPv6), so glibc goes on to ``A``;
* ``PTR`` for an address in the table: the name that maps to it (the name
  whose records are that address alone first, as a task's container name);
* names are case-insensitive; the trailing dot is optional.

What Docker forwards to the host's resolvers, netlab never sends out:

* a name in the swarm's scope (a single label such as ``api``, or
  ``tasks.<label>``) that the table lacks: NXDOMAIN, what the user would
  see on a real swarm once the upstream resolver gave up;
* anything else (``example.com``, reverse lookups of unknown addresses):
  REFUSED, which says "not answered here" rather than "does not exist".

A message that is not a query is dropped; one whose header is readable but
whose body is not gets FORMERR; an opcode other than QUERY gets NOTIMP.
"""

from __future__ import annotations

import ipaddress
import random
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from dnslib import A, DNSError, DNSHeader, DNSRecord, PTR, QTYPE, RCODE, RR

RESOLVER_IP = "127.0.0.11"   # sandbox_dns_unix.go resolverIPSandbox
DNS_PORT = 53
RESP_TTL = 600               # resolver.go respTTL
UDP_MAX = 512                # without EDNS0 (RFC 1035 §4.2.1)
HEADER = struct.Struct("!HH")
QR_BIT = 0x8000
Records = Mapping[str, tuple[str, ...]]


def normalize(name: str) -> str:
    """A query name as the table keys it: lower case, no trailing dot."""
    return name.rstrip(".").lower()


def in_swarm_scope(name: str) -> bool:
    """True for names the swarm itself would own: ``api`` or ``tasks.api`` (normalized)."""
    labels = name.split(".")
    return len(labels) == 1 or (len(labels) == 2 and labels[0] == "tasks")


def reverse_table(records: Records) -> dict[str, str]:
    """address → name for PTR: a name holding that address alone wins over shared ones."""
    out: dict[str, str] = {}
    for only in (True, False):
        for name, addrs in records.items():
            if only and len(addrs) != 1:
                continue
            for addr in addrs:
                out.setdefault(addr, name)
    return out


def _ptr_address(qname: str) -> str | None:
    """The IPv4 address a ``d.c.b.a.in-addr.arpa`` name asks about (None if it is not one)."""
    labels = qname.split(".")
    if len(labels) != 6 or labels[4:] != ["in-addr", "arpa"]:
        return None
    try:
        return str(ipaddress.IPv4Address(".".join(reversed(labels[:4]))))
    except ValueError:
        return None


@dataclass
class Resolver:
    """Answers DNS messages for one task from ``records`` (normalized name → IPv4 strings).

    ``rng`` orders several A records (pass a seeded one for repeatable tests).
    Never raises on any input: bad messages are answered FORMERR or dropped.
    """

    records: Records
    rng: random.Random = field(default_factory=random.Random)

    def __post_init__(self) -> None:
        self.records = {normalize(k): tuple(v) for k, v in self.records.items()}
        self._reverse = reverse_table(self.records)

    def answer(self, data: bytes, max_size: int | None = UDP_MAX) -> bytes | None:
        """The reply to the message ``data``, or None when it must be dropped.

        ``max_size`` is the UDP limit (raised by the query's EDNS0 payload
        size); a larger reply is sent truncated (TC, no records) so the client
        retries over TCP. None means no limit (TCP).
        """
        if len(data) < HEADER.size:
            return None
        ident, flags = HEADER.unpack_from(data)
        if flags & QR_BIT:
            return None   # a response: never answer one
        try:
            query = DNSRecord.parse(data)
        except (DNSError, ValueError, IndexError, UnicodeError, struct.error):
            return DNSRecord(DNSHeader(id=ident, qr=1, ra=1, rcode=RCODE.FORMERR)).pack()
        reply = self._reply(query)
        packed = reply.pack()
        limit = self._limit(query, max_size)
        if limit is not None and len(packed) > limit:
            reply.rr, reply.auth, reply.ar = [], [], []
            reply.header.tc = 1
            packed = reply.pack()
        return packed

    @staticmethod
    def _limit(query: DNSRecord, max_size: int | None) -> int | None:
        if max_size is None:
            return None
        edns = [rr.rclass for rr in query.ar if rr.rtype == QTYPE.OPT]
        return max([max_size, *edns])

    def _reply(self, query: DNSRecord) -> DNSRecord:
        reply = query.reply(ra=1, aa=0)  # createRespMsg: SetReply + RecursionAvailable
        reply.ar = []
        if query.header.opcode != 0:
            reply.header.rcode = RCODE.NOTIMP
            return reply
        if len(query.questions) != 1:
            reply.header.rcode = RCODE.FORMERR
            return reply
        q = query.q
        name = normalize(str(q.qname))
        if q.qtype == QTYPE.PTR:
            addr = _ptr_address(name)
            target = self._reverse.get(addr) if addr else None
            if target is None:
                reply.header.rcode = RCODE.REFUSED
            else:
                reply.add_answer(RR(q.qname, QTYPE.PTR, rdata=PTR(target + "."), ttl=RESP_TTL))
            return reply
        addrs = self.records.get(name)
        if addrs is None:
            reply.header.rcode = RCODE.NXDOMAIN if in_swarm_scope(name) else RCODE.REFUSED
            return reply
        if q.qtype == QTYPE.A:
            ordered = list(addrs)
            if len(ordered) > 1:
                self.rng.shuffle(ordered)   # shuffleAddr
            for addr in ordered:
                reply.add_answer(RR(q.qname, QTYPE.A, rdata=A(addr), ttl=RESP_TTL))
        return reply   # AAAA and other types of a known name: NOERROR, no answer


# ---- DNS over TCP: each message behind a 2-byte length (RFC 1035 §4.2.2) -------------

def frame(message: bytes) -> bytes:
    """``message`` with its 2-byte big-endian length in front."""
    return struct.pack("!H", len(message)) + message


def split_frames(buffer: bytes) -> tuple[list[bytes], bytes]:
    """The complete messages at the start of ``buffer``, and the bytes left over."""
    messages = []
    while len(buffer) >= 2:
        (length,) = struct.unpack_from("!H", buffer)
        if len(buffer) < 2 + length:
            break
        messages.append(buffer[2:2 + length])
        buffer = buffer[2 + length:]
    return messages, buffer
