"""HTTP requests from the lab's ``client`` namespace to a node's published port,
or from a task to a service by name (east-west).

Each request is a new TCP connection made by a socket opened inside the
client namespace (or the task's), so it takes exactly the path an outside
client (or the task) would.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSRecord

from netlab.errors import BadInput, NetlabError
from netlab.kernel.reader import KernelReader
from netlab.plan import dnsname, names
from netlab.plan.discovery import records_for_task
from netlab.state import LabState

RESOLVER = "127.0.0.11"     # Docker's embedded DNS, as every task's resolv.conf names it


@dataclass(frozen=True)
class Reply:
    """One answer of a task app, or the error that stood in for it."""

    seq: int
    target: str
    ok: bool
    service: str | None = None
    task: str | None = None
    node: str | None = None
    task_ip: str | None = None
    client: str | None = None
    client_port: int | None = None
    local_port: int | None = None
    elapsed_ms: float = 0.0
    error: str | None = None
    image: str | None = None        # the task's image and its tag, when the app says them
    version: str | None = None


def _text(value: object) -> str | None:
    """A reply's string field, or None when it is absent or not a string."""
    return value if isinstance(value, str) else None


def mixed_versions(versions: Iterable[str | None]) -> bool:
    """True when the replies came from more than one version (a rolling update under
    way): then each reply line says its version."""
    return len({v for v in versions if v is not None}) > 1


def parse_target(state: LabState, target: str) -> tuple[str, str, int]:
    """``node2:5000`` → (node, LAN IP, port); raises BadInput naming the problem."""
    node, sep, port_s = target.rpartition(":")
    if (not sep or not (port_s.isascii() and port_s.isdigit()) or len(port_s) > 5
            or not 1 <= int(port_s) <= 65535):
        raise BadInput(f"NODE:PORT: {target!r} is not NODE:PORT (hint: node2:5000)")
    if node not in state.lan:
        raise BadInput(f"NODE:PORT: no node {node!r} in lab {state.lab} "
                       f"(hint: one of {', '.join(state.lan)})")
    return node, state.lan[node], int(port_s)


def parse_east_west(state: LabState, task: str, target: str,
                    reader: KernelReader) -> tuple[tuple[str, ...], int]:
    """``api:80`` or ``10.0.1.7:80`` as seen from ``task`` → (addresses, port).

    A name is resolved as the task's own resolver would: one A query to the
    embedded DNS at 127.0.0.11:53 from inside the task's namespace, through
    Docker's DNAT to the lab's DNS server (:func:`resolve_in`), which answers
    from :func:`netlab.plan.discovery.records_for_task` (the VIP, or every
    task for dnsrr). An IPv4 address is taken as it is. Raises BadInput for a
    task the lab does not run, a malformed target, a name that is no DNS name
    (:mod:`netlab.plan.dnsname`, checked before any encoding) or a name the task cannot
    resolve (NXDOMAIN); NetlabError when the embedded DNS does not answer.
    """
    lab = state.model
    if task not in {t.name for t in lab.tasks}:
        raise BadInput(f"--from: lab {state.lab} runs no task {task!r} "
                       f"(hint: one of {', '.join(t.name for t in lab.tasks[:6])})")
    name, sep, port_s = target.rpartition(":")
    if (not sep or not name or not (port_s.isascii() and port_s.isdigit()) or len(port_s) > 5
            or not 1 <= int(port_s) <= 65535):
        raise BadInput(f"SERVICE:PORT: {target!r} is not SERVICE:PORT (hint: api:80)")
    try:
        return (str(ipaddress.IPv4Address(name)),), int(port_s)
    except ValueError:
        pass
    ips = resolve_in(reader, names.task_ns(state.lab, task), name)
    if not ips:
        known = ", ".join(sorted(records_for_task(lab, state.allocations, task))) \
            or "none: it is on no user network"
        raise BadInput(f"SERVICE:PORT: {task} cannot resolve {name!r} "
                       f"(hint: names it resolves: {known})")
    return ips, int(port_s)


def resolve_in(reader: KernelReader, netns: str, name: str,
               timeout: float = 3.0) -> tuple[str, ...]:
    """The A records of ``name`` as the embedded DNS at 127.0.0.11:53 answers a
    query sent from inside ``netns``; () for NXDOMAIN or an empty answer.

    Raises BadInput (``SERVICE:PORT``) for a name that is no DNS name, before
    any encoding; NetlabError when no answer comes or the answer is an error
    other than NXDOMAIN (the lab's DNS server is not running, its DNAT is gone).
    """
    if (problem := dnsname.name_problem(name)) is not None:
        raise BadInput(f"SERVICE:PORT: {name[:80]!r} {problem} (hint: a service name such as "
                       "api:80, tasks.api:80, or an IPv4 address such as 10.0.1.7:80)")
    query = DNSRecord.question(name, "A")
    sock = reader.socket_in(netns, kind=socket.SOCK_DGRAM)
    try:
        sock.settimeout(timeout)
        sock.sendto(query.pack(), (RESOLVER, 53))
        while True:
            data, _peer = sock.recvfrom(65535)
            answer = DNSRecord.parse(data)
            if answer.header.id == query.header.id:
                break
    except OSError as exc:
        raise NetlabError(f"the embedded DNS at {RESOLVER} in {netns} did not answer ({exc}) "
                          "(hint: netlab status shows whether the task apps run and the "
                          "DNS rules are in place)") from None
    finally:
        sock.close()
    rcode = answer.header.rcode
    if rcode == RCODE.NXDOMAIN:
        return ()
    if rcode != RCODE.NOERROR:
        raise NetlabError(f"the embedded DNS at {RESOLVER} in {netns} answered {name!r} "
                          f"with {RCODE.get(rcode)}")
    return tuple(str(rr.rdata) for rr in answer.rr if rr.rtype == QTYPE.A)


def exchange(sock: socket.socket, host: str, agent: str) -> bytes:
    """Send ``GET /`` on a connected socket and read the answer until the server closes."""
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n"
                 "Connection: close\r\n\r\n".encode())
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def http_get(reader: KernelReader, netns: str, ip: str, port: int, host: str,
             timeout: float = 3.0) -> tuple[dict, int]:
    """GET / from inside ``netns`` (its socket made there by ``reader``); returns the JSON
    body and the local port used.

    Raises OSError (refused, timed out) or ValueError (not a netlab app's answer).
    """
    sock = reader.socket_in(netns)
    try:
        sock.settimeout(timeout)
        sock.connect((ip, port))
        local_port = sock.getsockname()[1]
        raw = exchange(sock, host, "netlab-curl")
    finally:
        sock.close()
    return json.loads(http_body(raw)), local_port


def http_body(raw: bytes) -> bytes:
    """The body of an HTTP answer; raises ValueError when ``raw`` is not one."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1."):
        raise ValueError(f"not an HTTP answer: {raw[:60]!r}")
    return body


def curl(reader: KernelReader, netns: str, ip: str | tuple[str, ...], port: int, target: str,
         count: int = 1, timeout: float = 3.0) -> list[Reply]:
    """``count`` sequential requests from ``netns`` (sockets made there by ``reader``); a
    failed one becomes a Reply with ``ok=False``.

    Several addresses (a dnsrr name) are used in turn, one per request, as a
    client rotating through the answer's records would.
    """
    replies = []
    ips = (ip,) if isinstance(ip, str) else ip
    for seq in range(1, count + 1):
        ip = ips[(seq - 1) % len(ips)]
        started = time.monotonic()
        try:
            body, local_port = http_get(reader, netns, ip, port, target, timeout)
            replies.append(Reply(
                seq, target, True, body.get("service"), body.get("task"), body.get("node"),
                body.get("task_ip"), body.get("client"), body.get("client_port"), local_port,
                round((time.monotonic() - started) * 1000, 2),
                image=_text(body.get("image")), version=_text(body.get("version"))))
        except (OSError, ValueError) as exc:
            err = "timed out" if isinstance(exc, socket.timeout) else str(exc)
            replies.append(Reply(seq, target, False, elapsed_ms=round(
                (time.monotonic() - started) * 1000, 2), error=err))
    return replies
