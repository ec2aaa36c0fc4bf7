"""Drift without root: the plan against kernel read-back data built by hand, every kind.

A kernel that holds exactly the plan is built from the plan itself
(:func:`_perfect`); each test changes one thing in it, as a user's ``ip``,
``sysctl``, ``iptables`` or ``ipvsadm`` would, and checks that exactly that
is reported, with the plan's and the kernel's values.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netlab.diff.compare import KernelView, plan_drift, planned_tables
from netlab.diff.drift import Allowance, LinkSeen, NetnsSeen, planned_links
from netlab.diff.ruledrift import table_drift
from netlab.ipam import allocate
from netlab.kernel.ipvs import ObservedService
from netlab.plan.build import build_plan
from netlab.plan.types import Address, FdbEntry, IpvsDest, Neighbour, Plan, Route
from netlab.scenario import load_lab

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"


@pytest.fixture(scope="module")
def plan() -> Plan:
    lab = load_lab(SCENARIOS / "hello-a.yaml", name_override="d")
    return build_plan(lab, allocate(lab))


def _perfect(plan: Plan) -> KernelView:
    """What the kernel holds right after ``up`` of ``plan``, as observe reads it."""
    seen = {}
    for ns in plan.netns:
        items = plan.items_in(ns.name)
        links = [LinkSeen(w.name, w.kind, w.mtu or 65536, True, w.mac or "02:00:00:00:00:01",
                          w.master, w.vxlan) for w in planned_links(ns.name, items, Allowance())]
        seen[ns.name] = NetnsSeen(
            tuple(links), items.addresses, items.routes, items.neighbours, items.fdb,
            {s.key: s.value for s in items.sysctls}, planned_tables(plan, ns.name),
            tuple(ObservedService(s.fwmark, s.scheduler, s.dests) for s in items.ipvs)
            if ns.role == "sandbox" else None)
    return KernelView(tuple(ns.name for ns in plan.netns), seen)


def _with(view: KernelView, target: str, plan: Plan, **changes) -> KernelView:
    name = plan.namespace(target).name
    return replace(view, seen={**view.seen, name: replace(view.seen[name], **changes)})


def _one(plan: Plan, view: KernelView, allow: Allowance = Allowance()) -> tuple:
    found = plan_drift(plan, view, allow)
    assert len(found) == 1, found
    d = found[0]
    return d.target, d.kind, d.object, d.plan, d.kernel


def test_a_kernel_holding_the_plan_has_no_drift(plan):
    assert plan_drift(plan, _perfect(plan)) == []


def test_namespaces_missing_and_stray(plan):
    view = _perfect(plan)
    gone = plan.namespace("hello-a.2").name
    missing = replace(view, listed=tuple(n for n in view.listed if n != gone),
                      seen={k: v for k, v in view.seen.items() if k != gone})
    assert _one(plan, missing) == ("hello-a.2", "netns", f"netns {gone}", "present", "absent")
    stray = replace(view, listed=view.listed + ("nl-d.hello-a.3",))
    assert _one(plan, stray) == ("", "netns", "netns nl-d.hello-a.3", "absent", "present")
    assert "ip netns del nl-d.hello-a.3" in plan_drift(plan, stray)[0].hint
    # A change under way removes namespaces the plan no longer has: not drift.
    assert plan_drift(plan, stray, Allowance(changing=True)) == []


def _relink(view: KernelView, plan: Plan, target: str, name: str, **changes) -> KernelView:
    links = view.seen[plan.namespace(target).name].links
    return _with(view, target, plan, links=tuple(replace(link, **changes) if link.name == name
                                                  else link for link in links))


def test_links_mtu_state_master_mac_and_vxlan_attributes(plan):
    view = _perfect(plan)
    assert _one(plan, _relink(view, plan, "node2", "docker_gwbridge", mtu=1400)) == \
        ("node2", "link", "link docker_gwbridge mtu", "1500", "1400")
    assert _one(plan, _relink(view, plan, "client", "eth0", up=False)) == \
        ("client", "link", "link eth0 state", "up", "down")
    assert _one(plan, _relink(view, plan, "node1/ov-ingress", "vxlan0", master=None)) == \
        ("node1/ov-ingress", "link", "link vxlan0 master", "br0", "none")
    assert _one(plan, _relink(view, plan, "client", "eth0", mac="02:42:00:00:00:99")) == \
        ("client", "link", "link eth0 address", "02:42:c0:a8:38:02", "02:42:00:00:00:99")
    vx = dict(next(link for link in view.seen[plan.namespace("node1/ov-ingress").name].links
                   if link.name == "vxlan0").vxlan)
    for key, value in (("vni", 4097), ("port", 8472), ("learning", 0), ("l3miss", 0)):
        changed = tuple({**vx, key: value}.items())
        assert _one(plan, _relink(view, plan, "node1/ov-ingress", "vxlan0", vxlan=changed)) == \
            ("node1/ov-ingress", "link", f"link vxlan0 {key}", str(vx[key]), str(value))
    links = view.seen[plan.namespace("node2").name].links
    gone = _with(view, "node2", plan, links=tuple(x for x in links if x.name != "eth0"))
    assert _one(plan, gone) == ("node2", "link", "link eth0", "veth eth0", "absent")


def test_a_link_the_lab_keeps_down_is_down_in_the_plan(plan):
    lan = plan.namespace("lan").name
    down = _relink(_perfect(plan), plan, "lan", "veth-node2", up=False)
    assert plan_drift(plan, down, Allowance(links_down=frozenset({(lan, "veth-node2")}))) == []
    assert _one(plan, _perfect(plan), Allowance(links_down=frozenset({(lan, "veth-node2")}))) == \
        ("lan", "link", "link veth-node2 state", "down", "up")


def test_addresses_missing_extra_and_broadcast(plan):
    view = _perfect(plan)
    sbox = plan.namespace("node1/ingress_sbox").name
    have = view.seen[sbox].addresses
    vip = next(a for a in have if a.cidr.endswith("/32"))
    assert _one(plan, _with(view, "node1/ingress_sbox", plan,
                            addresses=tuple(a for a in have if a != vip))) == \
        ("node1/ingress_sbox", "address", f"address {vip.cidr} dev eth0", vip.cidr, "absent")
    extra = have + (Address(sbox, "eth1", "10.99.0.9/32"),)
    assert _one(plan, _with(view, "node1/ingress_sbox", plan, addresses=extra)) == \
        ("node1/ingress_sbox", "address", "address 10.99.0.9/32 dev eth1", "absent", "10.99.0.9/32")
    brd = tuple(replace(a, broadcast="10.0.0.127") if a.cidr == "10.0.0.2/24" else a for a in have)
    assert _one(plan, _with(view, "node1/ingress_sbox", plan, addresses=brd)) == \
        ("node1/ingress_sbox", "address", "address 10.0.0.2/24 dev eth0 broadcast",
         "10.0.0.255", "10.0.0.127")


def test_routes_missing_extra_and_other_gateway(plan):
    view = _perfect(plan)
    task = plan.namespace("hello-a.1").name
    assert _one(plan, _with(view, "hello-a.1", plan, routes=())) == \
        ("hello-a.1", "route", "route default", "default via 172.18.0.1 dev eth1", "absent")
    other = (Route(task, "default", "172.18.0.9", "eth1"),)
    assert _one(plan, _with(view, "hello-a.1", plan, routes=other)) == \
        ("hello-a.1", "route", "route default", "default via 172.18.0.1 dev eth1",
         "default via 172.18.0.9 dev eth1")
    extra = view.seen[task].routes + (Route(task, "10.50.0.0/16", None, "eth0"),)
    assert _one(plan, _with(view, "hello-a.1", plan, routes=extra)) == \
        ("hello-a.1", "route", "route 10.50.0.0/16", "absent", "10.50.0.0/16 dev eth0")


def test_fdb_and_neighbours_missing_extra_and_wrong(plan):
    view = _perfect(plan)
    ov = plan.namespace("node2/ov-ingress").name
    fdb, neigh = view.seen[ov].fdb, view.seen[ov].neighbours
    f, n = fdb[0], neigh[0]
    assert _one(plan, _with(view, "node2/ov-ingress", plan, fdb=fdb[1:])) == \
        ("node2/ov-ingress", "fdb", f"fdb {f.mac} dev vxlan0", f"dst {f.dst}", "absent")
    wrong = (replace(f, dst="192.168.56.99"),) + fdb[1:]
    assert _one(plan, _with(view, "node2/ov-ingress", plan, fdb=wrong)) == \
        ("node2/ov-ingress", "fdb", f"fdb {f.mac} dev vxlan0", f"dst {f.dst}", "dst 192.168.56.99")
    extra = fdb + (FdbEntry(ov, "vxlan0", "02:42:0a:00:00:63", "192.168.56.13"),)
    assert _one(plan, _with(view, "node2/ov-ingress", plan, fdb=extra)) == \
        ("node2/ov-ingress", "fdb", "fdb 02:42:0a:00:00:63 dev vxlan0", "absent",
         "dst 192.168.56.13")
    assert _one(plan, _with(view, "node2/ov-ingress", plan, neighbours=neigh[1:])) == \
        ("node2/ov-ingress", "neigh", f"neighbour {n.ip} dev vxlan0", f"lladdr {n.mac}", "absent")
    wrong_mac = (replace(n, mac="02:42:0a:00:00:63"),) + neigh[1:]
    assert _one(plan, _with(view, "node2/ov-ingress", plan, neighbours=wrong_mac)) == \
        ("node2/ov-ingress", "neigh", f"neighbour {n.ip} dev vxlan0", f"lladdr {n.mac}",
         "lladdr 02:42:0a:00:00:63")
    extra_n = neigh + (Neighbour(ov, "vxlan0", "10.0.0.99", "02:42:0a:00:00:63"),)
    assert _one(plan, _with(view, "node2/ov-ingress", plan, neighbours=extra_n)) == \
        ("node2/ov-ingress", "neigh", "neighbour 10.0.0.99 dev vxlan0", "absent",
         "lladdr 02:42:0a:00:00:63")


def test_sysctls_other_value_absent_and_not_applicable(plan):
    view = _perfect(plan)
    have = view.seen[plan.namespace("node2/ingress_sbox").name].sysctls
    assert _one(plan, _with(view, "node2/ingress_sbox", plan,
                            sysctls={**have, "net.ipv4.ip_forward": "0"})) == \
        ("node2/ingress_sbox", "sysctl", "sysctl net.ipv4.ip_forward", "1", "0")
    assert _one(plan, _with(view, "node2/ingress_sbox", plan,
                            sysctls={**have, "net.ipv4.vs.conntrack": None})) == \
        ("node2/ingress_sbox", "sysctl", "sysctl net.ipv4.vs.conntrack", "1", "absent")
    # A key the reader left out (IPv6 on a kernel without it) is not compared.
    left_out = {k: v for k, v in have.items() if not k.startswith("net.ipv6.")}
    assert plan_drift(plan, _with(view, "node2/ingress_sbox", plan, sysctls=left_out)) == []


def _reweigh(view: KernelView, plan: Plan, addr: str, weight: int | None,
             extra: IpvsDest | None = None) -> KernelView:
    svc = view.seen[plan.namespace("node2/ingress_sbox").name].ipvs[0]
    dests = tuple(replace(d, weight=weight) if d.addr == addr else d for d in svc.dests
                  if not (d.addr == addr and weight is None)) + ((extra,) if extra else ())
    return _with(view, "node2/ingress_sbox", plan, ipvs=(replace(svc, dests=dests),))


def test_ipvs_weights_destinations_and_services(plan):
    view = _perfect(plan)
    svc = view.seen[plan.namespace("node2/ingress_sbox").name].ipvs[0]
    addr = svc.dests[0].addr
    obj = f"IPVS FWM {svc.fwmark} -> {addr}"
    assert _one(plan, _reweigh(view, plan, addr, 0)) == \
        ("node2/ingress_sbox", "ipvs", obj, f"{addr}:0 Masq weight 1", f"{addr}:0 Masq weight 0")
    assert _one(plan, _reweigh(view, plan, addr, None)) == \
        ("node2/ingress_sbox", "ipvs", obj, f"{addr}:0 Masq weight 1", "absent")
    stray = IpvsDest("10.0.0.99", 0, 1, "Masq")
    assert _one(plan, _reweigh(view, plan, "-", 1, stray)) == \
        ("node2/ingress_sbox", "ipvs", f"IPVS FWM {svc.fwmark} -> 10.0.0.99", "absent",
         "10.0.0.99:0 Masq weight 1")
    wlc = _with(view, "node2/ingress_sbox", plan, ipvs=(replace(svc, scheduler="wlc"),))
    assert _one(plan, wlc) == ("node2/ingress_sbox", "ipvs", f"IPVS FWM {svc.fwmark} scheduler",
                               "rr", "wlc")
    assert _one(plan, _with(view, "node2/ingress_sbox", plan, ipvs=())) == \
        ("node2/ingress_sbox", "ipvs", f"IPVS FWM {svc.fwmark}", "rr, 2 destinations", "absent")
    more = _with(view, "node2/ingress_sbox", plan, ipvs=(svc, ObservedService(300, "rr", ())))
    assert _one(plan, more) == ("node2/ingress_sbox", "ipvs", "IPVS FWM 300", "absent",
                                "rr, 0 destinations")


def test_ipvs_weight_zero_during_a_change_is_libnetworks_step_not_drift(plan):
    """Scale-down: the plan no longer has the task, the kernel drains it at weight 0;
    scale-up: the plan has the new task at 1, the kernel holds it at 0 until its app runs."""
    view = _perfect(plan)
    changing = Allowance(changing=True)
    addr = view.seen[plan.namespace("node2/ingress_sbox").name].ipvs[0].dests[0].addr
    assert plan_drift(plan, _reweigh(view, plan, addr, 0), changing) == []
    going = IpvsDest("10.0.0.99", 0, 0, "Masq")
    assert plan_drift(plan, _reweigh(view, plan, "-", 1, going), changing) == []
    # Anything else still is drift during a change: a weight other than 0 or the plan's,
    # a destination the plan lacks that still takes connections.
    assert len(plan_drift(plan, _reweigh(view, plan, addr, 5), changing)) == 1
    assert len(plan_drift(plan, _reweigh(view, plan, "-", 1, replace(going, weight=1)),
                          changing)) == 1


# -- iptables ------------------------------------------------------------------------------

T = "*nat\n:PREROUTING ACCEPT\n:INPUT ACCEPT\n:OUTPUT ACCEPT\n:POSTROUTING ACCEPT\n:DOCKER-INGRESS -\n"
A, B, C = ("-A DOCKER-INGRESS -p tcp -m tcp --dport 5000 -j DNAT --to-destination 172.18.0.2:5000",
           "-A DOCKER-INGRESS -p tcp -m tcp --dport 6000 -j DNAT --to-destination 172.18.0.2:6000",
           "-A DOCKER-INGRESS -j RETURN")


def _nat(*rules: str, head: str = T) -> str:
    return head + "".join(r + "\n" for r in rules) + "COMMIT"


def _rules(want: str, have: str) -> list[tuple[str, str, str, str]]:
    return [(d.object, d.plan, d.kernel, d.detail)
            for d in table_drift("ns", "node1", "nat", want, have)]


def test_rules_in_order_agree():
    assert _rules(_nat(A, B, C), _nat(A, B, C)) == []


def test_a_moved_rule_is_named_with_both_positions_once():
    # iptables -D DOCKER-INGRESS 3; iptables -I DOCKER-INGRESS 1 -j RETURN
    assert _rules(_nat(A, B, C), _nat(C, A, B)) == [
        ("nat DOCKER-INGRESS rule 1", "at position 3", "at position 1",
         f"nat: DOCKER-INGRESS rule 1 is {C}, the plan has it at 3")]
    # iptables -D DOCKER-INGRESS 1; iptables -A DOCKER-INGRESS <rule 1>
    assert _rules(_nat(A, B, C), _nat(B, C, A)) == [
        ("nat DOCKER-INGRESS rule 3", "at position 1", "at position 3",
         f"nat: DOCKER-INGRESS rule 3 is {A}, the plan has it at 1")]


def test_missing_and_extra_rules_name_their_position():
    assert _rules(_nat(A, B, C), _nat(A, C)) == [
        ("nat DOCKER-INGRESS rule 2", B, "absent",
         f"nat: DOCKER-INGRESS rule 2 of the plan is missing: {B}")]
    assert _rules(_nat(A, C), _nat(B, A, C)) == [
        ("nat DOCKER-INGRESS rule 1", "absent", B,
         f"nat: DOCKER-INGRESS rule 1 is not in the plan: {B}")]
    # A duplicate is one rule too many, not a reorder.
    assert [x[:3] for x in _rules(_nat(A, C), _nat(A, A, C))] == \
        [("nat DOCKER-INGRESS rule 2", "absent", A)]


def test_policies_and_user_chains():
    dropped = T.replace(":INPUT ACCEPT", ":INPUT DROP")
    assert [x[:3] for x in _rules(_nat(A, C), _nat(A, C, head=dropped))] == \
        [("nat INPUT policy", "ACCEPT", "DROP")]
    no_chain = T.replace(":DOCKER-INGRESS -\n", "")
    assert [x[:3] for x in _rules(_nat(), _nat(head=no_chain))] == \
        [("nat chain DOCKER-INGRESS", "present", "absent")]
    assert [x[:3] for x in _rules(_nat(head=no_chain), _nat())] == \
        [("nat chain DOCKER-INGRESS", "absent", "present")]


def test_a_table_the_plan_does_not_program_must_be_empty():
    assert _rules("", _nat(head=T.replace(":DOCKER-INGRESS -\n", ""))) == []
    assert [x[:3] for x in _rules("", _nat(C))] == [
        ("nat chain DOCKER-INGRESS", "absent", "present"),
        ("nat DOCKER-INGRESS rule 1", "absent", C)]


def test_user_rules_in_docker_user_are_notes_not_drift(plan):
    view = _perfect(plan)
    node = plan.namespace("node1").name
    tables = dict(view.seen[node].tables)
    mine = "-A DOCKER-USER -s 10.9.9.9/32 -j DROP"
    lines = tables["filter"].splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("-A DOCKER-USER "))
    tables["filter"] = "\n".join(lines[:at] + [mine] + lines[at:])
    found = plan_drift(plan, _with(view, "node1", plan, tables=tables))
    assert [(d.kind, d.target, d.detail) for d in found] == [("user-rule", "node1", mine)]
    # Below netlab's RETURN it would never be reached: that is drift, not a kept rule.
    tables["filter"] = "\n".join(lines[:at + 1] + [mine] + lines[at + 1:])
    found = plan_drift(plan, _with(view, "node1", plan, tables=tables))
    assert [d.kind for d in found] == ["user-rule", "iptables"], found
    assert found[1].detail.startswith("filter: DOCKER-USER rule 1 is -A DOCKER-USER -m comment")
    assert found[1].detail.endswith("-j RETURN, the plan has it at 2")


def test_a_tasks_etc_files_missing_or_changed_are_drift(plan, tmp_path):
    """resolv.conf and hosts that `ip netns exec` mounts are compared too."""
    from netlab.kernel import etcnetns
    from netlab.kernel.observe import etc_drift
    view = _perfect(plan)
    task = next(ns for ns in plan.netns if ns.role == "task")
    files = plan.items_in(task.name).etc_files
    assert {f.name for f in files} == {"resolv.conf", "hosts"}
    etcnetns.write([f for ns in plan.netns for f in plan.items_in(ns.name).etc_files], tmp_path)
    assert etc_drift(plan, view, tmp_path) == []
    (tmp_path / task.name / "resolv.conf").write_text("nameserver 8.8.8.8\n")
    (tmp_path / task.name / "hosts").unlink()
    got = {(d.target, d.object, d.kernel) for d in etc_drift(plan, view, tmp_path)}
    assert got == {(task.target, f"file /etc/netns/{task.name}/resolv.conf", "other content"),
                   (task.target, f"file /etc/netns/{task.name}/hosts", "absent")}
