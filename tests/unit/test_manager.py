"""The lab's manager (netlab.manager): heartbeats, node states, restarts, events,
driven by a fake clock and fake heartbeats (no root, no process)."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from netlab import converge, lifecycle
from netlab.cli.main import cli
from netlab.manager import control
from netlab.manager.dispatcher import DOWN, HEARTBEAT_FAILURE, READY, UNKNOWN, UNKNOWN_FAILURE, Dispatcher
from netlab.manager.events import event, parse_lines, render
from netlab.manager.orchestrator import NodeReady, Orchestrator, RestartTasks
from netlab.manager.process import Manager, events_name, status_name
from netlab.manager.timings import Timings, check_scale

SWARM = Timings()            # swarmkit's own: 5 s ± 0.5, x3, restart delay 5 s


def test_the_default_timings_are_swarmkits_and_a_time_scale_shrinks_them():
    assert (SWARM.heartbeat_period, SWARM.heartbeat_epsilon, SWARM.grace_multiplier,
            SWARM.restart_delay) == (5.0, 0.5, 3, 5.0)
    t = Timings.scaled(0.1)
    assert (t.heartbeat_period, t.heartbeat_epsilon, t.restart_delay, t.scale) == (0.5, 0.05, 0.5, 0.1)
    # Twice in a NetworkDB probe timeout (0.5 s x 0.1), a tenth of a heartbeat period at most.
    assert t.grace_multiplier == 3 and t.tick == pytest.approx(0.025)
    assert SWARM.tick == pytest.approx(0.25) and Timings.scaled(10).tick == 0.5
    for bad in (0, -1, 11, float("nan"), float("inf"), "0.1", True, None):
        with pytest.raises(ValueError, match=r"a time scale is a number from 0\.01 to 10"):
            check_scale(bad)


# -- the dispatcher -------------------------------------------------------------------

def test_a_node_is_down_three_chosen_periods_after_its_last_heartbeat():
    d = Dispatcher(SWARM, ["node1", "node2"], now=0.0, rng=random.Random(1))
    assert d.states() == {"node1": UNKNOWN, "node2": UNKNOWN}
    assert [t.after for t in (d.beat("node1", 0.0), d.beat("node2", 0.0))] == [READY, READY]
    for now in (4.9, 9.8):                  # node1 keeps beating, node2 is silent
        assert d.beat("node1", now) is None
    deadline = d.deadline("node2")
    assert 13.5 <= deadline <= 16.5         # (5 s ± 0.5) x 3 after its last heartbeat
    assert d.expire(deadline - 0.01) == []
    (t,) = d.expire(deadline)
    assert (t.node, t.before, t.after, t.at, t.message) == ("node2", READY, DOWN, deadline,
                                                            HEARTBEAT_FAILURE)
    d.beat("node1", deadline)
    assert d.expire(deadline + 1) == []                  # reported once; node1 still beats
    back = d.beat("node2", 40.0)
    assert (back.before, back.after) == (DOWN, READY)


def test_the_chosen_periods_spread_over_period_plus_or_minus_epsilon():
    d = Dispatcher(SWARM, ["n"], now=0.0, rng=random.Random(7))
    graces = []
    for i in range(200):
        d.beat("n", float(i))
        graces.append(d.deadline("n") - i)
    assert 13.5 <= min(graces) < 13.8 and 16.2 < max(graces) <= 16.5


def test_a_node_that_never_reports_after_the_manager_starts_has_twice_the_grace():
    d = Dispatcher(SWARM, ["node1", "node2"], now=100.0, rng=random.Random(3))
    d.beat("node1", 100.0)
    assert 127.0 <= d.deadline("node2") <= 133.0          # 6 periods: swarmkit's "unknown"
    d.beat("node1", 125.0)
    (t,) = d.expire(133.0)
    assert (t.node, t.before, t.message) == ("node2", UNKNOWN, UNKNOWN_FAILURE)


def test_heartbeats_of_a_node_the_lab_does_not_have_are_ignored():
    d = Dispatcher(SWARM, ["node1"], now=0.0)
    assert d.beat("node9", 1.0) is None and d.states() == {"node1": UNKNOWN}


# -- the orchestrator -----------------------------------------------------------------

def test_a_down_node_has_its_tasks_restarted_after_the_restart_delay():
    d = Dispatcher(SWARM, ["node1", "node2"], now=0.0, rng=random.Random(1))
    d.beat("node2", 0.0)
    (t,) = [x for x in d.expire(20.0) if x.node == "node2"]
    o = Orchestrator(SWARM)
    evs, acts = o.noticed(t, 1000.0, down_in_lab=False, tasks_on_node=["web.2", "web.4"])
    assert acts == [] and [(e.kind, e.subject, e.action) for e in evs] == [
        ("node", "node2", "down"), ("task", "web.2", "shutdown"), ("task", "web.4", "shutdown")]
    assert "restart delay (5 s)" in evs[1].message and "slot 2" in evs[1].message
    assert o.due(t.at + 4.99) == []
    assert o.due(t.at + 5.0) == [RestartTasks("node2", t.at + 5.0, ("web.2", "web.4"))]
    assert o.due(t.at + 60) == []                  # once


def test_a_node_already_down_in_the_lab_or_without_tasks_restarts_nothing():
    d = Dispatcher(SWARM, ["n"], now=0.0)
    (t,) = d.expire(100.0)
    o = Orchestrator(SWARM)
    assert o.noticed(t, 0.0, down_in_lab=True, tasks_on_node=["web.1"])[1] == []
    assert o.noticed(t, 0.0, down_in_lab=False, tasks_on_node=[])[1] == []
    assert o.waiting() == []


def test_a_node_back_is_marked_ready_in_the_lab_unless_a_restart_still_waits():
    o = Orchestrator(SWARM)
    d = Dispatcher(SWARM, ["n"], now=0.0)
    back = d.beat("n", 1.0)
    assert o.noticed(back, 0.0, down_in_lab=True, tasks_on_node=[])[1] == [NodeReady("n")]
    assert o.noticed(back, 0.0, down_in_lab=False, tasks_on_node=[])[1] == []


# -- the manager loop, on a fake clock and fake heartbeats --------------------------

class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class FakeHeartbeats:
    """Heartbeats that arrive at once, except from the nodes in ``cut``."""

    def __init__(self) -> None:
        self.cut: set[str] = set()
        self.inbox: list[str] = []
        self.sent: list[str] = []

    def send(self, node: str) -> bool:
        self.sent.append(node)
        if node not in self.cut:
            self.inbox.append(node)
        return True

    def receive(self) -> list[str]:
        out, self.inbox = self.inbox, []
        return out


def _run(mgr: Manager, clock: Clock, until: float, done: list) -> None:
    while clock.t < until:
        for action in mgr.step():
            done.append((round(clock.t, 2), action))
            mgr.carry_out(action)
        clock.t += mgr.timings.tick


def test_the_manager_notices_a_cut_node_restarts_its_tasks_and_marks_it_ready_back(seed):
    store, fake = seed
    st = store.load("hello-a")
    st.time_scale = 0.1
    store.save(st)
    clock, hb, done = Clock(), FakeHeartbeats(), []

    def act(action):
        verb = "down" if isinstance(action, RestartTasks) else "up"
        converge.noticed("hello-a", action.node, verb, "heartbeat failure" if verb == "down"
                         else "heartbeat received", store, host=fake.host())

    mgr = Manager("hello-a", store, hb, act, clock=clock, wall=lambda: 1e9 + clock.t,
                  rng=random.Random(5))
    _run(mgr, clock, 2.0, done)
    assert mgr.dispatcher.states() == {"node1": READY, "node2": READY} and done == []
    assert {"node1", "node2"} <= set(hb.sent)
    hb.cut.add("node2")
    cut_at = clock.t
    _run(mgr, clock, cut_at + 4.0, done)
    # Noticed after 3 chosen periods (1.35-1.65 s from its last beat), restarted 0.5 s later.
    ((at, action),) = done
    assert isinstance(action, RestartTasks) and action.tasks == ("hello-a.2",)
    assert 1.3 <= at - cut_at <= 2.25
    after = store.load("hello-a")
    assert after.model.node("node2").state == "down"
    assert {t.name: t.node for t in after.model.tasks} == {"hello-a.1": "node1", "hello-a.2": "node1"}
    hb.cut.clear()
    _run(mgr, clock, clock.t + 2.0, done)
    assert isinstance(done[-1][1], NodeReady)
    assert store.load("hello-a").model.node("node2").state == "ready"
    evs = parse_lines(store.read_file("hello-a", events_name("hello-a")))
    said = [(e.subject, e.action) for e in evs]
    assert said == [("node1", "ready"), ("node2", "ready"), ("node2", "heartbeat-missed"),
                    ("node2", "down"), ("hello-a.2", "shutdown"), ("node2", "restarting-tasks"),
                    ("hello-a.2", "running"), ("node2", "ready"), ("node2", "ready-in-lab")]
    assert [e.time for e in evs] == sorted(e.time for e in evs)
    assert "(time scale 0.1)" in evs[2].message
    mgr._changed = True
    mgr.write_view()
    view = control.view(store, "hello-a")
    assert view["nodes"]["node2"]["state"] == READY and view["time_scale"] == 0.1


def test_a_loop_held_up_past_the_grace_blames_no_node_but_a_cut_one_is_still_noticed(seed):
    """The agents beat from the manager's loop: when the host held the loop up for
    longer than a node's grace, no node had a chance to beat, so none is down."""
    store, _fake = seed
    clock, hb, done = Clock(), FakeHeartbeats(), []
    mgr = Manager("hello-a", store, hb, lambda _a: None, clock=clock, rng=random.Random(3))
    _run(mgr, clock, 10.0, done)
    clock.t += 30.0                           # twice the grace (13.5-16.5 s), no step
    _run(mgr, clock, clock.t + 1.0, done)
    assert done == [] and mgr.dispatcher.states() == {"node1": READY, "node2": READY}
    hb.cut.add("node2")
    cut_at = clock.t
    _run(mgr, clock, cut_at + 25.0, done)
    ((at, action),) = done                    # down 3 periods after its last beat, + 5 s
    assert isinstance(action, RestartTasks) and 13.0 + 5.0 <= at - cut_at <= 17.0 + 5.0


def test_a_late_heartbeat_that_comes_before_the_deadline_says_so(seed):
    store, _fake = seed
    clock, hb = Clock(), FakeHeartbeats()
    mgr = Manager("hello-a", store, hb, lambda _a: None, clock=clock, rng=random.Random(2))
    _run(mgr, clock, 10.0, [])
    hb.cut.add("node2")
    _run(mgr, clock, clock.t + 7.0, [])        # late (> 5.5 s), not yet down (>= 13.5 s)
    hb.cut.clear()
    _run(mgr, clock, clock.t + 6.0, [])
    said = [(e.subject, e.action) for e in parse_lines(
        store.read_file("hello-a", events_name("hello-a")))]
    assert said[-2:] == [("node2", "heartbeat-missed"), ("node2", "heartbeat-resumed")], said
    assert mgr.dispatcher.state("node2") == READY


def test_an_action_that_fails_is_an_event_and_the_loop_goes_on(seed):
    store, _fake = seed
    clock, hb = Clock(), FakeHeartbeats()

    def act(_action):
        raise RuntimeError("the kernel said no")

    mgr = Manager("hello-a", store, hb, act, clock=clock, rng=random.Random(1))
    mgr.carry_out(RestartTasks("node2", 0.0, ("hello-a.2",)))
    evs = parse_lines(store.read_file("hello-a", events_name("hello-a")))
    assert (evs[-1].kind, evs[-1].action) == ("manager", "error")
    assert "the kernel said no" in evs[-1].message


def test_a_lab_gone_under_an_action_is_an_error_event_not_a_dead_worker(seed):
    store, _fake = seed
    clock, hb, ran = Clock(), FakeHeartbeats(), []
    mgr = Manager("hello-a", store, hb, ran.append, clock=clock, rng=random.Random(1))
    state = store.load("hello-a")
    mgr.act = lambda action: (ran.append(action), store.remove("hello-a"))
    mgr.carry_out(RestartTasks("node2", 0.0, ("hello-a.2",)))      # state gone after the act
    evs = parse_lines(store.read_file("hello-a", events_name("hello-a")))
    assert (evs[-1].kind, evs[-1].action) == ("manager", "error") and len(ran) == 1
    store.save(state)
    mgr.act = ran.append
    mgr.carry_out(NodeReady("node2"))                                # the next one still runs
    assert ran[-1] == NodeReady("node2")


# -- events ---------------------------------------------------------------------------

def test_events_round_trip_and_bad_lines_are_skipped():
    e = event("node", "node2", "down", "heartbeat failure", at=1765120000.25)
    data = e.to_line() + b"not json\n" + b'{"time": "x"}\n' + b"[1]\n" + e.to_line()[:-5]
    assert parse_lines(data) == [e]
    assert render(e).startswith("15:06:40.250  node    node2") and "heartbeat failure" in render(e)
    with pytest.raises(ValueError):
        event("weather", "x", "y", "z")


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_netlab_events_prints_the_log_and_json_lines(seed, monkeypatch):
    from netlab.cli import common
    store, fake = seed
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(common, "host", fake.host)
    store.append_file("hello-a", events_name("hello-a"),
                      event("node", "node2", "down", "heartbeat failure", 1765120000.0).to_line())
    r = run("events", "hello-a")
    assert r.exit_code == 0 and "node2" in r.output and "heartbeat failure" in r.output
    assert "time scale 1" in r.output.splitlines()[0]
    r = run("events", "hello-a", "--json")
    assert [json.loads(line)["action"] for line in r.output.splitlines()] == ["down"]
    r = run("events", "nope")
    assert r.exit_code == 2 and "Error: LAB" in r.output


# -- up, down, status, and the state ---------------------------------------------------

def test_up_starts_one_manager_and_down_stops_it_and_removes_its_files(seed, tmp_path):
    store, fake = seed
    st = store.load("hello-a")
    assert st.manager_pid in fake.managers and st.time_scale == 1.0
    assert lifecycle.manager_runs(st, store, fake.process)
    first = st.manager_pid
    # up again: the same manager keeps running.
    lifecycle.up(st.model, st.scenario, store, "legacy", host=fake.host())
    assert store.load("hello-a").manager_pid == first and len(fake.managers) == 1
    # A new time scale restarts it.
    lifecycle.up(st.model, st.scenario, store, "legacy", host=fake.host(), time_scale=0.1)
    st = store.load("hello-a")
    assert st.manager_pid != first and fake.managers_stopped == [first] and st.time_scale == 0.1
    # Killed (gone from the machine): status says so, up starts another.
    fake.managers.pop(st.manager_pid)
    assert not lifecycle.manager_runs(st, store, fake.process)
    lifecycle.up(st.model, st.scenario, store, "legacy", host=fake.host())
    st = store.load("hello-a")
    assert lifecycle.manager_runs(st, store, fake.process) and st.time_scale == 0.1
    store.append_file("hello-a", events_name("hello-a"), b"")
    store.write_file("hello-a", status_name("hello-a"), b"{}")
    lifecycle.down("hello-a", store, host=fake.host())
    assert fake.managers == {} and st.manager_pid in fake.managers_stopped
    assert sorted(p.name for p in store.root.iterdir()) == []


def test_a_stale_state_naming_another_process_is_not_its_manager(seed):
    store, fake = seed
    st = store.load("hello-a")
    from netlab.kernel.procs import ProcessInfo
    fake.others[999] = ProcessInfo(999, ("python3", "-m", "netlab.manager", "--state",
                                         "/elsewhere/hello-a.json"), "S", 5)
    st.manager_pid = 999
    assert not lifecycle.manager_runs(st, store, fake.process)


@pytest.mark.parametrize("value, ok", [(0.1, True), (1, True), (0.001, False), ("fast", False),
                                       (None, True)])
def test_the_state_file_checks_its_time_scale(seed, value, ok):
    store, _fake = seed
    doc = json.loads(store.path("hello-a").read_text())
    if value is None:
        del doc["time_scale"]
    else:
        doc["time_scale"] = value
    store.path("hello-a").write_text(json.dumps(doc))
    if ok:
        assert store.load("hello-a").time_scale == (1.0 if value is None else value)
    else:
        with pytest.raises(Exception, match="time_scale"):
            store.load("hello-a")


def test_a_scenario_may_set_the_time_scale(tmp_path):
    from netlab.scenario import ScenarioError, load_lab
    from tests.unit.conftest import SCENARIOS
    text = (SCENARIOS / "hello-a.yaml").read_text()
    good = tmp_path / "fast.yaml"
    good.write_text(text + "time_scale: 0.05\n")
    assert load_lab(good).time_scale == 0.05
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "time_scale: soon\n")
    with pytest.raises(ScenarioError, match=r"time_scale must be a number from 0\.01 to 10"):
        load_lab(bad)


# -- load: the manager's failure windows explain their failures ----------------------

def test_a_cut_until_its_tasks_run_elsewhere_is_a_window_that_explains_failures():
    from netlab.changelog import Change
    from netlab.load.engine import Outcome
    from netlab.load.report import attribute, episodes, with_episodes
    evs = [event("node", "node2", "cut", "", 100.0), event("node", "node2", "heartbeat-missed", "", 100.6),
           event("node", "node2", "down", "", 101.5), event("node", "node2", "restarting-tasks", "", 106.5),
           event("task", "hello-a.2", "running", "", 108.0),
           event("node", "node3", "heartbeat-missed", "", 110.0)]
    eps = episodes(evs)
    assert [(c.what, c.started, c.converged) for c in eps] == [
        ("node2 cut off the LAN, until its tasks ran elsewhere", 100.0, 108.0),
        ("node3 stopped reporting, not repaired yet", 110.0, None)]
    back = episodes([event("node", "n", "cut", "", 1.0), event("node", "n", "uncut", "", 2.0)])
    assert [(c.started, c.converged) for c in back] == [(1.0, 2.0)]
    # Late, never down (a busy machine): the window closes at the next heartbeat.
    late = episodes([event("node", "n", "heartbeat-missed", "", 1.0),
                     event("node", "n", "heartbeat-resumed", "", 1.4)])
    assert [(c.what, c.converged) for c in late] == [("n stopped reporting, until back", 1.4)]
    scale = Change("scale", "hello-a=3", 90.0, 91.0)
    merged = with_episodes((scale,), evs)
    assert [c.kind for c in merged] == ["scale", "node", "node"]
    failed = Outcome(started=103.0, elapsed_ms=1000.0, ok=False, kind="timeout")
    _, unexplained = attribute([failed], merged[:2], 95.0, 109.0)
    assert unexplained == 0
    _, unexplained = attribute([failed], (scale,), 95.0, 109.0)
    assert unexplained == 1


def test_a_new_node_restarts_the_manager_so_its_agent_reports(seed, tmp_path):
    from tests.unit.conftest import SCENARIOS
    from netlab.scenario import load_lab
    store, fake = seed
    first = store.load("hello-a").manager_pid
    text = (SCENARIOS / "hello-a.yaml").read_text()
    assert "node2" in text
    bigger = tmp_path / "hello-a.yaml"
    bigger.write_text(text.replace("  node2: {role: worker}\n",
                                   "  node2: {role: worker}\n  node3: {role: worker}\n", 1))
    lab = load_lab(bigger)
    assert [n.name for n in lab.nodes][-1] == "node3", [n.name for n in lab.nodes]
    lifecycle.up(lab, str(bigger), store, "legacy", host=fake.host())
    assert store.load("hello-a").manager_pid != first and fake.managers_stopped == [first]
