"""Run one program (virtme-ng, which starts qemu) in its own process group, and
leave nothing of it behind.

The program gets fresh pipes for stdout and stderr, and two threads copy them
to ours. qemu opens its output with ``O_TRUNC`` once per serial port; given a
regular file as stdout it would overwrite its own output, and given our pipe
it would set it non-blocking under us. With private pipes neither happens.

On a timeout, Ctrl-C, SIGTERM or SIGHUP the whole group gets SIGTERM, then
SIGKILL after a grace period, before the exception goes on up.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from collections.abc import Iterator, Mapping, Sequence

#: Seconds between SIGTERM and SIGKILL, and how long to wait for the group to go.
GRACE_SECONDS = 5.0
_POLL_SECONDS = 0.1


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived while the group ran (a BaseException, like KeyboardInterrupt)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by signal {signum}")
        self.signum = signum


class GroupTimeout(Exception):
    """The program ran past its time limit; its group has been killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"still running after {seconds:g} s")
        self.seconds = seconds


@dataclass(frozen=True)
class GroupResult:
    """How the program ended: its exit status (128+N when killed by signal N)."""

    returncode: int


def _stdin_for_child() -> int | None:
    """Pick the child's stdin: ours when it is a pipe or file, /dev/null for a terminal.

    A process in its own group that reads the terminal is stopped (SIGTTIN),
    and qemu would switch the terminal to raw mode; so a terminal is not
    handed over. A closed stdin becomes /dev/null too.
    """
    try:
        os.fstat(0)
    except OSError:
        return subprocess.DEVNULL
    return subprocess.DEVNULL if os.isatty(0) else None


def _relay(src: int, stream_name: str) -> None:
    """Copy bytes from fd ``src`` to sys.stdout/sys.stderr until EOF; never raises."""
    stream = getattr(sys, stream_name)
    target = getattr(stream, "buffer", None)
    broken = False
    try:
        while chunk := os.read(src, 65536):
            if broken:
                continue  # keep draining so the guest never blocks on a full pipe
            try:
                if target is not None:
                    target.write(chunk)
                    target.flush()
                else:
                    stream.write(chunk.decode(errors="replace"))
                    stream.flush()
            except (OSError, ValueError):
                broken = True
    except OSError:
        pass
    finally:
        os.close(src)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold back Ctrl-C, SIGTERM and SIGHUP while the block runs (a cleanup must finish).

    A signal that arrives meanwhile is raised when the block ends, unless an
    exception is already on its way up. Only the main thread can do this;
    elsewhere the block just runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def record(signum: int, _frame: object) -> None:
        caught.append(signum)

    held = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    saved = {signum: signal.signal(signum, record) for signum in held}
    try:
        yield
    finally:
        for signum, old in saved.items():
            signal.signal(signum, old)
    if caught:
        if caught[0] == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(caught[0])


@contextmanager
def _signals_raise_terminated() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` while the block runs (main thread only)."""

    def handler(signum: int, _frame: object) -> None:
        raise Terminated(signum)

    main = threading.current_thread() is threading.main_thread()
    held = (signal.SIGTERM, signal.SIGHUP) if main else ()
    saved = {signum: signal.signal(signum, handler) for signum in held}
    try:
        yield
    finally:
        for signum, old in saved.items():
            signal.signal(signum, old)


def _exited(pid: int) -> bool:
    """Say whether child ``pid`` has exited, without reaping it (so its pgid stays reserved)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def _wait_exited(pid: int, deadline: float | None) -> bool:
    """Wait, unreaped, until child ``pid`` exits or ``deadline`` (monotonic) passes."""
    while not _exited(pid):
        if deadline is not None and time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_SECONDS)
    return True


def _signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to the group; a group that is already gone is fine."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    """Say whether any process (zombies included) is still in group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop every process in ``proc``'s group and reap ``proc``; never raises.

    SIGTERM first (qemu exits cleanly on it), SIGKILL after
    :data:`GRACE_SECONDS`. The leader stays unreaped until the group has had
    its SIGKILL, so the group id cannot be reused by another process meanwhile.
    """
    pgid = proc.pid
    if not _exited(pgid):
        _signal_group(pgid, signal.SIGTERM)
        _wait_exited(pgid, time.monotonic() + GRACE_SECONDS)
    _signal_group(pgid, signal.SIGKILL)  # stragglers, e.g. an orphaned qemu
    proc.wait()
    deadline = time.monotonic() + GRACE_SECONDS
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(_POLL_SECONDS)


def run_group(
    argv: Sequence[str], env: Mapping[str, str], timeout: float | None
) -> GroupResult:
    """Run ``argv`` in a new process group, relaying its output, and wait for it.

    Whatever happens, nothing of the group is left running when this returns
    or raises. Raises GroupTimeout after ``timeout`` seconds, Terminated on
    SIGTERM/SIGHUP, KeyboardInterrupt on Ctrl-C, and OSError when ``argv``
    cannot be started.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    relays: list[threading.Thread] = []
    proc: subprocess.Popen[bytes] | None = None
    try:
        with _signals_raise_terminated():
            try:
                proc = subprocess.Popen(
                    list(argv),
                    stdin=_stdin_for_child(),
                    stdout=out_w,
                    stderr=err_w,
                    env=dict(env),
                    process_group=0,
                )
            finally:
                os.close(out_w)
                os.close(err_w)
            # From here on the relay threads own (and close) the read ends.
            for fd, name in ((out_r, "stdout"), (err_r, "stderr")):
                relays.append(threading.Thread(target=_relay, args=(fd, name), daemon=True))
            out_r = err_r = -1
            for thread in relays:
                thread.start()
            deadline = None if timeout is None else time.monotonic() + timeout
            if not _wait_exited(proc.pid, deadline):
                raise GroupTimeout(timeout or 0.0)
            _stop_group(proc)
    finally:
        with _signals_deferred():
            if proc is not None and proc.returncode is None:
                _stop_group(proc)
            for fd in (out_r, err_r):
                if fd >= 0:
                    os.close(fd)
            for thread in relays:
                thread.join(GRACE_SECONDS)
    code = proc.returncode
    return GroupResult(128 - code if code < 0 else code)
