"""East-west traffic on a real lab (scenarios/east-west.yaml): services reach each
other by name over the user network ``backend`` through each node's ``lb-backend``.

Checked with the standard tools in each namespace (``ipvsadm -Ln``, the
machine's ``iptables-save``, ``ip -d link``, ``ip neigh``) and on real
traffic: web.1 calling ``api:80`` cycles api's three tasks, each seeing the
LB endpoint address of web.1's node (Swarm's SNAT), the VIP is answered by
the local LB sandbox only, scaling api adds its destination on every
``lb-backend``, and the ingress path still answers.
"""

from __future__ import annotations

import json
import re

import pytest

from netlab.plan import names

from tests.integration.conftest import _bring_up, _tear_down, lab_netns, netlab, sh


@pytest.fixture(scope="module")
def ew():
    lab = _bring_up("east-west.yaml")
    yield lab
    _tear_down(lab)


def _alloc(lab):
    from netlab.state import StateStore
    state = StateStore().load(lab.name)
    return state.model, state.allocations


def _ipvs_dests(text: str) -> dict[int, list[tuple[str, str]]]:
    """``ipvsadm -Ln`` → {fwmark: [(address, weight)]}."""
    out: dict[int, list[tuple[str, str]]] = {}
    mark = None
    for line in text.splitlines():
        if m := re.match(r"FWM\s+(\d+)\s+rr", line):
            mark = int(m.group(1))
            out[mark] = []
        elif (m := re.match(r"\s+->\s+([\d.]+):0\s+Masq\s+(\d+)", line)) and mark is not None:
            out[mark].append((m.group(1), m.group(2)))
    return out


def _api_ips(lab) -> set[str]:
    model, a = _alloc(lab)
    return {str(a.networks["backend"].tasks[t.name]) for t in model.tasks_of("api")}


def test_lb_sandboxes_hold_apis_fwmark_service_with_its_tasks(ew):
    model, a = _alloc(ew)
    mark = a.networks["backend"].vips["api"].fwmark
    for node in ("node1", "node2"):
        dests = _ipvs_dests(sh(ew.netns(f"{node}/lb-backend"), "ipvsadm", "-Ln"))
        assert {ip for ip, _ in dests[mark]} == _api_ips(ew)
        assert {w for _, w in dests[mark]} == {"1"}


def test_lb_sandbox_rules_are_dockers_mark_and_snat(ew):
    _, a = _alloc(ew)
    na = a.networks["backend"]
    api = na.vips["api"]
    for node in ("node1", "node2"):
        ns = ew.netns(f"{node}/lb-backend")
        mangle = sh(ns, ew.save, "-t", "mangle")
        assert re.search(rf"-A INPUT -d {api.vip}/32 .*-j MARK --set-xmark {api.fwmark:#x}/0xffffffff",
                         mangle), mangle
        nat = sh(ns, ew.save, "-t", "nat")
        assert re.search(rf"-A POSTROUTING -d 10\.0\.1\.0/24 -m ipvs --ipvs .*-j SNAT "
                         rf"--to-source {na.lb[node]}", nat), nat
        addrs = sh(ns, "ip", "-4", "addr", "show", "dev", "eth0")
        assert f"inet {api.vip}/32" in addrs and f"inet {na.lb[node]}/24" in addrs
        assert "default" not in sh(ns, "ip", "route")          # only ingress_sbox has a gateway


def test_backend_overlay_is_its_own_vxlan_and_knows_no_vip(ew):
    _, a = _alloc(ew)
    na = a.networks["backend"]
    for node in ("node1", "node2"):
        ns = ew.netns(f"{node}/ov-backend")
        link = sh(ns, "ip", "-d", "link", "show", "vxlan0")
        assert "vxlan id 4097 " in link, link
        neigh = sh(ns, "ip", "neigh", "show", "dev", "vxlan0")
        for vip in na.vips.values():
            assert str(vip.vip) not in neigh.split()      # VIPs: answered by the local lb only


def test_curl_by_name_cycles_apis_tasks_and_they_see_the_lb_endpoint(ew):
    model, a = _alloc(ew)
    web1 = next(t for t in model.tasks if t.name == "web.1")
    lb = str(a.networks["backend"].lb[web1.node])
    replies = json.loads(netlab("curl", ew.name, "api:80", "--from", "web.1", "--count", "6",
                                "--json").stdout)
    assert all(r["ok"] for r in replies), replies
    tasks = [r["task"] for r in replies]
    assert set(tasks) == {"api.1", "api.2", "api.3"}
    assert tasks[:3] == tasks[3:]                      # round robin: the same cycle twice
    assert {r["client"] for r in replies} == {lb}      # the lb-backend SNAT on web.1's node


def test_vip_target_and_dnsrr_name_work_too(ew):
    _, a = _alloc(ew)
    vip = str(a.networks["backend"].vips["api"].vip)
    replies = json.loads(netlab("curl", ew.name, f"{vip}:80", "--from", "web.2", "--count", "3",
                                "--json").stdout)
    assert {r["task"] for r in replies} == {"api.1", "api.2", "api.3"}
    cache = json.loads(netlab("curl", ew.name, "cache:6379", "--from", "api.1", "--count", "2",
                              "--json").stdout)
    assert {r["task"] for r in cache} == {"cache.1", "cache.2"}
    api1 = str(a.networks["backend"].tasks["api.1"])
    assert {r["client"] for r in cache} == {api1}      # dnsrr: no LB, no SNAT


def test_the_vip_is_answered_by_the_local_lb_sandbox_only(ew):
    model, a = _alloc(ew)
    node = next(t.node for t in model.tasks if t.name == "web.1")
    vip = str(a.networks["backend"].vips["api"].vip)
    lb_mac = "02:42:" + ":".join(f"{int(b):02x}" for b in str(a.networks["backend"].lb[node]).split("."))
    netlab("curl", ew.name, "api:80", "--from", "web.1")          # web.1 ARPs for the VIP
    neigh = sh(ew.netns("web.1"), "ip", "neigh", "show", vip)
    assert lb_mac in neigh, neigh


def _getent(lab, task: str, *args: str):
    """glibc's getent inside a task, through ``netlab exec`` (a real process: its
    resolv.conf names 127.0.0.11, the task's embedded DNS)."""
    return netlab("exec", lab.name, task, "--", "getent", *args, check=False, process=True)


def test_getent_in_a_task_resolves_services_through_the_embedded_dns(ew):
    model, a = _alloc(ew)
    backend = a.networks["backend"]
    vip = str(backend.vips["api"].vip)
    api = _getent(ew, "web.1", "hosts", "api")
    assert api.returncode == 0 and api.stdout.split()[0] == vip, api       # vip mode: the VIP
    tasks = _getent(ew, "web.1", "ahostsv4", "tasks.api")
    assert {line.split()[0] for line in tasks.stdout.splitlines()} == _api_ips(ew)
    cache = _getent(ew, "api.2", "ahostsv4", "cache")                       # dnsrr: the tasks
    assert {line.split()[0] for line in cache.stdout.splitlines()} == \
        {str(backend.tasks[t.name]) for t in model.tasks_of("cache")}
    assert _getent(ew, "web.1", "hosts", "nosuch").returncode == 2           # NXDOMAIN
    # The query went through Docker's DNAT in the task (its counter moved).
    nat = sh(ew.netns("web.1"), "iptables-save", "-c", "-t", "nat")
    udp = next(line for line in nat.splitlines()
               if line.startswith("[") and "-A DOCKER_OUTPUT" in line and "-p udp" in line)
    assert not udp.startswith("[0:0]"), udp


def test_load_from_a_task_to_a_service_by_name_balances_over_its_tasks(ew):
    doc = json.loads(netlab("load", ew.name, "api:80", "--from", "web.1", "-n", "60", "-c", "5",
                            "--json").stdout)
    assert (doc["requests"], doc["ok"], doc["failed"]) == (60, 60, 0), doc
    per_task = {k.split("@")[0]: v for k, v in doc["replies"].items()}
    assert per_task == {"api.1": 20, "api.2": 20, "api.3": 20}, doc["replies"]   # rr


def test_scale_api_adds_its_destination_on_every_lb_sandbox(ew):
    netlab("scale", ew.name, "api=4")
    _, a = _alloc(ew)
    mark = a.networks["backend"].vips["api"].fwmark
    ips = _api_ips(ew)
    assert len(ips) == 4
    for node in ("node1", "node2"):
        dests = _ipvs_dests(sh(ew.netns(f"{node}/lb-backend"), "ipvsadm", "-Ln"))
        assert {ip for ip, _ in dests[mark]} == ips
        assert {w for _, w in dests[mark]} == {"1"}
    replies = json.loads(netlab("curl", ew.name, "api:80", "--from", "web.1", "--count", "8",
                                "--json").stdout)
    assert {r["task"] for r in replies} == {"api.1", "api.2", "api.3", "api.4"}
    tasks = _getent(ew, "web.2", "ahostsv4", "tasks.api")              # the DNS knows it too
    assert {line.split()[0] for line in tasks.stdout.splitlines()} == ips


def test_ingress_path_still_answers(ew):
    replies = ew.curl("node1:8080", 2) + ew.curl("node2:8080", 2)
    assert all(r["ok"] for r in replies)
    assert {r["task"] for r in replies} == {"web.1", "web.2"}


def test_status_lists_the_network_and_no_drift(ew):
    doc = ew.status()
    assert [(n["name"], n["subnet"], n["vni"]) for n in doc["networks"]] == \
        [("backend", "10.0.1.0/24", 4097)]
    modes = {s["name"]: s["endpoint_mode"] for s in doc["services"]}
    assert modes == {"web": "vip", "api": "vip", "cache": "dnsrr"}
    assert doc["drift"] == [], doc["drift"]


# backend used by one service of one task: only its node has backend; a second task
# on the other node brings that node's ov-/lb-backend, its removal takes them away.
SPARSE = """
name: sparse
nodes:
  node1: {role: manager}
  node2: {role: worker}
networks:
  backend: {driver: overlay}
services:
  web: {deploy: {replicas: 2}, ports: ["8080:80"]}
  api: {deploy: {replicas: 1}, networks: [backend], expose: [80]}
"""


def test_a_node_has_lb_backend_only_while_a_task_on_backend_runs_there(tmp_path):
    """As Swarm: a task's executor creates its networks on its node (libnetwork's
    createLoadBalancerSandbox makes lb-<net>, the LB endpoint's join the overlay
    namespace) and its removal deletes them once no task there uses them."""
    scenario = tmp_path / "sparse.yaml"
    scenario.write_text(SPARSE)
    lab = _bring_up(str(scenario))
    try:
        model, a = _alloc(lab)
        na = a.networks["backend"]
        (api1,) = model.tasks_of("api")
        (other,) = {n.name for n in model.nodes} - {api1.node}

        def lb(node):
            return names.lb_ns(lab.name, node, "backend")

        def ov(node):
            return names.overlay_ns(lab.name, node, "backend")

        listed = lab_netns(lab.name)
        assert {lb(api1.node), ov(api1.node)} <= set(listed), listed
        assert not {lb(other), ov(other)} & set(listed), listed
        assert names.sandbox_ns(lab.name, other) in listed          # ingress: on every node
        other_lb = str(na.lb[other])
        assert other_lb not in sh(ov(api1.node), "ip", "neigh", "show", "dev", "vxlan0")
        assert lab.status()["drift"] == []

        netlab("scale", lab.name, "api=2")
        model, a = _alloc(lab)
        api2 = next(t for t in model.tasks_of("api") if t.name != api1.name)
        assert api2.node == other
        listed = lab_netns(lab.name)
        assert {lb(other), ov(other)} <= set(listed), listed
        mark = a.networks["backend"].vips["api"].fwmark
        dests = _ipvs_dests(sh(lb(other), "ipvsadm", "-Ln"))
        assert {ip for ip, _ in dests[mark]} == _api_ips(lab)
        assert {w for _, w in dests[mark]} == {"1"}
        assert sh(lb(other), "sysctl", "-n", "net.ipv6.conf.all.disable_ipv6").strip() == "1"
        assert "vxlan id 4097 " in sh(ov(other), "ip", "-d", "link", "show", "vxlan0")
        assert other_lb in sh(ov(api1.node), "ip", "neigh", "show", "dev", "vxlan0")
        # api.2 calls api by name through its own node's new lb-backend (its SNAT)
        replies = json.loads(netlab("curl", lab.name, "api:80", "--from", api2.name,
                                    "--count", "4", "--json").stdout)
        assert {r["task"] for r in replies} == {api1.name, api2.name}, replies
        assert {r["client"] for r in replies} == {other_lb}
        assert lab.status()["drift"] == []

        netlab("scale", lab.name, "api=1")
        model, _ = _alloc(lab)
        (left,) = model.tasks_of("api")
        (gone,) = {api1.node, other} - {left.node}
        listed = lab_netns(lab.name)
        assert not {lb(gone), ov(gone)} & set(listed), listed
        assert {lb(left.node), ov(left.node)} <= set(listed), listed
        assert str(na.lb[gone]) not in sh(ov(left.node), "ip", "neigh", "show", "dev", "vxlan0")
        assert lab.status()["drift"] == []
    finally:
        _tear_down(lab)
