"""``trace --docker`` against what a real node holds (tests/fixtures/real-swarm, recorded
from Docker 20.10 in netlab vm): node1's namespaces give the capture points and peers the
trace relies on (the snapshot read by netlab.docker.snapshot from the recorded Engine), and
Docker's own rule texts are the ones the trace's rule matching reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from netlab.docker.snapshot import Snapshot, read_snapshot
from netlab.docker.tracepath import capture_points, real_facts, real_path
from netlab.kernel.clientns import ClientNs
from netlab.kernel.iptables import parse_counters
from netlab.kernel.netns import ROOT_NETNS
from netlab.kernel.realns import RealLink, RealNs
from netlab.trace import rules
from netlab.trace.evidence import Flow
from tests.unit import test_trace_docker as synthetic
from tests.unit.recorded import CapturedEngine, captured_netns_files

REC = Path(__file__).resolve().parents[1] / "fixtures" / "real-swarm"
D = "/var/run/docker/netns/"
CLIENT = ClientNs("nl-dtrace-4242", "nldt4242", "eth0", "169.254.16.1", "169.254.16.2")


def recorded_ns(name: str) -> RealNs:
    """A RealNs from ``ip -d -j link``, ``ip -j addr`` and ``ipvsadm -Sn`` as recorded."""
    d = REC / "netns" / name
    addrs = {a["ifname"]: tuple(f"{i['local']}/{i['prefixlen']}" for i in a["addr_info"]
                                if i["family"] == "inet")
             for a in json.loads((d / "addr.json").read_text())}
    links = []
    for lk in json.loads((d / "link.json").read_text()):
        info = lk.get("linkinfo") or {}
        kind = info.get("info_kind")
        links.append(RealLink(lk["ifname"], lk["ifindex"], kind,
                              lk.get("link_index") if kind == "veth" else None, lk.get("master"),
                              lk.get("address"), addrs.get(lk["ifname"], ()),
                              (info.get("info_data") or {}).get("port") if kind == "vxlan" else None))
    schedulers = {int(w[2]): w[4] for w in (line.split() for line in
                  (d / "ipvsadm.txt").read_text().splitlines()) if w[:2] == ["-A", "-f"]}
    return RealNs(tuple(links), schedulers)


def recorded_snapshot() -> Snapshot:
    """node1 as netlab.docker.snapshot reads the recorded Engine and namespace listing."""
    return read_snapshot(CapturedEngine(REC), lambda: captured_netns_files(REC))


@pytest.fixture(scope="module")
def node1():
    snap = recorded_snapshot()
    seen = {ROOT_NETNS: recorded_ns("host")}
    seen.update({D + n: recorded_ns(n) for n in ("ingress_sbox", "1-jerclax3m4", "f0a0b60cc188")})
    path = real_path(snap, CLIENT, 5000, "tcp")
    return snap, path, capture_points(path, seen, {"192.168.77.1"}, CLIENT, "node1"), \
        real_facts(snap, path, seen)


def test_recorded_node1_capture_points(node1):
    snap, path, points, _facts = node1
    local = next(t for t in snap.tasks if t.node == "node1")
    assert path.targets[D + "f0a0b60cc188"] == local.name
    # The root namespace: the gwbridge ports and the LAN bridge's port (where VXLAN leaves),
    # never a bridge itself nor docker0.
    assert sorted(p.label for p in points if p.netns == ROOT_NETNS) == [
        "node1/rs-node2", "node1/veth4ec5e9b", "node1/vetha515a2b"]
    assert sorted(p.label for p in points if p.netns != ROOT_NETNS) == sorted([
        "client/eth0", "node1/ingress_sbox/eth0", "node1/ingress_sbox/eth1",
        "node1/ov-ingress/veth0", "node1/ov-ingress/veth1", "node1/ov-ingress/vxlan0",
        f"{local.name}/eth0", f"{local.name}/eth1"])


def test_recorded_node1_peers_and_names(node1):
    snap, _path, _points, facts = node1
    local = next(t for t in snap.tasks if t.node == "node1")
    sbox, ov, task = D + "ingress_sbox", D + "1-jerclax3m4", D + "f0a0b60cc188"
    assert facts.peer[(sbox, "eth1")] == "node1/vetha515a2b"
    assert facts.peer[(sbox, "eth0")] == "node1/ov-ingress/veth0"
    assert facts.peer[(ov, "veth1")] == f"{local.name}/eth0"
    assert facts.peer[(task, "eth1")] == "node1/veth4ec5e9b"
    assert facts.peer_mac[(ROOT_NETNS, "vetha515a2b")] == "02:42:ac:12:00:02"
    assert facts.scheduler == {(sbox, 256): "rr"} and facts.vxlan_port == 4789
    assert facts.tasks_by_ip == {t.addresses["ingress"].split("/")[0]: (t.name, t.node)
                                 for t in snap.tasks}


def test_recorded_rules_are_the_ones_the_trace_reads():
    """The rule texts of test_trace_docker are Docker's, and fit the seed's request."""
    def saved(ns: str) -> set[str]:
        text = (REC / "netns" / ns / "iptables-save.txt").read_text()
        counted = "\n".join(f"[1:60] {line}" if line.startswith("-A ") else line
                             for line in text.splitlines())    # as iptables-save -c prints it
        return {c.text for c in parse_counters(counted)}
    assert {synthetic.JUMP, synthetic.DNAT} <= saved("host")
    assert {synthetic.MARK, synthetic.SNAT} <= saved("ingress_sbox")
    assert synthetic.REDIRECT in saved("f0a0b60cc188")
    request = Flow("tcp", "169.254.16.2", 40000, "192.168.77.1", 5000)
    assert rules.fits(synthetic.DNAT, request)
    assert rules.option(synthetic.DNAT, "--to-destination") == "172.18.0.2:5000"
    assert rules.fits(synthetic.SNAT, Flow("tcp", "169.254.16.2", 40000, "10.0.0.6", 5000))
