"""What the kernel says about a process in /proc: CPU time used and resident memory.

For benchmarks that must show who is busy (the task app, the load generator)
and how much memory the workload supervisor holds per task. The parsers take
the file's text, so they are tested without a process; the readers add the
file read and say which pid was gone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

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


def parse_stat(text: str, ticks: int = _TICKS) -> CpuTimes:
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
    return parse_stat(_read(pid, "stat"))


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` in KiB; raises ProcessGone, or ValueError for a
    process without memory (zombie)."""
    return parse_rss_kib(_read(pid, "status"))
