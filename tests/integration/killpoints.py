"""Run a netlab command in a forked child and SIGKILL it at a chosen point of its work.

The child is a fork of the test process: the real CLI (``netlab.cli.main``) runs
there in-process, with no Python start-up to pay (seconds under emulation), on
the real kernel. It is killed with SIGKILL by itself, from an audit hook
(:func:`sys.addaudithook`), when it reaches a :class:`Point`: the n-th side
effect (a socket, a process, a file opened or changed outside Python's own
library) after its k-th progress line on stderr (``netlab up: …``, ``… namespaces:
10``, ``… IPVS services``, …). The same command run to the end gives each
phase's count of side effects (:func:`profile`), from which points spread over
every phase are chosen (:func:`spread`). Points before the last phase are
deterministic; in a phase that polls (waiting for the task apps) the count may
vary a little from run to run, and the kill still lands inside that phase.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import dataclass

#: Audit events that are a side effect of the command, not of Python importing itself.
_EFFECTS = ("socket.", "subprocess.Popen", "os.mkdir", "os.remove", "os.rename",
            "os.rmdir", "os.kill", "os.chmod", "os.truncate", "os.symlink", "os.link")
#: Namespace files: opening one (to enter it) is a step of the work.
_NAMESPACES = ("/run/netns/", "/var/run/netns/")
#: Files opened outside these are side effects too (state files, /proc/sys, /run/netns, …).
_LIBRARY = tuple({sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
                  os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))})


@dataclass(frozen=True)
class Point:
    """Kill after ``effect`` side effects following the ``line``-th stderr line (0: none
    yet), or, with ``after``, following the first stderr line that contains it."""

    line: int
    effect: int
    after: str | None = None


@dataclass(frozen=True)
class Run:
    """What the child printed on stderr, and how it ended."""

    lines: list[str]
    #: Side effects after each stderr line (index 0: before the first line), up to the end.
    effects: list[int]
    killed: bool
    exit_code: int | None

    @property
    def phase(self) -> str:
        """The last progress line before the end (the phase it was in)."""
        return self.lines[-1] if self.lines else "(before any output)"


def _is_effect(event: str, args: tuple) -> bool:
    if event.startswith(_EFFECTS):
        return True
    if event == "open" and args and isinstance(args[0], (str, bytes)):
        path = os.fsdecode(args[0])
        if not path.startswith("/") or path.startswith(_LIBRARY):
            return False
        mode, flags = (args + (None, 0))[1:3]
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        # Entering a namespace opens its file; reading /proc scans (how many
        # processes run) would make the count vary, so plain reads elsewhere do not count.
        return bool(writes) or path.startswith(_NAMESPACES)
    return False


def run(args: list[str], kill_at: Point | None = None, timeout: float = 900) -> Run:
    """Run ``netlab ARGS`` in a forked child; kill it with SIGKILL at ``kill_at``
    (None: let it finish). Returns its stderr lines, side effects per phase, and
    whether it was killed. Raises AssertionError when the child neither finished
    nor was killed within ``timeout`` seconds (it is then killed)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:                                     # the child: never returns
        code = 70
        try:
            os.close(read_end)
            code = _child(args, kill_at, os.fdopen(write_end, "w", buffering=1))
        finally:
            os._exit(code)
    os.close(write_end)
    import select
    import time
    deadline = time.monotonic() + timeout
    chunks: list[bytes] = []
    with os.fdopen(read_end, "rb") as pipe:
        while True:
            ready, _, _ = select.select([pipe], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError(f"netlab {' '.join(args)} still ran after {timeout:g} s")
            chunk = os.read(pipe.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    lines, effects = [], [0]
    for record in b"".join(chunks).decode(errors="replace").splitlines():
        kind, _, rest = record.partition(" ")
        if kind == "line":
            count, _, text = rest.partition(" ")
            effects[-1] = int(count)
            effects.append(0)
            lines.append(text)
        elif kind == "end":
            effects[-1] = int(rest)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    return Run(lines, effects, killed, os.WEXITSTATUS(status) if os.WIFEXITED(status) else None)


def _child(args: list[str], kill_at: Point | None, out) -> int:
    """The forked child's body: count side effects per stderr line, kill itself at ``kill_at``."""
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (until this process exits)
    seen = {"line": 0, "effects": 0, "dying": False,
            "target": -1 if kill_at is None or kill_at.after is not None else kill_at.line}

    class Stderr:
        """Each line written to stderr starts a new phase; it is passed to the parent."""

        def write(self, text: str | bytes) -> int:
            if isinstance(text, bytes):
                text = text.decode(errors="replace")
            for line in text.splitlines():
                out.write(f"line {seen['effects']} {line}\n")
                seen["line"] += 1
                seen["effects"] = 0
                if kill_at is not None and kill_at.after is not None and \
                        kill_at.after in line and seen["target"] < 0:
                    seen["target"] = seen["line"]
            return len(text)

        def flush(self) -> None:
            out.flush()

        def isatty(self) -> bool:
            return False

    def hook(event: str, hook_args: tuple) -> None:
        if seen["dying"] or not _is_effect(event, hook_args):
            return
        seen["effects"] += 1
        if kill_at is not None and (seen["line"], seen["effects"]) == (seen["target"],
                                                                       kill_at.effect):
            seen["dying"] = True
            out.flush()
            os.kill(os.getpid(), signal.SIGKILL)

    sys.stderr = Stderr()  # type: ignore[assignment]
    from netlab.cli import main as entry  # what ``python -m netlab`` runs
    sys.argv = ["netlab", *args]
    sys.addaudithook(hook)
    try:
        entry.main()
        code = 0
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    seen["dying"] = True
    out.write(f"end {seen['effects']}\n")
    out.flush()
    return code


def profile(args: list[str]) -> Run:
    """Run ``netlab ARGS`` to the end, counting its side effects per phase."""
    return run(args)


def spread(done: Run, count: int, first_line: int = 1) -> list[Point]:
    """``count`` points spread over the phases of ``done`` from its ``first_line``-th
    stderr line on: round robin over the phases that have side effects, evenly
    spaced inside each phase."""
    phases = [i for i in range(first_line, len(done.effects)) if done.effects[i] > 0]
    if not phases:
        raise AssertionError(f"no side effects to kill at: {done}")
    per = dict.fromkeys(phases, 0)
    for k in range(count):
        per[phases[k % len(phases)]] += 1
    points = []
    for line, n in per.items():
        for j in range(1, n + 1):
            points.append(Point(line, max(1, done.effects[line] * j // (n + 1))))
    return points
