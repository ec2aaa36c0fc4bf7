"""The embedded DNS around the server: plan rules and port, /etc/netns files, the
endpoints file's ``dns`` list, and the app's UDP/TCP serving on loopback sockets."""

from __future__ import annotations

import json
import random
import selectors
import socket
import struct

import pytest
from dnslib import RCODE, DNSRecord

from netlab import ipam
from netlab.errors import NetlabError
from netlab.kernel import etcnetns
from netlab.kernel.netns import NetnsError
from netlab.lifecycle import resolvers
from netlab.plan import dns as plan_dns
from netlab.plan.build import build_plan
from netlab.plan.render import rule_spec
from netlab.plan.types import EtcFile
from netlab.scenario import load_lab_from_text
from netlab.workload.dns import Resolver, frame
from netlab.workload.dnsio import DnsConn, answer_datagrams
from netlab.workload.endpoints import DnsEndpoint, dns_from_json, endpoints_to_json

LAB = """
nodes: {n1: {role: manager}, n2: {}}
services:
  web: {deploy: {replicas: 2}, ports: ["8080:80"]}
  cache: {deploy: {replicas: 1}, ports: ["6379:6379/udp"]}
"""


def test_dns_port_is_deterministic_in_range_and_avoids_taken_ports() -> None:
    p = plan_dns.dns_port("web.1")
    assert p == plan_dns.dns_port("web.1") and 32768 <= p <= 60999
    assert plan_dns.dns_port("web.1", {p}) == p + 1 or (p == 60999 and plan_dns.dns_port("web.1", {p}) == 32768)
    assert len({plan_dns.dns_port(f"web.{i}") for i in range(1, 50)}) > 40


def test_every_task_gets_docker_s_nat_rules_in_kernel_order_and_its_files() -> None:
    lab = load_lab_from_text(LAB, "x.yaml")
    plan = build_plan(lab)
    for task in lab.tasks:
        ns = plan.namespace(task.name).name
        port = plan_dns.task_dns_port(lab, task)
        rules = [(r.chain, rule_spec(r).split(" -m comment")[0], r.target.name, r.target.options)
                 for r in plan.rules_in(ns, "nat") if "dns" in r.comment]
        assert rules == [
            ("OUTPUT", "-d 127.0.0.11/32", "DOCKER_OUTPUT", ()),
            ("POSTROUTING", "-d 127.0.0.11/32", "DOCKER_POSTROUTING", ()),
            ("DOCKER_OUTPUT", "-d 127.0.0.11/32 -p tcp -m tcp --dport 53", "DNAT",
             (("to-destination", f"127.0.0.11:{port}"),)),
            ("DOCKER_OUTPUT", "-d 127.0.0.11/32 -p udp -m udp --dport 53", "DNAT",
             (("to-destination", f"127.0.0.11:{port}"),)),
            ("DOCKER_POSTROUTING", f"-s 127.0.0.11/32 -p tcp -m tcp --sport {port}", "SNAT",
             (("to-source", ":53"),)),
            ("DOCKER_POSTROUTING", f"-s 127.0.0.11/32 -p udp -m udp --sport {port}", "SNAT",
             (("to-source", ":53"),)),
        ]
        assert {c for n, t, c in plan.user_chains if n == ns and t == "nat"} >= {
            "DOCKER_OUTPUT", "DOCKER_POSTROUTING"}
        files = {f.name: f.content for f in plan.items_in(ns).etc_files}
        assert files["resolv.conf"] == "nameserver 127.0.0.11\noptions ndots:0\n"
        assert files["hosts"].startswith("127.0.0.1\tlocalhost\n")
        ip = str(ipam.allocate(lab).tasks[task.name].ingress_ip)
        assert files["hosts"].endswith(f"\n{ip}\t{task.name}\n")


def test_every_task_gets_a_dns_server_on_its_planned_port_with_no_records_on_ingress() -> None:
    lab = load_lab_from_text(LAB, "x.yaml")
    servers = {s.task: s for s in resolvers(lab, ipam.allocate(lab))}
    assert sorted(servers) == ["cache.1", "web.1", "web.2"]
    assert all(s.records == () for s in servers.values())     # ingress: no discovery
    web1 = next(t for t in lab.tasks if t.name == "web.1")
    assert servers["web.1"].port == plan_dns.task_dns_port(lab, web1)


def test_endpoints_file_carries_dns_servers_and_refuses_bad_ones() -> None:
    d = DnsEndpoint("nl-x.web.1", "web.1", "n1", 40000, (("api", ("10.0.1.2",)),))
    text = endpoints_to_json([], [d])
    assert json.loads(text)["dns_tables"][json.loads(text)["dns"][0]["table"]] == {
        "api": ["10.0.1.2"]}
    assert dns_from_json(text) == [d]
    assert dns_from_json(endpoints_to_json([])) == []
    bad = json.loads(text)
    bad["dns_tables"][0] = {"api": ["not-an-ip"]}
    with pytest.raises(NetlabError, match=r"dns\[0\]: record api"):
        dns_from_json(json.dumps(bad))
    with pytest.raises(ValueError, match="two DNS servers"):
        endpoints_to_json([], [d, d])


def test_etc_netns_files_are_written_read_and_removed_alone(tmp_path) -> None:
    files = [EtcFile("nl-x.web.1", "resolv.conf", "nameserver 127.0.0.11\n"),
             EtcFile("nl-x.web.1", "hosts", "127.0.0.1\tlocalhost\n")]
    assert etcnetns.write(files, tmp_path) == 2
    assert etcnetns.write(files, tmp_path) == 0          # unchanged: not rewritten
    assert etcnetns.read("nl-x.web.1", tmp_path) == {f.name: f.content for f in files}
    (tmp_path / "other").mkdir()
    assert etcnetns.remove("nl-x.web.1", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]
    etcnetns.write(files, tmp_path)
    (tmp_path / "nl-x.web.1" / "user-file").write_text("mine")
    etcnetns.remove("nl-x.web.1", tmp_path)              # a file netlab did not write stays
    assert [p.name for p in (tmp_path / "nl-x.web.1").iterdir()] == ["user-file"]
    with pytest.raises(NetnsError):
        etcnetns.remove("../etc", tmp_path)
    with pytest.raises(ValueError):
        etcnetns.write([EtcFile("nl-x.web.1", "passwd", "")], tmp_path)


TABLE = {"api": ("10.0.1.2",)}


def test_udp_queries_on_a_loopback_socket_are_answered() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with server, client:
        server.bind(("127.0.0.1", 0))
        server.setblocking(False)
        client.settimeout(5)
        q1, q2 = DNSRecord.question("api"), DNSRecord.question("nope")
        client.sendto(q1.pack(), server.getsockname())
        client.sendto(b"\x00", server.getsockname())          # junk: dropped, no crash
        client.sendto(q2.pack(), server.getsockname())
        answered = []
        while len(answered) < 2:
            answer_datagrams(server, Resolver(TABLE), 64)
            client.settimeout(5)
            answered.append(DNSRecord.parse(client.recv(512)))
        assert [(r.header.id, r.header.rcode) for r in answered] == [
            (q1.header.id, RCODE.NOERROR), (q2.header.id, RCODE.NXDOMAIN)]
        assert str(answered[0].rr[0].rdata) == "10.0.1.2"


def test_tcp_connection_answers_framed_queries_split_across_reads() -> None:
    a, b = socket.socketpair()
    sel = selectors.DefaultSelector()
    with a, b:
        b.setblocking(False)
        conn = DnsConn(b, Resolver(TABLE, rng=random.Random(0)), deadline=0.0)
        sel.register(b, selectors.EVENT_READ, ("dnsconn", conn))
        q1, q2 = DNSRecord.question("api"), DNSRecord.question("API", "AAAA")
        stream = frame(q1.pack()) + frame(q2.pack())
        for chunk in (stream[:5], stream[5:30], stream[30:]):
            a.sendall(chunk)
            conn.on_ready(sel, selectors.EVENT_READ)
        a.settimeout(5)
        replies = []
        for _ in range(2):
            (n,) = struct.unpack("!H", a.recv(2, socket.MSG_WAITALL))
            replies.append(DNSRecord.parse(a.recv(n, socket.MSG_WAITALL)))
        assert [(r.header.id, [str(x.rdata) for x in r.rr]) for r in replies] == [
            (q1.header.id, ["10.0.1.2"]), (q2.header.id, [])]
        a.shutdown(socket.SHUT_WR)
        conn.on_ready(sel, selectors.EVENT_READ)
        assert conn.closed and sel.get_map() is not None and len(sel.get_map()) == 0
    sel.close()
