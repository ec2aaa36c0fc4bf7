"""Read one process as the kernel shows it in ``/proc/<pid>``: its argv, state and
start time.

The start time (field 22 of ``/proc/<pid>/stat``, clock ticks after boot)
never changes for a process and differs for the next process given the same
pid, so a pid recorded with it names one process for good: ``down`` and
``status`` use both to tell a lab's supervisor from a process that reused its
pid (see :func:`netlab.workload.supervisor.is_lab_supervisor`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
START_TIME_FIELD = 22        # proc(5): starttime, the 22nd field of /proc/<pid>/stat


@dataclass(frozen=True)
class ProcessInfo:
    """A process as ``/proc`` shows it: ``argv`` from ``cmdline``, ``state`` (R, S, Z...)
    and ``start_time`` from ``stat``."""

    pid: int
    argv: tuple[str, ...]
    state: str
    start_time: int

    @property
    def alive(self) -> bool:
        """False for a zombie or a dead process (state Z or X)."""
        return self.state not in ("Z", "X", "x")


def parse_stat(text: str) -> tuple[str, int] | None:
    """(state, start time) from the text of ``/proc/<pid>/stat``, or None when it is
    not one. The command name (field 2) is in parentheses and may hold spaces and
    ``)``, so the fields are counted from the last ``)``."""
    _, paren, rest = text.rpartition(")")
    fields = rest.split()
    # rest starts at field 3 (state); field N is fields[N - 3].
    if not paren or len(fields) <= START_TIME_FIELD - 3:
        return None
    start = fields[START_TIME_FIELD - 3]
    if not (start.isascii() and start.isdigit()):
        return None
    return fields[0], int(start)


def read(pid: int, proc: Path = PROC) -> ProcessInfo | None:
    """The process ``pid`` now, or None when there is none (or it vanished or was
    replaced while being read, or ``pid`` is not a positive integer). Never raises."""
    if type(pid) is not int or pid <= 0:
        return None
    base = proc / str(pid)
    try:
        # stat before and after: the argv read between belongs to that very process.
        stat = parse_stat((base / "stat").read_text(errors="replace"))
        raw = (base / "cmdline").read_bytes()
        again = parse_stat((base / "stat").read_text(errors="replace"))
    except OSError:
        return None
    if stat is None or again is None or again[1] != stat[1]:
        return None
    stat = again
    argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    return ProcessInfo(pid, argv, stat[0], stat[1])
