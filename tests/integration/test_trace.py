"""``netlab trace`` on real labs: the seed's path there and back, round robin at the
packet level, the pcapng, and broken meshes diagnosed (unpublished port, a
deleted FDB entry, a DROP in a task's filter).

Rule texts and the IPVS choice are cross-checked with the standard tools
(the machine's ``iptables-save``, ``ipvsadm -Lnc``), independent of netlab's code.
"""

from __future__ import annotations

import json

import pytest

from netlab.plan import names
from tests.integration.conftest import netlab, sh

HOP_KEYS = {"seq", "node", "netns", "iface", "dir", "src", "dst", "proto", "event", "detail",
            "rule", "evidence"}
EVENTS = {"rx", "tx", "dnat", "mark", "ipvs", "snat", "encap", "decap", "redirect", "deliver",
          "un-nat", "drop", "reject", "rst"}
EVIDENCE = {"capture", "counter", "conntrack", "ipvs-conn", "fdb"}


def _events(trace: dict, leg: str) -> list[str]:
    return [h["event"] for h in trace["hops"] if h["leg"] == leg and h["event"] not in ("rx", "tx")]


def _hop(trace: dict, event: str, leg: str = "request") -> dict:
    return next(h for h in trace["hops"] if h["event"] == event and h["leg"] == leg)


@pytest.fixture(scope="module")
def four(seed_lab):
    """Four traced requests to node2:5000 (one --repeat run), as JSON."""
    doc = json.loads(netlab("trace", seed_lab.name, "node2:5000", "--repeat", "4", "--json").stdout)
    return doc


def test_every_hop_keeps_the_contract(four):
    for trace in four["traces"]:
        assert trace["verdict"] == "delivered"
        assert [h["seq"] for h in trace["hops"]] == list(range(1, len(trace["hops"]) + 1))
        for hop in trace["hops"]:
            assert hop.keys() >= HOP_KEYS
            assert hop["event"] in EVENTS
            assert hop["evidence"] and set(hop["evidence"]) <= EVIDENCE
        legs = [h["leg"] for h in trace["hops"]]
        assert legs == sorted(legs, key=lambda leg: leg == "reply")   # request hops, then reply hops
        assert trace["hops"][legs.index("reply") - 1]["event"] == "deliver"


def test_round_robin_seen_at_the_packet_level(four):
    assert four["round_robin"] is True
    assert sorted(four["counts"].items()) == [("hello-a.1", 2), ("hello-a.2", 2)]
    assert four["picks"][0] != four["picks"][1] and four["picks"][:2] == four["picks"][2:]
    for pick, trace in zip(four["picks"], four["traces"], strict=True):
        assert trace["backend"]["task"] == pick == trace["reply"]["task"]


def test_remote_backend_path_there_and_back(seed_lab, four):
    trace = next(t for t in four["traces"] if t["backend"]["task"] == "hello-a.1")
    assert trace["backend"] == {"task": "hello-a.1", "node": "node1", "ip": "10.0.0.5"}
    assert _events(trace, "request") == ["dnat", "mark", "ipvs", "snat", "encap", "decap",
                                         "redirect", "deliver"]
    dnat = _hop(trace, "dnat")
    assert dnat["netns"] == "node2" and "DNAT → 172.18.0.2:5000" in dnat["detail"]
    assert dnat["object"] == "svc/hello-a:publish/5000"
    assert dnat["rule"] in sh(names.node_ns(seed_lab.name, "node2"), seed_lab.save, "-t", "nat")
    mark = _hop(trace, "mark")
    assert mark["netns"] == "node2/ingress_sbox" and "MARK 0x100 (256)" in mark["detail"]
    assert mark["rule"] in sh(names.sandbox_ns(seed_lab.name, "node2"), seed_lab.save,
                              "-t", "mangle")
    ipvs = _hop(trace, "ipvs")
    assert "IPVS FWM 256 rr → 10.0.0.5:5000 (hello-a.1 on node1)" in ipvs["detail"]
    assert "ipvs-conn" in ipvs["evidence"]
    client_port = trace["request"]["src"].rsplit(":", 1)[1]
    conns = sh(names.sandbox_ns(seed_lab.name, "node2"), "ipvsadm", "-Lnc")
    assert any(f"192.168.56.2:{client_port}" in line and "10.0.0.5:5000" in line
               for line in conns.splitlines()), conns
    snat = _hop(trace, "snat")
    assert "SNAT → 10.0.0.3 (client IP lost here)" in snat["detail"]
    assert snat["src"].startswith("10.0.0.3:") and snat["dst"] == "10.0.0.5:5000"
    encap = _hop(trace, "encap")
    assert encap["detail"] == "VXLAN encap VNI 4096 192.168.56.12 → 192.168.56.11 udp/4789"
    assert (encap["netns"], encap["iface"], encap["dir"], encap["proto"]) == ("node2", "eth0", "out", "udp")
    assert encap["dst"] == "192.168.56.11:4789" and encap["evidence"] == ["capture"]
    decap = _hop(trace, "decap")
    assert (decap["netns"], decap["iface"]) == ("node1/ov-ingress", "vxlan0")
    redirect = _hop(trace, "redirect")
    assert redirect["netns"] == "hello-a.1" and "REDIRECT 5000 → 3000" in redirect["detail"]
    assert _hop(trace, "deliver")["dst"] == "10.0.0.5:3000"
    reply = _events(trace, "reply")
    assert reply == ["un-nat", "encap", "decap", "un-nat", "un-nat"]
    assert [h["netns"] for h in trace["hops"] if h["event"] == "un-nat"] == \
        ["hello-a.1", "node2/ingress_sbox", "node2"]
    last = trace["hops"][-1]
    assert (last["netns"], last["dir"], last["dst"]) == ("client", "in", trace["request"]["src"])
    assert last["src"] == "192.168.56.12:5000"


def test_local_backend_has_no_vxlan_hops(four):
    trace = next(t for t in four["traces"] if t["backend"]["task"] == "hello-a.2")
    assert _events(trace, "request") == ["dnat", "mark", "ipvs", "snat", "redirect", "deliver"]
    assert not {h["netns"] for h in trace["hops"]} & {"node1", "node1/ov-ingress", "hello-a.1"}


def test_pcapng_has_one_interface_per_capture_point(seed_lab, tmp_path):
    from scapy.utils import rdpcap

    out = tmp_path / "trace.pcapng"
    doc = json.loads(netlab("trace", seed_lab.name, "node2:5000", "--json",
                            "--pcap", str(out)).stdout)
    packets = rdpcap(str(out))
    names = {p.sniffed_on for p in packets}
    assert names <= set(doc["capture_points"])
    seen_on = {f"{h['netns']}/{h['iface']}" for h in doc["hops"] if h["event"] in ("rx", "tx")}
    assert seen_on <= names and len(seen_on) >= 10
    assert {p.direction for p in packets} == {1, 2}


def test_mermaid_sequence_diagram(seed_lab):
    out = netlab("trace", seed_lab.name, "node2:5000", "--format", "mermaid").stdout
    assert out.startswith("sequenceDiagram")
    assert "participant P1 as client" in out and "Note over" in out and "-->>" in out


def test_unpublished_port_is_refused_at_the_node(seed_lab):
    proc = netlab("trace", seed_lab.name, "node2:5999", "--json", check=False)
    assert proc.returncode == 1
    trace = json.loads(proc.stdout)
    assert trace["verdict"] == "refused" and trace["backend"] is None
    last = trace["hops"][-1]
    assert (last["event"], last["netns"], last["iface"]) == ("rst", "node2", "eth0")
    assert "nothing publishes tcp/5999 on node2" in last["detail"]
    assert last["rule"].endswith("-j RETURN") and "counter" in last["evidence"]
    assert not any(h["event"] == "dnat" for h in trace["hops"])


def test_broken_mesh_is_diagnosed(lab_up):
    """hello-a.1's FDB entry deleted on node2, and a DROP in hello-a.2's filter."""
    lab = lab_up("hello-a.yaml")
    sh(names.overlay_ns(lab.name, "node2"), "bridge", "fdb", "del", "02:42:0a:00:00:05",
       "dev", "vxlan0", "dst", "192.168.56.11", "self")
    sh(names.task_ns(lab.name, "hello-a.2"), "iptables", "-I", "INPUT", "-p", "tcp",
       "--dport", "3000", "-j", "DROP")
    proc = netlab("trace", lab.name, "node2:5000", "--repeat", "2", "--timeout", "1.5", "--json",
                  check=False)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["verdicts"] == ["dropped", "dropped"]
    by_task = {}
    for trace in doc["traces"]:
        ipvs = _hop(trace, "ipvs")
        by_task["hello-a.1" if "hello-a.1" in ipvs["detail"] else "hello-a.2"] = trace
    fdb_last = by_task["hello-a.1"]["hops"][-1]
    assert (fdb_last["event"], fdb_last["netns"], fdb_last["iface"]) == \
        ("drop", "node2/ov-ingress", "vxlan0")
    assert "no FDB entry for 02:42:0a:00:00:05 (hello-a.1 on node1)" in fdb_last["detail"]
    assert "fdb" in fdb_last["evidence"]
    assert not any(h["event"] == "encap" for h in by_task["hello-a.1"]["hops"])
    drop_last = by_task["hello-a.2"]["hops"][-1]
    assert (drop_last["event"], drop_last["netns"]) == ("drop", "hello-a.2")
    assert drop_last["rule"] == "-A INPUT -p tcp -m tcp --dport 3000 -j DROP"
    assert "counter" in drop_last["evidence"]


def test_three_nodes_tcp_and_udp_cross_the_mesh_from_a_node_without_the_task(lab_up):
    """api.1 runs on node1 only: node3 answers 9000/tcp and 9053/udp over the overlay."""
    lab = lab_up("three-nodes.yaml")
    for target, proto, task_port in (("node3:9000", "tcp", "9000"), ("node3:9053/udp", "udp", "53")):
        trace = json.loads(netlab("trace", lab.name, target, "--json").stdout)
        assert trace["verdict"] == "delivered", trace["reason"]
        assert trace["backend"]["task"] == "api.1" and trace["backend"]["node"] == "node1"
        assert trace["request"]["proto"] == proto
        assert _events(trace, "request") == ["dnat", "mark", "ipvs", "snat", "encap", "decap",
                                             "redirect", "deliver"]
        mark = _hop(trace, "mark")
        assert mark["netns"] == "node3/ingress_sbox"
        assert "MARK 0x101 (257)" in mark["detail"]      # api is the second service: one mark for both ports
        assert "IPVS FWM 257 rr → 10.0.0.10:" in _hop(trace, "ipvs")["detail"]
        encap = _hop(trace, "encap")
        assert encap["detail"].startswith("VXLAN encap VNI 4096 192.168.56.13 → 192.168.56.11")
        assert _hop(trace, "deliver")["dst"].endswith(f":{task_port}")
        assert "encap" in _events(trace, "reply") and trace["hops"][-1]["netns"] == "client"
