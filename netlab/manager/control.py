"""Start, find and stop a lab's manager process (see :mod:`netlab.manager.process`).

The manager is ``python -m netlab.manager --state FILE``, FILE the lab's state
file (absolute): with its start time (``/proc/<pid>/stat`` field 22, recorded
in the state), that names one lab's manager for good, as for the task apps'
supervisor (:func:`netlab.workload.supervisor.is_lab_supervisor`).
"""

from __future__ import annotations

import itertools
import json
import os
import select
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import netlab
from netlab.errors import NetlabError
from netlab.kernel.procs import ProcessInfo
from netlab.manager.process import status_name
from netlab.state import StateStore

MODULE = "netlab.manager"


def argv_state(argv: tuple[str, ...] | list[str]) -> str | None:
    """The ``--state`` of a manager's argv, None when ``argv`` is not a manager's."""
    args = list(argv)
    if len(args) < 5 or args[1:3] != ["-m", MODULE]:
        return None
    for flag, value in itertools.pairwise(args):
        if flag == "--state":
            return value
    return None


def is_lab_manager(info: ProcessInfo | None, state_file: str, started: int | None) -> bool:
    """True when ``info`` is the manager of the lab whose state file is ``state_file``,
    started when the state says (``started`` None: not checked)."""
    return (info is not None and info.alive and argv_state(info.argv) == state_file
            and (started is None or info.start_time == started))


def find(state_path: str) -> list[int]:
    """Pids of running managers of the lab whose state file is ``state_path`` (by
    their argv in /proc): for ``down`` after a lost or stale state."""
    from netlab.kernel import procs
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = procs.read(int(entry.name))
            if info is not None and info.alive and argv_state(info.argv) == state_path:
                out.append(info.pid)
    return out


def state_file(store: StateStore, lab: str) -> str:
    return str(store.path(lab).absolute())


def start(store: StateStore, lab: str) -> int:
    """Start ``lab``'s manager and return its pid at once: ``up`` does not wait for
    it to load (a Python start-up and its imports, seconds under emulation); it
    writes ``<lab>.manager.json`` and the "started" event once it runs, and
    logs why to the lab's log if it cannot. Raises NetlabError when it cannot
    be started at all."""
    log_path = store.log_path(lab)
    (store.root / status_name(lab)).unlink(missing_ok=True)
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    env = dict(os.environ)
    src = str(Path(netlab.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen([sys.executable, "-m", MODULE, "--state", state_file(store, lab)],
                                stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                start_new_session=True, close_fds=True, cwd="/", env=env)
    except OSError as exc:
        raise NetlabError(f"cannot start the manager: {exc}") from None
    finally:
        os.close(fd)
    pid = proc.pid
    with warnings.catch_warnings():      # let go of the child (reaped by subprocess's list)
        warnings.simplefilter("ignore", ResourceWarning)
        del proc
    return pid


def stop(pid: int, timeout: float = 10) -> None:
    """SIGTERM the manager ``pid`` (the caller checked it is the lab's), wait up to
    ``timeout`` s for the change under way to end, then SIGKILL it. Raises
    NetlabError only when it survives SIGKILL."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                signal.pidfd_send_signal(pidfd, sig)
            except ProcessLookupError:
                break
            if select.select([pidfd], [], [], wait)[0]:
                break
        else:
            raise NetlabError(f"the manager {pid} survived SIGKILL")
        try:
            os.waitpid(pid, os.WNOHANG)    # our child when this process started it
        except ChildProcessError:
            pass
    finally:
        os.close(pidfd)


def view(store: StateStore, lab: str) -> dict | None:
    """The manager's last view of the lab (``<lab>.manager.json``), None when none."""
    raw = store.read_file(lab, status_name(lab))
    if raw is None:
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
