"""Rolling updates and rollback (netlab.manager.updater, netlab.tasks), on a fake clock,
fake probes and the fake kernel: batches, delay, monitor window, failure ratio and
action, and the commands' refusals."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import tasks as lab_tasks
from netlab.cli.main import cli
from netlab.errors import BadInput
from netlab.kernel.probe import ProbeResult
from netlab.manager.events import parse_lines
from netlab.manager.process import Manager, _real_act, events_name
from netlab.manager.updater import RetireTask, SetUpdateState, Updater, UpdateSlot
from netlab.model import HealthCheck, UpdateConfig
from tests.unit.fakes import InstantHeartbeats, ManagerClock

HC = HealthCheck(("CMD", "curl", "-f", "http://localhost:3000/health"), 3000, "/health",
                 interval=1.0, timeout=0.5, retries=1)


# -- the updater alone ---------------------------------------------------------------------

def test_batches_of_parallelism_with_the_delay_between_and_completed_after_the_monitor():
    up = Updater("web", UpdateConfig(parallelism=2, delay=3.0, monitor=5.0), False,
                 [1, 2, 3], 3, gossip_delay=2.0)
    tasks = {1: "10.0.0.5", 2: "10.0.0.6", 3: "10.0.0.7"}
    assert up.step(0.0, tasks, set()) == [UpdateSlot("web", 1, "10.0.0.5", 2.0),
                                          UpdateSlot("web", 2, "10.0.0.6", 2.0)]
    assert up.step(1.0, tasks, {1}) == []          # slot 2 not running yet
    assert up.step(2.0, tasks, {1, 2}) == []       # batch done: the delay starts
    assert up.step(4.9, tasks, {1, 2}) == []
    assert up.step(5.0, tasks, {1, 2}) == [UpdateSlot("web", 3, "10.0.0.7", 2.0)]
    assert up.step(6.0, tasks, {1, 2, 3}) == []    # slot 3 watched until 11.0
    assert up.step(10.9, tasks, {1, 2, 3}) == []
    assert up.step(11.0, tasks, {1, 2, 3}) == [SetUpdateState("web", "completed",
                                                              "update completed")]
    assert up.finished and up.step(12.0, tasks, {1, 2, 3}) == []


def test_start_first_retires_the_old_task_once_the_new_one_runs():
    up = Updater("web", UpdateConfig(parallelism=1, order="start-first", monitor=1.0), False,
                 [1, 2], 2, gossip_delay=2.0)
    tasks = {1: "10.0.0.5", 2: "10.0.0.6"}
    assert up.step(0.0, tasks, set()) == [UpdateSlot("web", 1, "10.0.0.5", 2.0, "start-first")]
    assert up.step(1.0, tasks, set()) == []        # the new one is not running yet
    # The old one retired, then (no delay) the next batch, in that order.
    assert up.step(2.0, tasks, {1}) == [RetireTask("web", 1, "10.0.0.5", 2.0),
                                        UpdateSlot("web", 2, "10.0.0.6", 2.0, "start-first")]
    up.task_failed(2, "web.2.1")                    # the new one failed: the old one stays
    acts = up.step(3.0, tasks, {1})
    assert not [a for a in acts if isinstance(a, RetireTask)] and up.replacing == {}


def test_parallelism_zero_updates_every_slot_at_once():
    up = Updater("web", UpdateConfig(parallelism=0), False, [1, 2, 3], 3, 0.0)
    assert [a.slot for a in up.step(0.0, {}, set())] == [1, 2, 3]


@pytest.mark.parametrize("action, state", [("pause", "paused"), ("rollback", "rollback_started")])
def test_a_failure_past_the_ratio_pauses_or_rolls_back(action, state):
    up = Updater("web", UpdateConfig(failure_action=action, monitor=5.0), False, [1, 2], 2, 0.0)
    up.step(0.0, {1: "a", 2: "b"}, set())
    up.step(1.0, {1: "c", 2: "b"}, {1})
    up.task_failed(1, "web.1")                      # inside its monitor window
    (act,) = up.step(2.0, {2: "b"}, set())
    assert act == SetUpdateState("web", state, act.message) and up.finished
    assert "due to failure or early termination of task web.1" in act.message


def test_continue_and_a_ratio_tolerate_failures_and_a_failed_rollback_pauses():
    up = Updater("web", UpdateConfig(failure_action="continue", monitor=0.0), False, [1], 1, 0)
    up.step(0.0, {1: "a"}, set())
    up.task_failed(1, "web.1")
    assert up.step(1.0, {}, set()) == [SetUpdateState("web", "completed", "update completed")]
    tolerant = Updater("web", UpdateConfig(max_failure_ratio=0.5, parallelism=0, monitor=0.0),
                       False, [1, 2], 2, 0)
    tolerant.step(0.0, {1: "a", 2: "b"}, set())
    tolerant.task_failed(1, "web.1")                # 1 of 2: not past 0.5
    assert tolerant.step(1.0, {2: "d"}, {2}) == [SetUpdateState("web", "completed",
                                                                "update completed")]
    back = Updater("web", UpdateConfig(failure_action="pause"), True, [1], 1, 0)
    back.step(0.0, {1: "a"}, set())
    back.task_failed(1, "web.1")
    assert back.step(1.0, {}, set())[0].state == "rollback_paused"


def test_a_failure_outside_the_window_is_not_the_updaters():
    up = Updater("web", UpdateConfig(monitor=1.0), False, [1], 1, 0)
    up.step(0.0, {1: "a"}, set())
    up.step(0.5, {1: "b"}, {1})
    assert up.step(1.5, {1: "b"}, {1})[0].state == "completed"
    up.task_failed(1, "web.1")
    assert up.failed == []


# -- through the manager, on the fake kernel ----------------------------------------------

def _lab(store, **fields):
    st = store.load("hello-a")
    st.model = replace(st.model, services=tuple(replace(s, **fields) for s in st.model.services))
    store.save(st)


def _run(mgr, clock, seconds):
    end = clock.t + seconds
    while clock.t < end:
        for action in mgr.step():
            mgr.carry_out(action)
        clock.t += 0.1


def _manager(store, fake, clock, probe=None):
    fake.managers[4002] = str(store.path("hello-a"))      # the manager runs (for the checks)
    return Manager("hello-a", store, InstantHeartbeats(), _real_act("hello-a", store, fake.host()),
                   clock=clock, wall=lambda: 1.7e9 + clock.t, probe=probe)


def _runs_manager(store, fake):
    st = store.load("hello-a")
    return st.manager_pid is not None


def test_an_update_replaces_every_task_with_a_new_address_and_completes(seed):
    store, fake = seed
    _lab(store, update_config=UpdateConfig(delay=1.0, monitor=2.0))
    clock = ManagerClock()
    mgr = _manager(store, fake, clock)
    before = store.load("hello-a")
    old = {t.name: str(before.allocations.primary_ip(t.name, before.model))
           for t in before.model.tasks}
    status = lab_tasks.begin_update("hello-a", "hello-a", store, image="web:2",
                                    host=fake.host())
    assert status.state == "updating" and status.previous_image == "netlab/app:latest"
    _run(mgr, clock, 6.0)
    after = store.load("hello-a")
    assert after.updates["hello-a"].state == "completed"
    assert {t.image for t in after.model.tasks} == {"web:2"}
    new = {t.name: str(after.allocations.primary_ip(t.name, after.model))
           for t in after.model.tasks}
    assert set(new) == set(old) and not set(new.values()) & set(old.values())
    said = [(e.subject, e.action) for e in parse_lines(
        store.read_file("hello-a", events_name("hello-a")))]
    assert said[-1] == ("hello-a", "completed")
    assert ("hello-a", "update-plan") in said
    ended = [r for r in after.desired_tasks if r.state == "shutdown"]
    assert len(ended) == 2 and all("replaced by a task of web:2" in r.ended_by for r in ended)


def test_start_first_runs_the_new_task_beside_the_old_until_it_is_healthy(seed):
    """Each slot has a task serving at weight 1 at every step: the new one starts beside
    the old (named <service>.<slot>.1, weight 0 until healthy), then the old one
    leaves (weight 0, the gossip delay, stopped). A second update names them back."""
    store, fake = seed
    _lab(store, healthcheck=HC, update_config=UpdateConfig(order="start-first", monitor=1.0))
    clock = ManagerClock()

    def probe(task, port, path, timeout):
        return ProbeResult(0, "200", clock.t, clock.t)

    mgr = _manager(store, fake, clock, probe)
    _run(mgr, clock, 3.0)
    sbox = "nl-hello-a.node1.ingress_sbox"
    serving_each_step = []
    orig_step = mgr.step

    def step():
        serving_each_step.append({a for (ns, _f, a), w in fake.kernel.weights.items()
                                  if ns == sbox and w == 1})
        return orig_step()

    mgr.step = step
    lab_tasks.begin_update("hello-a", "hello-a", store, image="web:2", host=fake.host())
    _run(mgr, clock, 15.0)
    after = store.load("hello-a")
    assert after.updates["hello-a"].state == "completed"
    assert sorted(t.name for t in after.model.tasks) == ["hello-a.1.1", "hello-a.2.1"]
    assert {t.image for t in after.model.tasks} == {"web:2"}
    slot_of = {r.address: r.slot for r in after.desired_tasks if r.address}
    slot_of |= {str(after.allocations.primary_ip(t.name, after.model)): t.slot
                for t in after.model.tasks}
    served = [sorted(slot_of[a] for a in at) for at in serving_each_step]
    assert all(set(s) == {1, 2} for s in served), served
    # Old ones; old and new of slot 1 (bound, the old not yet retired); ...; both new.
    assert [1, 1, 2] in served and served[-1] == [1, 2]
    assert len({frozenset(at) for at in serving_each_step}) == 5
    said = [(e.subject, e.action) for e in parse_lines(
        store.read_file("hello-a", events_name("hello-a")))]
    one = [(s, a) for s, a in said if s in ("hello-a.1", "hello-a.1.1")]
    assert one[-6:] == [("hello-a.1", "updating"), ("hello-a.1.1", "assigned"),
                        ("hello-a.1.1", "starting"), ("hello-a.1.1", "healthy"),
                        ("hello-a.1.1", "running"), ("hello-a.1", "shutdown")], one
    ended = [r for r in after.desired_tasks if r.state == "shutdown"]
    assert sorted(r.name for r in ended) == ["hello-a.1", "hello-a.2"]
    doc = store.path("hello-a").read_text()
    assert '"instance": 1' in doc
    lab_tasks.begin_update("hello-a", "hello-a", store, image="web:3", host=fake.host())
    _run(mgr, clock, 15.0)
    again = store.load("hello-a")
    assert sorted(t.name for t in again.model.tasks) == ["hello-a.1", "hello-a.2"]
    assert {t.image for t in again.model.tasks} == {"web:3"}


def test_a_version_failing_its_health_check_is_rolled_back(seed):
    store, fake = seed
    _lab(store, healthcheck=HC,
         update_config=UpdateConfig(failure_action="rollback", monitor=2.0))
    clock = ManagerClock()

    def probe(task, port, path, timeout):
        st = store.load("hello-a")
        t = next(x for x in st.model.tasks if x.name == task)
        bad = dict(t.env).get("NETLAB_APP_HEALTH") == "fail"
        return ProbeResult(1 if bad else 0, "503" if bad else "200", clock.t, clock.t)

    mgr = _manager(store, fake, clock, probe)
    _run(mgr, clock, 3.0)                        # both tasks healthy and bound
    lab_tasks.begin_update("hello-a", "hello-a", store, image="web:2",
                           env={"NETLAB_APP_HEALTH": "fail"}, host=fake.host())
    _run(mgr, clock, 30.0)
    after = store.load("hello-a")
    status = after.updates["hello-a"]
    assert status.state == "rollback_completed", status
    assert after.model.service("hello-a").image == "netlab/app:latest"
    assert all(t.image == "netlab/app:latest" and not t.env for t in after.model.tasks)
    said = [(e.subject, e.action) for e in parse_lines(
        store.read_file("hello-a", events_name("hello-a")))]
    assert ("hello-a", "rollback-started") in said, said
    assert said.index(("hello-a", "rollback-started")) < said.index(
        ("hello-a", "rollback-completed")), said


def test_update_and_rollback_refuse_what_they_cannot_do(seed):
    store, fake = seed
    with pytest.raises(BadInput, match=r"^SERVICE: lab hello-a has no service 'web'"):
        lab_tasks.begin_update("hello-a", "web", store, image="web:2", host=fake.host())
    with pytest.raises(BadInput, match=r"no previous spec to roll back to"):
        lab_tasks.begin_rollback("hello-a", "hello-a", store, host=fake.host())
    fake.managers.clear()
    st = store.load("hello-a")
    if st.manager_pid is not None:
        with pytest.raises(BadInput, match=r"^LAB: the manager of hello-a is not running"):
            lab_tasks.begin_update("hello-a", "hello-a", store, image="web:2",
                                   host=fake.host())
    assert store.load("hello-a").updates == {}


@pytest.mark.parametrize("args, message", [
    (["--image", "web 2"], "--image: image 'web 2' holds whitespace"),
    (["--env", "1X=2"], "--env: '1X=2' is not NAME=VALUE"),
    (["--update-delay", "soon"], "--update-delay: 'soon' is not a duration"),
    (["--update-max-failure-ratio", "2"], "--update-max-failure-ratio: '2' is not a ratio"),
    (["--update-parallelism", "-1"], "--update-parallelism: '-1' is not a number of tasks"),
])
def test_netlab_update_bad_options_exit_2_with_one_line(seed, monkeypatch, args, message):
    store, _fake = seed
    monkeypatch.setenv("NETLAB_STATE_DIR", str(store.root))
    result = CliRunner().invoke(cli, ["update", "hello-a", "hello-a", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_up_keeps_an_update_and_a_new_image_in_the_scenario_is_a_rolling_update(seed, tmp_path):
    from netlab import lifecycle
    from netlab.scenario import load_lab
    store, fake = seed
    fake.managers[4002] = str(store.path("hello-a"))
    lab_tasks.begin_update("hello-a", "hello-a", store, image="web:2", host=fake.host())
    scenario = store.load("hello-a").scenario
    # up with the scenario as it was (no image: netlab's app): the update is kept.
    lifecycle.up(load_lab(scenario), scenario, store, "legacy", host=fake.host())
    st = store.load("hello-a")
    assert st.model.service("hello-a").image == "web:2"
    assert st.updates["hello-a"].state == "updating"           # the manager goes on with it
    assert {t.image for t in st.model.tasks} == {"netlab/app:latest"}   # not replaced by up
    # A scenario with a new image: a rolling update from the spec the lab had.
    text = Path(scenario).read_text().replace("    deploy:\n", "    image: web:3\n    deploy:\n", 1)
    newer = tmp_path / "hello-a-3.yaml"
    newer.write_text(text)
    lifecycle.up(load_lab(newer), str(newer), store, "legacy", host=fake.host())
    st = store.load("hello-a")
    assert st.model.service("hello-a").image == "web:3"
    assert st.updates["hello-a"].previous_image == "web:2"
    assert st.updates["hello-a"].message == "update in progress (netlab up)"
    assert {t.image for t in st.model.tasks} == {"netlab/app:latest"}


def test_scale_and_drain_detach_ask_the_change_in_the_background(seed, monkeypatch):
    store, _fake = seed
    monkeypatch.setenv("NETLAB_STATE_DIR", str(store.root))
    started = []
    monkeypatch.setattr("netlab.cli.detach.run_detached",
                        lambda st, lab, argv: started.append(argv) or 4321)
    r = CliRunner().invoke(cli, ["scale", "hello-a", "hello-a=3", "--detach"])
    assert r.exit_code == 0 and "scaling in the background (pid 4321" in r.output, r.output
    r = CliRunner().invoke(cli, ["node", "hello-a", "node2", "drain", "--detach"])
    assert r.exit_code == 0 and "drain in the background" in r.output, r.output
    assert started == [["scale", "hello-a", "hello-a=3"], ["node", "hello-a", "node2", "drain"]]
    bad = CliRunner().invoke(cli, ["scale", "hello-a", "web=3", "--detach"])
    assert bad.exit_code == 2 and "SERVICE: lab hello-a has no service 'web'" in bad.output
    assert len(started) == 2


def test_a_slot_with_two_tasks_keeps_their_names_apart_when_a_node_goes_down(seed):
    from netlab.model import beside, restart_off
    store, _fake = seed
    lab = store.load("hello-a").model
    two = beside(lab, "hello-a", 1)
    # Placed with the old one counted: a tie on tasks of the service, then node order.
    assert sorted((t.name, t.node) for t in two.tasks_of("hello-a")) == [
        ("hello-a.1", "node1"), ("hello-a.1.1", "node1"), ("hello-a.2", "node2")]
    assert beside(two, "hello-a", 1) is two          # two in the slot already
    down = replace(two, nodes=tuple(replace(n, state="down") if n.name == "node1" else n
                                    for n in two.nodes))
    moved = restart_off(down)
    assert sorted((t.name, t.node) for t in moved.tasks_of("hello-a")) == [
        ("hello-a.1", "node2"), ("hello-a.1.1", "node2"), ("hello-a.2", "node2")]
