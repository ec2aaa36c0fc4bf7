"""A Docker Engine that runs a lab's tasks as containers, through the docker SDK.

:class:`DockerRuntime` is the real :class:`netlab.docker.tasks.ContainerRuntime`:
it speaks to dockerd with the low-level ``docker.APIClient`` (plain dicts of
the Engine API), so unit tests hand it a fake client of recorded answers.
:func:`runtime` connects to one and says in one line why it cannot (the same
messages as :mod:`netlab.docker.connect` gives for reading a real Swarm).
"""

from __future__ import annotations

import importlib.util
from typing import Any

from netlab.docker import connect
from netlab.docker.tasks import LABEL_ADDRESS, LABEL_LAB, LABEL_TASK, TaskContainer
from netlab.errors import MissingFeature, NetlabError

DNS = "127.0.0.11"         # the embedded DNS server's address in every task
#: What a call fails with when the daemon itself is gone or refuses this user.
GONE = (PermissionError, FileNotFoundError, ConnectionRefusedError)


def runtime(url: str | None = None, client: Any = None) -> DockerRuntime:
    """A :class:`DockerRuntime` on the daemon at ``url`` (default: ``$DOCKER_HOST``, else
    the local socket), checked to answer. ``client`` replaces the SDK's APIClient (tests).

    Raises MissingFeature (exit 3) when the docker SDK is missing, no daemon
    answers, or the socket refuses the caller (:mod:`netlab.docker.connect`'s errors).
    """
    url = connect.docker_url(url)
    if client is None:
        if importlib.util.find_spec("docker") is None:
            raise MissingFeature("the docker SDK is missing (hint: pip install docker, or "
                                 "bash scripts/setup.sh)")
        return DockerRuntime(connect.connect(url), url)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001 - requests/docker errors of every kind
        raise connect.unreachable(url, exc) from None
    return DockerRuntime(client, url)


class DockerRuntime:
    """Task containers on one dockerd: created with no network of Docker's
    (``network_mode: none``: Docker makes no interface and writes no rule),
    labelled ``netlab.lab=<lab>``, removed by id."""

    def __init__(self, client: Any, url: str = connect.DEFAULT_URL) -> None:
        self.client = client
        self.url = url

    def _error(self, what: str, exc: BaseException) -> NetlabError:
        """One line for a failed call: the daemon gone (exit 3) or its refusal (exit 1)."""
        if any(connect.caused_by(exc, kind) for kind in GONE):
            return connect.unreachable(self.url, exc)
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

    def exited(self, lab: str) -> dict[str, tuple[str, str, int]]:
        """``lab``'s containers that exited: name -> (task, its address, exit code),
        from one list call (the engine's ``die`` as the swarm executor's ``Wait``
        sees it). The address is "" for a container made without the label."""
        found = self._call("list exited containers", self.client.containers, all=True,
                           filters={"label": f"{LABEL_LAB}={lab}", "status": "exited"})
        out = {}
        for c in found:
            name = (c.get("Names") or ["/?"])[0].lstrip("/")
            labels = c.get("Labels") or {}
            out[name] = (labels.get(LABEL_TASK, ""), labels.get(LABEL_ADDRESS, ""),
                         exit_code_of(c.get("Status", "")))
        return out

    def of_lab(self, lab: str) -> list[str]:
        """The ids of every container labelled ``netlab.lab=<lab>``, running or not."""
        found = self._call("list containers", self.client.containers, all=True,
                           filters={"label": f"{LABEL_LAB}={lab}"})
        return [c["Id"] for c in found]


def exit_code_of(status: str) -> int:
    """The exit code in a container list's ``Status`` (``Exited (137) 2 seconds ago``);
    -1 when it names none."""
    head, _, rest = status.partition("(")
    code = rest.partition(")")[0]
    return int(code) if head.strip() == "Exited" and code.lstrip("-").isdigit() else -1
