"""The routing mesh, for real: traffic through IPVS, VXLAN and the task REDIRECT."""

from __future__ import annotations

import itertools
import socket
import struct
import subprocess
import threading
import time

from netlab.kernel.netns import socket_in
from netlab.model import Lab
from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.plan.render import ipvsadm, iptables_save, normalize_ipvsadm, normalize_save
from netlab.state import StateStore

from tests.integration.conftest import lab_netns, netlab, sh


def _plan(lab):
    """The lab's model and plan, from its state file (as status and trace rebuild them)."""
    st = StateStore().load(lab.name)
    model: Lab = st.model
    return model, build_plan(model, st.allocations)


def _allocations(lab):
    return StateStore().load(lab.name).allocations


def test_round_robin_alternates_between_the_two_tasks(seed_lab):
    lab = seed_lab
    replies = lab.curl("node2:5000", 6)
    tasks = [r["task"] for r in replies]
    assert all(r["ok"] for r in replies), replies
    assert sorted(set(tasks)) == ["hello-a.1", "hello-a.2"]
    assert all(a != b for a, b in itertools.pairwise(tasks)), f"not strict round robin: {tasks}"
    assert {r["node"] for r in replies} == {"node1", "node2"}
    # As in Swarm, the task sees node2's ingress_sbox address, not the client's (SNAT).
    sbox_ip = str(_allocations(lab).nodes["node2"].sandbox_ip)
    assert {r["client"] for r in replies} == {sbox_ip}
    assert sbox_ip == "10.0.0.3"
    assert {r["task_ip"] for r in replies} == {"10.0.0.5", "10.0.0.6"}


def test_mesh_answers_on_nodes_that_run_no_task(lab_up):
    lab = lab_up("three-nodes.yaml")
    model, _ = _plan(lab)
    api_nodes = {t.node for t in model.tasks_of("api")}
    assert api_nodes == {"node1"}
    for node in ("node2", "node3"):
        replies = lab.curl(f"{node}:9000", 2)
        assert all(r["ok"] and r["task"] == "api.1" and r["node"] == "node1" for r in replies), replies
    web = [r["task"] for r in lab.curl("node3:8080", 6)]
    assert sorted(set(web)) == ["web.1", "web.2", "web.3"], web


def test_two_published_ports_to_one_target_both_answer(lab_up, tmp_path):
    # Swarm accepts it; up used to fail half-way (two listeners on tcp/80 in one task).
    scenario = tmp_path / "two-ports.yaml"
    scenario.write_text("nodes: {node1: {role: manager}, node2: {role: worker}}\n"
                        "services: {web: {deploy: {replicas: 2}, ports: ['8080:80', '8081:80']}}\n")
    lab = lab_up(str(scenario))
    for port in (8080, 8081):
        replies = lab.curl(f"node2:{port}", 4)
        assert all(r["ok"] for r in replies), replies
        assert sorted({r["task"] for r in replies}) == ["web.1", "web.2"]


def test_kernel_read_back_with_standard_tools_matches_the_plan(any_seed_lab):
    lab = any_seed_lab
    _, plan = _plan(lab)
    other = "iptables-legacy-save" if lab.iptables == "auto" else "iptables-nft-save"
    for ns in plan.netns:
        for table in plan.tables_in(ns.name):
            real = normalize_save(sh(ns.name, lab.save, "-t", table))
            assert real == iptables_save(plan, ns.name, table), f"{ns.target} {table}"
        # and nothing of netlab's in the other backend
        leaked = subprocess.run(["ip", "netns", "exec", ns.name, other], capture_output=True,
                                text=True, timeout=60).stdout
        assert "netlab:" not in leaked, f"{ns.target}: rules in {other} too"
        services = [s for s in plan.ipvs if s.netns == ns.name]
        if services:
            real = normalize_ipvsadm(sh(ns.name, "ipvsadm", "-Ln"))
            assert real == normalize_ipvsadm(ipvsadm(services)), ns.target
            assert "FWM  256 rr" in sh(ns.name, "ipvsadm", "-Ln")
            assert "Masq" in sh(ns.name, "ipvsadm", "-Ln")
    for node in ("node1", "node2"):
        ov = plan.namespace(f"{node}/ov-ingress").name
        link = sh(ov, "ip", "-d", "link", "show", "vxlan0")
        assert "vxlan id 4096" in link and "dstport 4789" in link and "mtu 1450" in link, link
        fdb = sh(ov, "bridge", "fdb", "show", "dev", "vxlan0").splitlines()
        for entry in (f for f in plan.fdb if f.netns == ov):
            # bridge prints "link-netnsid N" between dst and self: the underlay's netns
            assert any(line.startswith(f"{entry.mac} dst {entry.dst} ")
                       and line.rstrip().endswith("self permanent") for line in fdb), fdb
        neigh = sh(ov, "ip", "neigh", "show", "dev", "vxlan0")
        for entry in (n for n in plan.neighbours if n.netns == ov):
            assert f"{entry.ip} lladdr {entry.mac} PERMANENT" in neigh, neigh
        sbox = plan.namespace(f"{node}/ingress_sbox").name
        assert sh(sbox, "sysctl", "-n", "net.ipv4.vs.conntrack").strip() == "1"
        assert sh(sbox, "sysctl", "-n", "net.ipv4.vs.conn_reuse_mode").strip() == "0"
        host = plan.namespace(node).name
        assert sh(host, "sysctl", "-n", "net.ipv4.conf.docker_gwbridge.route_localnet").strip() == "1"
        assert "10.0.0.4/32" in sh(sbox, "ip", "-4", "addr", "show", "dev", "eth0")
    status = lab.status()
    assert status["drift"] == [], status["drift"]


def test_vxlan_with_vni_4096_crosses_the_lan(seed_lab):
    lab = seed_lab
    lan = names.lan_ns(lab.name)
    sock = socket_in(lan, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    # A bridge device does not see unicast it forwards between its ports:
    # capture on node2's port, where node2's VXLAN to node1 passes.
    sock.bind(("veth-node2", 0))
    sock.settimeout(0.5)
    frames: list[bytes] = []
    stop = threading.Event()

    def capture():
        while not stop.is_set():
            try:
                frames.append(sock.recv(65535))
            except OSError:
                continue

    t = threading.Thread(target=capture)
    t.start()
    time.sleep(0.3)
    try:
        lab.curl("node2:5000", 4)
    finally:
        stop.set()
        t.join()
        sock.close()
    vnis = set()
    for f in frames:
        if len(f) < 50 or f[12:14] != b"\x08\x00" or f[23] != 17:
            continue
        ihl = (f[14] & 0x0F) * 4
        udp = 14 + ihl
        dport = struct.unpack("!H", f[udp + 2:udp + 4])[0]
        if dport == 4789:
            vnis.add(int.from_bytes(f[udp + 12:udp + 15], "big"))
    assert vnis == {4096}, f"VXLAN VNIs seen on lan0: {vnis} in {len(frames)} frames"


def test_up_twice_converges_and_repairs_drift(seed_lab):
    lab = seed_lab
    again = netlab("up", str(lab.scenario), "--name", lab.name)
    assert "0 iptables commits" in again.stdout, again.stdout
    _, plan = _plan(lab)
    ov = plan.namespace("node2/ov-ingress").name
    entry = next(f for f in plan.fdb if f.netns == ov)
    sh(ov, "bridge", "fdb", "del", entry.mac, "dev", "vxlan0", "dst", entry.dst, "self")
    drift = lab.status()["drift"]
    assert any(d["kind"] == "fdb" and entry.mac in d["detail"] for d in drift), drift
    netlab("up", str(lab.scenario), "--name", lab.name)
    assert lab.status()["drift"] == []
    assert len(lab.curl("node2:5000", 2)) == 2


def test_exec_runs_in_the_target_namespace(seed_lab):
    lab = seed_lab
    out = netlab("exec", lab.name, "node1/ingress_sbox", "--", "ip", "-4", "addr", "show", "eth1",
                 process=True).stdout
    assert "172.18.0.2/16" in out
    bad = netlab("exec", lab.name, "nosuch", "--", "true", check=False)
    assert bad.returncode == 2 and "TARGET" in bad.stderr
    assert lab_netns(lab.name)
