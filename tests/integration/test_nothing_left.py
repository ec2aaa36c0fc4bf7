"""Nothing left behind, whatever happens (issue 17).

- 20 up/down cycles of the seed leave the root namespace byte-identical (links,
  addresses, routes, rules, iptables in both backends, net.* sysctls), and no
  process, file, namespace or mount behind;
- ``up`` killed with SIGKILL at ten points spread over its phases: ``down`` then
  leaves nothing, and (every other point) ``up`` again under the same name
  converges to a lab that answers; ``scale`` and ``node drain`` killed midway (and, in test_manager, the manager killed while it restarts a down node's tasks):
  ``up`` converges over the half-made change to a lab that answers, and ``down``
  straight after the kill leaves nothing;
- two labs side by side under ``load`` never see each other's traffic (each
  lab's ingress counts exactly its own connections), ``down`` of one leaves the other
  answering, and 10,000 requests at concurrency 50 go through the mesh with 0
  errors.

"Root namespace" is the guest's, in ``netlab vm``. Each test prints its figure
(see conftest.figure). The kills are deterministic (tests/integration/killpoints.py):
the CLI runs in a forked child that SIGKILLs itself at the n-th side effect of a
phase, so no Python start-up is paid per kill.
"""

from __future__ import annotations

import json
import secrets
import signal
import time

import pytest

from tests.integration import forked, killpoints
from tests.integration.conftest import SCENARIOS, lab_netns, netlab, sh
from tests.integration.leftovers import STATE, changed, machine_snapshot, processes

SEED = str(SCENARIOS / "hello-a.yaml")


def _name() -> str:
    return "t" + secrets.token_hex(3)


@pytest.fixture(scope="module", autouse=True)
def _machine_used_once():
    """One up/down cycle before this module's first snapshot: what the machine does once,
    the first time any lab is made (``ip netns`` makes /run/netns a shared mount of
    itself and leaves it so; netlab makes its state directory), is then in the
    snapshots taken before, and every figure below compares like with like."""
    lab = _name()
    try:
        netlab("up", SEED, "--name", lab)
    finally:
        netlab("down", lab, check=False)


def _nothing_of(lab: str) -> None:
    """No namespace, file or process of ``lab`` is left (read from /run/netns,
    netlab's state directory and /proc)."""
    assert lab_netns(lab) == [], f"namespaces of {lab} left"
    assert sorted(p.name for p in STATE.glob(f"{lab}.*")) == [], f"files of {lab} left"
    left = [line for line in processes().splitlines() if f"/{lab}." in line]
    assert left == [], f"processes of {lab} left: {left}"


def _answers(lab: str) -> None:
    replies = json.loads(netlab("curl", lab, "node1:5000", "--count", "2", "--json").stdout)
    assert [r["ok"] for r in replies] == [True, True], replies


def test_twenty_up_down_cycles_of_the_seed_leave_nothing(figure):
    before = machine_snapshot()
    started = time.monotonic()
    for _ in range(20):
        lab = _name()
        try:
            netlab("up", SEED, "--name", lab)
            assert len(lab_netns(lab)) == 10
        finally:
            netlab("down", lab)
        _nothing_of(lab)
    seconds = time.monotonic() - started
    after = machine_snapshot()
    assert changed(before, after) == {}
    figure("20 up/down cycles of the seed", f"{seconds:.1f} s, {seconds / 20:.2f} s a cycle, "
           f"root namespace, processes, files and mounts unchanged")


def test_up_killed_at_ten_points_then_down_leaves_nothing_and_up_converges(figure):
    before = machine_snapshot()
    lab = _name()
    done = killpoints.profile(["up", SEED, "--name", lab])   # the whole up, in a fork too
    try:
        assert done.exit_code == 0 and not done.killed, done
        _answers(lab)
    finally:
        netlab("down", lab)
    _nothing_of(lab)
    points = killpoints.spread(done, 10)          # after `netlab up: …`, every phase
    assert len(points) == 10 and len({p.line for p in points}) >= 4, (points, done)
    phases = []
    for i, point in enumerate(points):
        lab = _name()
        killed = killpoints.run(["up", SEED, "--name", lab], point)
        try:
            assert killed.killed, (point, killed)
            phases.append(f"{killed.phase.strip(' …')} +{point.effect}")
        finally:
            netlab("down", lab, check=False)
        _nothing_of(lab)
        if i % 2:
            # and up again, under the same name, converges to a lab that answers
            try:
                netlab("up", SEED, "--name", lab)
                _answers(lab)
            finally:
                netlab("down", lab)
            _nothing_of(lab)
    assert changed(before, machine_snapshot()) == {}
    figure("up killed at", "; ".join(phases))
    figure("side effects per phase of up", ", ".join(
        f"{line.strip(' …')[:30]}: {n}" for line, n in zip(done.lines, done.effects[1:], strict=False)))


def test_scale_and_node_drain_killed_midway_then_down_leaves_nothing_and_up_converges(figure):
    before = machine_snapshot()
    found = []
    for verb, args, midway in (
            ("scale", ["hello-a=5"], killpoints.Point(0, 1, after="IPVS services")),
            # node down only cuts the LAN port now (the manager restarts the tasks:
            # test_manager kills it midway); drain restarts them in the command.
            ("node", ["node2", "drain"], killpoints.Point(0, 1, after="removing"))):
        lab = _name()
        netlab("up", SEED, "--name", lab)
        try:
            killed = killpoints.run([verb, lab, *args], midway)
            assert killed.killed, (verb, killed)
            found.append(f"{verb} {' '.join(args)} killed after {killed.phase.strip(' …')!r}")
            netlab("up", SEED, "--name", lab)              # converges over the half-made change
            _answers(lab)
            status = json.loads(netlab("status", lab, "--json").stdout)
            assert status["tasks"] and status["drift"] == [], status["drift"]
            assert all(ns["exists"] for ns in status["namespaces"]), status["namespaces"]
        finally:
            netlab("down", lab, check=False)
        _nothing_of(lab)
        # and down straight after the kill leaves nothing either
        lab = _name()
        netlab("up", SEED, "--name", lab)
        try:
            assert killpoints.run([verb, lab, *args], midway).killed
        finally:
            netlab("down", lab)
        _nothing_of(lab)
    assert changed(before, machine_snapshot()) == {}
    figure("killed midway", "; ".join(found))


def _ingress_connections(lab, node: str) -> int:
    """Connections the node's routing mesh took in on port 5000: the packet count of
    its ``DOCKER-INGRESS`` DNAT rule (the nat table sees each connection's first
    packet only), read with ``iptables-save -c`` in the node's namespace."""
    out = sh(lab.netns(node), lab.save, "-c", "-t", "nat")
    counts = [int(line[1:].split(":")[0]) for line in out.splitlines()
              if line.startswith("[") and "-A DOCKER-INGRESS" in line and "--dport 5000" in line
              and "-j DNAT" in line]
    assert len(counts) == 1, out
    return counts[0]


def test_two_labs_side_by_side_under_load_never_see_each_others_traffic(lab_up, figure):
    a, b = lab_up("hello-a.yaml"), lab_up("hello-a.yaml")
    # b's load runs in a process of its own (a fork of this one), from before
    # a's 10,000 requests start until they are done.
    other = forked.netlab_started(["load", b.name, "node1:5000", "--concurrency", "10",
                                   "--duration", "600", "--json"])
    try:
        line = other.stderr.readline()
        assert "sending to node1:5000" in line, (line, other.communicate())
        started = time.monotonic()
        # (a per-request timeout that an emulated, shared machine cannot miss)
        doc = json.loads(netlab("load", a.name, "node1:5000", "-n", "10000", "-c", "50",
                                "--timeout", "30", "--json").stdout)
        seconds = time.monotonic() - started
    finally:
        other.send_signal(signal.SIGTERM)
        out, err = other.communicate(timeout=120)
    assert other.returncode == 0, (other.returncode, out[-2000:], err[-2000:])
    theirs = json.loads(out)
    assert (doc["requests"], doc["ok"], doc["failed"]) == (10000, 10000, 0), doc["errors"]
    assert theirs["failed"] == 0 and theirs["ok"] == theirs["requests"] > 0, theirs["errors"]
    # Each lab's node1 took in exactly its own lab's connections, and node2 none.
    assert _ingress_connections(a, "node1") == 10000
    assert _ingress_connections(b, "node1") == theirs["requests"]
    assert _ingress_connections(a, "node2") == _ingress_connections(b, "node2") == 0
    figure("10,000 requests at concurrency 50", f"0 errors, {seconds:.1f} s "
           f"({10000 / seconds:.0f}/s, p99 {doc['latency_ms']['p99']:.0f} ms), beside "
           f"{theirs['requests']} requests to the other lab")
    netlab("down", b.name)
    _nothing_of(b.name)
    _answers(a.name)
