"""The document of a lab's state file: :class:`LabState`, written by :func:`to_json`
and read back strictly by :func:`parse`.

:func:`parse` checks every field (types, unknown keys, the lab's own name,
namespaces under ``nl-<lab>.``, the model and allocations by
:mod:`netlab.codec`) and raises :class:`Bad` naming the first problem; the
store (:mod:`netlab.state`) moves such a file aside and reports it.
:func:`parse_targets` gives only what ``netlab exec`` needs (the scenario, the
namespaces and the targets) after the same checks, but without decoding the
model, allocations, tasks and change log: it imports neither the codec nor the
model, and its cost hardly grows with the lab's tasks.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from netlab.kernel.xtables import BACKENDS, Backend, is_backend
from netlab.plan import names
from netlab import updates
from netlab.updates import UpdateStatus

if TYPE_CHECKING:
    from netlab import changelog
    from netlab.ipam import Allocations
    from netlab.model import Lab, TaskRecord

VERSION = 2    # 1 (no "version" key): before the lab had a memory
SCENARIO_MAX = 4096           # PATH_MAX


@dataclass
class LabState:
    """What a state file holds; ``model`` and ``allocations`` rebuild the plan."""

    lab: str
    scenario: str
    model: Lab
    allocations: Allocations
    netns: list[str] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)   # target -> netns
    supervisor_pid: int | None = None
    # The supervisor's start time (/proc/<pid>/stat field 22): with the pid, it names
    # that one process (None in files from before it was recorded).
    supervisor_started: int | None = None
    complete: bool = False
    lan: dict[str, str] = field(default_factory=dict)      # node -> LAN IP
    client_ip: str | None = None
    iptables: Backend = "legacy"   # the backend the rules are in (labs before nft support: legacy)
    desired_tasks: tuple[TaskRecord, ...] = ()
    actual_tasks: tuple[TaskRecord, ...] = ()
    changes: tuple[changelog.Change, ...] = ()   # the change log (files before it: empty)
    tasks: str = "namespaces"  # how tasks run: "namespaces" (netlab's app) or "containers"
    docker: str | None = None  # the Docker URL of a lab whose tasks are containers
    containers: dict[str, str] = field(default_factory=dict)   # task netns -> container id
    # The lab's manager (netlab.manager): its pid and start time as the supervisor's,
    # and the time scale of its timings (1: swarmkit's own).
    manager_pid: int | None = None
    manager_started: int | None = None
    time_scale: float = 1.0
    # Each service's last update or rollback (netlab.updates): its state and previous spec.
    updates: dict[str, UpdateStatus] = field(default_factory=dict)
    # Each node whose NetworkDB holds peers failed -> those peers (netlab.manager.gossip):
    # their tasks are hidden from that node's load balancers.
    gossip_failed: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Targets:
    """The part of a state file ``netlab exec`` reads: its scenario, the namespaces
    the lab owns and the namespace of each target."""

    lab: str
    scenario: str
    netns: list[str]
    targets: dict[str, str]   # target -> netns


def to_json(state: LabState) -> dict[str, Any]:
    """``state`` as the JSON document of its file."""
    from netlab import changelog, codec
    return {
        "version": VERSION, "lab": state.lab, "scenario": state.scenario,
        "netns": list(state.netns), "targets": dict(state.targets),
        "supervisor_pid": state.supervisor_pid, "supervisor_started": state.supervisor_started,
        "complete": state.complete,
        "lan": dict(state.lan), "client_ip": state.client_ip, "iptables": state.iptables,
        "model": codec.lab_to_json(state.model),
        "allocations": codec.allocations_to_json(state.allocations),
        "desired_tasks": codec.tasks_to_json(state.desired_tasks),
        "actual_tasks": codec.tasks_to_json(state.actual_tasks),
        "changes": changelog.to_json(state.changes),
        "tasks": state.tasks, "docker": state.docker, "containers": dict(state.containers),
        "manager_pid": state.manager_pid, "manager_started": state.manager_started,
        "time_scale": state.time_scale,
        **({"updates": updates.to_json(state.updates)} if state.updates else {}),
        **({"gossip_failed": {n: list(p) for n, p in state.gossip_failed.items()}}
           if state.gossip_failed else {}),
    }


class Bad(Exception):
    """Why a state file fails its checks (one phrase)."""




def parse_targets(lab: str, raw: bytes) -> Targets:
    """The scenario, namespaces and targets in ``raw``. Every field is checked as
    :func:`parse` checks it except the contents of the model, the allocations, the
    tasks and the change log, which are only required to be there (they are not
    decoded). Raises Bad naming the first problem."""
    plain = _plain(lab, _document(raw))
    return Targets(lab, plain["scenario"], plain["netns"], plain["targets"])


def _document(raw: bytes) -> dict[str, Any]:
    """The JSON object in ``raw`` with no unknown key; raises Bad."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise Bad("it is not JSON") from None
    if not isinstance(doc, dict):
        raise Bad(f"it holds a JSON {_json_type(doc)}, not an object")
    known = ["version"] + [f.name for f in fields(LabState)]
    for key in doc:
        if key not in known:
            raise Bad(f"unknown key {key[:40]!r}")
    return doc


def _plain(lab: str, doc: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``doc`` that need no decoding, checked, as LabState's keyword
    arguments; the decoded ones must be present. Raises Bad."""
    version = doc.get("version")
    if version != VERSION or type(version) is not int:
        old = "no 'version'" if version is None else f"version {str(version)[:20]!r}"
        raise Bad(f"it is from another netlab ({old}; this one reads version {VERSION}): "
                   "its lab cannot be read back, bring it down and up again")
    for key in ("lab", "scenario"):
        if key not in doc:
            raise Bad(f"{key!r} is missing")
    if doc["lab"] != lab:
        raise Bad(f"'lab' is {str(doc['lab'])[:40]!r}, not {lab!r} as its file name says")
    scenario = doc["scenario"]
    if not isinstance(scenario, str) or not scenario or "\0" in scenario \
            or len(scenario) > SCENARIO_MAX:
        raise Bad("'scenario' must be the path of a scenario file")
    netns = _list_of(doc, "netns", lambda v: names.owned_by(lab, v), f"a namespace under nl-{lab}.")
    targets = _map_of(doc, "targets", lambda v: v in netns, "a namespace listed in 'netns'")
    for target in ("client", "lan"):
        if targets and target not in targets:
            raise Bad(f"'targets' has no {target!r}")
    pid, started = _process(doc, "supervisor")
    complete = doc.get("complete", False)
    if type(complete) is not bool:
        raise Bad("'complete' must be true or false")
    lan = _map_of(doc, "lan", _is_ipv4, "an IPv4 address")
    client_ip = doc.get("client_ip")
    if client_ip is not None and not _is_ipv4(client_ip):
        raise Bad("'client_ip' must be an IPv4 address or null")
    iptables = doc.get("iptables", "legacy")
    if not is_backend(iptables):
        raise Bad(f"'iptables' must be one of {', '.join(BACKENDS)}")
    tasks = doc.get("tasks", "namespaces")
    if tasks not in ("namespaces", "containers"):
        raise Bad("'tasks' must be namespaces or containers")
    docker = doc.get("docker")
    if docker is not None and (not isinstance(docker, str) or not docker or "\0" in docker
                               or len(docker) > SCENARIO_MAX):
        raise Bad("'docker' must be a Docker URL or null")
    containers = _map_of(doc, "containers", _is_container_id, "a container id")
    for name in containers:
        if not names.owned_by(lab, name):
            raise Bad(f"containers has a key {name[:60]!r}, not a namespace under nl-{lab}.")
    mpid, mstarted = _process(doc, "manager")
    time_scale = doc.get("time_scale", 1.0)
    try:
        from netlab.manager.timings import check_scale
        time_scale = check_scale(time_scale)
    except ValueError as err:
        raise Bad(f"'time_scale': {err}") from None
    for key in ("model", "allocations", "desired_tasks", "actual_tasks"):
        if key not in doc:
            raise Bad(f"{key!r} is missing")
    return {"lab": lab, "scenario": scenario, "netns": netns, "targets": targets,
            "supervisor_pid": pid, "supervisor_started": started, "complete": complete,
            "lan": lan, "client_ip": client_ip, "iptables": iptables, "tasks": tasks,
            "docker": docker, "containers": containers, "manager_pid": mpid,
            "manager_started": mstarted, "time_scale": time_scale}


def parse(lab: str, raw: bytes) -> LabState:
    """The LabState in ``raw``, every field checked; raises Bad naming the first problem."""
    from netlab import changelog, codec
    doc = _document(raw)
    plain = _plain(lab, doc)
    try:
        model = codec.lab_from_json(doc["model"])
        if model.name != lab:
            raise codec.Invalid(f"model.name is {model.name!r}, not {lab!r}")
        allocations = codec.allocations_from_json(doc["allocations"], model)
        desired = codec.tasks_from_json(doc["desired_tasks"], "desired_tasks", model)
        actual = codec.tasks_from_json(doc["actual_tasks"], "actual_tasks")
        changes = changelog.from_json(doc.get("changes", []))
        ups = updates.from_json(doc.get("updates", {}))
        for name in ups:
            if name not in {s.name for s in model.services}:
                raise updates.Invalid(f"updates names {name!r}, not a service of the lab")
    except (codec.Invalid, changelog.Invalid, updates.Invalid) as bad:
        raise Bad(str(bad)) from None
    failed = _gossip_failed(doc.get("gossip_failed", {}), {n.name for n in model.nodes})
    return LabState(model=model, allocations=allocations, desired_tasks=desired,
                    actual_tasks=actual, changes=changes, updates=ups, gossip_failed=failed,
                    **plain)


def _gossip_failed(raw: Any, nodes: set[str]) -> dict[str, tuple[str, ...]]:
    """'gossip_failed': node -> the other nodes it holds failed; raises Bad."""
    if not isinstance(raw, dict):
        raise Bad("'gossip_failed' must be an object")
    out: dict[str, tuple[str, ...]] = {}
    for viewer, peers in raw.items():
        if viewer not in nodes or not isinstance(peers, list) or not peers or not all(
                isinstance(p, str) and p in nodes and p != viewer for p in peers):
            raise Bad(f"'gossip_failed' maps {str(viewer)[:40]!r} to something other than "
                      "a list of the lab's other nodes")
        out[viewer] = tuple(sorted(set(peers)))
    return out


def _process(doc: dict[str, Any], who: str) -> tuple[int | None, int | None]:
    """A recorded process, ``<who>_pid`` and ``<who>_started`` (its start time in
    clock ticks, only with a pid), checked; raises Bad naming the field."""
    pid = doc.get(f"{who}_pid")
    if pid is not None and (type(pid) is not int or pid <= 0):
        raise Bad(f"'{who}_pid' must be a positive integer or null")
    started = doc.get(f"{who}_started")
    if started is not None and (type(started) is not int or started < 0 or pid is None):
        raise Bad(f"'{who}_started' must be a whole number of clock ticks, with a "
                  f"{who}_pid, or null")
    return pid, started


def _list_of(doc: dict[str, Any], key: str, ok: Callable[[str], bool], what: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise Bad(f"{key!r} must be a list")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not ok(item):
            raise Bad(f"{key}[{i}] is {str(item)[:60]!r}, not {what}")
    return list(value)


def _map_of(doc: dict[str, Any], key: str, ok: Callable[[str], bool], what: str) -> dict[str, str]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise Bad(f"{key!r} must be an object")
    for k, v in value.items():
        if not k or len(k) > names.NETNS_MAX or "\0" in k:
            raise Bad(f"{key} has a bad key {k[:40]!r}")
        if not isinstance(v, str) or not ok(v):
            raise Bad(f"{key}[{k[:40]!r}] is {str(v)[:60]!r}, not {what}")
    return dict(value)


def _is_ipv4(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _is_container_id(value: object) -> bool:
    """A Docker container id: 64 lower-case hex digits."""
    return isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef"
                                                                for c in value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_type(value: object) -> str:
    return {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)
