"""Start, update and stop a lab's workload supervisor (one process per lab).

The supervisor is ``python -m netlab.workload.app --endpoints FILE`` in its own
session, detached from the caller, logging to a file. ``start`` returns its
pid once every socket listens; ``netlab up`` records that pid in the state
file, ``netlab scale`` calls :func:`update` and ``netlab down`` calls
:func:`stop`. A pid is only signalled after ``/proc/<pid>/cmdline`` shows it
is really a supervisor, so a recycled pid is never killed.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import select
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import netlab
from netlab.errors import NetlabError
from netlab.kernel import procs
from netlab.kernel.procs import ProcessInfo
from netlab.workload.app import status_path_for
from netlab.workload.endpoints import AppEndpoint, DnsEndpoint, dump_endpoints

APP_MODULE = "netlab.workload.app"
_POLL = 0.05
_TAIL_BYTES = 4096


def endpoints_path_for(log_path: Path) -> Path:
    """The default endpoints file next to the log: ``x.log`` -> ``x.endpoints.json``."""
    return Path(log_path).with_suffix(".endpoints.json")


def start(
    endpoints: list[AppEndpoint], log_path: Path, ready_timeout: float = 10,
    *, endpoints_path: Path | None = None, dns: list[DnsEndpoint] | None = None,
) -> int:
    """Launch the lab's supervisor and return its pid once every socket listens.

    Writes the endpoints (and the tasks' ``dns`` servers) to ``endpoints_path``
    (default: :func:`endpoints_path_for`), starts the app detached (new session,
    stdout/stderr appended to ``log_path``) and waits for its status file. Raises
    NetlabError, with the app's errors and the tail of its log, when it exits
    early, reports an endpoint it could not open (it then exits by itself), or is
    not ready within ``ready_timeout`` s (it is then killed).
    """
    log_path = Path(log_path).absolute()
    log_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    ep_path = Path(endpoints_path or endpoints_path_for(log_path)).absolute()
    try:
        dump_endpoints(ep_path, endpoints, dns or ())
    except (OSError, ValueError) as exc:
        raise NetlabError(f"cannot write workload endpoints {ep_path}: {exc}") from None
    status_path = status_path_for(ep_path)
    status_path.unlink(missing_ok=True)

    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
    log_start = os.fstat(log_fd).st_size
    env = dict(os.environ)
    # The child runs from /, so make sure it imports this very netlab.
    src = str(Path(netlab.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", APP_MODULE, "--endpoints", str(ep_path)],
            stdin=subprocess.DEVNULL, stdout=log_fd, stderr=log_fd,
            start_new_session=True, close_fds=True, cwd="/", env=env,
        )
    except OSError as exc:
        raise NetlabError(f"cannot start the workload supervisor: {exc}") from None
    finally:
        os.close(log_fd)

    deadline = time.monotonic() + ready_timeout
    while True:
        status = _read_status(status_path, proc.pid)
        if status is not None:
            if not status["errors"]:
                # Let go of the child: dropping the Popen hands it to subprocess's
                # own reaping list (no zombie in a long-lived caller). Its
                # "still running" ResourceWarning is expected, so silence it.
                pid = proc.pid
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ResourceWarning)
                    del proc  # CPython runs Popen.__del__ here, inside the filter
                return pid
            _kill_child(proc)
            raise NetlabError(
                "workload supervisor could not open every endpoint: "
                + "; ".join(status["errors"]) + _tail(log_path, log_start)
            )
        rc = proc.poll()
        if rc is not None:
            raise NetlabError(f"workload supervisor exited with status {rc} before it was ready"
                              + _tail(log_path, log_start))
        if time.monotonic() >= deadline:
            _kill_child(proc)
            raise NetlabError(f"workload supervisor was not ready after {ready_timeout:g} s"
                              + _tail(log_path, log_start))
        time.sleep(_POLL)


def update(pid: int, endpoints: list[AppEndpoint], timeout: float = 10,
           *, dns: list[DnsEndpoint] | None = None) -> None:
    """Give a running supervisor a new endpoint list and ``dns`` servers (SIGHUP) and wait
    until it applied them (new records are answered from then on).

    Sockets of removed endpoints close, added ones open; the others keep
    serving. Raises NetlabError when ``pid`` is not a running supervisor, when
    some endpoint could not be opened (the rest are served), or on timeout.
    """
    args = _cmdline(pid)
    if not _is_supervisor(args):
        raise NetlabError(f"no workload supervisor runs with pid {pid}")
    ep_path = Path(args[args.index("--endpoints") + 1])
    try:
        dump_endpoints(ep_path, endpoints, dns or ())
    except (OSError, ValueError) as exc:
        raise NetlabError(f"cannot write workload endpoints {ep_path}: {exc}") from None
    # The digest and generation tell our reload from an earlier one.
    digest = hashlib.sha256(ep_path.read_bytes()).hexdigest()
    status_path = status_path_for(ep_path)
    before = (_read_status(status_path, pid) or {}).get("generation", 0)
    try:
        pidfd = _pidfd_open(pid)
        try:
            if not is_running(pid):
                raise ProcessLookupError
            _send(pid, pidfd, signal.SIGHUP)
        finally:
            if pidfd is not None:
                os.close(pidfd)
    except ProcessLookupError:
        raise NetlabError(f"workload supervisor {pid} is gone") from None
    deadline = time.monotonic() + timeout
    pause = _POLL / 10      # a reload of a few tasks takes milliseconds: look often at first
    while True:
        status = _read_status(status_path, pid)
        if status is not None and status.get("digest") == digest and status.get("generation", 0) > before:
            if status["errors"]:
                raise NetlabError("workload supervisor could not open: " + "; ".join(status["errors"]))
            return
        if not is_running(pid):
            raise NetlabError(f"workload supervisor {pid} exited while reloading")
        if time.monotonic() >= deadline:
            raise NetlabError(f"workload supervisor {pid} did not reload within {timeout:g} s")
        time.sleep(pause)
        pause = min(pause * 2, _POLL)


def stop(pid: int, timeout: float = 5, *, identity: Identity | None = None) -> None:
    """SIGTERM the supervisor, wait up to ``timeout`` s, then SIGKILL it.

    Does nothing when ``pid`` is gone or is not a supervisor (a recycled pid);
    with ``identity``, nor when it is not that lab's supervisor (checked once
    the pidfd pins the process, see :func:`is_lab_supervisor`).
    Reaps it when it is the caller's child. Raises NetlabError only if it
    survives SIGKILL.
    """
    if pid <= 0:  # waitpid/kill would address a whole process group
        return
    try:
        pidfd = _pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        # Checked after the pidfd is open: the pidfd then pins this very process.
        if not (is_running(pid) if identity is None
                else is_lab_supervisor(procs.read(pid), identity)):
            _reap(pid)  # a supervisor that died by itself may be our zombie child
            return
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                _send(pid, pidfd, sig)
            except ProcessLookupError:
                break
            if _wait_exit(pid, pidfd, wait):
                break
        else:
            raise NetlabError(f"workload supervisor {pid} survived SIGKILL")
        _reap(pid)
    finally:
        if pidfd is not None:
            os.close(pidfd)


@dataclass(frozen=True)
class Identity:
    """What only one lab's supervisor has: the lab's endpoints file on its command
    line and, once recorded in the state, its start time (``/proc/<pid>/stat``
    field 22; None for a state file from before it was recorded)."""

    endpoints: str
    started: int | None = None


def is_lab_supervisor(info: ProcessInfo | None, identity: Identity) -> bool:
    """True when ``info`` is the supervisor ``identity`` names: alive, started as
    ``python -m netlab.workload.app --endpoints FILE`` with FILE the lab's own
    endpoints file, and started when the state says. The one check ``up``,
    ``scale``, ``node``, ``down`` and ``status`` make before trusting a recorded
    pid: another lab's supervisor, or any process that reused the pid, is not it."""
    if info is None or not info.alive:
        return False
    argv = list(info.argv)
    return (_is_supervisor(argv) and _endpoints_arg(argv) == identity.endpoints
            and (identity.started is None or info.start_time == identity.started))


def is_running(pid: int) -> bool:
    """True when ``pid`` is alive and is a workload supervisor (checked in /proc)."""
    return _is_supervisor(_cmdline(pid))


def find(endpoints_prefix: str) -> list[int]:
    """Pids of running supervisors whose endpoints file starts with ``endpoints_prefix``.

    For cleaning up after a lost state file: one lab's exact endpoints path,
    or a directory (ending in ``/``) for every supervisor started there.
    """
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        args = _cmdline(int(entry.name))
        if _is_supervisor(args) and _endpoints_arg(args).startswith(endpoints_prefix):
            pids.append(int(entry.name))
    return pids


# ---- helpers ------------------------------------------------------------------------

def _endpoints_arg(args: list[str]) -> str:
    """The value given to ``--endpoints`` in a supervisor's argv ("" if none)."""
    for flag, value in itertools.pairwise(args):
        if flag == "--endpoints":
            return value
    return ""


def _cmdline(pid: int) -> list[str]:
    """The argv of ``pid``; empty when it is gone or a zombie."""
    try:
        raw = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, ValueError):
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _is_supervisor(args: list[str]) -> bool:
    """True for the argv that :func:`start` launches: ``python -m netlab.workload.app --endpoints F``."""
    pairs = list(itertools.pairwise(args))
    return ("-m", APP_MODULE) in pairs and any(a == "--endpoints" for a, _ in pairs)


def _pidfd_open(pid: int) -> int | None:
    """A pidfd for ``pid``, None on kernels without pidfd (< 5.3); raises ProcessLookupError."""
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        raise
    except OSError:
        return None


def _send(pid: int, pidfd: int | None, sig: int) -> None:
    """Signal through the pidfd when there is one (immune to pid reuse)."""
    if pidfd is None:
        os.kill(pid, sig)
    else:
        signal.pidfd_send_signal(pidfd, sig)


def _wait_exit(pid: int, pidfd: int | None, timeout: float) -> bool:
    """Wait until ``pid`` has exited (zombie or reaped); True if it did in time."""
    deadline = time.monotonic() + timeout
    while True:
        if pidfd is not None:
            remaining = max(0.0, deadline - time.monotonic())
            if select.select([pidfd], [], [], min(remaining, 0.5))[0]:
                return True
        else:
            _reap(pid)
            if not _alive(pid):
                return True
            time.sleep(_POLL)
        if time.monotonic() >= deadline:
            return False


def _alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child, so no zombie is left."""
    if pid <= 0:
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _kill_child(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _read_status(path: Path, pid: int) -> dict[str, Any] | None:
    """The app's last status report, if it was written by ``pid``."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(status, dict) or status.get("pid") != pid:
        return None
    return status


def _tail(log_path: Path, offset: int) -> str:
    """The end of what this run wrote to the log, for an error message."""
    try:
        with open(log_path, "rb") as f:
            f.seek(max(offset, os.fstat(f.fileno()).st_size - _TAIL_BYTES))
            text = f.read().decode(errors="replace").strip()
    except OSError:
        return ""
    return f"\n--- {log_path} ---\n{text}" if text else ""
