"""A lab's supervisor is the process its state records only when that process serves
this lab's endpoints file and started when the state says.

A stale state file whose pid was reused (by another lab's supervisor, by a
process that merely looks like one, by anything) must never make ``down``
signal it, nor ``status`` call it running, nor ``up``/``scale`` reload it.
The fake host's ``process`` stands in for ``/proc``; the last tests spawn
real look-alike processes (no root) and end them by pid.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import converge, ipam, lifecycle, state
from netlab.cli import common
from netlab.cli import status as status_cli
from netlab.cli.main import cli
from netlab.errors import BadInput
from netlab.kernel import procs
from netlab.kernel.procs import ProcessInfo
from netlab.scenario import load_lab
from netlab.workload import supervisor
from netlab.workload.supervisor import Identity, is_lab_supervisor
from tests.unit.fakes import FakeHost

SEED = Path(__file__).resolve().parents[2] / "scenarios" / "hello-a.yaml"
APP = ("python3", "-m", supervisor.APP_MODULE, "--endpoints")


# ---- reading /proc -------------------------------------------------------------------

def _stat(comm: str, state: str = "S", start: str = "4242") -> str:
    rest = [state] + ["0"] * 18 + [start] + ["0"] * 20        # field 22 is rest[19]
    return f"123 ({comm}) " + " ".join(rest) + "\n"


@pytest.mark.parametrize("comm", ["python3", "a) (b", "x y ) z", ")", ""])
def test_stat_is_read_from_the_last_parenthesis(comm):
    assert procs.parse_stat(_stat(comm)) == ("S", 4242)


@pytest.mark.parametrize("text", ["", "123 (x) S 1 2", "123 x S" + " 0" * 30,
                                  _stat("x", start="-1"), _stat("x", start="٣")])
def test_a_stat_that_is_not_one_reads_as_none(text):
    assert procs.parse_stat(text) is None


def test_read_a_process_from_a_proc_directory(tmp_path):
    (tmp_path / "77").mkdir()
    (tmp_path / "77" / "cmdline").write_bytes(b"python3\0-m\0netlab.workload.app\0--endpoints\0/e\0")
    (tmp_path / "77" / "stat").write_text(_stat("python3", "Z", "99"))
    info = procs.read(77, tmp_path)
    assert info == ProcessInfo(77, ("python3", "-m", "netlab.workload.app", "--endpoints", "/e"),
                               "Z", 99)
    assert not info.alive
    assert procs.read(78, tmp_path) is None
    for bad in (0, -1, True, "77"):
        assert procs.read(bad, tmp_path) is None     # type: ignore[arg-type]


def test_read_this_very_process():
    import os
    info = procs.read(os.getpid())
    field22 = Path("/proc/self/stat").read_text().rpartition(")")[2].split()[19]
    assert info is not None and info.alive and info.start_time == int(field22)
    assert info.argv[0] == Path("/proc/self/cmdline").read_bytes().split(b"\0")[0].decode()


# ---- the identity ----------------------------------------------------------------------

MINE = "/run/netlab/a.endpoints.json"


@pytest.mark.parametrize("info, identity, expected", [
    (ProcessInfo(9, (*APP, MINE), "S", 50), Identity(MINE, 50), True),
    (ProcessInfo(9, (*APP, MINE), "S", 50), Identity(MINE, None), True),     # an older state
    (ProcessInfo(9, (*APP, MINE), "S", 51), Identity(MINE, 50), False),      # pid reused
    (ProcessInfo(9, (*APP, "/run/netlab/b.endpoints.json"), "S", 50), Identity(MINE, 50), False),
    (ProcessInfo(9, (*APP, MINE + ".x"), "S", 50), Identity(MINE, None), False),
    (ProcessInfo(9, (*APP, "/run/netlab/"), "S", 50), Identity(MINE, None), False),
    (ProcessInfo(9, ("sleep", "100"), "S", 50), Identity(MINE, None), False),
    (ProcessInfo(9, ("python3", "app.py", "--endpoints", MINE), "S", 50), Identity(MINE, None), False),
    (ProcessInfo(9, (*APP, MINE), "Z", 50), Identity(MINE, 50), False),      # a zombie
    (None, Identity(MINE, 50), False),
])
def test_only_this_labs_supervisor_is_it(info, identity, expected):
    assert is_lab_supervisor(info, identity) is expected


# ---- down, status, up, scale with a stale state ------------------------------------------

@pytest.fixture
def two_labs(tmp_path, monkeypatch):
    """Labs a and b up in one store (fake host); a's supervisor died, b's took its pid."""
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    for lab in ("a", "b"):
        lifecycle.up(load_lab(SEED, name_override=lab), str(SEED), store, "legacy",
                     host=fake.host())
    a, b = store.load("a"), store.load("b")
    assert a.supervisor_started == a.supervisor_pid * 10 and b.supervisor_started is not None
    fake.supervisors.pop(a.supervisor_pid)                    # a's supervisor is gone...
    fake.supervisors[a.supervisor_pid] = fake.supervisors.pop(b.supervisor_pid)   # ...b's has its pid
    fake.started_at[a.supervisor_pid] = b.supervisor_started
    b.supervisor_pid = a.supervisor_pid
    store.save(b)
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(common, "host", fake.host)
    monkeypatch.setattr(status_cli, "readers", lambda: status_cli.Readers(
        kernel=fake.kernel, netns_exists=lambda n: n in fake.namespaces, process=fake.process))
    return store, fake, a.supervisor_pid


def _running(lab: str) -> bool:
    r = CliRunner().invoke(cli, ["status", lab, "--json"])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)["supervisor"]["running"]


def test_status_and_down_leave_another_labs_supervisor_alone(two_labs):
    store, fake, pid = two_labs
    assert not _running("a") and _running("b")
    r = CliRunner().invoke(cli, ["down", "a"])
    assert r.exit_code == 0, r.output
    assert fake.stopped == [] and pid in fake.supervisors and store.load("a") is None
    assert _running("b")
    r = CliRunner().invoke(cli, ["down", "b"])
    assert r.exit_code == 0 and fake.stopped == [pid]


def test_scale_and_up_never_reload_another_labs_supervisor(two_labs):
    store, fake, pid = two_labs
    with pytest.raises(BadInput, match="task apps of a are not running"):
        converge.scale("a", {"hello-a": 3}, store, host=fake.host())
    lifecycle.up(load_lab(SEED, name_override="a"), str(SEED), store, "legacy", host=fake.host())
    assert all(p != pid for p, _apps in fake.updated)        # b's supervisor was not reloaded
    new = store.load("a")
    assert new.supervisor_pid != pid and _running("a") and _running("b")
    assert new.supervisor_started == fake.process(new.supervisor_pid).start_time


@pytest.mark.parametrize("other", [
    ProcessInfo(0, ("sleep", "1000"), "S", 7),                          # any process
    ProcessInfo(0, (*APP, "/elsewhere/a.endpoints.json"), "S", 7),      # a look-alike elsewhere
])
def test_a_reused_pid_is_neither_running_nor_stopped(two_labs, other):
    store, fake, pid = two_labs
    fake.supervisors.pop(pid)
    fake.others[pid] = dataclasses.replace(other, pid=pid)
    assert not _running("a") and not _running("b")
    assert CliRunner().invoke(cli, ["down", "--all"]).exit_code == 0
    assert fake.stopped == [] and store.labs() == []


def test_the_same_argv_started_at_another_time_is_not_the_recorded_one(two_labs):
    store, fake, pid = two_labs
    fake.started_at[pid] += 1            # b's endpoints file, but not the process b recorded
    assert not _running("b")
    CliRunner().invoke(cli, ["down", "b"])
    assert fake.stopped == [pid]         # found by its argv: it serves b, so down b stops it


# ---- the state file --------------------------------------------------------------------

def _doc(**changes) -> dict:
    model = load_lab(SEED, name_override="x")
    st = lifecycle.state_for(model, ipam.allocate(model), str(SEED))
    return {**state.to_json(st), **changes}


@pytest.mark.parametrize("changes", [
    {"supervisor_pid": 5, "supervisor_started": -1},
    {"supervisor_pid": 5, "supervisor_started": True},
    {"supervisor_pid": 5, "supervisor_started": "12"},
    {"supervisor_pid": 5, "supervisor_started": 1.5},
    {"supervisor_pid": None, "supervisor_started": 12},
])
def test_a_bad_start_time_makes_the_state_corrupt(tmp_path, changes):
    store = state.StateStore(tmp_path / "store")
    store.root.mkdir(mode=0o700)
    (store.root / "x.json").write_text(json.dumps(_doc(**changes)))
    with pytest.raises(state.CorruptState, match="supervisor_started"):
        store.load("x")


def test_a_state_without_a_start_time_still_reads(tmp_path):
    store = state.StateStore(tmp_path / "store")
    store.root.mkdir(mode=0o700)
    doc = _doc(supervisor_pid=5)
    del doc["supervisor_started"]
    (store.root / "x.json").write_text(json.dumps(doc))
    st = store.load("x")
    assert (st.supervisor_pid, st.supervisor_started) == (5, None)


# ---- real processes that look like supervisors (no root) ----------------------------------

def _look_alike(endpoints: str) -> subprocess.Popen:
    """A sleeping Python whose argv reads ``-m netlab.workload.app --endpoints FILE``."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m",
                             supervisor.APP_MODULE, "--endpoints", endpoints])
    deadline = time.monotonic() + 10
    while (info := procs.read(proc.pid)) is None or "--endpoints" not in info.argv:
        assert time.monotonic() < deadline, "the look-alike did not start"
        time.sleep(0.02)
    return proc


def test_stop_with_an_identity_spares_another_labs_look_alike(tmp_path):
    other = _look_alike(str(tmp_path / "b.endpoints.json"))
    try:
        started = procs.read(other.pid).start_time
        supervisor.stop(other.pid, timeout=1, identity=Identity(str(tmp_path / "a.endpoints.json")))
        supervisor.stop(other.pid, timeout=1,
                        identity=Identity(str(tmp_path / "b.endpoints.json"), started + 1))
        assert other.poll() is None                   # still running: not lab a's, not that start
        supervisor.stop(other.pid, timeout=5,
                        identity=Identity(str(tmp_path / "b.endpoints.json"), started))
        assert other.wait(timeout=5) is not None      # its own identity stops it
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()


def test_down_of_a_stale_state_spares_the_process_that_reused_its_pid(tmp_path):
    """lab a's state records a pid that lab b's (look-alike) supervisor now has."""
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(load_lab(SEED, name_override="a"), str(SEED), store, "legacy", host=fake.host())
    b_endpoints = str(supervisor.endpoints_path_for(store.log_path("b").absolute()))
    other = _look_alike(b_endpoints)
    try:
        a = store.load("a")
        a.supervisor_pid = other.pid
        store.save(a)
        real = dataclasses.replace(fake.host(), process=procs.read, stop_supervisor=supervisor.stop,
                                   find_supervisors=supervisor.find)
        result = lifecycle.down("a", store, real)
        assert not result.supervisor_stopped and other.poll() is None
        assert store.load("a") is None and fake.namespaces == set()
    finally:
        other.kill()
        other.wait()
