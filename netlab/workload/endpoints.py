"""What the workload supervisor serves: one :class:`AppEndpoint` per socket.

An endpoint is one listening socket inside one task's network namespace, plus
the names the app puts in its reply (service, task, node, task IP). The list
travels from ``netlab up``/``netlab scale`` to the supervisor process as a JSON
file (see :func:`dump_endpoints` / :func:`load_endpoints`)::

    {"version": 1, "endpoints": [{"netns": "nl-hello-hello-a.1", ...}, ...]}

Nothing here needs root or touches the kernel.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterable, get_args

from netlab.errors import NetlabError
from netlab.model import Protocol

FORMAT_VERSION = 1
PROTOCOLS: tuple[str, ...] = get_args(Protocol)

# (netns, protocol, port): what identifies one socket. Two endpoints with the
# same key would need the same port twice in one namespace.
EndpointKey = tuple[str, str, int]


@dataclass(frozen=True)
class AppEndpoint:
    """One socket the app listens on, and the names it answers with.

    ``netns`` is a name under ``/var/run/netns`` (``nl-<lab>.<task>``) or an
    absolute path to a namespace file (``/proc/<pid>/ns/net``). ``port`` is the
    task's *target* port; the app binds ``0.0.0.0:port`` there. Raises
    ValueError when a field is out of range.
    """

    netns: str
    service: str
    task: str
    node: str
    task_ip: str
    port: int
    protocol: str = "tcp"

    def __post_init__(self) -> None:
        for name in ("netns", "service", "task", "node", "task_ip"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if "/" in self.netns and not self.netns.startswith("/"):
            raise ValueError(f"netns must be a name or an absolute path, got {self.netns!r}")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 1 <= self.port <= 65535:
            raise ValueError(f"port must be an integer 1-65535, got {self.port!r}")
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")

    @property
    def key(self) -> EndpointKey:
        """(netns, protocol, port): the socket this endpoint needs."""
        return (self.netns, self.protocol, self.port)

    @property
    def netns_path(self) -> str:
        """The file to ``setns`` into: ``/var/run/netns/<netns>`` or the path itself."""
        return self.netns if self.netns.startswith("/") else f"/var/run/netns/{self.netns}"

    def __str__(self) -> str:
        return f"{self.task} {self.protocol}/{self.port} in {self.netns}"

    def to_dict(self) -> dict[str, Any]:
        """The endpoint as a plain JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> AppEndpoint:
        """Build an endpoint from a dict; raises ValueError naming the bad or missing field."""
        if not isinstance(data, dict):
            raise ValueError(f"an endpoint must be an object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        missing = [n for n in names if n not in data and n != "protocol"]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        return cls(**data)


def check_unique(endpoints: Iterable[AppEndpoint]) -> None:
    """Raise ValueError when two endpoints need the same socket (netns, protocol, port)."""
    seen: dict[EndpointKey, AppEndpoint] = {}
    for ep in endpoints:
        if ep.key in seen:
            raise ValueError(f"{ep} and {seen[ep.key]} both need {ep.protocol}/{ep.port} in {ep.netns}")
        seen[ep.key] = ep


def endpoints_to_json(endpoints: Iterable[AppEndpoint]) -> str:
    """Serialise endpoints to the versioned JSON document (stable field order)."""
    eps = list(endpoints)
    check_unique(eps)
    doc = {"version": FORMAT_VERSION, "endpoints": [ep.to_dict() for ep in eps]}
    return json.dumps(doc, indent=2) + "\n"


def endpoints_from_json(text: str) -> list[AppEndpoint]:
    """Parse the JSON document; raises NetlabError naming the bad entry and why."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NetlabError(f"endpoints file is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("endpoints"), list):
        raise NetlabError('endpoints file must be an object with an "endpoints" list')
    if doc.get("version") != FORMAT_VERSION:
        raise NetlabError(f"endpoints file version {doc.get('version')!r} is not {FORMAT_VERSION}")
    endpoints = []
    for i, item in enumerate(doc["endpoints"]):
        try:
            endpoints.append(AppEndpoint.from_dict(item))
        except (TypeError, ValueError) as exc:
            raise NetlabError(f"endpoints[{i}]: {exc}") from None
    try:
        check_unique(endpoints)
    except ValueError as exc:
        raise NetlabError(f"endpoints: {exc}") from None
    return endpoints


def dump_endpoints(path: Path, endpoints: Iterable[AppEndpoint]) -> None:
    """Write the endpoints file atomically (temp file + rename, mode 0600).

    A supervisor re-reading it on SIGHUP never sees half a file. Raises
    ValueError for duplicate sockets and OSError when the file cannot be written.
    """
    text = endpoints_to_json(endpoints)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_endpoints(path: Path) -> list[AppEndpoint]:
    """Read an endpoints file; raises NetlabError if it is missing or malformed."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise NetlabError(f"cannot read endpoints file {path}: {exc.strerror or exc}") from None
    return endpoints_from_json(text)
