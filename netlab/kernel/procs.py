"""Read one process as the kernel shows it in ``/proc/<pid>``: its argv, state and
start time, and what it uses (CPU time, resident memory).

The start time (field 22 of ``/proc/<pid>/stat``, clock ticks after boot)
never changes for a process and differs for the next process given the same
pid, so a pid recorded with it names one process for good: ``down`` and
``status`` use both to tell a lab's supervisor from a process that reused its
pid (see :func:`netlab.workload.supervisor.is_lab_supervisor`).
"""

from __future__ import annotations

import os
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


# ---- what a process uses: for the benchmarks that show who is busy (the task app,
# the load generator) and how much memory the workload supervisor holds per task.

_TICKS = os.sysconf("SC_CLK_TCK")


class ProcessGone(Exception):
    """The process (or its /proc file) is not there any more."""


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds a process has used, in user and in kernel (system) mode."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def parse_cpu_times(text: str, ticks: int = _TICKS) -> CpuTimes:
    """utime and stime (fields 14 and 15) of a ``/proc/<pid>/stat`` line.

    The command name (field 2) may hold spaces and parentheses, so fields are
    counted after its last ``)``. Raises ValueError on a malformed line.
    """
    _, sep, rest = text.rpartition(")")
    fields = rest.split()
    if not sep or len(fields) < 13:
        raise ValueError(f"not a /proc/<pid>/stat line: {text[:60]!r}")
    # rest starts at field 3 (state): utime is field 14, i.e. index 11 here.
    return CpuTimes(int(fields[11]) / ticks, int(fields[12]) / ticks)


def parse_rss_kib(text: str) -> int:
    """VmRSS in KiB from the text of ``/proc/<pid>/status``; raises ValueError
    when there is none (a zombie or a kernel thread)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            value, _, unit = line.split(":", 1)[1].strip().partition(" ")
            if unit.strip() != "kB" or not value.isdigit():
                raise ValueError(f"unexpected VmRSS line {line!r}")
            return int(value)
    raise ValueError("no VmRSS line (a zombie or a kernel thread?)")


def _read(pid: int, name: str) -> str:
    try:
        return Path(f"/proc/{int(pid)}/{name}").read_text()
    except (FileNotFoundError, ProcessLookupError):
        raise ProcessGone(f"process {pid} is gone") from None


def cpu_times(pid: int) -> CpuTimes:
    """CPU time used so far by every thread of ``pid``; raises ProcessGone."""
    return parse_cpu_times(_read(pid, "stat"))


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB; raises ProcessGone, or ValueError for a
    process without memory (zombie)."""
    return parse_rss_kib(_read(pid, "status"))
