"""Host-mode ports on a real lab (scenarios/host-mode.yaml): cache publishes 6379 in host
mode on the node running cache.1 only, next to hello-a on the routing mesh (5000).

Checked on real traffic and with the machine's ``iptables-save``: the task on 6379 sees the
client's own address, the mesh on 5000 still shows the ingress sandbox's, the other node
refuses 6379, and the trace shows the node's DNAT and no IPVS.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import _bring_up, _tear_down, netlab, sh

CLIENT = "192.168.56.2"


@pytest.fixture(scope="module")
def hm():
    lab = _bring_up("host-mode.yaml")
    yield lab
    _tear_down(lab)


def _nodes(lab) -> tuple[str, str]:
    """(the node running cache.1, the other one), from the lab's state."""
    from netlab.state import StateStore
    model = StateStore().load(lab.name).model
    with_task = next(t.node for t in model.tasks if t.name == "cache.1")
    other = next(n.name for n in model.nodes if n.name != with_task)
    return with_task, other


def test_host_mode_port_answers_on_the_tasks_node_with_the_real_client(hm):
    node, _ = _nodes(hm)
    replies = hm.curl(f"{node}:6379", 3)
    assert [r["ok"] for r in replies] == [True, True, True]
    assert {r["task"] for r in replies} == {"cache.1"}
    assert {r["client"] for r in replies} == {CLIENT}      # no SNAT: the client IP is kept


def test_the_other_node_refuses_the_host_mode_port(hm):
    _, other = _nodes(hm)
    proc = netlab("curl", hm.name, f"{other}:6379", "--json", check=False)
    assert proc.returncode == 1
    (reply,) = json.loads(proc.stdout)
    assert reply["ok"] is False and "refused" in reply["error"].lower()


def test_ingress_port_still_hides_the_client_behind_the_sandbox(hm):
    sbox = {n["name"]: n["ingress_sbox_ip"] for n in hm.status()["nodes"]}
    for node in ("node1", "node2"):
        replies = hm.curl(f"{node}:5000", 2)
        assert all(r["ok"] for r in replies)
        assert {r["client"] for r in replies} == {sbox[node]}   # the ingress SNAT, not CLIENT


def test_iptables_save_shows_the_bridge_drivers_dnat_on_the_tasks_node_only(hm):
    node, other = _nodes(hm)
    from netlab.state import StateStore
    gw_ip = str(StateStore().load(hm.name).allocations.tasks["cache.1"].gw_ip)
    nat = sh(hm.netns(node), hm.save, "-t", "nat")
    dnat = [line for line in nat.splitlines() if "-j DNAT" in line and "6379" in line]
    assert len(dnat) == 1, nat
    assert dnat[0].startswith("-A DOCKER ! -i docker_gwbridge -p tcp -m tcp --dport 6379")
    assert dnat[0].endswith(f"-j DNAT --to-destination {gw_ip}:6379")
    assert (f"-A POSTROUTING -s {gw_ip}/32 -d {gw_ip}/32 -p tcp -m tcp --dport 6379") in nat
    filt = sh(hm.netns(node), hm.save, "-t", "filter")
    assert (f"-A DOCKER -d {gw_ip}/32 ! -i docker_gwbridge -o docker_gwbridge -p tcp -m tcp "
            "--dport 6379") in filt
    assert "6379" not in sh(hm.netns(other), hm.save, "-t", "nat")
    assert "6379" not in sh(hm.netns(other), hm.save, "-t", "filter")


def test_trace_to_the_host_mode_port_is_a_dnat_on_the_node_and_no_ipvs(hm):
    node, other = _nodes(hm)
    trace = json.loads(netlab("trace", hm.name, f"{node}:6379", "--json").stdout)
    assert trace["verdict"] == "delivered", trace["reason"]
    assert trace["backend"]["task"] == "cache.1"
    events = [h["event"] for h in trace["hops"] if h["leg"] == "request"]
    assert "ipvs" not in events and "mark" not in events and "snat" not in events
    dnat = [h for h in trace["hops"] if h["event"] == "dnat"]
    assert len(dnat) == 1 and dnat[0]["netns"] == node
    assert dnat[0]["object"] == "task/cache.1:host/6379"
    assert dnat[0]["rule"] in sh(hm.netns(node), hm.save, "-t", "nat")
    assert "deliver" in events and f"client as {CLIENT}" in trace["reason"]
    refused = netlab("trace", hm.name, f"{other}:6379", "--json", check=False)
    assert refused.returncode == 1
    doc = json.loads(refused.stdout)
    assert doc["verdict"] == "refused"
    assert f"cache publishes tcp/6379 in host mode, only on the nodes running its tasks ({node})" \
        in doc["reason"]
