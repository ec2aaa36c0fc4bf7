"""IPAM: deterministic addresses, MACs, marks, as Swarm hands them out."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from netlab import ipam
from netlab.model import IngressNetwork, Lab, Node, PublishedPort, Service, Underlay, place_tasks


def make(nodes=2, services=((2,),), subnet="10.0.0.0/24") -> Lab:
    ns = tuple(Node(f"node{i + 1}", "manager" if i == 0 else "worker") for i in range(nodes))
    svcs = tuple(Service(f"s{i}", r[0], (PublishedPort(5000 + i, 3000),)) for i, r in enumerate(services))
    return Lab("t", ns, svcs, IngressNetwork(ipaddress.IPv4Network(subnet)), tasks=place_tasks(ns, svcs))


def test_seed_addresses():
    a = ipam.allocate(make())
    assert [str(a.nodes[n].sandbox_ip) for n in ("node1", "node2")] == ["10.0.0.2", "10.0.0.3"]
    assert str(a.services["s0"].vip) == "10.0.0.4" and a.services["s0"].fwmark == 0x100
    assert [str(a.tasks[t].ingress_ip) for t in ("s0.1", "s0.2")] == ["10.0.0.5", "10.0.0.6"]
    assert str(a.nodes["node1"].lan_ip) == "192.168.56.11" and str(a.client_ip) == "192.168.56.2"
    assert str(a.nodes["node2"].sandbox_gw_ip) == "172.18.0.2"
    assert str(a.tasks["s0.2"].gw_ip) == "172.18.0.3"   # first task on node2's gwbridge


def test_mac_is_02_42_plus_ip_bytes():
    assert ipam.mac_for(ipaddress.IPv4Address("10.0.0.5")) == "02:42:0a:00:00:05"


def test_fwmarks_count_up_from_0x100():
    a = ipam.allocate(make(services=((1,), (1,), (1,))))
    assert [a.services[s].fwmark for s in ("s0", "s1", "s2")] == [256, 257, 258]


def test_allocation_is_deterministic():
    assert ipam.allocate(make(3, ((3,), (2,)))) == ipam.allocate(make(3, ((3,), (2,))))


def test_exhausted_subnet_names_what_did_not_fit():
    with pytest.raises(ipam.AddressSpaceExhausted, match="task"):
        ipam.allocate(make(2, ((11,),), subnet="10.0.0.0/28"))


def test_placement_spreads_like_swarm():
    lab = make(3, ((3,), (1,)))
    assert [(t.name, t.node) for t in lab.tasks] == [
        ("s0.1", "node1"), ("s0.2", "node2"), ("s0.3", "node3"), ("s1.1", "node1")]


def test_allocation_is_arithmetic_and_never_lists_a_subnets_hosts(monkeypatch):
    # A /3 ingress network made plan list 2^29 hosts (4 GB); a /8 took 35 s.
    def forbidden(_self):
        raise AssertionError("allocate listed every host of a subnet")
    monkeypatch.setattr(ipaddress.IPv4Network, "hosts", forbidden)
    lab = make(2, ((2,),), subnet="32.0.0.0/3")
    lab = dataclasses.replace(lab, underlay=Underlay(gwbridge=ipaddress.IPv4Network("172.0.0.0/8")))
    a = ipam.allocate(lab)
    assert [str(a.nodes[n].sandbox_ip) for n in ("node1", "node2")] == ["32.0.0.2", "32.0.0.3"]
    assert str(a.services["s0"].vip) == "32.0.0.4"
    assert [str(a.tasks[t].ingress_ip) for t in ("s0.1", "s0.2")] == ["32.0.0.5", "32.0.0.6"]
    assert (str(a.nodes["node2"].gateway_ip), str(a.nodes["node2"].sandbox_gw_ip)) == ("172.0.0.1", "172.0.0.2")
    assert str(a.tasks["s0.2"].gw_ip) == "172.0.0.3"
    assert str(a.nodes["node2"].lan_ip) == "192.168.56.12" and str(a.client_ip) == "192.168.56.2"


def test_the_last_host_is_used_and_the_broadcast_address_is_not():
    # /29: .1 gateway, .2-.3 sandboxes, .4 VIP, .5-.6 tasks; .7 is the broadcast.
    a = ipam.allocate(make(2, ((2,),), subnet="10.0.0.0/29"))
    assert str(a.tasks["s0.2"].ingress_ip) == "10.0.0.6"
    with pytest.raises(ipam.AddressSpaceExhausted, match=r"10\.0\.0\.0/29 has no address left for task s0\.3"):
        ipam.allocate(make(2, ((3,),), subnet="10.0.0.0/29"))


def test_exhaustion_is_bad_input():
    from netlab.errors import BadInput
    assert issubclass(ipam.AddressSpaceExhausted, BadInput)
