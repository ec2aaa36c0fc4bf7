"""A node reads like a real Swarm node: the user's own ``iptables`` sees (and changes)
the mesh, Docker's host rules and sysctls are there, and tasks reach out through
docker_gwbridge as containers do.

Everything is read with the standard tools (``iptables``/``iptables-save`` as the
machine has them, ``ip``, ``sysctl``), and traffic is real.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading

from netlab.kernel.netns import socket_in

from tests.integration.conftest import netlab, sh


def test_the_machine_iptables_is_nft_here_and_shows_the_marks(seed_lab):
    """As on a default Debian 12: `iptables` is iptables-nft, and it shows netlab's rules."""
    version = subprocess.run(["iptables", "-V"], capture_output=True, text=True).stdout
    assert "nf_tables" in version, version
    out = netlab("exec", seed_lab.name, "node2/ingress_sbox", "--", "iptables", "-t", "mangle",
                 "-S", process=True).stdout
    assert "-A PREROUTING -p tcp -m tcp --dport 5000" in out and "--set-xmark 0x100/0xffffffff" in out
    assert "-A INPUT -d 10.0.0.4/32" in out, out
    status = json.loads(netlab("status", seed_lab.name, "--json").stdout)
    assert status["iptables"] == "nft" and "nft" in status["iptables_backend"]


def test_legacy_lab_says_so_and_its_rules_are_where_legacy_iptables_looks(legacy_seed_lab):
    lab = legacy_seed_lab
    status = json.loads(netlab("status", lab.name, "--json").stdout)
    assert status["iptables"] == "legacy" and status["drift"] == [], status["drift"]
    rules = sh(lab.netns("node2/ingress_sbox"), "iptables-legacy", "-t", "mangle", "-S")
    assert "--set-xmark 0x100/0xffffffff" in rules
    replies = lab.curl("node1:5000", 4)
    assert sorted({r["task"] for r in replies}) == ["hello-a.1", "hello-a.2"]
    trace = json.loads(netlab("trace", lab.name, "node2:5000", "--json").stdout)
    assert trace["verdict"] == "delivered"
    dnat = next(h for h in trace["hops"] if h["event"] == "dnat")
    assert "counter" in dnat["evidence"]
    assert dnat["rule"] in sh(lab.netns("node2"), "iptables-legacy-save", "-t", "nat")
    # a user's DOCKER-USER rule survives up there too (python-iptables puts it back)
    node1 = lab.netns("node1")
    sh(node1, "iptables-legacy", "-I", "DOCKER-USER", "-s", "192.0.2.1", "-j", "DROP")
    try:
        netlab("up", str(lab.scenario), "--name", lab.name, "--iptables", "legacy")
        rules = sh(node1, "iptables-legacy", "-S", "DOCKER-USER").splitlines()
        assert rules[1] == "-A DOCKER-USER -s 192.0.2.1/32 -j DROP", rules
        assert rules[2].endswith("-j RETURN"), rules
    finally:
        sh(node1, "iptables-legacy", "-D", "DOCKER-USER", "-s", "192.0.2.1", "-j", "DROP")


def test_a_drop_in_docker_user_stops_the_mesh_and_trace_names_it(seed_lab):
    """What a user of a real node does: `iptables -I DOCKER-USER ... -j DROP`."""
    node2 = seed_lab.netns("node2")
    rule = ["DOCKER-USER", "-p", "tcp", "--dport", "5000", "-j", "DROP"]
    sh(node2, "iptables", "-I", *rule)
    try:
        proc = netlab("trace", seed_lab.name, "node2:5000", "--json", "--timeout", "1",
                      check=False)
        assert proc.returncode == 1
        trace = json.loads(proc.stdout)
        assert trace["verdict"] == "dropped"
        last = trace["hops"][-1]
        assert (last["event"], last["netns"]) == ("drop", "node2")
        assert last["rule"] == "-A DOCKER-USER -p tcp -m tcp --dport 5000 -j DROP"
        assert "counter" in last["evidence"]
        # node1 still answers: the rule is node2's alone
        assert all(r["ok"] for r in seed_lab.curl("node1:5000", 2))
        # As dockerd does, up leaves the user's DOCKER-USER rules where they are.
        netlab("up", str(seed_lab.scenario), "--name", seed_lab.name)
        assert "-A DOCKER-USER -p tcp -m tcp --dport 5000 -j DROP" in sh(node2, "iptables", "-S",
                                                                          "DOCKER-USER")
        status = json.loads(netlab("status", seed_lab.name, "--json").stdout)
        assert status["drift"] == [], status["drift"]
        assert [r["rule"] for r in status["user_rules"]] == [
            "-A DOCKER-USER -p tcp -m tcp --dport 5000 -j DROP"]
    finally:
        sh(node2, "iptables", "-D", *rule)
    assert all(r["ok"] for r in seed_lab.curl("node2:5000", 2))


def test_docker_sysctls_addresses_and_no_ipv6_where_docker_has_none(seed_lab):
    lab = seed_lab
    assert sh(lab.netns("node1"), "sysctl", "-n", "net.bridge.bridge-nf-call-iptables").strip() == "1"
    for target in ("node1/ingress_sbox", "node1/ov-ingress", "hello-a.1"):
        ns = lab.netns(target)
        # libnetwork 20.10 writes all.disable_ipv6=1 in every namespace it makes (osl
        # NewSandbox, GetSandboxForExternalKey); the kernel copies it to default and to
        # every interface, lo too: no fe80::, no ::1, as on a real node
        assert sh(ns, "ip", "-6", "addr", "show") == "", target
        for conf in ("all", "default", "lo", "eth0" if target != "node1/ov-ingress" else "br0"):
            assert sh(ns, "sysctl", "-n", f"net.ipv6.conf.{conf}.disable_ipv6").strip() == "1", \
                (target, conf)
    # a node's own namespace is not Docker's to change: the kernel's default stays
    host = lab.netns("node1")
    assert sh(host, "sysctl", "-n", "net.ipv6.conf.all.disable_ipv6").strip() == "0"
    sbox = sh(lab.netns("node1/ingress_sbox"), "ip", "-4", "addr", "show")
    assert "inet 10.0.0.2/24 brd 10.0.0.255" in sbox and "inet 172.18.0.2/16 brd 172.18.255.255" in sbox
    for key, value in (("net.ipv4.vs.expire_nodest_conn", "1"),
                       ("net.ipv4.vs.expire_quiescent_template", "1")):
        assert sh(lab.netns("node1/ingress_sbox"), "sysctl", "-n", key).strip() == value


def test_a_task_reaches_out_masqueraded_to_its_node(seed_lab):
    """hello-a.1 (on node1) connects to a listener in the client namespace, which sees node1."""
    lab = seed_lab
    listener = socket_in(lab.netns("client"), socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("192.168.56.2", 0))
    listener.listen(1)
    listener.settimeout(20)
    port = listener.getsockname()[1]
    seen: list[str] = []

    def accept() -> None:
        conn, peer = listener.accept()
        seen.append(peer[0])
        conn.close()

    t = threading.Thread(target=accept)
    t.start()
    out = socket_in(lab.netns("hello-a.1"), socket.AF_INET, socket.SOCK_STREAM)
    out.settimeout(20)
    try:
        out.connect(("192.168.56.2", port))
    finally:
        out.close()
        t.join(25)
        listener.close()
    assert seen == ["192.168.56.11"], seen


def test_a_task_calls_another_nodes_published_port(seed_lab):
    """The hairpin: hello-a.1 → node2:5000, masqueraded by node1, then the mesh as usual."""
    trace = json.loads(netlab("trace", seed_lab.name, "node2:5000", "--from", "hello-a.1",
                              "--json").stdout)
    assert trace["verdict"] == "delivered", trace["reason"]
    events = [(h["event"], h["netns"]) for h in trace["hops"] if h["leg"] == "request"]
    snat = [h for h in trace["hops"] if h["event"] == "snat" and h["netns"] == "node1"]
    assert snat and "MASQUERADE" in snat[0]["rule"], events
    assert ("dnat", "node2") in events and ("mark", "node2/ingress_sbox") in events
    assert trace["request"]["src"].startswith("172.18.0.3:")
    assert trace["hops"][-1]["netns"] == "hello-a.1"
