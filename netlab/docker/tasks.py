"""Tasks as real containers (``netlab up --tasks containers``): what runs, and the steps.

Each task runs as a container of the offline image ``netlab/task:latest``
(``scripts/task-image.sh``: busybox answering HTTP with the JSON of netlab's
own task app). Docker gives it no network (``network_mode: none``: no
interface, no rule of Docker's); netlab adopts the container's network
namespace as the task's (:meth:`netlab.kernel.interface.Kernel.adopt`), and
``apply`` then wires it as any task namespace (``eth0``/``eth1``, REDIRECT,
the DNS rules). The container's server answers the service's TCP target
ports; the embedded DNS (and UDP ports) stay in netlab's app process, its
sockets opened in the container's namespace, as dockerd serves every
container's DNS from outside.

The container runtime is passed in (:class:`ContainerRuntime`); the real one
is :class:`netlab.docker.engine.DockerRuntime`, unit tests pass a fake.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from netlab.errors import NetlabError
from netlab.plan import names

if TYPE_CHECKING:   # annotations only: `netlab up --help` and `exec` need MODES, not these
    from netlab.ipam import Allocations
    from netlab.model import Lab

TASK_IMAGE = "netlab/task:latest"
LABEL_LAB = "netlab.lab"
LABEL_TASK = "netlab.task"
LABEL_ADDRESS = "netlab.address"
MODES = ("namespaces", "containers")
_POLL = 0.1


@dataclass(frozen=True)
class TaskContainer:
    """One task as a container: its name (the task's namespace name), labels and
    environment (what the image's server answers with), and the TCP ports it serves."""

    lab: str
    # <service>.<slot>: the container's hostname, as Swarm's --hostname '{{.Task.Name}}'
    task: str
    service: str
    node: str
    task_ip: str
    netns: str                  # nl-<lab>.<task>
    ports: tuple[int, ...]      # the TCP target ports (published and exposed)
    image: str = TASK_IMAGE

    @property
    def name(self) -> str:
        """The container's name: the task's namespace name, unique to the lab."""
        return self.netns

    @property
    def labels(self) -> dict[str, str]:
        """``netlab.lab`` (how ``down`` finds the lab's containers after a lost state
        file), ``netlab.task`` and ``netlab.address`` (which of the slot's tasks it
        ran: an exited container is never taken for its slot's next task)."""
        return {LABEL_LAB: self.lab, LABEL_TASK: self.task, LABEL_ADDRESS: self.task_ip}

    @property
    def environment(self) -> dict[str, str]:
        """What the image's server reads: its ports and the names it answers with."""
        return {"SERVICE": self.service, "NODE": self.node, "TASK_IP": self.task_ip,
                "PORTS": " ".join(str(p) for p in self.ports)}


def specs(lab: Lab, allocations: Allocations) -> list[TaskContainer]:
    """The container of every task of ``lab``: the TCP target ports of its service's
    published ports, then its exposed ports (once each)."""
    out = []
    for task in lab.tasks:
        service = lab.service(task.service)
        ports = tuple(dict.fromkeys([p.target for p in service.ports if p.protocol == "tcp"]
                                    + list(service.expose)))
        out.append(TaskContainer(
            lab=lab.name, task=task.name, service=service.name, node=task.node,
            task_ip=str(allocations.primary_ip(task.name, lab)),
            netns=names.task_ns(lab.name, task.name), ports=ports))
    return out


def serves_in_container(containers: bool, protocol: str) -> bool:
    """True when a task's endpoint of ``protocol`` is its container's to serve, not
    netlab's app's (tasks as containers serve TCP; UDP stays with the app)."""
    return containers and protocol == "tcp"


class ContainerRuntime(Protocol):
    """What running tasks as containers needs from a container engine."""

    def check_image(self, image: str) -> None:
        """Raise MissingFeature when ``image`` is not there (it is never pulled)."""
        ...

    def create(self, spec: TaskContainer) -> str:
        """Create the container of ``spec`` with no network; returns its id."""
        ...

    def start(self, container_id: str) -> int:
        """Start it; returns the pid of its first process (its network namespace's holder)."""
        ...

    def remove(self, container_id: str) -> bool:
        """Stop and remove it; False when it was gone."""
        ...

    def of_lab(self, lab: str) -> list[str]:
        """The ids of every container labelled as ``lab``'s."""
        ...

    def exited(self, lab: str) -> dict[str, tuple[str, str, int]]:
        """``lab``'s containers that exited: name -> (task, its address, exit code)."""
        ...


class Adopter(Protocol):
    def adopt(self, name: str, pid: int) -> None: ...
    def listening(self, name: str) -> set[int]: ...


def start(wanted: list[TaskContainer], containers: dict[str, str], existing: set[str],
          runtime: ContainerRuntime, kernel: Adopter, record: Callable[[], None],
          progress: Callable[[str], None] = lambda _m: None) -> list[TaskContainer]:
    """Run the container of each task of ``wanted`` that has none, and adopt its
    network namespace as the task's; returns those started.

    ``containers`` (task namespace -> container id, the state's) is updated in
    place, and ``record()`` saves it after each create, before the container
    runs, so ``down`` finds it after a crash. A task whose container is
    recorded but whose namespace is not in ``existing`` (an ``up`` killed
    between the two) gets a new container. Raises NetlabError/MissingFeature
    from the runtime, NetnsError from the adoption.
    """
    todo = [s for s in wanted if s.netns not in containers or s.netns not in existing]
    if todo:
        progress(f"starting {len(todo)} task containers")
    for spec in todo:
        old = containers.pop(spec.netns, None)
        if old:
            runtime.remove(old)
        containers[spec.netns] = runtime.create(spec)
        record()
        kernel.adopt(spec.netns, runtime.start(containers[spec.netns]))
    return todo


def remove(netns_names: list[str], containers: dict[str, str], runtime: ContainerRuntime,
           record: Callable[[], None]) -> int:
    """Remove the containers of the task namespaces ``netns_names`` (the namespaces stay
    until torn down); returns how many existed. ``containers`` is updated in place and
    saved by ``record()``."""
    removed = 0
    for name in netns_names:
        cid = containers.pop(name, None)
        if cid is not None:
            removed += runtime.remove(cid)
    record()
    return removed


def sweep(lab: str, recorded: list[str], runtime_of: Callable[[], ContainerRuntime],
          ) -> tuple[int, str | None]:
    """Remove ``lab``'s task containers for ``down``: the ids its state ``recorded`` and
    any other labelled ``netlab.lab=<lab>`` (an ``up`` killed before saving one).

    Returns (how many were removed, why some were left or None). When the
    runtime cannot be reached (``runtime_of`` raises NetlabError), nothing is
    removed and the reason is given only if ids were recorded: without a state
    file, a Docker that does not answer holds none of the lab's containers.
    """
    try:
        runtime = runtime_of()
        ids = list(dict.fromkeys(recorded + runtime.of_lab(lab)))
    except NetlabError as err:
        return 0, (f"{len(recorded)} task containers left: {err}" if recorded else None)
    return sum(1 for cid in ids if runtime.remove(cid)), None


def wait_serving(started: list[TaskContainer], kernel: Adopter, timeout: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once every container of ``started`` listens on all its ports (read in
    its namespace); raises NetlabError naming the first that does not within ``timeout``."""
    deadline = clock() + timeout
    waiting = [s for s in started if s.ports]
    while waiting:
        waiting = [s for s in waiting if not set(s.ports) <= kernel.listening(s.netns)]
        if waiting and clock() >= deadline:
            s = waiting[0]
            raise NetlabError(f"the container of task {s.task} ({s.name}) does not listen on "
                              f"{', '.join(f'tcp/{p}' for p in s.ports)} after {timeout:.0f} s "
                              f"(hint: docker logs {s.name})")
        if waiting:
            sleep(_POLL)
