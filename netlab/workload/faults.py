"""What ``netlab task LAB TASK kill|hang|unhealthy|healthy`` did to a task's app: the
faults file, ``<endpoints file>.faults`` (pure: read and written here, obeyed by
:mod:`netlab.workload.app`, watched by the lab's manager).

One JSON object, task name -> fault. A fault names the task's address, so it
binds the task that had it and not a replacement in the same slot (a new
task has a new address, as on a Swarm):

* ``exited``: the app exited with ``exit_code`` at ``at`` (epoch s): its sockets
  are closed (a connection to it is refused), as a container whose process
  died. The manager's agent reads it as the container runtime's exit event.
* ``hung``: the app accepts nothing more (connections wait, unanswered); only a
  health check can notice, as with a real hung process.
* ``unhealthy``: the app answers, but ``503`` on its health check's ``path``.

``healthy`` removes a task's fault (a hung or unhealthy app answers again;
an exited one is gone for good and is the manager's to replace).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

FaultMode = Literal["exited", "hung", "unhealthy"]
MODES: tuple[str, ...] = ("exited", "hung", "unhealthy")


@dataclass(frozen=True)
class Fault:
    """One task's fault (see the module's docstring)."""

    mode: FaultMode
    address: str                  # the task's address when it was made: binds that task only
    at: float                     # epoch seconds
    exit_code: int | None = None  # exited
    path: str | None = None       # unhealthy: the health check's path

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode, "address": self.address, "at": self.at}
        if self.exit_code is not None:
            out["exit_code"] = self.exit_code
        if self.path is not None:
            out["path"] = self.path
        return out

    @classmethod
    def from_dict(cls, data: Any) -> Fault:
        """Raises ValueError naming what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a fault must be an object")
        unknown = set(data) - {"mode", "address", "at", "exit_code", "path"}
        if unknown:
            raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
        mode, address, at = data.get("mode"), data.get("address"), data.get("at")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not isinstance(address, str) or not address:
            raise ValueError("address must be a non-empty string")
        if not isinstance(at, (int, float)) or isinstance(at, bool):
            raise ValueError("at must be a number")
        code, path = data.get("exit_code"), data.get("path")
        if code is not None and (type(code) is not int or not 0 <= code <= 255):
            raise ValueError("exit_code must be an integer 0-255")
        if path is not None and (not isinstance(path, str) or not path.startswith("/")):
            raise ValueError("path must start with /")
        return cls(mode, address, float(at), code, path)


def faults_path_for(endpoints_path: Path | str) -> Path:
    """Where a lab's faults are: ``<endpoints file>.faults``."""
    return Path(endpoints_path).with_name(Path(endpoints_path).name + ".faults")


def parse(text: str) -> dict[str, Fault]:
    """The faults in ``text``; raises ValueError naming the bad task's entry."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("the faults file must hold one object")
    out = {}
    for task, data in doc.items():
        try:
            out[task] = Fault.from_dict(data)
        except ValueError as exc:
            raise ValueError(f"{task}: {exc}") from None
    return out


def read(path: Path) -> dict[str, Fault]:
    """The faults in ``path`` ({} when there is no file); raises ValueError for a bad one."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return {}
    return parse(text)


def write(path: Path, faults: dict[str, Fault]) -> None:
    """Write ``faults`` to ``path`` at once (a temporary file renamed over it)."""
    path = Path(path)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({t: f.to_dict() for t, f in sorted(faults.items())}) + "\n")
    os.replace(tmp, path)


def current(faults: dict[str, Fault], addresses: dict[str, str]) -> dict[str, Fault]:
    """The faults of the tasks that still have them: ``addresses`` maps each task that
    runs now to its address; a fault of an ended task (or of an earlier task of
    the same slot) is dropped."""
    return {t: f for t, f in faults.items() if addresses.get(t) == f.address}
