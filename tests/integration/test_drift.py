"""``status`` compares the kernel with the plan in full (issue 8).

The seed lab is broken with the standard tools inside its namespaces (ip,
bridge, sysctl, iptables, ipvsadm), one object of each kind; ``status``
must name each one precisely (target, object, what the plan says, what the
kernel has) and nothing else; ``netlab up`` converges it all back.
"""

from __future__ import annotations

import shlex
import subprocess

from netlab.plan.build import build_plan
from netlab.state import StateStore

from tests.integration.conftest import netlab, sh


def _plan(lab):
    st = StateStore().load(lab.name)
    return build_plan(st.model, st.allocations)


def _found(status: dict) -> dict[tuple[str, str], dict]:
    """The drift of a status document by (target or netns, object)."""
    return {(d["target"] or d["netns"], d["object"]): d for d in status["drift"]}


def test_status_names_each_kind_of_drift_and_up_repairs_it(seed_lab):
    lab = seed_lab
    assert lab.status()["drift"] == []
    plan = _plan(lab)
    ns = lab.netns
    iptables = lab.save.replace("-save", "")
    sbox1, sbox2, ov2 = ns("node1/ingress_sbox"), ns("node2/ingress_sbox"), ns("node2/ov-ingress")
    vip = next(a for a in plan.items_in(sbox1).addresses if a.cidr.endswith("/32"))
    fdb = next(f for f in plan.items_in(ov2).fdb)
    neigh = next(n for n in plan.items_in(ov2).neighbours)
    dest = plan.items_in(sbox2).ipvs[0].dests[0]
    fwmark = plan.items_in(sbox2).ipvs[0].fwmark
    route = plan.items_in(ns("hello-a.1")).routes[0]
    # The plan's DOCKER-INGRESS (nat) on node1: the DNAT, then the RETURN. Reorder with -D/-I.
    ingress = [line for line in sh(ns("node1"), lab.save, "-t", "nat").splitlines()
               if line.startswith("-A DOCKER-INGRESS ")]
    assert len(ingress) == 2 and ingress[1].endswith("-j RETURN"), ingress
    stray = f"nl-{lab.name}.stray"

    sh(sbox1, "ip", "addr", "del", vip.cidr, "dev", vip.ifname)
    sh(ns("node2"), "ip", "link", "set", "dev", "docker_gwbridge", "mtu", "1400")
    sh(sbox2, "sysctl", "-qw", "net.ipv4.ip_forward=0")
    sh(ns("node1"), iptables, "-t", "nat", "-D", "DOCKER-INGRESS", "2")
    sh(ns("node1"), iptables, "-t", "nat", "-I", *shlex.split(ingress[1])[1:2], "1",
       *shlex.split(ingress[1])[2:])
    sh(ns("node2"), iptables, "-P", "FORWARD", "ACCEPT")
    sh(ns("node1"), iptables, "-I", "DOCKER-USER", "-s", "10.9.9.9/32", "-j", "DROP")
    sh(ns("hello-a.2"), iptables, "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/24",
       "-j", "MASQUERADE")
    sh(ov2, "bridge", "fdb", "del", fdb.mac, "dev", fdb.ifname, "dst", fdb.dst, "self")
    sh(ov2, "ip", "neigh", "del", neigh.ip, "dev", neigh.ifname)
    sh(sbox2, "ipvsadm", "-e", "-f", str(fwmark), "-r", f"{dest.addr}:0", "-m", "-w", "0")
    sh(ns("hello-a.1"), "ip", "route", "del", "default")
    sh(ns("client"), "ip", "link", "set", "eth0", "down")
    sh(ns("hello-a.2"), "ip", "addr", "add", "10.99.0.9/32", "dev", "eth0")
    sh(ns("hello-a.1"), "ip", "route", "add", "10.50.0.0/16", "dev", "eth0")
    sh(ns("node1/ov-ingress"), "ip", "link", "set", "vxlan0", "type", "vxlan", "nolearning")
    subprocess.run(["ip", "netns", "add", stray], check=True)
    try:
        doc = lab.status()
    finally:
        subprocess.run(["ip", "netns", "del", stray], check=True)

    found = _found(doc)
    want = {
        ("node1/ingress_sbox", f"address {vip.cidr} dev eth0"): (vip.cidr, "absent"),
        ("node2", "link docker_gwbridge mtu"): ("1500", "1400"),
        ("node2/ingress_sbox", "sysctl net.ipv4.ip_forward"): ("1", "0"),
        ("node1", "nat DOCKER-INGRESS rule 1"): ("at position 2", "at position 1"),
        ("node2", "filter FORWARD policy"): ("DROP", "ACCEPT"),
        ("hello-a.2", "nat POSTROUTING rule 2"):
            ("absent", "-A POSTROUTING -s 10.99.0.0/24 -j MASQUERADE"),
        ("node2/ov-ingress", f"fdb {fdb.mac} dev vxlan0"): (f"dst {fdb.dst}", "absent"),
        ("node2/ov-ingress", f"neighbour {neigh.ip} dev vxlan0"): (f"lladdr {neigh.mac}", "absent"),
        ("node2/ingress_sbox", f"IPVS FWM {fwmark} -> {dest.addr}"):
            (f"{dest.addr}:0 Masq weight 1", f"{dest.addr}:0 Masq weight 0"),
        ("hello-a.1", "route default"): (f"default via {route.gateway} dev eth1", "absent"),
        ("client", "link eth0 state"): ("up", "down"),
        ("hello-a.2", "address 10.99.0.9/32 dev eth0"): ("absent", "10.99.0.9/32"),
        (stray, f"netns {stray}"): ("absent", "present"),
        ("hello-a.1", "route 10.50.0.0/16"): ("absent", "10.50.0.0/16 dev eth0"),
        ("node1/ov-ingress", "link vxlan0 learning"): ("1", "0"),
    }
    assert {k: (d["plan"], d["kernel"]) for k, d in found.items()} == want, doc["drift"]
    moved = found[("node1", "nat DOCKER-INGRESS rule 1")]["detail"]
    assert moved.startswith(f"nat: DOCKER-INGRESS rule 1 is {ingress[1]}, the plan has it at 2"), moved
    assert all(d["hint"] for d in doc["drift"])
    assert [r["rule"] for r in doc["user_rules"]] == ["-A DOCKER-USER -s 10.9.9.9/32 -j DROP"]
    text = netlab("status", lab.name).stdout
    assert "node2/ingress_sbox ipvs: IPVS FWM" in text and "drift: 14 difference(s)" in text, text   # the stray is gone

    netlab("up", str(lab.scenario), "--name", lab.name)
    after = lab.status()
    assert after["drift"] == [] and len(after["user_rules"]) == 1, after["drift"]
    sh(ns("node1"), iptables, "-D", "DOCKER-USER", "-s", "10.9.9.9/32", "-j", "DROP")
    assert len(lab.curl("node1:5000", 2)) == 2
