"""The traced request itself: one HTTP GET (or one UDP datagram) from a namespace.

The source port is chosen here, so the original tuple is known exactly and
the request's packets can be told from any other traffic, and followed
through NAT by conntrack.
"""

from __future__ import annotations

import errno
import json
import random
import socket
import time
from dataclasses import dataclass

from netlab.client import exchange, http_body
from netlab.kernel.reader import KernelReader

PORT_RANGE = (32768, 60999)


@dataclass(frozen=True)
class ProbeResult:
    """How the request ended, seen from the sender."""

    outcome: str                # "answered", "refused", "reset", "timeout", "error"
    src: tuple[str, int]        # the sender's address and chosen port
    body: dict | None = None    # the task app's JSON answer
    error: str | None = None
    elapsed_ms: float = 0.0


def _bound(reader: KernelReader, netns: str, src_ip: str, kind: int) -> tuple[socket.socket, int]:
    """A socket in ``netns`` bound to a free random port (tries a few)."""
    rng = random.SystemRandom()
    for _ in range(20):
        sock = reader.socket_in(netns, socket.AF_INET, kind)
        port = rng.randint(*PORT_RANGE)
        try:
            sock.bind((src_ip, port))
            return sock, port
        except OSError as exc:
            sock.close()
            if exc.errno != errno.EADDRINUSE:
                raise
    raise OSError(errno.EADDRINUSE, "no free source port found")


def _decode(raw: bytes, proto: str) -> dict | None:
    """The task app's JSON answer (an HTTP body over TCP, a bare datagram over UDP), or None."""
    try:
        doc = json.loads(http_body(raw) if proto == "tcp" else raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None


def send(reader: KernelReader, netns: str, src_ip: str, ip: str, port: int, proto: str,
         host: str, timeout: float) -> ProbeResult:
    """Send one request from ``src_ip`` in ``netns`` (a socket ``reader`` makes there) to
    ``ip:port``.

    Network outcomes (refused, timeout, reset) are results, not exceptions;
    raises OSError only when no source port can be bound, NetnsError when the
    namespace is gone.
    """
    started = time.monotonic()
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    sock, sport = _bound(reader, netns, src_ip, kind)

    def result(outcome: str, body: dict | None = None, error: str | None = None) -> ProbeResult:
        return ProbeResult(outcome, (src_ip, sport), body, error,
                           round((time.monotonic() - started) * 1000, 2))
    try:
        sock.settimeout(timeout)
        if proto == "tcp":
            sock.connect((ip, port))
            raw = exchange(sock, host, "netlab-trace")
        else:
            sock.connect((ip, port))
            sock.send(b"netlab-trace")
            raw = sock.recv(65536)
        return result("answered", _decode(raw, proto))
    except TimeoutError:
        return result("timeout", error=f"no answer within {timeout} s")
    except ConnectionRefusedError as exc:
        return result("refused", error=str(exc))
    except ConnectionResetError as exc:
        return result("reset", error=str(exc))
    except OSError as exc:
        return result("error", error=str(exc))
    finally:
        sock.close()
