"""Reach a real Docker Engine and say plainly why not when it cannot be reached.

netlab talks to dockerd through the docker SDK's low-level ``APIClient``,
whose calls return the Engine API's own JSON (v1.41: ``/info``, ``/nodes``,
``/networks``, ``/services``, ``/tasks``, ``/containers``), so the readers
in :mod:`netlab.docker.snapshot` work on plain dicts and unit tests feed
them recorded JSON. The API version is pinned to 1.41 (Docker 20.10, which
every later Engine still serves), so no request is made to negotiate it.

The four errors a user of a real Swarm meets, each one line and exit 3
(:class:`netlab.errors.MissingFeature`): no daemon answers, permission
denied on the socket, this Docker is not part of a Swarm, and a worker was
asked for what only managers know.
"""

from __future__ import annotations

import ipaddress
import os
from typing import Any, Protocol

from netlab.errors import BadInput, MissingFeature
from netlab.plan import dnsname

API_VERSION = "1.41"
DEFAULT_URL = "unix:///var/run/docker.sock"
TIMEOUT = 30


class EngineClient(Protocol):
    """What netlab asks of ``docker.APIClient`` (a recorded fake has the same methods)."""

    def info(self) -> dict[str, Any]: ...
    def nodes(self, filters: dict | None = None) -> list[dict[str, Any]]: ...
    def networks(self, names: list | None = None, ids: list | None = None,
                 filters: dict | None = None) -> list[dict[str, Any]]: ...
    def services(self, filters: dict | None = None, status: bool | None = None) -> list[dict[str, Any]]: ...
    def tasks(self, filters: dict | None = None) -> list[dict[str, Any]]: ...
    def containers(self, quiet: bool = False, all: bool = False, trunc: bool = False,  # noqa: A002
                   latest: bool = False, since: str | None = None, before: str | None = None,
                   limit: int = -1, size: bool = False,
                   filters: dict | None = None) -> list[dict[str, Any]]: ...
    def inspect_container(self, container: str) -> dict[str, Any]: ...


URL_HINT = "unix:///var/run/docker.sock, or tcp://HOST:2375 with HOST a name or an IP address"
URL_MAX = 1024


def _port_problem(port: str) -> str | None:
    if not port:
        return "it names no port (the docker SDK needs one: tcp://HOST:2375)"
    if not (port.isascii() and port.isdigit()) or len(port) > 5 or not 1 <= int(port) <= 65535:
        return f"the port {port[:20]!r} is not a number from 1 to 65535"
    return None


def _host_problem(host: str) -> str | None:
    if host.startswith("["):
        address, close, after = host[1:].partition("]")
        if not close:
            return "the IPv6 address has no closing ] (tcp://[::1]:2375)"
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            return f"{address[:60]!r} is not an IPv6 address"
        if not after.startswith(":"):
            return "it names no port (the docker SDK needs one: tcp://[::1]:2375)"
        return _port_problem(after[1:])
    name, colon, port = host.partition(":")
    if ":" in port:
        return "an IPv6 address goes in brackets (tcp://[::1]:2375)"
    if not name:
        return "it names no host"
    if all(part.isascii() and part.isdigit() for part in name.split(".")):
        try:
            ipaddress.IPv4Address(name)
        except ValueError:
            return f"{name[:60]!r} is not an IPv4 address"
    elif (problem := dnsname.name_problem(name)) is not None:
        return f"the host {name[:60]!r} {problem}"
    return _port_problem(port) if colon else _port_problem("")


def url_problem(url: str) -> str | None:
    """What makes ``url`` no Engine address netlab can use, or None: ``unix://`` and an
    absolute socket path (or the path alone), or ``tcp://``, ``http://``, ``https://``
    and HOST:PORT, HOST a DNS name, an IPv4 address or a bracketed IPv6 one, PORT
    1-65535, and nothing after it. Pure: nothing is resolved or connected."""
    if len(url) > URL_MAX:
        return f"it is {len(url)} characters long (at most {URL_MAX})"
    if not url.isascii() or not url.isprintable():
        return "it holds a control or a non-ASCII character"
    if any(c.isspace() for c in url) and not url.startswith(("/", "unix://")):
        return "it holds a blank"
    if url.startswith("/"):
        return None
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "it has no scheme (unix:// or tcp://)"
    if scheme not in ("unix", "tcp", "http", "https"):
        return f"the scheme {scheme[:20]!r} is not unix, tcp, http or https"
    if scheme == "unix":
        return None if rest.startswith("/") and rest != "/" else \
            "a unix socket is an absolute file path (unix:///var/run/docker.sock)"
    host = rest[:-1] if rest.endswith("/") else rest
    if any(c in host for c in "/?#@\\"):
        return "only HOST:PORT may follow the scheme (no user, path, query or fragment)"
    return _host_problem(host)


def check_url(url: str, field: str) -> str:
    """``url`` when :func:`url_problem` finds nothing, a bare path as ``unix://PATH``;
    raises BadInput (exit 2) naming ``field`` (``--docker``, ``DOCKER_HOST``)."""
    if (problem := url_problem(url)) is not None:
        raise BadInput(f"{field}: {url[:100]!r} is not a Docker URL: {problem} (hint: {URL_HINT})")
    return "unix://" + url if url.startswith("/") else url


def docker_url(url: str | None) -> str:
    """The Engine's address, checked: ``url`` (``--docker``), else ``$DOCKER_HOST``,
    else the local socket. Raises BadInput (exit 2) naming ``--docker`` or
    ``DOCKER_HOST`` when the one used is no Docker URL (see :func:`url_problem`)."""
    if url:
        return check_url(url, "--docker")
    if env := os.environ.get("DOCKER_HOST"):
        return check_url(env, "DOCKER_HOST")
    return DEFAULT_URL


def manager_option(_ctx: object, _param: object, value: str | None) -> str | None:
    """Click callback of ``--manager URL`` (a manager's Engine, for a worker): checked
    like ``--docker``, never taken from the environment, so a ``tcp://`` Engine is only
    used when the user names it. Raises BadInput (exit 2) naming ``--manager``."""
    return check_url(value, "--manager") if value is not None else None


def docker_option(_ctx: object, _param: object, value: str | None) -> str | None:
    """Click callback of a ``--docker URL`` option: the URL checked (None stays None,
    the default is resolved later); raises BadInput naming ``--docker``."""
    return check_url(value, "--docker") if value else value


def _socket_path(url: str) -> str:
    """The socket file of a ``unix://`` URL (the URL itself for any other scheme)."""
    return url[len("unix://"):] if url.startswith("unix://") else url


def caused_by(err: BaseException, kind: type[BaseException]) -> bool:
    """True when ``kind`` is anywhere in ``err``'s chain (requests wraps the OSError
    in urllib3's errors, which keep it as an argument rather than as ``__cause__``)."""
    seen: set[int] = set()
    todo: list[BaseException] = [err]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, kind):
            return True
        todo += [x for x in (e.__cause__, e.__context__) if x is not None]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
        reason = getattr(e, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return isinstance(err, kind) or kind.__name__ in repr(err)


def unreachable(url: str, err: BaseException, field: str = "--docker") -> MissingFeature:
    """The one-line error for a daemon that did not answer at ``url`` (exit 3)."""
    if caused_by(err, PermissionError):
        return MissingFeature(f"{field}: permission denied on {_socket_path(url)}: run as root or "
                              "as a member of the docker group")
    return MissingFeature(f"{field}: no Docker daemon answers at {url}; start docker or pass "
                          f"{field} URL")


def connect(url: str | None = None, field: str = "--docker") -> EngineClient:
    """A low-level client of the Engine at ``url`` (see :func:`docker_url`), checked
    with one ``/info`` request. Raises BadInput (exit 2) when the URL is no Docker URL
    (before any connection), MissingFeature (exit 3) when no daemon answers there or
    the socket refuses this user."""
    import docker
    import requests
    where = docker_url(url) if field == "--docker" else check_url(url or "", field)
    try:
        client = docker.APIClient(base_url=where, version=API_VERSION, timeout=TIMEOUT)
        client.info()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError,
            ValueError) as err:   # urllib3 parses the URL again and raises ValueError
        raise unreachable(where, err, field) from None
    return client


def not_a_swarm(field: str = "--docker") -> MissingFeature:
    return MissingFeature(f"{field}: this Docker is not part of a Swarm (docker swarm init or "
                          "join first)")


def worker(field: str = "--docker") -> MissingFeature:
    if field == "--manager":
        return MissingFeature("--manager: that Engine is a Swarm worker, not a manager (hint: "
                              "--manager URL of a manager's Engine, e.g. tcp://MANAGER:2375)")
    return MissingFeature("--docker: this node is a Swarm worker; services and tasks are only "
                          "known to managers: run on a manager, or pass --manager URL, a "
                          "manager's Engine (this node's namespaces are still read here)")


def swarm_error_503() -> MissingFeature:
    """What the Engine's 503 on ``/nodes``, ``/services`` or ``/tasks`` means: a worker."""
    return worker()


def swarm_info(client: EngineClient, cluster_wide: bool = True,
               field: str = "--docker") -> dict[str, Any]:
    """``/info`` of a Swarm node; with ``cluster_wide``, of a manager.

    Raises MissingFeature (exit 3) when this Docker is in no Swarm, or when
    it is a worker and ``cluster_wide`` data (services, tasks, nodes) is asked
    for: only managers hold them.
    """
    info = client.info()
    swarm = info.get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("NodeID"):
        raise not_a_swarm(field)
    if cluster_wide and not swarm.get("ControlAvailable"):
        raise worker(field)
    return info
