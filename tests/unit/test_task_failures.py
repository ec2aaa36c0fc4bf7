"""Tasks that fail and are restarted: the faults file, dockerd's health monitor,
swarmkit's restart supervisor, and the manager's watch over them, on a fake
clock, fake probes and the fake kernel (no root, no process)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from click.testing import CliRunner

from netlab import tasks as lab_tasks
from netlab.cli.common import plan_from_state
from netlab.cli.main import cli
from netlab.errors import BadInput
from netlab.kernel.probe import ProbeResult
from netlab.lifecycle import _endpoints_of
from netlab.manager import health as hl
from netlab.manager.agent import UNHEALTHY_MESSAGE, BindTask, FailTask
from netlab.manager.events import parse_lines
from netlab.manager.process import Manager, _real_act, events_name
from netlab.manager.restart import RestartSupervisor, StartSlot
from netlab.model import HealthCheck, RestartPolicy, fill_slot, without_task
from netlab.workload import faults as wf
from tests.unit.fakes import InstantHeartbeats, ManagerClock
from netlab.workload.http import http_response

HC = HealthCheck(("CMD", "curl", "-f", "http://localhost:80/health"), 80, "/health",
                 interval=2.0, timeout=1.0, retries=2, start_period=0.0)


# -- the faults file ----------------------------------------------------------------------

def test_faults_round_trip_and_bind_only_the_task_at_their_address(tmp_path):
    path = wf.faults_path_for(tmp_path / "lab.endpoints.json")
    assert path.name == "lab.endpoints.json.faults" and wf.read(path) == {}
    faults = {"web.1": wf.Fault("exited", "10.0.0.5", 1.5, exit_code=137),
              "web.2": wf.Fault("unhealthy", "10.0.0.6", 2.0, path="/health")}
    wf.write(path, faults)
    assert wf.read(path) == faults
    # web.1 replaced in its slot (a new address): its fault is not the new task's.
    assert wf.current(faults, {"web.1": "10.0.0.9", "web.2": "10.0.0.6"}) == {
        "web.2": faults["web.2"]}


@pytest.mark.parametrize("text, message", [
    ("[]", "must hold one object"),
    ('{"t": {"mode": "dead", "address": "a", "at": 1}}', "t: mode must be one of"),
    ('{"t": {"mode": "exited", "address": "a", "at": 1, "exit_code": 300}}', "exit_code"),
    ('{"t": {"mode": "exited", "address": "a", "at": true}}', "at must be a number"),
    ('{"t": {"mode": "unhealthy", "address": "a", "at": 1, "path": "x"}}', "path must start"),
    ('{"t": {"mode": "hung", "address": "a", "at": 1, "why": 1}}', "unknown field"),
])
def test_a_bad_faults_file_is_refused_naming_the_task(text, message):
    with pytest.raises(ValueError, match=message):
        wf.parse(text)


def test_an_unhealthy_app_answers_503_and_a_healthy_one_200():
    assert http_response(b"{}\n", status=503).startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert http_response(b"{}\n").startswith(b"HTTP/1.1 200 OK\r\n")


# -- dockerd's health monitor -------------------------------------------------------------

def test_health_first_probe_after_one_interval_and_healthy_at_the_first_pass():
    h = hl.Health(interval=30, timeout=30, retries=3, start_period=0, started=100.0)
    assert not h.due(129.9) and h.due(130.0)
    assert h.result(0, "ok", 130.0, 130.1) == hl.HEALTHY
    assert h.next_probe == pytest.approx(160.1)      # one interval after the probe ended
    assert h.result(0, "ok", 160.1, 160.2) is None   # no change, no event


def test_health_retries_failures_in_a_row_make_it_unhealthy_and_a_pass_resets():
    h = hl.Health(interval=1, timeout=1, retries=3, start_period=0, started=0.0, status=hl.HEALTHY)
    assert h.result(1, "503", 1, 1) is None and h.failing_streak == 1
    assert h.result(0, "ok", 2, 2) is None and h.failing_streak == 0
    assert [h.result(-1, "timeout", t, t) for t in (3, 4, 5)] == [None, None, hl.UNHEALTHY]


def test_health_failures_inside_the_start_period_do_not_count_while_starting():
    h = hl.Health(interval=1, timeout=1, retries=1, start_period=10, started=0.0)
    assert h.result(1, "refused", 5.0, 5.0) is None and h.status == hl.STARTING
    assert h.result(1, "refused", 10.0, 10.0) == hl.UNHEALTHY   # past it: counts


# -- swarmkit's restart supervisor ----------------------------------------------------------

def test_restart_conditions_as_swarmkit_should_restart():
    r = RestartSupervisor()
    assert r.should_restart(RestartPolicy("none"), "failed", "s", 1, 0)[0] is False
    assert r.should_restart(RestartPolicy("on-failure"), "complete", "s", 1, 0)[0] is False
    assert r.should_restart(RestartPolicy("on-failure"), "failed", "s", 1, 0)[0] is True
    assert r.should_restart(RestartPolicy("any"), "complete", "s", 1, 0)[0] is True


def test_max_attempts_counts_a_slots_restarts_over_its_life_or_inside_the_window():
    r = RestartSupervisor()
    policy = RestartPolicy("any", delay=5, max_attempts=2)
    for now in (0.0, 10.0):
        assert r.should_restart(policy, "failed", "s", 1, now)[0]
        r.restart("s", 1, now, 5, "s.1")
    ok, why = r.should_restart(policy, "failed", "s", 1, 20.0)
    assert not ok and "max_attempts 2 reached" in why
    assert r.should_restart(policy, "failed", "s", 2, 20.0)[0]       # another slot
    windowed = RestartPolicy("any", delay=5, max_attempts=2, window=15)
    assert r.should_restart(windowed, "failed", "s", 1, 20.0)[0]     # the one at 0 is outside
    assert not r.should_restart(windowed, "failed", "s", 1, 12.0)[0]


def test_a_restart_starts_after_its_delay_once():
    r = RestartSupervisor()
    r.restart("s", 2, 10.0, 5.0, "s.2")
    assert r.is_waiting("s", 2) and r.due(14.9) == []
    assert r.due(15.0) == [StartSlot("s", 2, 15.0, "s.2")] and r.due(20.0) == []


# -- the model -----------------------------------------------------------------------------

def test_a_failed_task_leaves_its_slot_empty_and_a_restart_fills_that_slot(seed):
    store, _fake = seed
    lab = store.load("hello-a").model
    gone = without_task(lab, "hello-a.2")
    assert [t.name for t in gone.tasks] == ["hello-a.1"] and gone.service("hello-a").replicas == 2
    back = fill_slot(gone, "hello-a", 2)
    assert [t.name for t in back.tasks] == ["hello-a.1", "hello-a.2"]
    assert fill_slot(back, "hello-a", 2) is back                     # taken: unchanged
    with pytest.raises(KeyError):
        without_task(lab, "hello-a.9")


# -- the manager over the tasks, on the fake kernel -----------------------------------------

def _with(store, **service_fields):
    st = store.load("hello-a")
    st.model = replace(st.model, services=tuple(replace(s, **service_fields)
                                                for s in st.model.services))
    st.time_scale = 1.0
    store.save(st)


def _manager(store, fake, clock, probe):
    return Manager("hello-a", store, InstantHeartbeats(), _real_act("hello-a", store, fake.host()),
                   clock=clock, wall=lambda: 1.7e9 + clock.t, probe=probe,
                   faults_path=wf.faults_path_for(_endpoints_of("hello-a", store)))


def _run(mgr, clock, seconds, done):
    end = clock.t + seconds
    while clock.t < end:
        for action in mgr.step():
            done.append((round(clock.t - 1000.0, 2), action))
            mgr.carry_out(action)
        clock.t += 0.1


def _events(store):
    return [(e.subject, e.action) for e in parse_lines(
        store.read_file("hello-a", events_name("hello-a")))]


def test_a_killed_task_leaves_every_load_balancer_and_is_replaced_after_the_delay(seed):
    store, fake = seed
    _with(store, restart_policy=RestartPolicy("any", delay=5.0))
    old = store.load("hello-a")
    old_ip = str(old.allocations.primary_ip("hello-a.2", old.model))
    said = lab_tasks.fault("hello-a", "hello-a.2", "kill", store, host=fake.host())
    assert said == "hello-a.2 exited with code 137"
    clock, done = ManagerClock(), []
    mgr = _manager(store, fake, clock, probe=None)
    _run(mgr, clock, 0.5, done)
    (at, fail), = done
    assert fail == FailTask("hello-a.2", old_ip, "failed", "task: non-zero exit (137)", 0.0)
    mid = store.load("hello-a")
    assert [t.name for t in mid.model.tasks] == ["hello-a.1"]
    record = next(r for r in mid.desired_tasks if r.name == "hello-a.2")
    assert (record.state, record.ended_by, record.address) == (
        "failed", "task: non-zero exit (137)", old_ip)
    _run(mgr, clock, 5.0, done)
    at, start = done[-1]
    assert start == StartSlot("hello-a", 2, 1000.0 + 5.0, "hello-a.2") and 5.0 <= at <= 5.1
    after = store.load("hello-a")
    new_ip = str(after.allocations.primary_ip("hello-a.2", after.model))
    assert new_ip != old_ip                               # a new task, a new address
    assert [e for e in _events(store) if e[0] == "hello-a.2"] == [
        ("hello-a.2", "failed"), ("hello-a.2", "restart-scheduled"), ("hello-a.2", "shutdown"),
        ("hello-a.2", "assigned"), ("hello-a.2", "running")]
    # The old task's fault does not bind the new one.
    assert lab_tasks.exited("hello-a", store) == {}


def test_a_task_with_a_health_check_gets_traffic_only_once_healthy(seed):
    store, fake = seed
    _with(store, healthcheck=HC)
    lab_tasks.fault("hello-a", "hello-a.1", "kill", store, host=fake.host())
    probes = []

    def probe(task, port, path, timeout):
        probes.append((task, port, path, timeout))
        return ProbeResult(0, "HTTP/1.1 200 OK", clock.t, clock.t)

    clock, done = ManagerClock(), []
    mgr = _manager(store, fake, clock, probe)
    _run(mgr, clock, 5.2, done)                   # the restart: 5 s
    st = store.load("hello-a")
    starting = [r for r in st.actual_tasks if r.name == "hello-a.1" and r.state == "starting"]
    assert starting, st.actual_tasks
    new_ip = str(st.allocations.primary_ip("hello-a.1", st.model))
    weights = {d.addr: d.weight for s in plan_from_state(st).ipvs for d in s.dests}
    assert weights[new_ip] == 0                  # no traffic while starting
    _run(mgr, clock, 2.5, done)                  # its first probe, one interval (2 s) on
    assert isinstance(done[-1][1], BindTask) and done[-1][1].address == new_ip
    st = store.load("hello-a")
    assert next(r for r in st.actual_tasks if r.name == "hello-a.1"
                and r.state in ("running", "starting")).state == "running"
    assert {d.addr: d.weight for s in plan_from_state(st).ipvs for d in s.dests}[new_ip] == 1
    assert ("hello-a.1", 80, "/health", 1.0) in probes
    assert _events(store)[-3:] == [("hello-a.1", "starting"), ("hello-a.1", "healthy"),
                                   ("hello-a.1", "running")]


def test_an_unhealthy_task_is_shut_down_after_the_gossip_delay_and_replaced(seed):
    store, fake = seed
    _with(store, healthcheck=HC)
    st = store.load("hello-a")
    old_ip = str(st.allocations.primary_ip("hello-a.2", st.model))
    clock, done = ManagerClock(), []

    def probe(task, port, path, timeout):
        code = 1 if task == "hello-a.2" else 0
        return ProbeResult(code, "curl: (22) The requested URL returned error: 503", clock.t,
                           clock.t)

    mgr = _manager(store, fake, clock, probe)
    mgr.timings = replace(mgr.timings, gossip_delay=0.0)
    mgr.watch.timings = mgr.timings
    _run(mgr, clock, 4.5, done)                  # 2 failed probes, 2 s apart
    fails = [a for _, a in done if isinstance(a, FailTask)]
    assert fails == [FailTask("hello-a.2", old_ip, "failed", UNHEALTHY_MESSAGE, 0.0)]
    assert ("hello-a.2", "unhealthy") in _events(store)


def test_netlab_task_refuses_what_it_cannot_do_and_changes_nothing(seed):
    store, fake = seed
    with pytest.raises(BadInput, match=r"^TASK: lab hello-a runs no task 'web\.1'"):
        lab_tasks.fault("hello-a", "web.1", "kill", store, host=fake.host())
    with pytest.raises(BadInput, match=r"^TASK: service hello-a has no healthcheck"):
        lab_tasks.fault("hello-a", "hello-a.1", "unhealthy", store, host=fake.host())
    with pytest.raises(BadInput, match=r"^FAULT: 'explode' is not one of"):
        lab_tasks.fault("hello-a", "hello-a.1", "explode", store, host=fake.host())
    with pytest.raises(BadInput, match=r"^--exit-code: 256"):
        lab_tasks.fault("hello-a", "hello-a.1", "kill", store, exit_code=256, host=fake.host())
    assert lab_tasks.exited("hello-a", store) == {}
    lab_tasks.fault("hello-a", "hello-a.1", "kill", store, exit_code=0, host=fake.host())
    with pytest.raises(BadInput, match="has exited already"):
        lab_tasks.fault("hello-a", "hello-a.1", "hang", store, host=fake.host())


def test_netlab_task_on_the_command_line_exits_2_with_one_line(seed, monkeypatch):
    store, _fake = seed
    monkeypatch.setenv("NETLAB_STATE_DIR", str(store.root))
    result = CliRunner().invoke(cli, ["task", "hello-a", "nope.1", "kill"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "Error: TASK: lab hello-a runs no task 'nope.1' (hint: one of hello-a.1, hello-a.2)"]


def test_a_containers_exit_code_is_read_from_the_engines_list():
    from netlab.docker.engine import exit_code_of
    assert exit_code_of("Exited (137) 2 seconds ago") == 137
    assert exit_code_of("Exited (0) About a minute ago") == 0
    assert exit_code_of("Up 3 seconds") == -1 and exit_code_of("") == -1


def test_a_real_container_that_exited_is_failed_once_and_restarted(seed):
    store, fake = seed
    clock, done, looks = ManagerClock(), [], []

    first = _ip(store, "hello-a.1")

    def exits():
        looks.append(clock.t)
        return {"hello-a.1": (first, 137)}   # still listed after its slot's next task starts

    mgr = Manager("hello-a", store, InstantHeartbeats(), _real_act("hello-a", store, fake.host()),
                  clock=clock, wall=lambda: 1.7e9 + clock.t, container_exits=exits)
    _run(mgr, clock, 8.0, done)
    fails = [a for _, a in done if isinstance(a, FailTask)]
    assert [(f.task, f.address, f.message) for f in fails] == [
        ("hello-a.1", first, "task: non-zero exit (137)")]
    assert [type(a).__name__ for _, a in done] == ["FailTask", "StartSlot"]
    assert _ip(store, "hello-a.1") != first      # the new task, never taken for the old one
    assert len(looks) in (16, 17)            # every 0.5 s, not every tick


def test_an_engine_slow_to_list_holds_up_neither_the_loop_nor_a_heartbeat(seed):
    """The list runs in the pool: while it is under way the loop goes on, and what
    it found is taken when it is done."""
    from concurrent.futures import Future
    store, fake = seed
    clock, done, pending = ManagerClock(), [], []

    def submit(fn, *args):
        fut: Future = Future()
        pending.append((fut, fn, args))
        return fut

    mgr = Manager("hello-a", store, InstantHeartbeats(), _real_act("hello-a", store, fake.host()),
                  clock=clock, wall=lambda: 1.7e9 + clock.t, submit=submit,
                  container_exits=lambda: {"hello-a.2": (_ip(store, "hello-a.2"), 1)})
    _run(mgr, clock, 3.0, done)
    assert done == [] and len(pending) == 1          # one list, still under way
    fut, fn, args = pending[0]
    fut.set_result(fn(*args))
    _run(mgr, clock, 0.2, done)
    assert [(type(a).__name__, a.task) for _, a in done] == [("FailTask", "hello-a.2")]
    assert mgr.dispatcher.states() == {"node1": "ready", "node2": "ready"}


def test_a_slot_left_empty_while_no_manager_ran_is_filled_when_one_starts(seed):
    store, fake = seed
    lab_tasks.fail("hello-a", "hello-a.2", _ip(store, "hello-a.2"), "failed",
                   "task: non-zero exit (1)", store, host=fake.host())
    assert [t.name for t in store.load("hello-a").model.tasks] == ["hello-a.1"]
    clock, done = ManagerClock(), []
    mgr = _manager(store, fake, clock, probe=None)
    _run(mgr, clock, 5.5, done)
    assert [type(a).__name__ for _, a in done] == ["StartSlot"]
    assert [t.name for t in store.load("hello-a").model.tasks] == ["hello-a.1", "hello-a.2"]
    assert ("hello-a.2", "restart-scheduled") in _events(store)


def test_a_slot_whose_policy_keeps_it_ended_stays_empty_when_a_manager_starts(seed):
    store, fake = seed
    _with(store, restart_policy=RestartPolicy("none"))
    lab_tasks.fail("hello-a", "hello-a.2", _ip(store, "hello-a.2"), "failed",
                   "task: non-zero exit (1)", store, host=fake.host())
    clock, done = ManagerClock(), []
    _run(_manager(store, fake, clock, probe=None), clock, 6.0, done)
    assert done == [] and [t.name for t in store.load("hello-a").model.tasks] == ["hello-a.1"]


def _ip(store, task):
    st = store.load("hello-a")
    return str(st.allocations.primary_ip(task, st.model))


def test_down_removes_the_faults_file(seed):
    store, fake = seed
    from netlab import lifecycle
    from netlab.workload.faults import faults_path_for
    lab_tasks.fault("hello-a", "hello-a.1", "hang", store, host=fake.host())
    path = faults_path_for(_endpoints_of("hello-a", store))
    assert path.exists()
    lifecycle.down("hello-a", store, host=fake.host())
    assert not path.exists()


def test_a_task_not_yet_recorded_is_starting_when_its_service_has_a_health_check(seed):
    """A state read mid-change has the new task in the model and not yet in the actual
    records: it is not bound, so the agents watch it as starting (a rolling update
    once took it for running and moved on while it was at weight 0)."""
    from netlab.manager.process import task_views
    store, _fake = seed
    _with(store, healthcheck=HC)
    st = store.load("hello-a")
    st.actual_tasks = tuple(r for r in st.actual_tasks if r.name != "hello-a.2")
    views = {v.name: v.state for v in task_views(st)}
    assert views == {"hello-a.1": "running", "hello-a.2": "starting"}
    _with(store, healthcheck=None)
    st = store.load("hello-a")
    st.actual_tasks = ()
    assert {v.state for v in task_views(st)} == {"running"}
