"""Run code in a real process of its own without paying a Python start-up.

Under plain emulation in ``netlab vm`` a fresh ``python`` takes seconds to start
(its files come over 9p). Where a test needs a process of its own (``netlab exec``
replaces its process; a client snippet must run inside a namespace), a fork of
the test process does the same with everything already imported: its stdout and
stderr are captured, its exit status returned as a CompletedProcess.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable

CLONE_NEWNET = 0x40000000


class _Pipe:
    """A pipe's read end whose ``readline`` reads byte by byte, so nothing is held
    in a buffer that :meth:`Child.communicate` would not see."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def readline(self) -> str:
        line = bytearray()
        while not line.endswith(b"\n") and (byte := os.read(self.fd, 1)):
            line += byte
        return line.decode(errors="replace")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Child:
    """A forked child still running: the subset of :class:`subprocess.Popen` the tests
    use (``pid``, ``stderr`` as a text stream, ``poll``, ``send_signal``, ``kill``,
    ``wait``, ``communicate``, ``returncode``)."""

    def __init__(self, pid: int, out_fd: int, err_fd: int, what: str) -> None:
        self.pid, self.what = pid, what
        self.stdout, self.stderr = _Pipe(out_fd), _Pipe(err_fd)
        self.returncode: int | None = None

    def _reap(self, status: int) -> int:
        self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._reap(status)
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.what, timeout or 0)
            time.sleep(0.05)
        return self.returncode  # type: ignore[return-value]

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Read stdout and stderr to their end and wait; on timeout the child is killed
        and TimeoutExpired raised."""
        out, err = _drain(self.stdout.fileno(), self.stderr.fileno(),
                          None if timeout is None else time.monotonic() + timeout)
        if out is None:
            self.kill()
            self.wait()
            raise subprocess.TimeoutExpired(self.what, timeout or 0)
        self.stdout.close()
        self.stderr.close()
        self.wait()
        return out, err


def _drain(out_fd: int, err_fd: int, deadline: float | None) -> tuple[str | None, str]:
    """Read both descriptors to their end (None for stdout when ``deadline`` passed)."""
    chunks: dict[int, list[bytes]] = {out_fd: [], err_fd: []}
    with selectors.DefaultSelector() as sel:
        for fd in chunks:
            sel.register(fd, selectors.EVENT_READ)
        while sel.get_map():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = sel.select(left)
            if not ready:
                return None, ""
            for key, _ in ready:
                data = os.read(key.fd, 65536)
                if data:
                    chunks[key.fd].append(data)
                else:
                    sel.unregister(key.fd)
    return (b"".join(chunks[out_fd]).decode(errors="replace"),
            b"".join(chunks[err_fd]).decode(errors="replace"))


def start(body: Callable[[], int], what: str) -> Child:
    """``body()`` in a forked child, running on: see :func:`run` for what it sees."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:                                      # the child: never returns
        code = 70
        try:
            os.close(out_r)
            os.close(err_r)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 (the child's own)
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            try:
                code = body()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else int(done.code is not None)
            except BaseException:  # noqa: BLE001 (a forked child reports and exits)
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    return Child(pid, out_r, err_r, what)


def run(body: Callable[[], int], timeout: float, what: str) -> subprocess.CompletedProcess:
    """``body()`` in a forked child whose stdin is /dev/null and whose stdout and
    stderr are captured; its return value is the exit status (an exception:
    its traceback on stderr, status 70). Raises AssertionError when the child
    has not ended after ``timeout`` s (it is then killed)."""
    child = start(body, what)
    try:
        out, err = child.communicate(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{what} did not end within {timeout:g} s") from None
    return subprocess.CompletedProcess(what, child.returncode, out, err)


def _cli(args: list[str]) -> Callable[[], int]:
    def body() -> int:
        from netlab.cli import main as entry  # what ``python -m netlab`` runs
        sys.argv = ["netlab", *args]
        entry.main()
        return 0

    return body


def netlab(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``netlab ARGS`` (the real CLI) in a forked child, to its end."""
    return run(_cli(args), timeout, f"netlab {' '.join(args)}")


def netlab_started(args: list[str]) -> Child:
    """``netlab ARGS`` in a forked child, running on (like ``Popen([python, -m,
    netlab, …])`` with stdout and stderr piped, without the Python start-up)."""
    return start(_cli(args), f"netlab {' '.join(args)}")


def python_in(netns: str, code: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """``ip netns exec NETNS python -c CODE ARGV…`` as a forked child: it enters the
    namespace with libc's setns(2) (independent of netlab) and runs ``code`` with
    ``sys.argv`` ``["-c", *argv]`` in fresh globals."""
    def body() -> int:
        fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        os.close(fd)
        sys.argv = ["-c", *argv]
        exec(compile(code, "<client>", "exec"), {"__name__": "__main__"})
        return 0

    return run(body, timeout, f"python in {netns}")
