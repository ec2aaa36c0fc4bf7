"""One change of a lab at a time: the store's per-lab lock (``StateStore.locked``)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from netlab.state import StateStore


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    root = tmp_path / "store"
    root.mkdir(mode=0o700)
    return StateStore(root)


def _hold_in_child(store: StateStore, lab: str, seconds: float, log: Path) -> int:
    """A child process that takes the lock, writes 'in'/'out' around a sleep."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:     # pragma: no cover (the child)
        try:
            os.close(r)
            with store.locked(lab):
                os.write(w, b"x")
                with open(log, "a") as f:
                    f.write("child in\n")
                time.sleep(seconds)
                with open(log, "a") as f:
                    f.write("child out\n")
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"x"      # the child holds it now
    os.close(r)
    return pid


def test_a_second_change_waits_for_the_first_and_is_told_who_holds_it(store, tmp_path):
    log = tmp_path / "order"
    pid = _hold_in_child(store, "lab1", 0.4, log)
    told: list[str] = []
    with store.locked("lab1", told.append), open(log, "a") as f:
        f.write("parent in\n")
    os.waitpid(pid, 0)
    assert log.read_text().splitlines() == ["child in", "child out", "parent in"]
    assert told == [f"waiting for another change of lab lab1 to end (pid {pid})"]


def test_other_labs_do_not_wait(store, tmp_path):
    pid = _hold_in_child(store, "lab1", 2.0, tmp_path / "log")
    try:
        told: list[str] = []
        t0 = time.monotonic()
        with store.locked("lab2", told.append):
            pass
        assert told == [] and time.monotonic() - t0 < 1.0
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def test_a_killed_holder_releases_the_lock(store, tmp_path):
    pid = _hold_in_child(store, "lab1", 60, tmp_path / "log")
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    told: list[str] = []
    with store.locked("lab1", told.append):
        pass
    assert told == []


def test_the_lock_file_stays_while_the_lab_has_a_state_and_goes_with_it(seed):
    store, _fake = seed
    lock = store.root / "hello-a.lock"
    assert lock.exists()              # up took it and left it: the lab has a state
    with store.locked("other"):
        assert (store.root / "other.lock").exists()
        assert ((store.root / "other.lock").stat().st_mode & 0o777) == 0o600
    assert not (store.root / "other.lock").exists()   # no state file: nothing left behind
    with store.locked("hello-a"):
        pass
    assert lock.exists()
    with store.locked("hello-a"):
        store.remove("hello-a")
    assert not lock.exists()


def _locked_by_someone(path: Path) -> bool:
    """Whether another process holds the flock of the file at ``path`` now."""
    import fcntl
    pid = os.fork()
    if pid == 0:     # pragma: no cover (the child)
        fd = os.open(path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os._exit(1)
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 1


def test_a_waiter_whose_file_was_removed_takes_the_new_one(store, tmp_path):
    """The holder (a lab without state) removes the file as it lets go; the waiter
    must then hold the lock of the file that is there, not of the removed one."""
    pid = _hold_in_child(store, "lab1", 0.3, tmp_path / "log")
    with store.locked("lab1"):
        assert _locked_by_someone(store.root / "lab1.lock")
    os.waitpid(pid, 0)
