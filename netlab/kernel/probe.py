"""A task's health check, run as the HTTP GET its test would make, from inside the
task's network namespace (as dockerd runs the test inside the container).

Stdlib only: the socket is made in the task's namespace (see
:mod:`netlab.kernel.netns`) and used from the caller's thread.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from netlab.kernel import netns


@dataclass(frozen=True)
class ProbeResult:
    """One probe: ``exit_code`` 0 (healthy) or 1 (the test failed), or -1 when it ran
    past its timeout (Docker's "Health check exceeded timeout"); ``output`` says
    what was seen; ``start``/``end`` are monotonic seconds."""

    exit_code: int
    output: str
    start: float
    end: float


def http_check(ns: str, port: int, path: str, timeout: float) -> ProbeResult:
    """``curl -f http://localhost:<port><path>`` in namespace ``ns``: exit 0 for an
    answer below 400, 1 for an error status or a refused connection, -1 past
    ``timeout`` seconds. Never raises (a missing namespace is a failed check)."""
    start = time.monotonic()

    def done(code: int, output: str) -> ProbeResult:
        return ProbeResult(code, output, start, time.monotonic())

    try:
        sock = netns.in_thread(ns, lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
    except Exception as exc:  # noqa: BLE001 (NetnsError, OSError: the task's namespace is gone)
        return done(1, f"cannot enter {ns}: {exc}")
    with sock:
        try:
            sock.settimeout(timeout)
            sock.connect(("127.0.0.1", port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\n"
                         "User-Agent: netlab-healthcheck\r\nConnection: close\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                left = timeout - (time.monotonic() - start)
                if left <= 0:
                    raise TimeoutError
                sock.settimeout(left)
                chunk = sock.recv(4096)
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            return done(-1, f"Health check exceeded timeout ({timeout:g}s)")
        except OSError as exc:
            return done(1, f"curl: (7) Failed to connect to localhost port {port}: "
                           f"{exc.strerror or exc}")
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return done(1, f"curl: (52) no HTTP answer ({line[:60]!r})")
    status = int(parts[1])
    if status >= 400:
        return done(1, f"curl: (22) The requested URL returned error: {status}")
    return done(0, line)
