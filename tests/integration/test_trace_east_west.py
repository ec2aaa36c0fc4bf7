"""``netlab trace LAB SERVICE:PORT --from TASK`` on scenarios/east-west.yaml: the name's
answer, the task's packet to the VIP, the local lb-backend's mark, IPVS and SNAT,
VXLAN on backend's VNI when the task is remote, delivery; checked against the
kernel with the standard tools (iptables-save, ipvsadm -Lnc).
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import _bring_up, _tear_down, netlab, sh


@pytest.fixture(scope="module")
def ew():
    lab = _bring_up("east-west.yaml")
    yield lab
    _tear_down(lab)


def _hop(trace: dict, event: str) -> dict:
    return next(h for h in trace["hops"] if h["event"] == event and h["leg"] == "request")


def test_trace_by_name_follows_the_vip_through_the_local_lb_sandbox(ew):
    from netlab.state import StateStore
    state = StateStore().load(ew.name)
    model, na = state.model, state.allocations.networks["backend"]
    api = na.vips["api"]
    node = next(t.node for t in model.tasks if t.name == "web.1")
    lb = f"{node}/lb-backend"
    doc = json.loads(netlab("trace", ew.name, "api:80", "--from", "web.1", "--repeat", "3",
                            "--json").stdout)
    assert doc["verdicts"] == ["delivered"] * 3
    assert sorted(doc["picks"]) == sorted(t.name for t in model.tasks_of("api"))
    conns = sh(ew.netns(lb), "ipvsadm", "-Lnc")
    for trace in doc["traces"]:
        events = [h["event"] for h in trace["hops"]
                  if h["leg"] == "request" and h["event"] not in ("rx", "tx")]
        assert events[:4] == ["resolve", "mark", "ipvs", "snat"] and events[-1] == "deliver"
        resolve = trace["hops"][0]
        assert resolve["event"] == "resolve" and resolve["netns"] == "web.1"
        assert f"api → {api.vip} (the VIP" in resolve["detail"]
        mark = _hop(trace, "mark")
        assert mark["netns"] == lb and f"MARK {api.fwmark:#x}" in mark["detail"]
        assert mark["rule"] in sh(ew.netns(lb), ew.save, "-t", "mangle")
        ipvs = _hop(trace, "ipvs")
        chosen = trace["backend"]
        assert ipvs["netns"] == lb and f"→ {chosen['ip']}:80 ({chosen['task']} on " in ipvs["detail"]
        src_port = trace["request"]["src"].rsplit(":", 1)[1]
        assert any(f":{src_port}" in line and f"{chosen['ip']}:80" in line
                   for line in conns.splitlines()), conns
        snat = _hop(trace, "snat")
        assert f"SNAT → {na.lb[node]}" in snat["detail"]
        assert snat["rule"] in sh(ew.netns(lb), ew.save, "-t", "nat")
        assert trace["reply"]["client"].split(":")[0] == str(na.lb[node])   # Swarm's SNAT
        encaps = [h for h in trace["hops"] if h["event"] == "encap" and h["leg"] == "request"]
        if chosen["node"] != node:
            assert encaps and f"VNI {na.vni} " in encaps[0]["detail"]
        else:
            assert not encaps
        assert _hop(trace, "deliver")["netns"] == chosen["task"]


def test_trace_to_a_vip_address_needs_no_name(ew):
    from netlab.state import StateStore
    na = StateStore().load(ew.name).allocations.networks["backend"]
    vip = na.vips["api"].vip
    doc = json.loads(netlab("trace", ew.name, f"{vip}:80", "--from", "web.1", "--json").stdout)
    assert doc["verdict"] == "delivered" and doc["request"]["dst"] == f"{vip}:80"
    assert doc["hops"][0]["event"] == "resolve" and "no name to resolve" in doc["hops"][0]["detail"]
    assert doc["backend"]["task"].startswith("api.")
