"""``netlab up`` on a lab that is up converges it from its memory, on a real kernel.

Scaling ``web`` through the scenario file must not renumber ``api`` nor move
``api.1``: read back with ``ipvsadm -Ln`` in every node's ingress_sbox and by
real requests; once the file is gone, ``status`` still finds no drift.
"""

from __future__ import annotations

import json

from tests.integration.conftest import lab_netns, netlab, sh


def _backends(ns: str, fwmark: int) -> list[str]:
    """The real servers of a fwmark service, as ``ipvsadm -Ln`` prints them."""
    out, inside = [], False
    for line in sh(ns, "ipvsadm", "-Ln").splitlines():
        if line.startswith("FWM"):
            inside = line.split()[1] == str(fwmark)
        elif inside and line.strip().startswith("->") and "RemoteAddress" not in line:
            out.append(line.split()[1].split(":")[0])
    return sorted(out)


def test_scaling_through_up_keeps_the_other_service_in_place(copied_lab):
    lab = copied_lab("three-nodes.yaml")
    scenario, name = lab.scenario, lab.name
    scenario.write_text(scenario.read_text().replace("replicas: 3", "replicas: 4"))
    netlab("up", str(scenario), "--name", name)
    sboxes = [n for n in lab_netns(name) if n.endswith(".ingress_sbox")]
    assert len(sboxes) == 3
    for ns in sboxes:
        assert _backends(ns, 0x100) == ["10.0.0.11", "10.0.0.6", "10.0.0.7", "10.0.0.8"]
        assert _backends(ns, 0x101) == ["10.0.0.10"]           # api.1: same address
    replies = json.loads(netlab("curl", name, "node3:9000", "--count", "2", "--json").stdout)
    assert {(r["task"], r["node"], r["task_ip"]) for r in replies} == {("api.1", "node1", "10.0.0.10")}
    replies = json.loads(netlab("curl", name, "node2:8080", "--count", "4", "--json").stdout)
    assert sorted(r["task"] for r in replies) == ["web.1", "web.2", "web.3", "web.4"]

    scenario.write_text(scenario.read_text().replace("replicas: 4", "replicas: 2"))
    netlab("up", str(scenario), "--name", name)
    assert not any(n.endswith((".web.3", ".web.4")) for n in lab_netns(name))
    for ns in sboxes:
        assert _backends(ns, 0x100) == ["10.0.0.6", "10.0.0.7"]
        assert _backends(ns, 0x101) == ["10.0.0.10"]

    scenario.unlink()
    doc = json.loads(netlab("status", name, "--json").stdout)
    assert doc["drift"] == [] and [t["name"] for t in doc["tasks"]] == ["web.1", "web.2", "api.1"]
