"""User overlay networks, LB sandboxes and east-west VIPs, without root: the scenario
reader, the allocator across networks, the plan against Docker's rules, the
service records, the state codec."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import codec, ipam
from netlab.cli.main import cli
from netlab.model import scale
from netlab.plan.build import build_plan
from netlab.plan.discovery import records_for_task
from netlab.plan.render import iptables_save, ipvsadm
from netlab.scenario import ScenarioError, load_lab, load_lab_from_text

REPO = Path(__file__).resolve().parents[2]
EW = REPO / "scenarios" / "east-west.yaml"


def lab_of(text: str):
    return load_lab_from_text(textwrap.dedent(text).lstrip("\n"), "lab.yaml")


def issues(text: str) -> list:
    with pytest.raises(ScenarioError) as info:
        lab_of(text)
    return info.value.issues


BASE = """
name: ew
nodes: {node1: {role: manager}, node2: {role: worker}}
"""


# --- the scenario -------------------------------------------------------------

def test_east_west_scenario_reads_networks_modes_and_default_subnet():
    lab = load_lab(EW)
    (net,) = lab.networks
    assert (net.name, str(net.subnet), net.mtu) == ("backend", "10.0.1.0/24", 1450)
    modes = {s.name: (s.networks, s.endpoint_mode, s.on_ingress) for s in lab.services}
    assert modes == {"web": (("backend",), "vip", True), "api": (("backend",), "vip", False),
                     "cache": (("backend",), "dnsrr", False)}
    assert lab.service("web").attachments == ("ingress", "backend")


def test_default_subnets_come_from_the_pool_skipping_used_ones():
    lab = lab_of(BASE + """
networks:
  a: {}
  b: {ipam: {config: [{subnet: 10.0.2.0/24}]}}
  c: {driver: overlay, driver_opts: {com.docker.network.driver.mtu: "1400"}}
services:
  s: {networks: [a, b, c], expose: [80]}
""")
    assert [(n.name, str(n.subnet), n.mtu) for n in lab.networks] == [
        ("a", "10.0.1.0/24", 1450), ("b", "10.0.2.0/24", 1450), ("c", "10.0.3.0/24", 1350)]


@pytest.mark.parametrize("body, path, message", [
    ("networks: {backend: {}}\nservices: {s: {networks: [front], expose: [80]}}",
     "services.s.networks[0]", "unknown network 'front'"),
    ("networks: {backend: {driver: bridge}}\nservices: {s: {networks: [backend]}}",
     "networks.backend.driver", "unknown network driver 'bridge'"),
    ("networks: {a: {ipam: {config: [{subnet: 10.0.1.0/24}]}}, b: {ipam: {config: [{subnet: 10.0.1.0/25}]}}}\n"
     "services: {s: {networks: [a, b]}}",
     "networks.b.ipam.config[0].subnet", "overlaps"),
    ("networks: {a: {ipam: {config: [{subnet: 10.0.0.0/24}]}}}\nservices: {s: {networks: [a]}}",
     "networks.a.ipam.config[0].subnet", "overlaps the ingress subnet"),
    ("networks: {a: {}}\nservices: {s: {networks: [a], ports: ['80:80'], deploy: {endpoint_mode: dnsrr}}}",
     "services.s.deploy.endpoint_mode", "port published with ingress mode can't be used with dnsrr mode"),
    ("networks: {a: {}}\nservices: {s: {networks: [a], deploy: {endpoint_mode: rr}}}",
     "services.s.deploy.endpoint_mode", "unknown endpoint_mode 'rr'"),
    ("networks: {ingress: {}}\nservices: {s: {ports: ['80:80']}}",
     "networks.ingress", "reserved"),
    ("networks: {a: {ipam: {config: [{subnet: 10.0.1.0/29}]}}}\nservices: {s: {networks: [a], deploy: {replicas: 4}}}",
     "networks.a.ipam.config[0].subnet", "needs 8"),
    ("services: {s: {networks: backend}}",
     "services.s.networks", "must be a list"),
])
def test_bad_networks_are_refused_naming_the_field(body, path, message):
    found = issues(BASE + body)
    assert [i.path for i in found] == [path], found
    assert message in found[0].message and found[0].hint


def test_bad_network_input_exits_2_and_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + "services: {s: {networks: [nope]}}\n")
    result = CliRunner().invoke(cli, ["validate", str(bad)])
    assert result.exit_code == 2
    assert "services.s.networks[0]: unknown network 'nope'" in result.output + result.stderr


def test_dnsrr_with_host_ports_or_no_ports_is_accepted():
    lab = lab_of(BASE + """
networks: {a: {}}
services:
  h: {networks: [a], deploy: {endpoint_mode: dnsrr}, ports: [{published: 6379, target: 6379, mode: host}]}
  n: {networks: [a], deploy: {endpoint_mode: dnsrr}}
""")
    assert [s.endpoint_mode for s in lab.services] == ["dnsrr", "dnsrr"]
    assert not lab.service("h").on_ingress      # host ports only, on a user network


# --- allocations -------------------------------------------------------------

def test_network_allocations_follow_the_pool_order():
    lab = load_lab(EW)
    a = ipam.allocate(lab)
    na = a.networks["backend"]
    assert na.vni == 4097                                     # after ingress's 4096
    assert {n: str(ip) for n, ip in na.lb.items()} == {"node1": "10.0.1.2", "node2": "10.0.1.3"}
    assert {s: (str(v.vip), v.fwmark) for s, v in na.vips.items()} == {
        "web": ("10.0.1.4", 0x101), "api": ("10.0.1.7", 0x102)}   # web's ingress LB is 0x100
    assert [str(na.tasks[t]) for t in ("web.1", "web.2", "api.1", "api.2", "api.3")] == [
        "10.0.1.5", "10.0.1.6", "10.0.1.8", "10.0.1.9", "10.0.1.10"]
    assert "cache" not in na.vips                              # dnsrr: no VIP
    assert a.tasks["api.1"].ingress_ip is None and a.tasks["web.1"].ingress_ip is not None
    assert a.services["web"].fwmark == 0x100 and set(a.services) == {"web"}


def test_two_networks_take_serial_vnis_and_marks():
    lab = lab_of(BASE + """
networks: {a: {}, b: {}}
services:
  s: {networks: [a, b], expose: [80]}
  t: {networks: [b], expose: [80]}
""")
    a = ipam.allocate(lab)
    assert (a.networks["a"].vni, a.networks["b"].vni) == (4097, 4098)
    assert (a.networks["a"].vips["s"].fwmark, a.networks["b"].vips["s"].fwmark,
            a.networks["b"].vips["t"].fwmark) == (0x100, 0x101, 0x102)
    assert a.next_fwmark == 0x103 and a.next_vni == 4099


def test_scaling_keeps_every_address_and_takes_the_next_free_ones():
    lab = load_lab(EW)
    before = ipam.allocate(lab)
    up = scale(lab, {"api": 4})
    after = ipam.allocate(up, before)
    b, n = before.networks["backend"], after.networks["backend"]
    assert n.lb == b.lb and n.vips == b.vips and n.vni == b.vni
    assert all(n.tasks[t] == ip for t, ip in b.tasks.items())
    assert str(n.tasks["api.4"]) == "10.0.1.13"               # serial: after cache.2's .12
    down = scale(up, {"api": 3})
    after_down = ipam.allocate(down, after)
    (gone,) = {t.name for t in up.tasks_of("api")} - {t.name for t in down.tasks_of("api")}
    assert gone not in after_down.networks["backend"].tasks
    back = ipam.allocate(scale(down, {"api": 4}), after_down)
    # the new task takes the next address, not the one just freed (libnetwork's serial IPAM)
    assert str(back.networks["backend"].tasks[gone]) == "10.0.1.14"


# --- the plan ----------------------------------------------------------------

# An lb-backend sandbox of Docker 20.10 for `docker service create --name api
# --network backend` (VIP 10.0.1.7, fwmark 258 as the third LB of the daemon),
# written by hand from libnetwork service_linux.go (addLBBackend, configureFWMark:
# "-t mangle -A INPUT -d VIP/32 -j MARK --set-mark N" and "-t nat -A POSTROUTING
# -m ipvs --ipvs -d SUBNET -j SNAT --to-source LB-IP"), as iptables-save prints them.
DOCKER_LB_MANGLE_API = "-A INPUT -d 10.0.1.7/32 -j MARK --set-xmark 0x102/0xffffffff"
DOCKER_LB_NAT = "-A POSTROUTING -d 10.0.1.0/24 -m ipvs --ipvs -j SNAT --to-source 10.0.1.2"


def _no_comments(text: str) -> str:
    import re
    return re.sub(r' -m comment --comment "(?:[^"\\]|\\.)*"', "", text)


def test_lb_sandbox_holds_dockers_mark_snat_and_ipvs_service():
    plan = build_plan(load_lab(EW))
    ns = plan.namespace("node1/lb-backend")
    assert ns.role == "sandbox" and ns.node == "node1"
    mangle = _no_comments(iptables_save(plan, ns.name, "mangle")).splitlines()
    nat = _no_comments(iptables_save(plan, ns.name, "nat")).splitlines()
    assert DOCKER_LB_MANGLE_API in mangle
    assert nat.count(DOCKER_LB_NAT) == 1
    assert "FWM  258 rr" in ipvsadm(plan.items_in(ns.name).ipvs)
    assert [d.addr for s in plan.items_in(ns.name).ipvs if s.fwmark == 258 for d in s.dests] == [
        "10.0.1.8", "10.0.1.9", "10.0.1.10"]
    addrs = {a.cidr for a in plan.items_in(ns.name).addresses}
    assert addrs == {"10.0.1.2/24", "10.0.1.4/32", "10.0.1.7/32"}
    assert plan.items_in(ns.name).routes == ()                 # no gateway: only ingress_sbox
    sysctls = {(s.key, s.value) for s in plan.items_in(ns.name).sysctls}
    assert ("net.ipv4.vs.conntrack", "1") in sysctls and ("net.ipv4.vs.expire_nodest_conn", "1") in sysctls


def test_overlay_namespace_has_its_vni_and_no_vip_entries():
    plan = build_plan(load_lab(EW))
    ov = plan.namespace("node1/ov-backend").name
    items = plan.items_in(ov)
    (vx,) = items.vxlans
    assert (vx.vni, vx.underlay_netns) == (4097, plan.namespace("node1").name)
    assert {a.cidr for a in items.addresses} == {"10.0.1.1/24"}
    neigh = {n.ip for n in items.neighbours}
    assert neigh == {"10.0.1.3", "10.0.1.6", "10.0.1.9", "10.0.1.11"}   # node2's endpoints
    assert not neigh & {"10.0.1.4", "10.0.1.7"}                          # never a VIP


# Three nodes, backend used by one service: a node has ov-/lb-backend only while a
# task attached to backend runs on it (the swarm executor creates a task's networks,
# and with it libnetwork's createLoadBalancerSandbox; the last task's removeNetworks
# deletes it).
SPARSE = BASE.replace("node2: {role: worker}}", "node2: {role: worker}, node3: {role: worker}}") + """
networks: {backend: {driver: overlay}}
services:
  web: {deploy: {replicas: 3}, ports: ["8080:80"]}
  api: {deploy: {replicas: 1}, networks: [backend], expose: [80]}
"""


def _targets(plan) -> set[str]:
    return {ns.target for ns in plan.netns}


def test_lb_and_overlay_sandboxes_only_where_a_task_on_the_network_runs():
    lab = lab_of(SPARSE)
    (api,) = lab.tasks_of("api")
    a = ipam.allocate(lab)
    plan = build_plan(lab, a)
    others = [n.name for n in lab.nodes if n.name != api.node]
    assert {f"{api.node}/lb-backend", f"{api.node}/ov-backend"} <= _targets(plan)
    for node in others:
        assert f"{node}/ingress_sbox" in _targets(plan)          # ingress: on every node
        assert not {f"{node}/lb-backend", f"{node}/ov-backend"} & _targets(plan)
    # nothing of backend lives on the other nodes: no VXLAN device, no veth, no VIP
    assert [plan.namespace(f"{api.node}/ov-backend").name] == [
        v.netns for v in plan.vxlans if v.vni == a.networks["backend"].vni]
    held = {ns.name for ns in plan.netns}
    assert all(v.a.netns in held and v.b.netns in held for v in plan.veths)
    # and the one overlay has no remote endpoint: no LB endpoint of a node without backend
    ov = plan.items_in(plan.namespace(f"{api.node}/ov-backend").name)
    assert ov.neighbours == () and ov.fdb == ()
    # a second task elsewhere: both nodes have backend, each overlay names the other's
    # LB endpoint and task, and the third node's LB address nowhere
    two = scale(lab, {"api": 2})
    b = ipam.allocate(two, a)
    plan = build_plan(two, b)
    having = {t.node for t in two.tasks_of("api")}
    (third,) = {n.name for n in two.nodes} - having
    lbs = b.networks["backend"].lb
    for node in having:
        (peer,) = having - {node}
        items = plan.items_in(plan.namespace(f"{node}/ov-backend").name)
        peer_ips = {str(b.networks["backend"].tasks[t.name]) for t in two.tasks_on(peer)
                    if t.service == "api"}
        assert {n.ip for n in items.neighbours} == {str(lbs[peer]), *peer_ips}
    assert not {f"{third}/lb-backend", f"{third}/ov-backend"} & _targets(plan)
    assert str(lbs[third]) not in {n.ip for n in plan.neighbours}


def test_scale_brings_an_lb_sandbox_with_a_nodes_first_task_and_takes_it_with_its_last(tmp_path):
    from netlab import converge, lifecycle, state
    from tests.unit.fakes import FakeHost
    lab = lab_of(SPARSE)
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(lab, "sparse.yaml", store, "legacy", host=fake.host())

    def lbs() -> set[str]:
        return {ns for ns in fake.kernel.namespaces if ns.endswith(".lb-backend")}

    (api,) = lab.tasks_of("api")
    assert lbs() == {f"nl-ew.{api.node}.lb-backend"}
    result = converge.scale(lab.name, {"api": 2}, store, host=fake.host())
    (added,) = result.added
    assert added.node != api.node
    assert lbs() == {f"nl-ew.{api.node}.lb-backend", f"nl-ew.{added.node}.lb-backend"}
    assert f"nl-ew.{added.node}.ov-backend" in fake.kernel.namespaces
    # the new destination is weighted in the lb-backend of both nodes that have backend
    weighted = {s[1] for s in fake.kernel.steps if s[0] == "weight" and s[4] == 1}
    assert lbs() <= weighted
    assert f"nl-ew.{added.node}.lb-backend" in store.load(lab.name).netns
    converge.scale(lab.name, {"api": 1}, store, host=fake.host())
    (left,) = store.load(lab.name).model.tasks_of("api")
    assert lbs() == {f"nl-ew.{left.node}.lb-backend"}
    gone = ({api.node, added.node} - {left.node}).pop()
    assert f"nl-ew.{gone}.ov-backend" not in fake.kernel.namespaces
    assert f"nl-ew.{gone}.lb-backend" not in store.load(lab.name).netns


def test_task_interfaces_follow_libnetworks_join_order():
    plan = build_plan(load_lab(EW))

    def ifaces(target):
        ns = plan.namespace(target).name
        return sorted((a.ifname, a.cidr) for a in plan.items_in(ns).addresses)

    assert ifaces("web.1") == [("eth0", "10.0.0.5/24"), ("eth1", "172.18.0.3/16"),
                               ("eth2", "10.0.1.5/24")]
    assert ifaces("api.1") == [("eth0", "10.0.1.8/24"), ("eth1", "172.18.0.4/16")]
    api1 = plan.namespace("api.1").name
    # Not on ingress: no REDIRECT/DROP; only the embedded DNS's NAT rules.
    assert {(r.table, r.chain) for r in plan.rules_in(api1)} == {
        ("nat", "OUTPUT"), ("nat", "POSTROUTING"), ("nat", "DOCKER_OUTPUT"),
        ("nat", "DOCKER_POSTROUTING")}


def test_east_west_plan_matches_golden_file():
    import os
    from netlab.plan.render import plan_text
    text = plan_text(build_plan(load_lab(EW)))
    golden = Path(__file__).parent / "golden" / "east-west.plan.txt"
    if os.environ.get("NETLAB_REGEN_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


# --- service records ----------------------------------------------------------

def test_records_follow_add_endpoint_name_resolution():
    lab = load_lab(EW)
    a = ipam.allocate(lab)
    assert records_for_task(lab, a, "web.1") == {
        "web": ("10.0.1.4",), "tasks.web": ("10.0.1.5", "10.0.1.6"),
        "api": ("10.0.1.7",), "tasks.api": ("10.0.1.8", "10.0.1.9", "10.0.1.10"),
        "cache": ("10.0.1.11", "10.0.1.12"), "tasks.cache": ("10.0.1.11", "10.0.1.12"),
    }


def test_records_hold_nothing_from_ingress_and_only_shared_networks():
    lab = lab_of(BASE + """
networks: {a: {}, b: {}}
services:
  pub: {ports: ["80:80"]}
  x: {networks: [a], expose: [80]}
  y: {networks: [b], expose: [80]}
""")
    a = ipam.allocate(lab)
    assert records_for_task(lab, a, "pub.1") == {}
    assert set(records_for_task(lab, a, "x.1")) == {"x", "tasks.x"}
    with pytest.raises(KeyError):
        records_for_task(lab, a, "nope.1")


# --- state --------------------------------------------------------------------

def test_state_codec_round_trips_networks():
    lab = load_lab(EW)
    a = ipam.allocate(lab)
    lab2 = codec.lab_from_json(json.loads(json.dumps(codec.lab_to_json(lab))))
    assert lab2 == lab
    assert codec.allocations_from_json(json.loads(json.dumps(codec.allocations_to_json(a))), lab2) == a


def test_a_state_written_before_networks_still_reads():
    lab = load_lab(REPO / "scenarios" / "hello-a.yaml")
    a = ipam.allocate(lab)
    doc = codec.lab_to_json(lab)
    alloc = codec.allocations_to_json(a)
    for s in doc["services"]:
        for key in ("networks", "endpoint_mode", "expose"):
            del s[key]
    del doc["networks"], alloc["networks"], alloc["next_vni"]
    old = codec.lab_from_json(doc)
    assert old == lab
    assert codec.allocations_from_json(alloc, old) == a


def test_allocations_missing_a_network_task_are_refused():
    lab = load_lab(EW)
    doc = codec.allocations_to_json(ipam.allocate(lab))
    del doc["networks"]["backend"]["tasks"]["api.2"]
    with pytest.raises(codec.Invalid, match=r"api\.2"):
        codec.allocations_from_json(doc, lab)


def test_scale_down_changes_name_every_overlay_address():
    from netlab.converge import _changes
    lab = load_lab(EW)
    a = ipam.allocate(lab)
    down = scale(lab, {"web": 1})
    (gone,) = _changes(lab, a, down)
    assert gone.task == "web.2" and gone.address == "10.0.0.6"
    assert gone.addresses == ("10.0.0.6", "10.0.1.6")


def test_status_of_a_network_lab_lists_networks_and_vips():
    from netlab.cli.status import Readers, status_of
    from netlab.lifecycle import state_for
    lab = load_lab(EW)
    state = state_for(lab, ipam.allocate(lab), str(EW))
    state.iptables = "legacy"

    class NoKernel:
        def drift(self, plan, backend, allow=None, memory=None):
            return []
    doc = status_of(state, dataclasses.replace(Readers(), kernel=NoKernel(),
                                               netns_exists=lambda _n: True,
                                               process=lambda _p: None))
    assert doc["networks"][0] | {"lb": None} == {"name": "backend", "subnet": "10.0.1.0/24",
                                                   "vni": 4097, "mtu": 1450, "lb": None}
    api = next(s for s in doc["services"] if s["name"] == "api")
    assert api["endpoint_mode"] == "vip" and api["networks"] == [
        {"network": "backend", "vip": "10.0.1.7", "fwmark": 258}]
    cache = next(s for s in doc["services"] if s["name"] == "cache")
    assert cache["networks"] == [{"network": "backend", "vip": None, "fwmark": None}]


def test_an_empty_networks_list_still_needs_a_port():
    found = issues(BASE + "services: {s: {networks: []}}")
    assert [i.path for i in found] == ["services.s"]
    assert "publishes no port" in found[0].message


def test_trace_facts_know_every_overlay_address_and_lb_sandbox():
    from netlab.trace.facts import lab_facts
    lab = load_lab(EW)
    a = ipam.allocate(lab)
    facts = lab_facts(lab, a, build_plan(lab, a))
    assert facts.tasks_by_ip["10.0.1.8"] == ("api.1", "node1")
    assert facts.tasks_by_ip["10.0.0.5"] == ("web.1", "node1")
    assert facts.owner_of_mac["02:42:0a:00:01:03"] == "node2/lb-backend"


def test_scale_deweights_and_weights_every_lb_sandbox(tmp_path):
    from netlab import converge, lifecycle, state
    from tests.unit.fakes import FakeHost
    lab = load_lab(EW)
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(lab, str(EW), store, "legacy", host=fake.host())
    lbs = {ns for ns in fake.kernel.namespaces if ns.endswith("lb-backend")}
    assert len(lbs) == 2
    fake.kernel.steps.clear()
    result = converge.scale(lab.name, {"api": 4}, store, host=fake.host())
    assert [c.task for c in result.added] == ["api.4"]
    ip = str(result.allocations.networks["backend"].tasks["api.4"])
    # the new destination is added at weight 0 in both lb-backend sandboxes, then weighted 1
    weighted = [s for s in fake.kernel.steps if s[0] == "weight" and s[3] == ip]
    assert {(s[1], s[4]) for s in weighted} == {(ns, 1) for ns in lbs}
    fake.kernel.steps.clear()
    result = converge.scale(lab.name, {"api": 3}, store, host=fake.host())
    (gone,) = result.removed
    assert gone.addresses and gone.task.startswith("api.")
    deweighted = [s for s in fake.kernel.steps if s[0] == "weight" and s[4] == 0]
    assert {s[1] for s in deweighted} == lbs
    assert {s[3] for s in deweighted} == set(gone.addresses)
    first_apply = next(i for i, s in enumerate(fake.kernel.steps) if s[0] == "apply")
    assert all(fake.kernel.steps.index(s) < first_apply for s in deweighted)
