"""What the workload supervisor serves: one :class:`AppEndpoint` per socket.

An endpoint is one listening socket inside one task's network namespace, plus
the names the app puts in its reply (service, task, node, task IP). The list
travels from ``netlab up``/``netlab scale`` to the supervisor process as a JSON
file (see :func:`dump_endpoints` / :func:`load_endpoints`)::

    {"version": 1, "endpoints": [{"netns": "nl-hello-hello-a.1", ...}, ...],
     "dns_tables": [{"api": ["10.0.1.2"], ...}, ...],
     "dns": [{"netns": "nl-hello-hello-a.1", "port": 40123, "table": 0}, ...]}

``dns`` (optional) holds one :class:`DnsEndpoint` per task: the embedded
DNS server's port at 127.0.0.11 and, by its index in ``dns_tables``, the
records it answers (each distinct table is written once: the tasks on the
same networks share one). An entry may carry its ``records`` inline instead,
as files written before the tables did.

Nothing here needs root or touches the kernel.
"""

from __future__ import annotations

import ipaddress
import json
import os
import sys
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, get_args

from netlab.errors import NetlabError
from netlab.model import IMAGE_MAX, Protocol, normalized_image

T = TypeVar("T")

FORMAT_VERSION = 1
# An endpoint's fields a file may leave out (one written before the image has none).
OPTIONAL = ("protocol", "image", "failing_health")
PROTOCOLS: tuple[str, ...] = get_args(Protocol)

# (netns, protocol, port): what identifies one socket. Two endpoints with the
# same key would need the same port twice in one namespace.
EndpointKey = tuple[str, str, int]
Records = tuple[tuple[str, tuple[str, ...]], ...]   # (name, addresses) pairs of one DNS table


def _check_place(obj: Any, strings: tuple[str, ...]) -> None:
    """What every endpoint has: the named non-empty string fields, a netns that is a
    name or an absolute path, and a port 1-65535; raises ValueError naming the field."""
    for name in strings:
        value = getattr(obj, name)
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    if "/" in obj.netns and not obj.netns.startswith("/"):
        raise ValueError(f"netns must be a name or an absolute path, got {obj.netns!r}")
    if isinstance(obj.port, bool) or not isinstance(obj.port, int) or not 1 <= obj.port <= 65535:
        raise ValueError(f"port must be an integer 1-65535, got {obj.port!r}")


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
    image: str = ""             # the service's image, which the app reports ("": none)
    # The health check's path this task's app fails (503): a task whose environment sets
    # NETLAB_APP_HEALTH=fail, a version that cannot pass (see README, rolling updates).
    failing_health: str = ""

    def __post_init__(self) -> None:
        _check_place(self, ("netns", "service", "task", "node", "task_ip"))
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if not isinstance(self.image, str) or len(self.image) > IMAGE_MAX or (
                self.image and normalized_image(self.image)[0] != self.image):
            raise ValueError(f"image must be empty or NAME:TAG, got {str(self.image)[:40]!r}")
        if not isinstance(self.failing_health, str) or (
                self.failing_health and not self.failing_health.startswith("/")):
            raise ValueError("failing_health must be empty or a path starting with /")

    @property
    def key(self) -> EndpointKey:
        """(netns, protocol, port): the socket this endpoint needs."""
        return (self.netns, self.protocol, self.port)

    @property
    def netns_path(self) -> str:
        """The namespace file to enter: ``/var/run/netns/<netns>`` or the path itself."""
        return self.netns if self.netns.startswith("/") else f"/var/run/netns/{self.netns}"

    def __str__(self) -> str:
        return f"{self.task} {self.protocol}/{self.port} in {self.netns}"

    def to_dict(self) -> dict[str, Any]:
        """The endpoint as a plain JSON-ready dict (written out: ``asdict``'s deep
        copy cost 33 ms for a 1,000-task lab's file, written twice per change)."""
        return {"netns": self.netns, "service": self.service, "task": self.task,
                "node": self.node, "task_ip": self.task_ip, "port": self.port,
                "protocol": self.protocol, "image": self.image,
                "failing_health": self.failing_health}

    @classmethod
    def from_dict(cls, data: Any) -> AppEndpoint:
        """Build an endpoint from a dict; raises ValueError naming the bad or missing field."""
        if not isinstance(data, dict):
            raise ValueError(f"an endpoint must be an object, got {type(data).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        missing = [n for n in names if n not in data and n not in OPTIONAL]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        if isinstance(data.get("image"), str):   # one string for a service's many tasks
            data = {**data, "image": sys.intern(data["image"])}
        return cls(**data)


@dataclass(frozen=True)
class DnsEndpoint:
    """One task's embedded DNS server: UDP and TCP at ``127.0.0.11:port`` in its netns.

    ``records`` are (lower-case name, IPv4 addresses) pairs, what the server
    answers. Raises ValueError when a field is out of range.
    """

    netns: str
    task: str
    node: str
    port: int
    records: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def __post_init__(self) -> None:
        _check_place(self, ("netns", "task", "node"))
        for name, addrs in self.records:
            if not isinstance(name, str) or not name or name != name.lower():
                raise ValueError(f"record names must be lower-case strings, got {name!r}")
            for addr in addrs:
                try:
                    ipaddress.IPv4Address(addr)
                except ValueError:
                    raise ValueError(f"record {name}: {addr!r} is not an IPv4 address") from None

    @property
    def table(self) -> dict[str, tuple[str, ...]]:
        """The records as a dict, as :class:`netlab.workload.dns.Resolver` takes them."""
        return dict(self.records)

    @property
    def netns_path(self) -> str:
        """The namespace file to enter: ``/var/run/netns/<netns>`` or the path itself."""
        return self.netns if self.netns.startswith("/") else f"/var/run/netns/{self.netns}"

    def to_dict(self) -> dict[str, Any]:
        """The endpoint as a plain JSON-ready dict (records as {name: [addresses]})."""
        return {"netns": self.netns, "task": self.task, "node": self.node, "port": self.port,
                "records": {n: list(a) for n, a in self.records}}

    @classmethod
    def from_dict(cls, data: Any, tables: dict[Records, Records] | None = None) -> DnsEndpoint:
        """Build one from a dict; raises ValueError naming the bad or missing field.

        With ``tables``, records equal to ones read before are that very tuple
        (and added otherwise): the tasks on the same networks resolve the same
        names, so a lab of n such tasks holds one table, not n copies of it.
        """
        if not isinstance(data, dict):
            raise ValueError(f"a dns entry must be an object, got {type(data).__name__}")
        names = ("netns", "task", "node", "port", "records")
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(unknown)}")
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"missing field(s) {', '.join(missing)}")
        records = data["records"]
        if not isinstance(records, dict) or not all(
                isinstance(v, list) and all(isinstance(a, str) for a in v) for v in records.values()):
            raise ValueError("records must map names to lists of addresses")
        table = tuple((n, tuple(a)) for n, a in records.items())
        if tables is not None:
            table = tables.setdefault(table, table)
        return cls(data["netns"], data["task"], data["node"], data["port"], table)


def check_unique(endpoints: Iterable[AppEndpoint]) -> None:
    """Raise ValueError when two endpoints need the same socket (netns, protocol, port)."""
    seen: dict[EndpointKey, AppEndpoint] = {}
    for ep in endpoints:
        if ep.key in seen:
            raise ValueError(f"{ep} and {seen[ep.key]} both need {ep.protocol}/{ep.port} in {ep.netns}")
        seen[ep.key] = ep


def endpoints_to_json(endpoints: Iterable[AppEndpoint], dns: Iterable[DnsEndpoint] = ()) -> str:
    """Serialise endpoints (and the tasks' DNS servers) to the versioned JSON document."""
    eps, servers = list(endpoints), list(dns)
    check_unique(eps)
    doc: dict[str, Any] = {"version": FORMAT_VERSION, "endpoints": [ep.to_dict() for ep in eps]}
    if servers:
        _check_one_dns_per_netns(servers)
        doc["dns_tables"], doc["dns"] = _tabled(servers)
    # Compact: json's C encoder serves only documents without indent (a 1,000-task
    # lab's list cost each scale or node change some 30 ms in the Python one).
    return json.dumps(doc) + "\n"


def _tabled(servers: list[DnsEndpoint]) -> tuple[list[dict[str, list[str]]], list[dict[str, Any]]]:
    """The servers' distinct records tables, once each, and the servers naming theirs by
    index (``"table": i``). Every task on the same networks resolves the same names, so
    writing the table into each server made the file (and the supervisor reading it)
    grow with the square of the tasks."""
    index: dict[Records, int] = {}
    tables: list[dict[str, list[str]]] = []
    entries = []
    for d in servers:
        i = index.get(d.records)
        if i is None:
            i = index[d.records] = len(tables)
            tables.append({n: list(a) for n, a in d.records})
        entries.append({"netns": d.netns, "task": d.task, "node": d.node, "port": d.port,
                        "table": i})
    return tables, entries


def _check_one_dns_per_netns(servers: list[DnsEndpoint]) -> None:
    seen: set[str] = set()
    for d in servers:
        if d.netns in seen:
            raise ValueError(f"two DNS servers for {d.netns}")
        seen.add(d.netns)


def _decode(text: str) -> Any:
    """The endpoints file's JSON document; raises NetlabError when it is not JSON."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise NetlabError(f"endpoints file is not JSON: {exc}") from None


def _entries(items: list, what: str, from_dict: Callable[[Any], T],
             check: Callable[[list[T]], None]) -> list[T]:
    """Each of ``items`` read by ``from_dict``, then ``check``ed as a whole;
    raises NetlabError naming the bad entry (``what[i]``) and why."""
    out = []
    for i, item in enumerate(items):
        try:
            out.append(from_dict(item))
        except (TypeError, ValueError) as exc:
            raise NetlabError(f"{what}[{i}]: {exc}") from None
    try:
        check(out)
    except ValueError as exc:
        raise NetlabError(f"{what}: {exc}") from None
    return out


def dns_from_json(text: str) -> list[DnsEndpoint]:
    """The ``dns`` entries of the document (none when absent); raises NetlabError
    naming the bad entry and why."""
    doc = _decode(text)
    items = doc.get("dns", []) if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise NetlabError('endpoints file: "dns" must be a list')
    listed = doc.get("dns_tables", [])
    if not isinstance(listed, list):
        raise NetlabError('endpoints file: "dns_tables" must be a list')
    tables: dict[Records, Records] = {}

    def read(item: Any) -> DnsEndpoint:
        # A server names its table by index; one written inline (files before the
        # tables) carries its "records" itself.
        if isinstance(item, dict) and "table" in item:
            i = item["table"]
            if type(i) is not int or not 0 <= i < len(listed):
                raise ValueError(f"table must be an index into dns_tables (0 to {len(listed) - 1})")
            item = {**{k: v for k, v in item.items() if k != "table"}, "records": listed[i]}
        return DnsEndpoint.from_dict(item, tables)

    return _entries(items, "dns", read, _check_one_dns_per_netns)


def endpoints_from_json(text: str) -> list[AppEndpoint]:
    """Parse the JSON document; raises NetlabError naming the bad entry and why."""
    doc = _decode(text)
    if not isinstance(doc, dict) or not isinstance(doc.get("endpoints"), list):
        raise NetlabError('endpoints file must be an object with an "endpoints" list')
    if doc.get("version") != FORMAT_VERSION:
        raise NetlabError(f"endpoints file version {doc.get('version')!r} is not {FORMAT_VERSION}")
    return _entries(doc["endpoints"], "endpoints", AppEndpoint.from_dict, check_unique)


def dump_endpoints(path: Path, endpoints: Iterable[AppEndpoint],
                   dns: Iterable[DnsEndpoint] = ()) -> None:
    """Write the endpoints file atomically (temp file + rename, mode 0600).

    A supervisor re-reading it on SIGHUP never sees half a file. Raises
    ValueError for duplicate sockets and OSError when the file cannot be written.
    """
    text = endpoints_to_json(endpoints, dns)
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
