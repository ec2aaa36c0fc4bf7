"""NetworkDB's failure detector (memberlist's), on a fake clock and a fake wire."""

from __future__ import annotations

import math
import random

import pytest

from netlab.manager import gossip as gs


class Wire:
    """Datagrams delivered at the next step, but to or from a cut node, or between
    a pair that cannot reach each other."""

    def __init__(self) -> None:
        self.queue: list[tuple[str, str, gs.Message]] = []
        self.cut: set[str] = set()
        self.blocked: set[frozenset[str]] = set()
        self.dropped: set[str] = set()          # kinds of message lost on the way
        self.sent: list[tuple[str, str, gs.Message]] = []

    def send(self, sender: str, to: str, msg: gs.Message) -> None:
        self.sent.append((sender, to, msg))
        if sender in self.cut or to in self.cut or frozenset((sender, to)) in self.blocked \
                or msg[0] in self.dropped:
            return
        self.queue.append((sender, to, msg))


def run(dbs: gs.NetworkDBs, wire: Wire, t0: float, until: float, changes: list,
        tick: float = 0.05) -> float:
    t = t0
    while t < until:
        while wire.queue:
            batch, wire.queue = wire.queue, []
            for sender, to, msg in batch:
                changes += dbs.received(to, sender, msg, t)
        changes += dbs.step(t)
        t = round(t + tick, 6)
    return t


def cluster(n: int, seed: int = 1):
    wire = Wire()
    nodes = [f"node{i}" for i in range(1, n + 1)]
    return gs.NetworkDBs(gs.GossipTimings(), nodes, 0.0, wire.send, random.Random(seed)), wire


def test_suspicion_bounds_are_memberlists():
    t = gs.GossipTimings()
    assert gs.suspicion_bounds(t, 2) == (0, 4.0, 24.0)        # n - 2 < k: no confirmations
    assert gs.suspicion_bounds(t, 4) == (2, 4.0, 24.0)
    k, low, high = gs.suspicion_bounds(t, 100)
    assert (k, low, high) == (2, 8.0, 48.0)                   # 4 x log10(100) x 1 s
    assert gs.remaining(0, 0, 4.0, 24.0) == 4.0
    assert gs.remaining(0, 2, 4.0, 24.0) == 24.0
    assert gs.remaining(1, 2, 4.0, 24.0) == math.floor(
        1000 * (24 - math.log(2) / math.log(3) * 20)) / 1000
    assert gs.remaining(2, 2, 4.0, 24.0) == 4.0
    assert gs.GossipTimings.scaled(0.1).probe_interval == pytest.approx(0.1)


def test_a_cut_peer_of_two_is_suspect_then_dead_five_to_six_seconds_on_and_back_on_rejoin():
    dbs, wire = cluster(2)
    changes: list[gs.ViewChange] = []
    t = run(dbs, wire, 0.0, 10.0, changes)
    assert changes == [] and dbs.failed() == {}
    wire.cut.add("node2")
    cut_at = t
    t = run(dbs, wire, t, t + 8.0, changes)
    seen = {(c.viewer, c.peer, c.state): c.at - cut_at for c in changes}
    # Probed within a second, no ack within the probe interval, then 4 s suspect.
    assert 1.0 <= seen[("node1", "node2", gs.SUSPECT)] <= 2.05
    assert 5.0 <= seen[("node1", "node2", gs.DEAD)] <= 6.05
    assert seen[("node1", "node2", gs.DEAD)] - seen[("node1", "node2", gs.SUSPECT)] == \
        pytest.approx(4.0, abs=0.06)
    assert ("node2", "node1", gs.DEAD) in seen          # the cut node holds the other dead
    assert dbs.failed() == {"node1": ("node2",), "node2": ("node1",)}
    wire.cut.clear()
    back_at = t
    changes.clear()
    run(dbs, wire, t, t + 2.0, changes)
    assert {(c.viewer, c.peer, c.state) for c in changes} == {
        ("node1", "node2", gs.ALIVE), ("node2", "node1", gs.ALIVE)}
    assert max(c.at for c in changes) - back_at <= 1.05     # the next reconnect (1 s)
    assert dbs.failed() == {}


def test_lost_acks_make_a_suspect_that_hears_it_refute_it_and_never_die():
    dbs, wire = cluster(2, seed=3)
    changes: list[gs.ViewChange] = []
    t = run(dbs, wire, 0.0, 3.0, changes)
    wire.dropped.add("ack")
    t = run(dbs, wire, t, t + 2.1, changes)                  # a probe each fails
    assert ("node1", "node2", gs.SUSPECT) in {(c.viewer, c.peer, c.state) for c in changes}
    wire.dropped.clear()
    run(dbs, wire, t, t + 10.0, changes)
    states = [(c.viewer, c.peer, c.state) for c in changes]
    assert gs.DEAD not in {s for _v, _p, s in states}
    assert ("node1", "node2", gs.ALIVE) in states and dbs.failed() == {}
    assert dbs.dbs["node2"].incarnation >= 1                 # it refuted the suspicion


def test_an_indirect_ack_keeps_a_peer_alive_when_only_the_direct_path_is_lost():
    dbs, wire = cluster(3)
    changes: list[gs.ViewChange] = []
    wire.blocked.add(frozenset(("node1", "node2")))
    run(dbs, wire, 0.0, 20.0, changes)
    assert changes == [], changes
    assert any(m[0] == "ping-req" for _s, _t, m in wire.sent)


def test_in_five_nodes_the_others_confirm_a_cut_one_dead_everywhere():
    dbs, wire = cluster(5, seed=7)
    changes: list[gs.ViewChange] = []
    t = run(dbs, wire, 0.0, 5.0, changes)
    wire.cut.add("node3")
    cut_at = t
    run(dbs, wire, t, t + 30.0, changes)
    dead = {c.viewer: c.at - cut_at for c in changes if c.peer == "node3" and c.state == gs.DEAD}
    assert set(dead) == {"node1", "node2", "node4", "node5"}
    # Confirmed by two others (k = 2): well before the unconfirmed 24 s.
    assert max(dead.values()) < 12.0, dead
    assert max(dead.values()) - min(dead.values()) < 0.2     # gossiped at once
    failed = dbs.failed()
    assert failed["node3"] == ("node1", "node2", "node4", "node5")
    assert all(failed[n] == ("node3",) for n in ("node1", "node2", "node4", "node5"))


def test_a_loop_held_up_moves_every_timer_on():
    dbs, wire = cluster(2)
    run(dbs, wire, 0.0, 3.0, [])
    before = dbs.dbs["node1"].next_probe
    dbs.shift(10.0)
    assert dbs.dbs["node1"].next_probe == before + 10.0
    changes: list[gs.ViewChange] = []
    run(dbs, wire, 13.0, 16.0, changes)
    assert changes == []


def test_messages_from_strangers_or_malformed_are_ignored():
    dbs, wire = cluster(2)
    assert dbs.received("node1", "nodeX", ("ping", "1"), 0.0) == []
    assert dbs.received("node1", "node2", ("suspect",), 0.0) == []
    assert dbs.received("node1", "node2", ("ack", "x"), 0.0) == []
    assert dbs.received("nodeX", "node2", ("ping", "1"), 0.0) == []
    assert wire.sent == []


# -- in the manager: each node's load balancers follow its NetworkDB -------------------

class GossipWire(Wire):
    """Wire as GossipSockets offers it to the manager (send, receive)."""

    def receive(self):
        out, self.queue = self.queue, []
        return [(to, sender, msg) for sender, to, msg in out]


def test_a_cut_node_leaves_the_others_load_balancers_before_the_manager_marks_it_down(seed):
    import json

    from netlab import converge
    from netlab.cli.common import plan_from_state
    from netlab.manager.events import parse_lines
    from netlab.manager.orchestrator import RestartTasks
    from netlab.manager.process import GossipView, Manager, _real_act, events_name
    from tests.unit.test_manager import Clock, FakeHeartbeats
    store, fake = seed
    st = store.load("hello-a")
    st.time_scale = 0.1
    store.save(st)
    clock, hb, wire, done = Clock(), FakeHeartbeats(), GossipWire(), []
    real = _real_act("hello-a", store, fake.host())

    def act(action):
        if isinstance(action, GossipView):
            return real(action)
        verb = "down" if isinstance(action, RestartTasks) else "up"
        converge.noticed("hello-a", action.node, verb, "heartbeat", store, host=fake.host())

    mgr = Manager("hello-a", store, hb, act, clock=clock, wall=lambda: 1e9 + clock.t,
                  rng=random.Random(4), gossip_net=wire)

    def run_for(seconds):
        end = clock.t + seconds
        while clock.t < end:
            for action in mgr.step():
                done.append((round(clock.t, 3), action))
                mgr.carry_out(action)
            clock.t = round(clock.t + mgr.timings.tick, 6)

    run_for(2.0)
    assert done == []
    task2 = str(store.load("hello-a").allocations.primary_ip("hello-a.2", st.model))
    sbox1 = "nl-hello-a.node1.ingress_sbox"
    assert any(k[0] == sbox1 and k[2] == task2 for k in fake.kernel.weights)
    hb.cut.add("node2")
    wire.cut.add("node2")
    cut_at = clock.t
    run_for(4.0)
    views = [(at, a) for at, a in done if isinstance(a, GossipView)]
    # memberlist x0.1: probed within 0.1 s, suspect 0.1 s later, failed 0.4 s after that:
    # before the manager marks it down and restarts its task.
    ((at, view),) = views[:1]
    assert 0.5 <= at - cut_at <= 0.62
    assert view.as_dict() == {"node1": ("node2",), "node2": ("node1",)}
    restart = next(at for at, a in done if isinstance(a, RestartTasks))
    # Down 3 periods (0.45-0.55 s) after its last beat before the cut, then 0.5 s.
    assert restart - cut_at >= 0.8 + 0.5 and restart > at
    # In between, node1's load balancer had node2's task out; the state said so and
    # the plan from the state (status's drift) agreed.
    # After the restart, hello-a.2 runs on node1: in node1's load balancer again.
    after = store.load("hello-a")
    assert after.gossip_failed == {"node1": ("node2",), "node2": ("node1",)}
    new2 = str(after.allocations.primary_ip("hello-a.2", after.model))
    assert {t.name: t.node for t in after.model.tasks} == {"hello-a.1": "node1",
                                                           "hello-a.2": "node1"}
    sb1 = {k[2] for k in fake.kernel.weights if k[0] == sbox1}
    assert new2 in sb1 and task2 not in sb1
    plan = plan_from_state(after)
    assert {d.addr for s in plan.ipvs if s.netns == sbox1 for d in s.dests} == sb1
    # Node2 (cut) holds node1 failed: its own sandbox hides the tasks now both on node1.
    sbox2 = "nl-hello-a.node2.ingress_sbox"
    assert not [d for s in plan.ipvs if s.netns == sbox2 for d in s.dests]
    # An up resets the state's view (and applies every destination): the manager tells
    # the load balancers again what NetworkDB holds.
    reset = store.load("hello-a")
    reset.gossip_failed = {}
    store.save(reset)
    run_for(0.1)
    assert store.load("hello-a").gossip_failed == {"node1": ("node2",), "node2": ("node1",)}
    hb.cut.clear()
    wire.cut.clear()
    run_for(2.0)
    assert isinstance([a for _at, a in done if isinstance(a, GossipView)][-1], GossipView)
    assert store.load("hello-a").gossip_failed == {}
    assert {k[2] for k in fake.kernel.weights if k[0] == sbox2} == sb1
    said = [(e.subject, e.action) for e in parse_lines(
        store.read_file("hello-a", events_name("hello-a")))]
    order = [a for s, a in said if s == "node2" and (a.startswith("gossip-") or a == "down")]
    assert order[:3] == ["gossip-suspect", "gossip-dead", "down"], said
    assert ("node2", "gossip-alive") in said
    told = [e.message for e in parse_lines(store.read_file("hello-a", events_name("hello-a")))
            if e.action == "load-balancers"]
    both = "the load balancers now follow NetworkDB: node1 hides node2; node2 hides node1"
    # Each change once (the second: after the reset above), none for a view told again.
    assert told == [both, both, "the load balancers now follow NetworkDB: none hides a peer"]
    doc = json.loads(store.path("hello-a").read_text())
    assert "gossip_failed" not in doc                      # written only when some hide


def test_the_state_file_checks_its_gossip_view(seed):
    import json
    store, _fake = seed
    doc = json.loads(store.path("hello-a").read_text())
    doc["gossip_failed"] = {"node1": ["node2"]}
    store.path("hello-a").write_text(json.dumps(doc))
    assert store.load("hello-a").gossip_failed == {"node1": ("node2",)}
    for bad in ({"node1": ["node1"]}, {"node9": ["node2"]}, {"node1": []}, ["node1"]):
        doc["gossip_failed"] = bad
        store.path("hello-a").write_text(json.dumps(doc))
        with pytest.raises(Exception, match="gossip_failed"):
            store.load("hello-a")
