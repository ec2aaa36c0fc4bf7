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

import os
from typing import Any, Protocol

from netlab.errors import MissingFeature

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


def docker_url(url: str | None) -> str:
    """The Engine's address: ``url``, else ``$DOCKER_HOST``, else the local socket."""
    return url or os.environ.get("DOCKER_HOST") or DEFAULT_URL


def _socket_path(url: str) -> str:
    """The socket file of a ``unix://`` URL (the URL itself for any other scheme)."""
    return url[len("unix://"):] if url.startswith("unix://") else url


def _caused_by(err: BaseException, kind: type[BaseException]) -> bool:
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


def unreachable(url: str, err: BaseException) -> MissingFeature:
    """The one-line error for a daemon that did not answer at ``url`` (exit 3)."""
    if _caused_by(err, PermissionError):
        return MissingFeature(f"--docker: permission denied on {_socket_path(url)}: run as root or "
                              "as a member of the docker group")
    return MissingFeature(f"--docker: no Docker daemon answers at {url}; start docker or pass "
                          "--docker URL")


def connect(url: str | None = None) -> EngineClient:
    """A low-level client of the Engine at ``url`` (see :func:`docker_url`), checked
    with one ``/info`` request. Raises MissingFeature (exit 3) when no daemon
    answers there or the socket refuses this user."""
    import docker
    import requests
    where = docker_url(url)
    try:
        client = docker.APIClient(base_url=where, version=API_VERSION, timeout=TIMEOUT)
        client.info()
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as err:
        raise unreachable(where, err) from None
    return client


def not_a_swarm() -> MissingFeature:
    return MissingFeature("--docker: this Docker is not part of a Swarm (docker swarm init or "
                          "join first)")


def worker() -> MissingFeature:
    return MissingFeature("--docker: this node is a Swarm worker; services and tasks are only "
                          "known to managers: run on a manager")


def swarm_error_503() -> MissingFeature:
    """What the Engine's 503 on ``/nodes``, ``/services`` or ``/tasks`` means: a worker."""
    return worker()


def swarm_info(client: EngineClient, cluster_wide: bool = True) -> dict[str, Any]:
    """``/info`` of a Swarm node; with ``cluster_wide``, of a manager.

    Raises MissingFeature (exit 3) when this Docker is in no Swarm, or when
    it is a worker and ``cluster_wide`` data (services, tasks, nodes) is asked
    for: only managers hold them.
    """
    info = client.info()
    swarm = info.get("Swarm") or {}
    if swarm.get("LocalNodeState") != "active" or not swarm.get("NodeID"):
        raise not_a_swarm()
    if cluster_wide and not swarm.get("ControlAvailable"):
        raise worker()
    return info
