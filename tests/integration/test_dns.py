"""The embedded DNS at 127.0.0.11 inside every task, on a real lab (scenarios/hello-a.yaml).

Read back with the standard tools: the task's ``iptables-save -t nat`` holds Docker's
DOCKER_OUTPUT/DOCKER_POSTROUTING rules; glibc's ``getent`` (through ``netlab exec``,
so through /etc/netns/<ns>/resolv.conf) and raw queries to 127.0.0.11:53 get their
answers through the DNAT to the app's sockets. The ingress network gives no service
discovery, so names are unknown (NXDOMAIN) until the app is handed records: a test
gives it a hand-made table through the supervisor's own endpoints file + SIGHUP path.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from netlab.plan import dns as plan_dns
from netlab.plan import names
from tests.integration import forked
from tests.integration.conftest import _bring_up, _tear_down, netlab, sh

QUERY = """
import socket, struct, sys
from dnslib import DNSRecord
name, qtype, proto = sys.argv[1:4]
q = DNSRecord.question(name, qtype).pack()
if proto == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
    s.sendto(q, ("127.0.0.11", 53)); data, peer = s.recvfrom(65535)
else:
    s = socket.create_connection(("127.0.0.11", 53), timeout=5)
    s.sendall(struct.pack("!H", len(q)) + q)
    head = s.recv(2, socket.MSG_WAITALL); data = s.recv(struct.unpack("!H", head)[0], socket.MSG_WAITALL)
    peer = s.getpeername()
r = DNSRecord.parse(data)
from dnslib import RCODE
print(RCODE.get(r.header.rcode), peer[1], " ".join(str(rr.rdata) for rr in r.rr))
"""


@pytest.fixture(scope="module")
def lab():
    running = _bring_up("hello-a.yaml")
    yield running
    _tear_down(running)


def _exec(lab, target: str, *cmd: str) -> subprocess.CompletedProcess:
    """``netlab exec LAB TARGET -- CMD`` as a user runs it (a real process: exec replaces it)."""
    return netlab("exec", lab.name, target, "--", *cmd, check=False, process=True)


def _query(lab, target: str, name: str, qtype: str = "A", proto: str = "udp") -> str:
    proc = forked.python_in(lab.netns(target), QUERY, name, qtype, proto)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def _port(lab, task: str) -> int:
    from netlab.state import StateStore
    model = StateStore().load(lab.name).model
    return plan_dns.task_dns_port(model, next(t for t in model.tasks if t.name == task))


def test_the_task_holds_docker_s_resolver_nat_rules(lab):
    port = _port(lab, "hello-a.1")
    nat = [line for line in sh(lab.netns("hello-a.1"), lab.save, "-t", "nat").splitlines()
           if "127.0.0.11" in line]
    c = f'-m comment --comment "netlab:{lab.name}:task/hello-a.1:dns"'
    assert nat == [
        f"-A OUTPUT -d 127.0.0.11/32 {c} -j DOCKER_OUTPUT",
        f"-A POSTROUTING -d 127.0.0.11/32 {c} -j DOCKER_POSTROUTING",
        f"-A DOCKER_OUTPUT -d 127.0.0.11/32 -p tcp -m tcp --dport 53 {c} -j DNAT --to-destination 127.0.0.11:{port}",
        f"-A DOCKER_OUTPUT -d 127.0.0.11/32 -p udp -m udp --dport 53 {c} -j DNAT --to-destination 127.0.0.11:{port}",
        f"-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p tcp -m tcp --sport {port} {c} -j SNAT --to-source :53",
        f"-A DOCKER_POSTROUTING -s 127.0.0.11/32 -p udp -m udp --sport {port} {c} -j SNAT --to-source :53",
    ]
    assert lab.status()["drift"] == []


def test_the_task_sees_its_own_resolv_conf_and_hosts(lab):
    ns = lab.netns("hello-a.1")
    assert _exec(lab, "hello-a.1", "cat", "/etc/resolv.conf").stdout == "nameserver 127.0.0.11\noptions ndots:0\n"
    hosts = _exec(lab, "hello-a.1", "getent", "hosts", "hello-a.1")
    assert hosts.returncode == 0 and hosts.stdout.split() == ["10.0.0.5", "hello-a.1"]
    assert sorted(os.listdir(f"/etc/netns/{ns}")) == ["hosts", "resolv.conf"]


def test_an_unknown_name_is_not_found_through_glibc(lab):
    proc = _exec(lab, "hello-a.1", "getent", "hosts", "tasks.x")
    assert proc.returncode == 2, proc
    assert _exec(lab, "hello-a.1", "getent", "ahosts", "hello-a").returncode == 2


def test_queries_to_53_reach_the_app_through_the_dnat(lab):
    for proto in ("udp", "tcp"):
        # The answer comes back from port 53: the DNAT is undone on the way back.
        assert _query(lab, "hello-a.2", "tasks.hello-a", proto=proto) == "NXDOMAIN 53"
        assert _query(lab, "hello-a.2", "example.com", proto=proto) == "REFUSED 53"


def test_records_handed_to_the_app_are_answered_and_follow_a_reload(lab):
    from netlab import lifecycle
    from netlab.state import StateStore
    from netlab.workload import supervisor
    state = StateStore().load(lab.name)
    apps = lifecycle.endpoints(state.model, state.allocations)
    servers = lifecycle.resolvers(state.model, state.allocations)
    table = (("api", ("10.0.9.9",)), ("tasks.api", ("10.0.9.7", "10.0.9.8")))
    handed = [s if s.task != "hello-a.1" else
              type(s)(s.netns, s.task, s.node, s.port, table) for s in servers]
    supervisor.update(state.supervisor_pid, apps, dns=handed)
    try:
        out = _exec(lab, "hello-a.1", "getent", "hosts", "api")
        assert out.returncode == 0 and out.stdout.split() == ["10.0.9.9", "api"]
        ahosts = _exec(lab, "hello-a.1", "getent", "ahostsv4", "tasks.api").stdout.split()
        assert {"10.0.9.7", "10.0.9.8"} <= set(ahosts)
        rev = _exec(lab, "hello-a.1", "getent", "hosts", "10.0.9.9")
        assert rev.returncode == 0 and rev.stdout.split() == ["10.0.9.9", "api"]
        assert _query(lab, "hello-a.1", "API.", "A", "tcp") == "NOERROR 53 10.0.9.9"
        assert _query(lab, "hello-a.1", "api", "AAAA") == "NOERROR 53"
        # Another task's server has its own (empty) table.
        assert _exec(lab, "hello-a.2", "getent", "hosts", "api").returncode == 2
    finally:
        supervisor.update(state.supervisor_pid, apps, dns=servers)
    assert _exec(lab, "hello-a.1", "getent", "hosts", "api").returncode == 2


def _etc_dirs(lab_name: str) -> list[str]:
    prefix = names.lab_prefix(lab_name)
    return sorted(d for d in os.listdir("/etc/netns") if d.startswith(prefix)) \
        if os.path.isdir("/etc/netns") else []


def test_scale_down_and_down_remove_the_etc_netns_dirs_and_nothing_else():
    marker = "/etc/netns/not-netlab-keep-me"
    os.makedirs(marker, exist_ok=True)
    lab = _bring_up("hello-a.yaml")
    try:
        ns1, ns2 = lab.netns("hello-a.1"), lab.netns("hello-a.2")
        assert _etc_dirs(lab.name) == sorted([ns1, ns2])
        netlab("scale", lab.name, "hello-a=1")
        assert _etc_dirs(lab.name) == [ns1]
        assert lab.status()["drift"] == []
    finally:
        _tear_down(lab)
    try:
        assert _etc_dirs(lab.name) == []
        assert os.path.isdir(marker)
    finally:
        os.rmdir(marker)


def test_the_legacy_backend_holds_the_same_rules_without_drift(legacy_seed_lab):
    lab = legacy_seed_lab
    port = _port(lab, "hello-a.2")
    nat = sh(lab.netns("hello-a.2"), lab.save, "-t", "nat")
    assert f"-j DNAT --to-destination 127.0.0.11:{port}" in nat
    assert f"-p udp -m udp --sport {port}" in nat and "-j SNAT --to-source :53" in nat
    assert lab.status()["drift"] == []
    assert _query(lab, "hello-a.2", "tasks.x") == "NXDOMAIN 53"
