"""A Docker Engine that runs a lab's tasks as containers, through the docker SDK.

:class:`DockerRuntime` is the real :class:`netlab.docker.tasks.ContainerRuntime`:
it speaks to dockerd with the low-level ``docker.APIClient`` (plain dicts of
the Engine API), so unit tests hand it a fake client of recorded answers.
:func:`runtime` connects to one and says in one line why it cannot (the same
messages as :mod:`netlab.docker.connect` gives for reading a real Swarm).
"""

from __future__ import annotations

import os
from typing import Any

from netlab.docker.tasks import LABEL_LAB, TaskContainer
from netlab.errors import MissingFeature, NetlabError

DEFAULT_URL = "unix:///var/run/docker.sock"
DNS = "127.0.0.11"         # the embedded DNS server's address in every task
API_VERSION = "1.41"      # Docker 20.10, the oldest the tests run (Debian 12's docker.io)


def _cause(exc: BaseException) -> BaseException:
    """The innermost OSError behind a docker/requests error, else ``exc``."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        cur = todo.pop(0)
        if id(cur) in seen:
            continue
        seen.add(id(cur))
        if isinstance(cur, (PermissionError, FileNotFoundError, ConnectionRefusedError)):
            return cur
        todo += [a for a in getattr(cur, "args", ()) if isinstance(a, BaseException)]
        todo += [e for e in (cur.__cause__, cur.__context__) if e is not None]
    return exc


def unreachable(url: str, exc: BaseException) -> MissingFeature:
    """The one-line error for a daemon that does not answer at ``url`` (exit 3)."""
    sock = url.removeprefix("unix://")
    if isinstance(_cause(exc), PermissionError):
        return MissingFeature(f"--docker: permission denied on {sock}: run as root or as a "
                              "member of the docker group")
    return MissingFeature(f"--docker: no Docker daemon answers at {url}; start docker or pass "
                          "--docker URL")


def runtime(url: str | None = None, client: Any = None) -> DockerRuntime:
    """A :class:`DockerRuntime` on the daemon at ``url`` (default: ``$DOCKER_HOST``, else
    the local socket), checked to answer. ``client`` replaces the SDK's APIClient (tests).

    Raises MissingFeature (exit 3) when the docker SDK is missing, no daemon
    answers, or the socket refuses the caller.
    """
    url = url or os.environ.get("DOCKER_HOST") or DEFAULT_URL
    if client is None:
        try:
            import docker
        except ImportError:
            raise MissingFeature("the docker SDK is missing (hint: pip install docker, or "
                                 "bash scripts/setup.sh)") from None
        try:
            client = docker.APIClient(base_url=url, version=API_VERSION, timeout=60)
        except Exception as exc:  # noqa: BLE001 - the SDK raises DockerException or ValueError
            raise MissingFeature(f"--docker: {url} is not a Docker URL ({exc}) (hint: "
                                 f"{DEFAULT_URL} or tcp://HOST:2375)") from None
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - requests/docker errors of every kind
        raise unreachable(url, exc) from None
    return DockerRuntime(client, url)


class DockerRuntime:
    """Task containers on one dockerd: created with no network of Docker's
    (``network_mode: none``: Docker makes no interface and writes no rule),
    labelled ``netlab.lab=<lab>``, removed by id."""

    def __init__(self, client: Any, url: str = DEFAULT_URL) -> None:
        self.client = client
        self.url = url

    def _error(self, what: str, exc: BaseException) -> NetlabError:
        """One line for a failed call: the daemon gone (exit 3) or its refusal (exit 1)."""
        if _cause(exc) is not exc:
            return unreachable(self.url, exc)
        return NetlabError(f"docker: {what}: {getattr(exc, 'explanation', None) or exc}")

    def _call(self, what: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - mapped to one line by _error
            raise self._error(what, exc) from None

    def check_image(self, image: str) -> None:
        """Raise MissingFeature (exit 3) when ``image`` is not on the daemon: netlab never
        pulls it."""
        try:
            self.client.inspect_image(image)
        except Exception as exc:  # noqa: BLE001
            if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                raise MissingFeature(f"--tasks: the image {image} is missing on {self.url} "
                                     "(hint: bash scripts/task-image.sh builds it offline)") from None
            raise self._error(f"inspect image {image}", exc) from None

    def create(self, spec: TaskContainer) -> str:
        """Create the container of ``spec`` (not started); returns its id."""
        # Its resolv.conf as the task's /etc/netns file: the embedded DNS at 127.0.0.11
        # and no search domain (Docker refuses --dns only with network modes host and
        # container:; without --dns-search ".", the hostname "web.1" makes "1" one).
        host_config = self.client.create_host_config(network_mode="none", dns=[DNS],
                                                     dns_opt=["ndots:0"], dns_search=["."])
        made = self._call(f"create {spec.name}", self.client.create_container,
                          spec.image, name=spec.name, hostname=spec.task,
                          environment=spec.environment, labels=spec.labels,
                          host_config=host_config, detach=True)
        return made["Id"]

    def start(self, container_id: str) -> int:
        """Start container ``container_id``; returns the pid of its first process."""
        self._call(f"start {container_id[:12]}", self.client.start, container_id)
        state = self._call(f"inspect {container_id[:12]}", self.client.inspect_container,
                           container_id)["State"]
        if not state.get("Running") or not state.get("Pid"):
            raise NetlabError(f"docker: container {container_id[:12]} is not running after "
                              f"its start (state {state.get('Status')!r}, exit code "
                              f"{state.get('ExitCode')})")
        return int(state["Pid"])

    def remove(self, container_id: str) -> bool:
        """Stop and remove container ``container_id``; False when it was gone already."""
        try:
            self.client.remove_container(container_id, force=True, v=True)
        except Exception as exc:  # noqa: BLE001
            if getattr(getattr(exc, "response", None), "status_code", None) == 404:
                return False
            raise self._error(f"remove {container_id[:12]}", exc) from None
        return True

    def of_lab(self, lab: str) -> list[str]:
        """The ids of every container labelled ``netlab.lab=<lab>``, running or not."""
        found = self._call("list containers", self.client.containers, all=True,
                           filters={"label": f"{LABEL_LAB}={lab}"})
        return [c["Id"] for c in found]
