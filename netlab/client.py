"""HTTP requests from the lab's ``client`` namespace to a node's published port.

Each request is a new TCP connection made by a socket opened inside the
client namespace, so it takes exactly the path an outside client would.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

from netlab.errors import BadInput
from netlab.kernel.netns import socket_in
from netlab.state import LabState


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


def exchange(sock: socket.socket, host: str, agent: str) -> bytes:
    """Send ``GET /`` on a connected socket and read the answer until the server closes."""
    sock.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {agent}\r\n"
                 "Connection: close\r\n\r\n".encode())
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def http_get(netns: str, ip: str, port: int, host: str, timeout: float = 3.0) -> tuple[dict, int]:
    """GET / from inside ``netns``; returns the JSON body and the local port used.

    Raises OSError (refused, timed out) or ValueError (not a netlab app's answer).
    """
    sock = socket_in(netns)
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


def curl(netns: str, ip: str, port: int, target: str, count: int = 1,
         timeout: float = 3.0) -> list[Reply]:
    """``count`` sequential requests; a failed one becomes a Reply with ``ok=False``."""
    replies = []
    for seq in range(1, count + 1):
        started = time.monotonic()
        try:
            body, local_port = http_get(netns, ip, port, target, timeout)
            replies.append(Reply(
                seq, target, True, body.get("service"), body.get("task"), body.get("node"),
                body.get("task_ip"), body.get("client"), body.get("client_port"), local_port,
                round((time.monotonic() - started) * 1000, 2)))
        except (OSError, ValueError) as exc:
            err = "timed out" if isinstance(exc, socket.timeout) else str(exc)
            replies.append(Reply(seq, target, False, elapsed_ms=round(
                (time.monotonic() - started) * 1000, 2), error=err))
    return replies
