"""``netlab load`` on a real kernel: a plain load balanced as IPVS round robin gives, and
a load at concurrency 20 while the lab scales 2 → 5 → 1 → 2 and node2 goes down and up,
losing no request that started after a change converged (read from the lab's change
log in its state file and the failures' own start times)."""

from __future__ import annotations

import json
import signal
import time

from netlab.state import StateStore
from tests.integration import forked
from tests.integration.conftest import netlab

# 2 → 5 → 1 → 2 (the new task goes to the emptier node2), then node2 fails (its task
# restarts on node1) and comes back.
# A change the command converges itself (node down only cuts the LAN port now: the
# manager restarts the tasks, later; its failure window is the manager's, not a change's).
CHANGES = [("scale", "hello-a=5"), ("scale", "hello-a=1"), ("scale", "hello-a=2"),
           ("node", "node2 drain"), ("node", "node2 active")]


def _load(lab: str, *args: str, code: int = 0) -> dict:
    r = netlab("load", lab, *args, "--json", check=False)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    doc = json.loads(r.stdout)
    _adds_up(doc)
    return doc


def _adds_up(doc: dict) -> None:
    assert doc["requests"] == doc["ok"] + doc["failed"] > 0
    assert sum(doc["replies"].values()) == doc["ok"]
    assert sum(doc["errors"].values()) == doc["failed"] == len(doc["failures"])
    assert all(doc["started"] <= f["started"] <= doc["ended"] for f in doc["failures"])


def test_plain_load_all_ok_and_balanced_as_round_robin(seed_lab):
    doc = _load(seed_lab.name, "node1:5000", "--requests", "200", "--concurrency", "10")
    assert (doc["requests"], doc["ok"], doc["failed"]) == (200, 200, 0)
    assert doc["replies"] == {"hello-a.1@node1": 100, "hello-a.2@node2": 100}
    assert doc["changes"] == [] and doc["unexplained_failures"] == 0
    lat = doc["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]

    # Keep-alive: IPVS balances connections (10 workers), the app keeps each one open.
    doc = _load(seed_lab.name, "node2:5000", "-n", "200", "-c", "10", "--keepalive")
    assert (doc["ok"], doc["failed"]) == (200, 0)
    assert set(doc["replies"]) == {"hello-a.1@node1", "hello-a.2@node2"}

    # From a task: out through its node's docker_gwbridge, back in on node2's mesh.
    doc = _load(seed_lab.name, "node2:5000", "-n", "40", "-c", "4", "--from", "hello-a.1")
    assert (doc["ok"], doc["from"]) == (40, "hello-a.1")
    assert doc["replies"] == {"hello-a.1@node1": 20, "hello-a.2@node2": 20}


def test_nothing_lost_after_each_change_converges(copied_lab):
    lab = copied_lab("hello-a.yaml")
    name = lab.name
    load = forked.netlab_started(["load", name, "node1:5000", "--concurrency", "20",
                                  "--duration", "600", "--timeout", "10", "--json"])
    try:
        _wait_for_first_requests(load)
        for kind, what in CHANGES:
            netlab(kind, name, *what.split())
            time.sleep(2)            # let requests run on the converged lab
    finally:
        load.send_signal(signal.SIGTERM)   # ends the run early, with its report
        out, err = load.communicate(timeout=120)
    assert load.returncode == 0, (load.returncode, out[-2000:], err[-2000:])
    doc = json.loads(out)
    _adds_up(doc)

    # The change log in the state file, with each change's start and convergence.
    log = [c for c in StateStore().load(name).changes if c.kind != "up"]
    assert [(c.kind, c.what) for c in log] == CHANGES
    assert all(c.converged is not None and doc["started"] < c.started < c.converged
               < doc["ended"] for c in log)
    # Every failed request was in flight while some change converged.
    for f in doc["failures"]:
        ended = f["started"] + f["elapsed_ms"] / 1000
        assert any(f["started"] < c.converged and ended >= c.started for c in log), f
    # The report says the same, change by change, with requests after each one.
    assert [(c["kind"], c["what"]) for c in doc["changes"]] == CHANGES
    for c in doc["changes"]:
        assert c["failed_after"] == 0 and c["requests_after"] > 0, c
    assert doc["unexplained_failures"] == 0
    # A request in flight across two changes (node drain, then active two seconds
    # later, with a 10 s timeout) counts in both, so the sum may exceed the failures.
    assert sum(c["failed_during"] for c in doc["changes"]) >= doc["failed"]

    # Replies came only from tasks the lab ran, on the node it ran them on.
    status = json.loads(netlab("status", name, "--json").stdout)
    ran = {f"{t['name']}@{t['node']}" for t in status["tasks"] + status["history"]}
    assert set(doc["replies"]) <= ran, (doc["replies"], ran)
    assert {f"hello-a.{i}" for i in range(1, 6)} <= {k.split("@")[0] for k in doc["replies"]}


def _wait_for_first_requests(load: forked.Child) -> None:
    """Wait until the load says it is sending (Python starts slowly in an emulated VM)."""
    line = load.stderr.readline()
    assert "sending to node1:5000" in line, (line, load.communicate())
    time.sleep(1)
