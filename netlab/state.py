"""The state file of a lab: ``<store>/<lab>.json`` (store ``/run/netlab``, mode 0700).

It is the lab's memory: the applied model (nodes, services, ports,
placement), its allocations (addresses, marks, VNIs, pool cursors), the
desired and actual tasks, the scenario it came from, the namespaces the lab
owns (written *before* any is created, so ``down`` can clean up after an
``up`` killed halfway) and the workload supervisor's pid. ``status``,
``trace``, ``graph``, ``exec`` and ``curl`` work from it alone. A lab whose tasks run as
containers (``up --tasks containers``) also records the Docker URL and each task's
container id, so ``scale`` and ``down`` remove the containers it made, by id, and its change log
(see :mod:`netlab.changelog`) says when each change started and converged. The document
carries a ``version``; a file of another version is reported as corrupt
(``netlab down LAB`` still removes its lab). The store is passed in, never
global.

The store is written and read as if someone hostile could name the lab or
plant files:

- every file name is built from a lab name that :func:`netlab.plan.names.is_lab`
  accepts (a DNS label: no ``/``, ``.``, ``*``), and opened relative to a
  descriptor of the store directory;
- the directory is created 0700 and must stay a real directory (not a
  symlink) owned by the caller with no group or other access, else
  :class:`UnsafeStore`;
- a state file is written to a randomly named temporary file opened
  ``O_CREAT|O_EXCL|O_NOFOLLOW`` with mode 0600, then renamed over the old one;
- a state file is read with ``O_NOFOLLOW``, must be a regular file of at most
  :data:`MAX_BYTES`, and every field is checked (types, unknown keys, the lab's
  own name, namespaces under ``nl-<lab>.``, the model and allocations by
  :mod:`netlab.codec`). One that fails is moved aside to
  ``<lab>.json.corrupt-<UTC time>`` (never deleted) and reported as
  :class:`CorruptState`.
"""

from __future__ import annotations

import errno
import ipaddress
import json
import os
import stat
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from netlab import changelog, codec, safefile
from netlab.errors import BadInput
from netlab.ipam import Allocations
from netlab.kernel.xtables import BACKENDS
from netlab.model import Lab, TaskRecord
from netlab.plan import names

DEFAULT_ROOT = Path(os.environ.get("NETLAB_STATE_DIR", "/run/netlab"))
MAX_BYTES = 16 * 1024 * 1024   # a 10,000-task lab's state is about 1 MB
_SCENARIO_MAX = 4096           # PATH_MAX
_SUFFIX = ".json"
_TMP_SUFFIX = ".tmp"
VERSION = 2    # 1 (no "version" key): before the lab had a memory


class UnsafeStore(BadInput):
    """The state directory is a symlink, not a directory, someone else's or open to others."""


class CorruptState(BadInput):
    """A state file failed its checks; it was moved aside (``moved_to``) when possible."""

    def __init__(self, message: str, lab: str, moved_to: str | None) -> None:
        super().__init__(message)
        self.lab = lab
        self.moved_to = moved_to


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
    complete: bool = False
    lan: dict[str, str] = field(default_factory=dict)      # node -> LAN IP
    client_ip: str | None = None
    iptables: str = "legacy"   # the backend the rules are in (labs before nft support: legacy)
    desired_tasks: tuple[TaskRecord, ...] = ()
    actual_tasks: tuple[TaskRecord, ...] = ()
    changes: tuple[changelog.Change, ...] = ()   # the change log (files before it: empty)
    tasks: str = "namespaces"  # how tasks run: "namespaces" (netlab's app) or "containers"
    docker: str | None = None  # the Docker URL of a lab whose tasks are containers
    containers: dict[str, str] = field(default_factory=dict)   # task netns -> container id


def to_json(state: LabState) -> dict[str, Any]:
    """``state`` as the JSON document of its file."""
    return {
        "version": VERSION, "lab": state.lab, "scenario": state.scenario,
        "netns": list(state.netns), "targets": dict(state.targets),
        "supervisor_pid": state.supervisor_pid, "complete": state.complete,
        "lan": dict(state.lan), "client_ip": state.client_ip, "iptables": state.iptables,
        "model": codec.lab_to_json(state.model),
        "allocations": codec.allocations_to_json(state.allocations),
        "desired_tasks": codec.tasks_to_json(state.desired_tasks),
        "actual_tasks": codec.tasks_to_json(state.actual_tasks),
        "changes": changelog.to_json(state.changes),
        "tasks": state.tasks, "docker": state.docker, "containers": dict(state.containers),
    }


def check_lab(lab: object, what: str = "LAB") -> str:
    """``lab`` if it is a valid lab name; raises BadInput naming ``what`` otherwise.

    Checked before a lab name is joined to any path.
    """
    if names.is_lab(lab):
        return lab  # type: ignore[return-value]  # is_lab checked the type
    raise BadInput(f"{what}: {lab!r} is not a lab name (hint: a lab name is a DNS label of at "
                   f"most {names.LAB_MAX} characters: lowercase letters, digits and '-', "
                   f"starting and ending with a letter or digit)")


@dataclass(frozen=True)
class StateStore:
    """Reads and writes lab state files under ``root``."""

    root: Path = DEFAULT_ROOT

    def path(self, lab: str) -> Path:
        """Where ``lab``'s state file is; raises BadInput for an invalid lab name."""
        return self.root / (check_lab(lab) + _SUFFIX)

    def log_path(self, lab: str) -> Path:
        """The workload supervisor's log of ``lab``; raises BadInput for an invalid lab name."""
        return self.root / f"{check_lab(lab)}.log"

    # -- writing

    def save(self, state: LabState) -> None:
        """Write ``state`` atomically (a private temporary file renamed over the old one).

        Raises UnsafeStore when the directory is unsafe, BadInput for an
        invalid lab name, NetlabError when no temporary file can be created,
        OSError when the disk refuses.
        """
        name = check_lab(state.lab) + _SUFFIX
        data = json.dumps(to_json(state), indent=2).encode()
        dfd = self._open_dir(create=True)
        try:
            tmp, fd = safefile.create_temp(dfd, name, _TMP_SUFFIX, "state file")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
            except BaseException:
                safefile.unlink_quietly(tmp, dfd)
                raise
        finally:
            os.close(dfd)

    def remove(self, lab: str) -> bool:
        """Delete ``lab``'s state file (only that name); True when there was one.

        Anything else at that name (a directory) is moved aside instead.
        """
        name = check_lab(lab) + _SUFFIX
        dfd = self._open_dir(create=False)
        if dfd is None:
            return False
        try:
            try:
                os.unlink(name, dir_fd=dfd)
                return True
            except FileNotFoundError:
                return False
            except (IsADirectoryError, PermissionError):
                return self._quarantine(dfd, lab) is not None
        finally:
            os.close(dfd)

    def remove_files(self, lab: str, file_names: list[str]) -> int:
        """Delete the files of ``lab`` named exactly in ``file_names`` (direct
        children of the store starting with ``<lab>.``, never the state file);
        returns how many there were. Symlinks are removed, never followed;
        directories are left alone. Raises BadInput for a name outside that set.
        """
        prefix = check_lab(lab) + "."
        for name in file_names:
            if (not name.startswith(prefix) or "/" in name or "\0" in name
                    or name == prefix + _SUFFIX[1:]):
                raise BadInput(f"refusing to remove {name!r}: not a file of lab {lab}")
        dfd = self._open_dir(create=False)
        if dfd is None:
            return 0
        removed = 0
        try:
            for name in file_names:
                removed += safefile.unlink_quietly(name, dfd)
            for name in os.listdir(dfd):   # temporaries a killed save left behind
                if _is_temp_of(lab, name):
                    removed += safefile.unlink_quietly(name, dfd)
        finally:
            os.close(dfd)
        return removed

    def has_files(self, lab: str, file_names: list[str]) -> bool:
        """True when any of ``file_names`` (as for :meth:`remove_files`) exists."""
        dfd = self._open_dir(create=False)
        if dfd is None:
            return False
        try:
            return any(safefile.lexists(name, dfd) for name in file_names if "/" not in name)
        finally:
            os.close(dfd)

    # -- reading

    def load(self, lab: str) -> LabState | None:
        """The state of ``lab``, or None when it has no state file.

        Raises BadInput for an invalid lab name, UnsafeStore for an unsafe
        directory, BadInput when the file cannot be read (permissions), and
        CorruptState, after moving the file aside, when it fails a check.
        """
        check_lab(lab)
        dfd = self._open_dir(create=False)
        if dfd is None:
            return None
        try:
            try:
                raw = safefile.read_regular(dfd, lab + _SUFFIX, MAX_BYTES)
            except FileNotFoundError:
                return None
            except safefile.NotRegular as bad:
                raise self._corrupt(dfd, lab, str(bad)) from None
            except OSError as exc:
                raise BadInput(f"cannot read {self.path(lab)}: {exc.strerror} "
                               "(hint: run as the user who brought the lab up, e.g. sudo)") from None
            try:
                return _parse(lab, raw)
            except _Bad as bad:
                raise self._corrupt(dfd, lab, str(bad)) from None
        finally:
            os.close(dfd)

    def labs(self) -> list[str]:
        """The labs with a state file here, by name (other files are not labs)."""
        dfd = self._open_dir(create=False)
        if dfd is None:
            return []
        try:
            entries = os.listdir(dfd)
        finally:
            os.close(dfd)
        return sorted(n[:-len(_SUFFIX)] for n in entries
                      if n.endswith(_SUFFIX) and names.is_lab(n[:-len(_SUFFIX)]))

    # -- helpers

    def _open_dir(self, create: bool) -> int | None:
        """A descriptor of the store directory after checking it is safe.

        Creates it (0700) when ``create``; otherwise returns None when it is
        missing. Raises UnsafeStore.
        """
        root = str(self.root)
        hint = "(hint: remove it, or set NETLAB_STATE_DIR to a private directory)"
        not_yours = ("(hint: run netlab as the user who owns it, e.g. with sudo, or set "
                     "NETLAB_STATE_DIR to a private directory)")
        if create:
            try:
                os.makedirs(os.path.dirname(root) or ".", exist_ok=True)
                os.mkdir(root, 0o700)
            except FileExistsError:
                pass
            except OSError as exc:
                raise UnsafeStore(f"cannot create the state directory {root}: {exc.strerror} "
                                  f"{hint}") from None
        try:
            dfd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            if create:
                raise UnsafeStore(f"the state directory {root} vanished {hint}") from None
            return None
        except OSError as exc:
            if os.path.islink(root):   # O_DIRECTORY makes Linux say ENOTDIR for a symlink
                what = "is a symbolic link"
            elif exc.errno == errno.EACCES:
                raise UnsafeStore(f"the state directory {root} cannot be read: permission denied "
                                  f"{not_yours}") from None
            else:
                what = {errno.ENOTDIR: "is not a directory"}.get(
                    exc.errno, f"cannot be opened: {exc.strerror}")
            raise UnsafeStore(f"the state directory {root} {what}; refusing to use it {hint}") from None
        st = os.fstat(dfd)
        problem = None
        if st.st_uid != os.geteuid():
            problem = (f"is owned by uid {st.st_uid}, not by you (uid {os.geteuid()}); "
                       f"refusing to use it {not_yours}")
        elif st.st_mode & 0o077:
            problem = (f"is open to other users (mode {stat.S_IMODE(st.st_mode):04o}, not 0700); "
                       f"refusing to use it (hint: chmod 700 {root}, or set NETLAB_STATE_DIR "
                       "to a private directory)")
        if problem:
            os.close(dfd)
            raise UnsafeStore(f"the state directory {root} {problem}")
        return dfd

    def _quarantine(self, dfd: int, lab: str) -> str | None:
        """Rename ``<lab>.json`` aside to ``<lab>.json.corrupt-<UTC time>``; the new name or None."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        for n in range(100):
            aside = f"{lab}{_SUFFIX}.corrupt-{stamp}" + (f"-{n}" if n else "")
            if safefile.lexists(aside, dfd):
                continue
            try:
                os.rename(lab + _SUFFIX, aside, src_dir_fd=dfd, dst_dir_fd=dfd)
            except OSError:
                return None
            return aside
        return None

    def _corrupt(self, dfd: int, lab: str, reason: str) -> CorruptState:
        aside = self._quarantine(dfd, lab)
        where = (f"moved aside to {self.root / aside}" if aside
                 else "could not be moved aside")
        return CorruptState(f"the state file {self.path(lab)} is corrupt ({reason}); {where} "
                            f"(hint: netlab down {lab} removes what is left of the lab)",
                            lab, aside)


class _Bad(Exception):
    """Why a state file fails its checks (one phrase)."""




def _parse(lab: str, raw: bytes) -> LabState:
    """The LabState in ``raw``, every field checked; raises _Bad naming the first problem."""
    try:
        doc = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise _Bad("it is not JSON") from None
    if not isinstance(doc, dict):
        raise _Bad(f"it holds a JSON {_json_type(doc)}, not an object")
    known = ["version"] + [f.name for f in fields(LabState)]
    for key in doc:
        if key not in known:
            raise _Bad(f"unknown key {key[:40]!r}")
    version = doc.get("version")
    if version != VERSION or type(version) is not int:
        old = "no 'version'" if version is None else f"version {str(version)[:20]!r}"
        raise _Bad(f"it is from another netlab ({old}; this one reads version {VERSION}): "
                   "its lab cannot be read back, bring it down and up again")
    for key in ("lab", "scenario"):
        if key not in doc:
            raise _Bad(f"{key!r} is missing")
    if doc["lab"] != lab:
        raise _Bad(f"'lab' is {str(doc['lab'])[:40]!r}, not {lab!r} as its file name says")
    scenario = doc["scenario"]
    if not isinstance(scenario, str) or not scenario or "\0" in scenario \
            or len(scenario) > _SCENARIO_MAX:
        raise _Bad("'scenario' must be the path of a scenario file")
    netns = _list_of(doc, "netns", lambda v: names.owned_by(lab, v), f"a namespace under nl-{lab}.")
    targets = _map_of(doc, "targets", lambda v: v in netns, "a namespace listed in 'netns'")
    for target in ("client", "lan"):
        if targets and target not in targets:
            raise _Bad(f"'targets' has no {target!r}")
    pid = doc.get("supervisor_pid")
    if pid is not None and (type(pid) is not int or pid <= 0):
        raise _Bad("'supervisor_pid' must be a positive integer or null")
    complete = doc.get("complete", False)
    if type(complete) is not bool:
        raise _Bad("'complete' must be true or false")
    lan = _map_of(doc, "lan", _is_ipv4, "an IPv4 address")
    client_ip = doc.get("client_ip")
    if client_ip is not None and not _is_ipv4(client_ip):
        raise _Bad("'client_ip' must be an IPv4 address or null")
    iptables = doc.get("iptables", "legacy")
    if iptables not in BACKENDS:
        raise _Bad(f"'iptables' must be one of {', '.join(BACKENDS)}")
    tasks = doc.get("tasks", "namespaces")
    if tasks not in ("namespaces", "containers"):
        raise _Bad("'tasks' must be namespaces or containers")
    docker = doc.get("docker")
    if docker is not None and (not isinstance(docker, str) or not docker or "\0" in docker
                               or len(docker) > _SCENARIO_MAX):
        raise _Bad("'docker' must be a Docker URL or null")
    containers = _map_of(doc, "containers", _is_container_id, "a container id")
    for name in containers:
        if not names.owned_by(lab, name):
            raise _Bad(f"containers has a key {name[:60]!r}, not a namespace under nl-{lab}.")
    for key in ("model", "allocations", "desired_tasks", "actual_tasks"):
        if key not in doc:
            raise _Bad(f"{key!r} is missing")
    try:
        model = codec.lab_from_json(doc["model"])
        if model.name != lab:
            raise codec.Invalid(f"model.name is {model.name!r}, not {lab!r}")
        allocations = codec.allocations_from_json(doc["allocations"], model)
        desired = codec.tasks_from_json(doc["desired_tasks"], "desired_tasks", model)
        actual = codec.tasks_from_json(doc["actual_tasks"], "actual_tasks")
        changes = changelog.from_json(doc.get("changes", []))
    except (codec.Invalid, changelog.Invalid) as bad:
        raise _Bad(str(bad)) from None
    return LabState(lab=lab, scenario=scenario, model=model, allocations=allocations,
                    netns=netns, targets=targets, supervisor_pid=pid, complete=complete,
                    lan=lan, client_ip=client_ip, iptables=iptables,
                    desired_tasks=desired, actual_tasks=actual, changes=changes,
                    tasks=tasks, docker=docker, containers=containers)


def _list_of(doc: dict[str, Any], key: str, ok, what: str) -> list[str]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise _Bad(f"{key!r} must be a list")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not ok(item):
            raise _Bad(f"{key}[{i}] is {str(item)[:60]!r}, not {what}")
    return list(value)


def _map_of(doc: dict[str, Any], key: str, ok, what: str) -> dict[str, str]:
    value = doc.get(key, {})
    if not isinstance(value, dict):
        raise _Bad(f"{key!r} must be an object")
    for k, v in value.items():
        if not k or len(k) > names.NETNS_MAX or "\0" in k:
            raise _Bad(f"{key} has a bad key {k[:40]!r}")
        if not isinstance(v, str) or not ok(v):
            raise _Bad(f"{key}[{k[:40]!r}] is {str(v)[:60]!r}, not {what}")
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


def _is_temp_of(lab: str, name: str) -> bool:
    """True for a temporary file :meth:`StateStore.save` made for ``lab``."""
    head = f".{lab}{_SUFFIX}."
    token = name[len(head):-len(_TMP_SUFFIX)]
    return (name.startswith(head) and name.endswith(_TMP_SUFFIX) and len(token) == 16
            and all(c in "0123456789abcdef" for c in token))
