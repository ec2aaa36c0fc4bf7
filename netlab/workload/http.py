"""What a task app says: the JSON reply and its HTTP framing (pure, unit-tested).

The reply names the service, task, node and task IP, and the client address
the socket saw: that is how a user sees Swarm's ingress SNAT hide the client.
"""

from __future__ import annotations

import json
import re
from typing import Any

from netlab.model import image_tag
from netlab.workload.endpoints import AppEndpoint

MAX_REQUEST = 64 * 1024
_REQUEST_LINE = re.compile(rb"([A-Z][A-Z-]{0,19}) (\S+)(?: (HTTP/\d\.\d))?")


def reply_fields(ep: AppEndpoint, client: str, client_port: int, path: str | None) -> dict[str, Any]:
    """The JSON object the app answers with; with the task's image, ``image`` and its
    tag as ``version`` too (``web:2`` -> ``2``), so a rolling update shows who answers."""
    fields = {
        "service": ep.service, "task": ep.task, "node": ep.node, "task_ip": ep.task_ip,
        "port": ep.port, "client": client, "client_port": client_port, "path": path,
    }
    if ep.image:
        fields["image"] = ep.image
        fields["version"] = image_tag(ep.image)
    return fields


def version_label(version: str) -> str:
    """How a report shows a version: ``v2`` for a tag that starts with a digit
    (``2``, ``1.4``), the tag itself otherwise (``latest``, ``v2``, ``blue``)."""
    return f"v{version}" if version[:1].isdigit() else version


def reply_body(ep: AppEndpoint, client: str, client_port: int, path: str | None) -> bytes:
    """The reply body: one JSON object and a newline."""
    return (json.dumps(reply_fields(ep, client, client_port, path)) + "\n").encode()


def parse_request_line(request: bytes) -> tuple[str | None, str | None, bool]:
    """(method, path, is_http1) from the first line; (None, None, False) when it is not HTTP."""
    line = request.split(b"\n", 1)[0].rstrip(b"\r")
    m = _REQUEST_LINE.fullmatch(line)
    if not m:
        return None, None, False
    return m.group(1).decode(), m.group(2).decode("latin-1"), m.group(3) is not None


def request_complete(request: bytes) -> bool:
    """True when there is enough of the request to answer it.

    That is: the HTTP/1.x header block has ended, or the first line is complete
    and is not an HTTP/1.x request line (answer non-HTTP clients at once), or
    the 64 KiB bound is reached.
    """
    if len(request) >= MAX_REQUEST:
        return True
    if b"\n" not in request:
        return False
    if not parse_request_line(request)[2]:
        return True
    return b"\r\n\r\n" in request or b"\n\n" in request


def wants_keepalive(request: bytes) -> bool:
    """True when an HTTP/1.x request asks to keep its connection (``Connection: keep-alive``).

    Only an explicit ask keeps it: a request without the header is answered and
    closed, as the app always did.
    """
    head = request.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    if not parse_request_line(head)[2]:
        return False
    for line in head.split(b"\n")[1:]:
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"connection":
            tokens = {t.strip().lower() for t in value.split(b",")}
            return b"keep-alive" in tokens and b"close" not in tokens
    return False


STATUS_TEXT = {200: "OK", 503: "Service Unavailable"}


def http_response(body: bytes, head_only: bool = False, keep_alive: bool = False,
                  status: int = 200) -> bytes:
    """A complete ``HTTP/1.1 200 OK`` JSON response that closes the connection (or, with
    ``keep_alive``, says it stays open); ``status`` 503 is an unhealthy task's answer
    to its health check (see :mod:`netlab.workload.faults`)."""
    head = (
        f"HTTP/1.1 {status} {STATUS_TEXT[status]}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n"
        "\r\n"
    ).encode()
    return head if head_only else head + body
