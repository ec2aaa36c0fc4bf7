"""The /proc readers the load and memory benchmarks use (netlab.kernel.procs)."""

from __future__ import annotations

import os

import pytest

from netlab.kernel import procs

# A real line's shape: the command name may hold spaces and parentheses.
STAT = ("4242 (python -m (x)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 "
        "250 75 0 0 20 0 1 0 123456 25000000 5000 18446744073709551615")


def test_stat_reads_utime_and_stime_after_the_last_parenthesis():
    times = procs.parse_cpu_times(STAT, ticks=100)
    assert times == procs.CpuTimes(user=2.5, system=0.75)
    assert times.total == pytest.approx(3.25)


def test_cpu_times_subtract_field_by_field():
    later = procs.CpuTimes(3.0, 1.0) - procs.CpuTimes(2.5, 0.75)
    assert later.user == pytest.approx(0.5) and later.system == pytest.approx(0.25)


@pytest.mark.parametrize("text", ["", "4242 (x) S 1 2", "no parenthesis at all " * 3])
def test_a_malformed_stat_line_is_refused(text):
    with pytest.raises(ValueError):
        procs.parse_cpu_times(text)


def test_rss_is_read_from_the_vmrss_line():
    status = "Name:\tpython\nVmPeak:\t  30000 kB\nVmRSS:\t   21760 kB\nThreads:\t1\n"
    assert procs.parse_rss_kib(status) == 21760


@pytest.mark.parametrize("status", ["Name:\tkworker\nThreads:\t1\n", "VmRSS:\t12 MB\n"])
def test_a_status_without_a_usable_vmrss_is_refused(status):
    with pytest.raises(ValueError):
        procs.parse_rss_kib(status)


def test_this_process_reads_back_as_using_cpu_and_memory():
    before = procs.cpu_times(os.getpid())
    deadline = before.total + 0.05
    spins = 0
    while procs.cpu_times(os.getpid()).total < deadline and spins < 10_000_000:
        spins += 1
    assert procs.cpu_times(os.getpid()).total >= deadline
    assert procs.rss_kib(os.getpid()) > 1024     # a Python interpreter holds over 1 MiB


def test_a_gone_process_raises_process_gone():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    with pytest.raises(procs.ProcessGone):
        procs.cpu_times(pid)
    with pytest.raises(procs.ProcessGone):
        procs.rss_kib(pid)
