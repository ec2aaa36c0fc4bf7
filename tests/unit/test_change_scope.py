"""A change's plans built only where it can touch (issue 17): the scoped plans give the
same diff as the whole plans, the namespace list is the plan's, the C-keyed diff
is the set difference, and a change cut short converges everything when rerun."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace
from pathlib import Path

import pytest

from netlab import converge, ipam
from netlab.kernel import apply as kernel_apply
from netlab.model import restart_off, scale
from netlab.plan import names
from netlab.plan.build import build_plan, netns_of
from netlab.plan.scope import change_scope
from netlab.plan.types import Address, IpvsDest, IpvsService, Neighbour, Plan
from netlab.scenario import load_lab, load_lab_from_text

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
NAMES = ("hello-a", "three-nodes", "east-west", "host-mode")


def _changes(lab):
    """(label, lab after) for each service scaled up and down by one, and each node
    down and drained."""
    out = []
    for s in lab.services:
        out.append((f"{s.name}+1", scale(lab, {s.name: s.replicas + 1})))
        if s.replicas:
            out.append((f"{s.name}-1", scale(lab, {s.name: s.replicas - 1})))
    for n in lab.nodes:
        for field, value in (("state", "down"), ("availability", "drain")):
            nodes = tuple(replace(x, **{field: value}) if x.name == n.name else x for x in lab.nodes)
            try:
                out.append((f"{n.name} {value}", restart_off(replace(lab, nodes=nodes))))
            except ValueError:
                pass           # no other node may run its tasks
    return out


# A user network on one node of three: scaling its service onto a second node gives
# that node its first task on the network (its ov-/lb-backend come), scaling it to
# nothing takes the last (they go), and each node down moves it.
SPARSE = """
name: sparse
nodes: {node1: {role: manager}, node2: {role: worker}, node3: {role: worker}}
networks: {backend: {driver: overlay}}
services:
  web: {deploy: {replicas: 3}, ports: ["8080:80"]}
  api: {deploy: {replicas: 1}, networks: [backend], expose: [80]}
"""


def _lab(name: str):
    return load_lab_from_text(SPARSE, "sparse.yaml") if name == "sparse" \
        else load_lab(SCENARIOS / f"{name}.yaml")


CASES = [(name, label, after) for name in (*NAMES, "sparse")
         for label, after in _changes(_lab(name))]


@pytest.mark.parametrize(("name", "label", "after"), CASES,
                         ids=[f"{n}:{lbl}" for n, lbl, _ in CASES])
def test_scoped_plans_diff_as_the_whole_plans(name, label, after):
    lab = _lab(name)
    old = ipam.allocate(lab)
    new = ipam.allocate(after, old)
    scope = change_scope(lab, old, after, new)
    assert scope is not None, label
    memo: dict = {}
    t_full, more_full, less_full = kernel_apply.diff(build_plan(lab, old), build_plan(after, new))
    t_cut, more_cut, less_cut = kernel_apply.diff(build_plan(lab, old, scope=scope, memo=memo),
                                                  build_plan(after, new, scope=scope, memo=memo))
    assert t_full.any, label                       # every case changes something
    assert t_cut == t_full, label
    for f in dataclasses.fields(Plan):
        if f.name != "lab":
            assert getattr(more_cut, f.name) == getattr(more_full, f.name), (label, f.name)
            assert getattr(less_cut, f.name) == getattr(less_full, f.name), (label, f.name)


@pytest.mark.parametrize("name", NAMES)
def test_a_scope_holding_a_nodes_namespaces_builds_them_whole(name):
    lab = load_lab(SCENARIOS / f"{name}.yaml")
    a = ipam.allocate(lab)
    node = lab.nodes[-1].name
    scope = frozenset({names.node_ns(lab.name, node), names.sandbox_ns(lab.name, node),
                       names.overlay_ns(lab.name, node),
                       names.task_ns(lab.name, lab.tasks[0].name),
                       *(names.task_ns(lab.name, t.name) for t in lab.tasks if t.node == node)})
    whole = build_plan(lab, a)
    cut = build_plan(lab, a, scope=scope)
    # every task on the node is in the scope, so the cut is exact
    assert cut == replace(kernel_apply.restrict(whole, scope), lab=lab.name)
    assert cut.rules and cut.neighbours and cut.veths
    # without them, only their veths' ends are left out (and host-mode rules stay)
    bare = scope - {names.task_ns(lab.name, t.name) for t in lab.tasks if t.node == node}
    cut = build_plan(lab, a, scope=bare)
    exact = kernel_apply.restrict(whole, bare)
    for f in dataclasses.fields(Plan):
        if f.name not in ("lab", "veths"):
            assert getattr(cut, f.name) == getattr(exact, f.name), f.name
    assert set(cut.veths) <= set(exact.veths)


@pytest.mark.parametrize("name", (*NAMES, "sparse"))
def test_the_namespace_list_is_the_plans(name):
    lab = _lab(name)
    assert netns_of(lab) == build_plan(lab).netns


def test_the_scope_of_a_first_and_a_last_task_on_a_network_holds_its_lb_sandbox():
    lab = _lab("sparse")
    a = ipam.allocate(lab)
    (api,) = lab.tasks_of("api")
    lb = {n.name: names.lb_ns(lab.name, n.name, "backend") for n in lab.nodes}
    ov = {n.name: names.overlay_ns(lab.name, n.name, "backend") for n in lab.nodes}
    assert {ns.name for ns in netns_of(lab)} >= {lb[api.node], ov[api.node]}
    assert not {lb[n] for n in lb if n != api.node} & {ns.name for ns in netns_of(lab)}
    # api.2 is the first task on backend of its node: that node's ov-/lb-backend come
    after = scale(lab, {"api": 2})
    new = next(t for t in after.tasks if t.name == "api.2")
    assert new.node != api.node
    scope = change_scope(lab, a, after, ipam.allocate(after, a))
    assert scope is not None and {lb[new.node], ov[new.node], lb[api.node]} <= scope
    assert {lb[new.node], ov[new.node]} <= {ns.name for ns in netns_of(after)}
    # api.1, the last there, goes: so do they (the scope holds what the lab had)
    gone = scale(lab, {"api": 0})
    scope = change_scope(lab, a, gone, ipam.allocate(gone, a))
    assert scope is not None and {lb[api.node], ov[api.node]} <= scope
    assert not {ns.name for ns in netns_of(gone)} & (set(lb.values()) | set(ov.values()))


def test_a_change_of_more_than_tasks_and_nodes_has_no_scope():
    lab = load_lab(SCENARIOS / "east-west.yaml")
    a = ipam.allocate(lab)
    s = lab.services[0]
    ported = replace(lab, services=(replace(s, expose=(*s.expose, 9999)), *lab.services[1:]))
    assert change_scope(lab, a, ported, a) is None
    assert change_scope(lab, a, replace(lab, name="other"), a) is None
    moved = replace(a, client_ip=ipam.IPv4("192.168.99.250"))
    assert change_scope(lab, a, lab, moved) is None
    assert change_scope(lab, a, lab, a) is not None


def test_the_scope_of_a_scale_names_the_new_task_its_host_and_no_other_task():
    lab = load_lab(SCENARIOS / "hello-a.yaml")
    a = ipam.allocate(lab)
    after = scale(lab, {"hello-a": 3})
    scope = change_scope(lab, a, after, ipam.allocate(after, a))
    assert scope is not None
    new = next(t for t in after.tasks if t.name == "hello-a.3")
    assert names.task_ns(lab.name, "hello-a.3") in scope
    assert names.node_ns(lab.name, new.node) in scope
    assert names.task_ns(lab.name, "hello-a.1") not in scope
    assert names.lan_ns(lab.name) not in scope and names.client_ns(lab.name) not in scope


# -- the diff's keys -------------------------------------------------------------

def test_split_is_the_set_difference_each_side_in_its_order():
    a, b, c = (Address("n", "eth0", f"10.0.0.{i}/24") for i in (1, 2, 3))
    b2 = Address("n", "eth0", "10.0.0.2/24")      # equal to b, another object
    assert kernel_apply._split((a, b), (b2, c)) == ((c,), (a,))
    assert kernel_apply._split((a, b), (b2, a)) == ((), ())
    assert kernel_apply._split((), (a,)) == ((a,), ())
    assert kernel_apply._split((a, a, b), (c,)) == ((c,), (a, a, b))


def test_split_never_matches_items_of_two_classes_with_equal_fields():
    n = Neighbour("n", "vxlan0", "10.0.0.2", "02:42:0a:00:00:02")
    d = IpvsDest("n", 0, 1, "Masq")                 # any other class
    assert kernel_apply._split((n,), (d,)) == ((d,), (n,))
    chains = (("n", "nat", "A"), ("n", "nat", "B"))
    assert kernel_apply._split(chains, (("n", "nat", "B"),)) == ((), (("n", "nat", "A"),))


# -- a change cut short ----------------------------------------------------------

def test_a_change_gives_the_kernel_only_what_it_touches_and_the_state_every_namespace(seed):
    store, fake = seed
    converge.scale("hello-a", {"hello-a": 3}, store, host=fake.host())
    applied, held = fake.kernel.applied[-1][0], fake.kernel.before[-1]
    assert held is not None
    touched = {ns.name for ns in applied.netns}
    assert names.task_ns("hello-a", "hello-a.3") in touched
    assert names.task_ns("hello-a", "hello-a.1") not in touched
    st = store.load("hello-a")
    assert st.complete
    assert st.netns == [ns.name for ns in build_plan(st.model, st.allocations).netns]


def test_a_change_cut_short_converges_every_namespace_when_run_again(seed):
    store, fake = seed
    converge.scale("hello-a", {"hello-a": 3}, store, host=fake.host())
    cut_short = store.load("hello-a")
    cut_short.complete = False                    # as a kill -9 after its first save leaves it
    store.save(cut_short)
    updates = len(fake.updated)
    result = converge.scale("hello-a", {"hello-a": 3}, store, host=fake.host())
    assert not result.added and not result.removed
    assert fake.kernel.before[-1] is None           # no plan is trusted to be held: all of it
    applied = fake.kernel.applied[-1][0]
    st = store.load("hello-a")
    assert {ns.name for ns in applied.netns} == set(st.netns)
    assert len(fake.updated) == updates + 1         # the apps serve every task again
    assert st.complete and st.changes[-1].converged is not None
    # and once complete, the same command changes nothing
    applies = len(fake.kernel.applied)
    converge.scale("hello-a", {"hello-a": 3}, store, host=fake.host())
    assert len(fake.kernel.applied) == applies


def test_the_ipvs_key_names_every_field_of_a_service_and_a_destination():
    # apply's key for IpvsService lists its fields by hand: a new field must join it
    assert [f.name for f in dataclasses.fields(IpvsService)] == \
        ["netns", "fwmark", "scheduler", "dests", "service"]
    a = IpvsService("n", 256, "rr", (IpvsDest("10.0.0.5"),), "web")
    b = replace(a, dests=(IpvsDest("10.0.0.5", weight=0),))
    assert kernel_apply._split((a,), (b,)) == ((b,), (a,))
    assert kernel_apply._split((a,), (replace(a),)) == ((), ())


def test_the_state_file_is_json_a_top_level_key_a_line(seed):
    store, _fake = seed
    text = (store.root / "hello-a.json").read_text()
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    assert len(lines) == 2 + len(json.loads(text))
    assert store.load("hello-a") is not None
