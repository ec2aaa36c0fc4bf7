"""``netlab scale`` on the seed lab, on a real kernel: IPVS read back with ``ipvsadm -Ln``
in every node's ingress_sbox, namespaces with ``ip netns list``, real requests through
the mesh, and ``status`` finding no drift after each change (no scenario file needed)."""

from __future__ import annotations

import json

from tests.integration.conftest import lab_netns, netlab, restarted, sh, wait_for


def _dests(ns: str) -> list[tuple[str, str]]:
    """(address, weight) of every real server of the fwmark services, as ipvsadm prints them."""
    out = []
    for line in sh(ns, "ipvsadm", "-Ln").splitlines():
        parts = line.split()
        if line.strip().startswith("->") and "RemoteAddress" not in line:
            out.append((parts[1].split(":")[0], parts[3]))
    return sorted(out)


def _replies(lab: str, count: int) -> list[str]:
    doc = json.loads(netlab("curl", lab, "node1:5000", "--count", str(count), "--json").stdout)
    return [r["task"] for r in doc]


def _no_drift(lab: str) -> dict:
    doc = json.loads(netlab("status", lab, "--json").stdout)
    assert doc["drift"] == [], doc["drift"]
    return doc


def test_scale_up_then_down_through_the_mesh(copied_lab):
    lab = copied_lab("hello-a.yaml")
    scenario, name = lab.scenario, lab.name
    scenario.unlink()          # scale works from the lab's memory alone
    sboxes = [n for n in lab_netns(name) if n.endswith(".ingress_sbox")]
    assert len(sboxes) == 2

    out = netlab("scale", name, "hello-a=3").stdout
    assert "+ hello-a.3" in out and "10.0.0.7" in out, out
    for ns in sboxes:
        assert _dests(ns) == [("10.0.0.5", "1"), ("10.0.0.6", "1"), ("10.0.0.7", "1")]
    replies = _replies(name, 6)
    assert sorted(replies[:3]) == ["hello-a.1", "hello-a.2", "hello-a.3"], replies
    assert replies[3:] == replies[:3], replies            # round robin, in IPVS order
    doc = _no_drift(name)
    assert [(t["name"], t["node"], t["ip"]) for t in doc["tasks"]] == [
        ("hello-a.1", "node1", "10.0.0.5"), ("hello-a.2", "node2", "10.0.0.6"),
        ("hello-a.3", "node1", "10.0.0.7")]

    out = netlab("scale", name, "hello-a=1").stdout
    assert "- hello-a.2" in out and "- hello-a.3" in out, out
    for ns in sboxes:
        assert _dests(ns) == [("10.0.0.5", "1")]
    left = lab_netns(name)
    assert not any(n.endswith((".hello-a.2", ".hello-a.3")) for n in left), left
    assert any(n.endswith(".hello-a.1") for n in left)
    assert set(_replies(name, 4)) == {"hello-a.1"}
    doc = _no_drift(name)
    assert [t["name"] for t in doc["tasks"]] == ["hello-a.1"]


def test_node_down_then_up(copied_lab):
    lab = copied_lab("hello-a.yaml", time_scale="0.1")
    name = lab.name
    out = netlab("node", name, "node2", "down").stdout
    assert "cut off the LAN (lan/veth-node2 down)" in out, out
    lan = next(n for n in lab_netns(name) if n.endswith(".lan"))
    assert "state DOWN" in sh(lan, "ip", "link", "show", "veth-node2")
    # The manager notices node2's heartbeats stop and restarts its task on node1.
    wait_for("the manager restarts node2's task", lambda: restarted(name, "node2"))
    sbox1 = next(n for n in lab_netns(name) if n.endswith(".node1.ingress_sbox"))
    assert _dests(sbox1) == [("10.0.0.5", "1"), ("10.0.0.7", "1")]   # node2's .6 is gone
    doc = json.loads(netlab("curl", name, "node1:5000", "--count", "4", "--json").stdout)
    assert {(r["task"], r["node"]) for r in doc} == {("hello-a.1", "node1"),
                                                    ("hello-a.2", "node1")}, doc
    status = _no_drift(name)
    assert [(n["name"], n["state"]) for n in status["nodes"]] == [("node1", "ready"),
                                                                  ("node2", "down")]
    assert ("hello-a.2", "node2", "shutdown") in [
        (h["name"], h["node"], h["state"]) for h in status["history"]]

    out = netlab("node", name, "node2", "up").stdout
    assert "back on the LAN" in out and "none of its old tasks move back" in out, out
    assert "state DOWN" not in sh(lan, "ip", "link", "show", "veth-node2")
    wait_for("the manager marks node2 ready", lambda: [n["state"] for n in json.loads(
        netlab("status", name, "--json").stdout)["nodes"]] == ["ready", "ready"])
    doc = json.loads(netlab("curl", name, "node2:5000", "--count", "4", "--json").stdout)
    assert {r["task"] for r in doc} == {"hello-a.1", "hello-a.2"}, doc
    assert {r["node"] for r in doc} == {"node1"}                     # nothing moved back
    _no_drift(name)


def test_drain_moves_tasks_off_a_node_whose_mesh_still_answers(copied_lab):
    lab = copied_lab("hello-a.yaml")
    name = lab.name
    out = netlab("node", name, "node1", "drain").stdout
    assert "- hello-a.1" in out and "+ hello-a.1" in out, out
    for ns in (n for n in lab_netns(name) if n.endswith(".ingress_sbox")):
        assert _dests(ns) == [("10.0.0.6", "1"), ("10.0.0.7", "1")]
    # node1 runs no task now, yet its port answers, from node2's tasks.
    doc = json.loads(netlab("curl", name, "node1:5000", "--count", "4", "--json").stdout)
    assert {(r["task"], r["node"]) for r in doc} == {("hello-a.1", "node2"),
                                                    ("hello-a.2", "node2")}, doc
    status = _no_drift(name)
    assert [(n["name"], n["availability"]) for n in status["nodes"]] == [
        ("node1", "drain"), ("node2", "active")]
    out = netlab("node", name, "node1", "active").stdout
    assert "no task moved" in out, out
    assert {t["node"] for t in _no_drift(name)["tasks"]} == {"node2"}


def test_weights_during_the_change_as_ipvsadm_shows_them(copied_lab):
    """libnetwork's order, read on the real kernel in the middle of each change: a
    leaving task's destination is at weight 0 on every ingress_sbox while its app
    stops (the others stay at 1), and a new task's is at weight 0 until its app
    serves; once the change returns, every destination is at 1."""
    from netlab import converge
    from netlab.state import StateStore
    lab = copied_lab("hello-a.yaml")
    name = lab.name
    sboxes = [n for n in lab_netns(name) if n.endswith(".ingress_sbox")]
    seen: dict[str, list[list[tuple[str, str]]]] = {}

    def watch(message: str) -> None:
        if message in ("stopping the removed tasks' apps", "starting the new tasks' apps"):
            seen[message] = [_dests(ns) for ns in sboxes]

    converge.scale(name, {"hello-a": 3}, StateStore(), watch)
    assert seen.pop("starting the new tasks' apps") == [
        [("10.0.0.5", "1"), ("10.0.0.6", "1"), ("10.0.0.7", "0")]] * 2   # new: 0 until it serves
    assert [_dests(ns) for ns in sboxes] == [
        [("10.0.0.5", "1"), ("10.0.0.6", "1"), ("10.0.0.7", "1")]] * 2
    converge.scale(name, {"hello-a": 2}, StateStore(), watch)
    assert seen.pop("stopping the removed tasks' apps") == [
        [("10.0.0.5", "1"), ("10.0.0.6", "1"), ("10.0.0.7", "0")]] * 2   # leaving: 0 first
    assert [_dests(ns) for ns in sboxes] == [[("10.0.0.5", "1"), ("10.0.0.6", "1")]] * 2
    _no_drift(name)
