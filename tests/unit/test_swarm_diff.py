"""``netlab swarm diff``: a real node's namespaces against its node of the plan.

The "real" node here is the seed's node1 made to look as Docker leaves it:
its own veth names, no netlab comments, the default bridge's rules, the
machine's own LAN interface. The comparison must see through all of that
(and list it as known) and still catch a real difference, naming the
object behind it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from netlab.diff.compare import planned_tables
from netlab.diff.drift import Allowance, LinkSeen, NetnsSeen, planned_links
from netlab.docker.adopt import adopt
from netlab.docker.nodediff import compare_node
from netlab.docker.normalize import strip_comments
from netlab.docker.snapshot import (RealNetwork, RealNode, RealPort, RealSandbox, RealService,
                                    RealTask, Snapshot)
from netlab.plan.build import build_plan
from netlab.plan.types import Address, Route
from netlab.scenario import load_lab

REPO = Path(__file__).resolve().parents[2]
INGRESS_ID = "q3v9pl1e2xw0abcdefghijklm"
DOCKER0 = {"nat": ("-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE",
                   "-A DOCKER -i docker0 -j RETURN"),
           "filter": ("-A FORWARD -o docker0 -j DOCKER",
                      "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT")}


def _snapshot() -> Snapshot:
    nodes = (RealNode("n1", "node1", "node1", "manager", "192.168.56.11", "active", "ready"),
             RealNode("n2", "node2", "node2", "worker", "192.168.56.12", "active", "ready"))
    ingress = RealNetwork(INGRESS_ID, "ingress", "overlay", "swarm", "10.0.0.0/24", "10.0.0.1",
                          4096, True)
    seed = RealService("s1", "hello-a", "replicated", 2, "vip",
                       (RealPort(5000, 3000, "tcp", "ingress"),), (), {"ingress": "10.0.0.4/24"})
    tasks = (RealTask("t1", "hello-a", 1, "node1", "running", "running", "c1" * 32,
                      {"ingress": "10.0.0.5/24"}, "hello-a.1"),
             RealTask("t2", "hello-a", 2, "node2", "running", "running", "c2" * 32,
                      {"ingress": "10.0.0.6/24"}, "hello-a.2"))
    d = "/var/run/docker/netns/"
    sandboxes = (RealSandbox("/proc/1/ns/net", "node1", "the node's own network namespace"),
                 RealSandbox(d + "ingress_sbox", "node1/ingress_sbox", "Docker's ingress sandbox"),
                 RealSandbox(d + "1-" + INGRESS_ID[:10], "node1/ov-ingress", "overlay network ingress"),
                 RealSandbox(d + "4b1d2e3f4a5b", "hello-a.1", "container c1c1c1c1c1c1 (hello-a.1.t1)"),
                 RealSandbox(d + "default", "", "not a namespace netlab models"))
    return Snapshot("node1", nodes, (ingress,), (seed,), tasks, sandboxes, "cluster")


def _as_docker_leaves_it(lab) -> dict[str, NetnsSeen]:
    """node1 of the seed's plan, as read from a real Docker node (by real target)."""
    plan = build_plan(lab)
    out: dict[str, NetnsSeen] = {}
    index = iter(range(2, 1000))
    ends: dict[tuple[str, str], int] = {}
    for ns in plan.netns:
        if ns.node != "node1":
            continue
        items = plan.items_in(ns.name)
        for w in planned_links(ns.name, items, Allowance()):
            ends[(ns.name, w.name)] = next(index)
        out[ns.target] = NetnsSeen(
            (), items.addresses, items.routes, items.neighbours, items.fdb,
            {s.key: s.value for s in items.sysctls},
            {t: strip_comments(text) for t, text in planned_tables(plan, ns.name).items()},
            items.ipvs if ns.role == "sandbox" else ())
    peers = {}
    for v in plan.veths:
        a, b = (v.a.netns, v.a.name), (v.b.netns, v.b.name)
        if a in ends and b in ends:
            peers[a], peers[b] = ends[b], ends[a]
    for ns in plan.netns:
        if ns.target not in out:
            continue
        items = plan.items_in(ns.name)
        links = []
        for w in planned_links(ns.name, items, Allowance()):
            name = w.name
            if w.kind == "veth" and w.master is not None:
                name = f"veth{ends[(ns.name, w.name)]:07x}"     # Docker's random outer name
            links.append(LinkSeen(name, None if w.kind == "loopback" else w.kind, w.mtu or 65536,
                                  True, w.mac, w.master, w.vxlan, ends[(ns.name, w.name)],
                                  peers.get((ns.name, w.name))))
        s = out[ns.target]
        out[ns.target] = replace(s, links=tuple(links))
    host = out["node1"]
    tables = {t: text + "\n" + "\n".join(DOCKER0.get(t, ())) for t, text in host.tables.items()}
    out["node1"] = replace(
        host, tables=tables,
        links=host.links + (LinkSeen("ens3", None, 1500, True, "52:54:00:12:34:56"),
                            LinkSeen("docker0", "bridge", 1500, True, "02:42:aa:bb:cc:dd")),
        addresses=host.addresses + (Address("h", "docker0", "172.17.0.1/16", "172.17.255.255"),
                                    Address("h", "ens3", "192.168.59.11/24", "192.168.59.255")),
        routes=host.routes + (Route("h", "default", "192.168.59.1", "ens3"),))
    return out


@pytest.fixture
def seed():
    return load_lab(REPO / "scenarios" / "hello-a.yaml")


def _diff(lab, seen):
    snap = _snapshot()
    adopted = adopt(lab, snap, "node1", seen)
    return compare_node(build_plan(adopted.lab, adopted.allocations), "node1", snap, seen,
                        adopted.notes, adopted.owners())


def test_a_node_as_docker_leaves_it_equals_the_plan(seed):
    result = _diff(seed, _as_docker_leaves_it(seed))
    assert result.differences == (), "\n".join(x.detail for x in result.differences)
    whys = {k.why.split(":")[0] for k in result.known}
    assert any("docker0" in w for w in whys), whys
    assert any(k.object == "link eth0 (LAN)" for k in result.known)
    assert any(k.path == "/var/run/docker/netns/default" for k in result.known)
    assert {c.target for c in result.namespaces} == {
        "node1", "node1/ingress_sbox", "node1/ov-ingress", "hello-a.1"}


def test_a_missing_ipvs_destination_is_a_difference_naming_the_sandbox(seed):
    seen = _as_docker_leaves_it(seed)
    sbox = seen["node1/ingress_sbox"]
    svc = sbox.ipvs[0]
    seen["node1/ingress_sbox"] = replace(sbox, ipvs=(replace(svc, dests=svc.dests[:1]),))
    result = _diff(seed, seen)
    assert [(x.target, x.kind, x.real) for x in result.differences] == [
        ("node1/ingress_sbox", "ipvs", "absent")]
    assert result.differences[0].object == "IPVS FWM 256 -> 10.0.0.6"
    assert result.differences[0].behind.startswith("task hello-a.2 on node2; ")
    assert "ingress sandbox" in result.differences[0].behind


def test_a_stray_rule_names_the_rule_and_the_object_behind_its_chain(seed):
    seen = _as_docker_leaves_it(seed)
    task = seen["hello-a.1"]
    nat = task.tables["nat"].replace("-A PREROUTING -d 10.0.0.5/32 -p tcp -m tcp --dport 5000 "
                                     "-j REDIRECT --to-ports 3000", "")
    seen["hello-a.1"] = replace(task, tables={**task.tables, "nat": nat})
    result = _diff(seed, seen)
    assert len(result.differences) == 1, result.differences
    x = result.differences[0]
    assert (x.target, x.kind, x.real) == ("hello-a.1", "iptables", "absent")
    assert "REDIRECT --to-ports 3000" in x.plan
    assert x.behind == ("task/hello-a.1:publish/5000; task hello-a.1 (container c1c1c1c1c1c1 "
                        "(hello-a.1.t1))")


def test_real_addresses_are_adopted_and_said(seed):
    """Docker gave hello-a.1 another address than netlab's IPAM would: the plan takes the
    Swarm's address (an allocation, not plumbing) and the notes say so."""
    snap = _snapshot()
    t1 = replace(snap.tasks[0], addresses={"ingress": "10.0.0.9/24"})
    snap = replace(snap, tasks=(t1, snap.tasks[1]))
    adopted = adopt(seed, snap, "node1", _as_docker_leaves_it(seed))
    assert str(adopted.allocations.tasks["hello-a.1"].ingress_ip) == "10.0.0.9"
    assert any("addresses" in n for n in adopted.notes)


def test_a_real_task_the_scenario_has_no_slot_for_is_a_difference(seed):
    seen = _as_docker_leaves_it(seed)
    snap = _snapshot()
    extra = replace(snap.sandboxes[3], path="/var/run/docker/netns/77aa", target="hello-a.3")
    snap = replace(snap, sandboxes=snap.sandboxes + (extra,))
    adopted = adopt(seed, snap, "node1", seen)
    result = compare_node(build_plan(adopted.lab, adopted.allocations), "node1", snap, seen)
    assert [(x.target, x.plan, x.real) for x in result.differences] == [
        ("hello-a.3", "absent", "present")]


def test_cli_diff_exit_codes_and_json(seed, monkeypatch):
    import json

    from click.testing import CliRunner

    from netlab.cli import swarm as cli_swarm
    from netlab.cli.main import cli
    seen = _as_docker_leaves_it(seed)
    monkeypatch.setattr(cli_swarm, "engine", lambda: cli_swarm.Engine(
        lambda url, manager=None: _snapshot(), lambda files, sysctls, backend: seen))
    monkeypatch.setattr(cli_swarm.xtables, "choose", lambda flag: "nft")
    hello = str(REPO / "scenarios" / "hello-a.yaml")
    result = CliRunner().invoke(cli, ["swarm", "diff", hello, "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["equal"] and doc["differences"] == [] and doc["known"]
    assert {"node1", "node1/ingress_sbox"} <= {n["target"] for n in doc["namespaces"]}
    text = CliRunner().invoke(cli, ["swarm", "diff", hello])
    assert text.exit_code == 0 and "0 difference(s)" in text.stdout
    bad = CliRunner().invoke(cli, ["swarm", "diff", hello, "--node", "nodex"])
    assert bad.exit_code == 2
    assert "no scenario node is named 'nodex'; the scenario has node1, node2" in bad.stderr
    seen["node1/ingress_sbox"] = replace(seen["node1/ingress_sbox"], ipvs=())
    assert CliRunner().invoke(cli, ["swarm", "diff", hello]).exit_code == 1


def test_the_other_nodes_sandbox_address_is_read_from_the_overlays_fdb(seed):
    """node2's ingress_sbox got 10.0.0.9 in the Swarm (netlab's IPAM would give 10.0.0.3):
    node1's overlay knows it by its FDB entry towards node2's underlay address, and the
    plan takes it, so its neighbour and FDB entries compare equal."""
    seen = _as_docker_leaves_it(seed)
    ov = seen["node1/ov-ingress"]
    seen["node1/ov-ingress"] = replace(
        ov, fdb=tuple(replace(f, mac=f.mac.replace("0a:00:00:03", "0a:00:00:09")) for f in ov.fdb),
        neighbours=tuple(replace(n, ip=n.ip.replace("10.0.0.3", "10.0.0.9"),
                                 mac=n.mac.replace("0a:00:00:03", "0a:00:00:09"))
                         for n in ov.neighbours))
    adopted = adopt(seed, _snapshot(), "node1", seen)
    assert str(adopted.allocations.nodes["node2"].sandbox_ip) == "10.0.0.9"
    assert _diff(seed, seen).differences == ()


def test_cli_diff_takes_a_lab_that_is_up_and_refuses_an_unknown_one(seed, tmp_path, monkeypatch):
    """SCENARIO_OR_LAB: a lab's model comes from its state file (never its scenario)."""
    import json

    from click.testing import CliRunner

    from netlab import ipam, lifecycle, state
    from netlab.cli import common
    from netlab.cli import swarm as cli_swarm
    from netlab.cli.main import cli
    lab = load_lab(REPO / "scenarios" / "hello-a.yaml", name_override="x")
    st = state.StateStore(tmp_path / "store")
    st.save(lifecycle.state_for(lab, ipam.allocate(lab), "gone.yaml"))
    monkeypatch.setattr(common, "store", lambda: st)
    seen = _as_docker_leaves_it(seed)
    monkeypatch.setattr(cli_swarm, "engine", lambda: cli_swarm.Engine(
        lambda url, manager=None: _snapshot(), lambda files, sysctls, backend: seen))
    monkeypatch.setattr(cli_swarm.xtables, "choose", lambda flag: "nft")
    result = CliRunner().invoke(cli, ["swarm", "diff", "x", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["against"] == "lab x"
    unknown = CliRunner().invoke(cli, ["swarm", "diff", "nolab", "--json"])
    assert unknown.exit_code == 2 and json.loads(unknown.stdout)["field"] == "LAB"


def test_forward_policy_accept_on_a_machine_that_forwarded_already_is_known(seed):
    """Seen on a real node: dockerd sets FORWARD DROP only when it turns ip_forward on."""
    seen = _as_docker_leaves_it(seed)
    host = seen["node1"]
    seen["node1"] = replace(host, tables={**host.tables, "filter": host.tables["filter"].replace(
        ":FORWARD DROP", ":FORWARD ACCEPT")})
    result = _diff(seed, seen)
    assert result.differences == ()
    assert any(k.object == "policy filter FORWARD ACCEPT" and "ip_forward" in k.why
               for k in result.known)
