"""A lab's memory: incremental allocation and sticky placement, as a Swarm changes (no root).

Each case is a sequence of scenarios applied one after the other to the
same lab, each planned from the allocations and placement the one before
left, as ``netlab up`` on a lab that is up does (``lifecycle.next_lab``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from pathlib import Path

import pytest

from netlab import ipam, lifecycle
from netlab.model import Constraint, Node, Service, Task, place_tasks, reschedule
from netlab.plan.build import build_plan
from netlab.scenario import load_lab, load_lab_from_text

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"


def three_nodes(web: int = 3, api: int | None = 1, nodes: str = "") -> str:
    """three-nodes.yaml with other replicas (api None: no api service), and node overrides."""
    text = (SCENARIOS / "three-nodes.yaml").read_text()
    text = text.replace("replicas: 3", f"replicas: {web}")
    text = (text[:text.index("  api:")] if api is None
            else text.replace("replicas: 1", f"replicas: {api}"))
    for line in nodes.splitlines():
        name = line.split(":")[0].strip()
        old = next(t for t in text.splitlines() if t.strip().startswith(f"{name}:"))
        text = text.replace(old, line)
    return text


def converge(*texts: str):
    """Apply each scenario text in turn to one lab; returns (lab, allocations) after each."""
    out, previous = [], None
    for text in texts:
        lab, alloc = lifecycle.next_lab(load_lab_from_text(text, "three-nodes.yaml"), previous)
        previous = lifecycle.state_for(lab, alloc, "three-nodes.yaml")
        out.append((lab, alloc))
    return out


def where(lab, alloc) -> dict[str, tuple[str, str]]:
    """task -> (node, ingress address)."""
    return {t.name: (t.node, str(alloc.tasks[t.name].ingress_ip)) for t in lab.tasks}


@pytest.mark.parametrize("scenario", ["hello-a", "three-nodes"])
def test_a_fresh_allocation_is_the_one_with_no_previous(scenario):
    lab = load_lab(SCENARIOS / f"{scenario}.yaml")
    assert ipam.allocate(lab, None) == ipam.allocate(lab)
    assert lifecycle.next_lab(lab, None) == (lab, ipam.allocate(lab))
    # Applying the same scenario again changes nothing: same placement, addresses, plan.
    [(lab1, a1), (lab2, a2)] = converge(*[(SCENARIOS / f"{scenario}.yaml").read_text()] * 2)
    assert lab2 == lab1 and a2 == a1
    assert build_plan(lab2, a2) == build_plan(lab1, a1)


THREE = {"web.1": ("node1", "10.0.0.6"), "web.2": ("node2", "10.0.0.7"),
         "web.3": ("node3", "10.0.0.8"), "api.1": ("node1", "10.0.0.10")}

# (what changes, the scenarios in order, the tasks after the last one: (node, address))
CHANGES = [
    ("scale web 3 -> 4: web.4 takes the next address, api keeps its node and address",
     [three_nodes(3), three_nodes(4)],
     {**THREE, "web.4": ("node2", "10.0.0.11")}),
    ("scale web 3 -> 2 -> 3: web.3 comes back with a new address, not the freed one",
     [three_nodes(3), three_nodes(2), three_nodes(3)],
     {**THREE, "web.3": ("node3", "10.0.0.11")}),
    ("scale web 3 -> 1: the remaining tasks stay where they are",
     [three_nodes(3), three_nodes(1)],
     {"web.1": THREE["web.1"], "api.1": THREE["api.1"]}),
    ("drain node2: only web.2 moves (a new task, new address); web.3 stays on node3",
     [three_nodes(3), three_nodes(3, nodes="  node2: {role: worker, availability: drain}")],
     {**THREE, "web.2": ("node3", "10.0.0.11")}),
    ("drain node2, then make it active: nothing moves back (Swarm does not rebalance)",
     [three_nodes(3), three_nodes(3, nodes="  node2: {role: worker, availability: drain}"),
      three_nodes(3)],
     {**THREE, "web.2": ("node3", "10.0.0.11")}),
    ("pause node1: its tasks keep running there (pause only stops new ones); web.4 elsewhere",
     [three_nodes(3), three_nodes(4, nodes="  node1: {role: manager, availability: pause}")],
     {**THREE, "web.4": ("node2", "10.0.0.11")}),
]


@pytest.mark.parametrize("what, texts, expected", CHANGES, ids=[c[0] for c in CHANGES])
def test_changes_keep_what_stays(what, texts, expected):
    steps = converge(*texts)
    lab, alloc = steps[-1]
    assert where(lab, alloc) == expected
    first_alloc = steps[0][1]
    assert alloc.services == first_alloc.services            # VIPs and marks never move
    assert alloc.nodes == first_alloc.nodes                  # nor node addresses
    for name, (node, ip) in THREE.items():                   # a task that stays keeps eth1 too
        if expected.get(name) == (node, ip):
            assert alloc.tasks[name] == first_alloc.tasks[name]


def test_pause_keeps_tasks_in_place():
    # Swarm's pause: no new tasks on the node; its running tasks stay.
    [(lab, alloc)] = converge(three_nodes(3))[-1:]
    paused = load_lab_from_text(three_nodes(3, nodes="  node1: {role: manager, availability: pause}"),
                                "x.yaml")
    # A fresh lab places nothing on a paused node; a lab that is up keeps what runs there.
    assert "node1" not in {t.node for t in paused.tasks}
    kept = place_tasks(paused.nodes, paused.services, lab.tasks)
    assert [t for t in kept if t.node == "node1"] == [Task("web", 1, "node1"), Task("api", 1, "node1")]


def test_scaling_up_then_down_does_not_renumber_anything_else():
    before, after = converge(three_nodes(3), three_nodes(4))
    (lab1, a1), (lab2, a2) = before, after
    assert str(a2.services["api"].vip) == "10.0.0.9" == str(a1.services["api"].vip)
    assert a2.tasks["api.1"] == a1.tasks["api.1"] and lab2.tasks_of("api") == lab1.tasks_of("api")
    assert str(a2.tasks["web.4"].gw_ip) == "172.18.0.4"      # node2's next gwbridge address
    assert a2.ingress.next == 12 and a1.ingress.next == 11   # the cursor moved on


def test_fresh_plan_renumbers_where_the_incremental_one_does_not():
    # What a stateless plan did (the fault this fixes): api's VIP and task moved.
    fresh = load_lab_from_text(three_nodes(4), "x.yaml")
    fresh_alloc = ipam.allocate(fresh)
    assert str(fresh_alloc.services["api"].vip) == "10.0.0.10"
    assert fresh.tasks_of("api")[0].node == "node2"
    [_, (lab, alloc)] = converge(three_nodes(3), three_nodes(4))
    assert str(alloc.services["api"].vip) == "10.0.0.9" and lab.tasks_of("api")[0].node == "node1"


def test_a_removed_service_frees_its_mark_for_good():
    steps = converge(three_nodes(3), three_nodes(3, api=None), three_nodes(3))
    marks = [{s: a.services[s].fwmark for s in a.services} for _, a in steps]
    assert marks == [{"web": 0x100, "api": 0x101}, {"web": 0x100}, {"web": 0x100, "api": 0x102}]
    _, last = steps[-1]
    assert str(last.services["api"].vip) == "10.0.0.11"      # not the freed .9
    assert str(last.tasks["api.1"].ingress_ip) == "10.0.0.12"


def _small(replicas: int) -> str:
    return ("name: small\nnodes: {node1: {role: manager}, node2: {}}\n"
            "ingress: {subnet: 10.9.0.0/28}\n"
            f"services:\n  s: {{deploy: {{replicas: {replicas}}}, ports: ['80:80']}}\n")


def test_the_cursor_wraps_around_at_the_end_of_the_pool():
    # /28: hosts .1-.14. .1 gateway, .2-.3 sandboxes, .4 the VIP, then tasks.
    steps = converge(*[_small(n) for n in (3, 1, 3, 1, 3, 1, 3, 1, 3)])
    got = [[str(a.tasks[t].ingress_ip) for t in ("s.1", "s.2", "s.3") if t in a.tasks]
           for _, a in steps]
    assert got == [
        ["10.9.0.5", "10.9.0.6", "10.9.0.7"], ["10.9.0.5"],
        ["10.9.0.5", "10.9.0.8", "10.9.0.9"], ["10.9.0.5"],
        ["10.9.0.5", "10.9.0.10", "10.9.0.11"], ["10.9.0.5"],
        ["10.9.0.5", "10.9.0.12", "10.9.0.13"], ["10.9.0.5"],
        # .14 is the last host; then the scan starts over and takes the first free one.
        ["10.9.0.5", "10.9.0.14", "10.9.0.6"],
    ]


def test_a_pool_filled_to_the_last_address_takes_the_freed_ones_after_wrapping():
    *_, (lab, alloc) = converge(_small(3), _small(1), _small(10))
    assert [str(alloc.tasks[t.name].ingress_ip).rsplit(".", 1)[1] for t in lab.tasks] == [
        "5", "8", "9", "10", "11", "12", "13", "14", "6", "7"]


def test_an_exhausted_pool_names_what_did_not_fit():
    # The scenario checks keep a validated lab inside its subnets; the
    # allocator still refuses on its own when a pool is full.
    lab = load_lab_from_text(_small(10), "small.yaml")
    bigger = dataclasses.replace(lab, services=(dataclasses.replace(lab.services[0], replicas=11),))
    bigger = reschedule(bigger, lab.tasks)
    with pytest.raises(ipam.AddressSpaceExhausted,
                       match=r"10.9.0.0/28 has no address left for task s.11 \(hint"):
        ipam.allocate(bigger, ipam.allocate(lab))


def test_a_new_node_gets_the_next_addresses_and_the_others_keep_theirs():
    text = three_nodes(3)
    grown = text.replace("  node3: {role: worker}\n", "  node3: {role: worker}\n  node4: {role: worker}\n")
    [(_, a1), (lab2, a2)] = converge(text, grown)
    assert {n: a2.nodes[n] for n in ("node1", "node2", "node3")} == a1.nodes
    assert str(a2.nodes["node4"].lan_ip) == "192.168.56.14"
    assert str(a2.nodes["node4"].sandbox_ip) == "10.0.0.11"   # after api.1's .10
    assert {t.name: t.node for t in lab2.tasks} == {t: n for t, (n, _) in THREE.items()}


def test_a_changed_subnet_starts_its_pool_over():
    text = three_nodes(3)
    [(_, a1), (_, a2)] = converge(text, text.replace("\nservices:", "\ningress: {subnet: 10.5.0.0/24}\nservices:"))
    assert str(a2.nodes["node1"].sandbox_ip) == "10.5.0.2" and str(a2.services["web"].vip) == "10.5.0.5"
    assert a2.nodes["node1"].lan_ip == a1.nodes["node1"].lan_ip           # the LAN did not change
    assert a2.services["web"].fwmark == 0x102                             # marks still only grow


def test_allocation_after_a_change_is_deterministic():
    assert converge(three_nodes(3), three_nodes(5)) == converge(three_nodes(3), three_nodes(5))


# -- sticky placement -----------------------------------------------------------------------

N = (Node("n1", "manager"), Node("n2"), Node("n3"))


def _drained(node: str) -> tuple[Node, ...]:
    return tuple(Node(n.name, n.role, "drain") if n.name == node else n for n in N)


PLACEMENTS = [
    ("no previous tasks: Swarm's spread, as a fresh lab",
     N, (Service("a", 4),), (), ["a.1@n1", "a.2@n2", "a.3@n3", "a.4@n1"]),
    ("existing tasks stay where they are, even unbalanced",
     N, (Service("a", 3),), (Task("a", 1, "n3"), Task("a", 2, "n3"), Task("a", 3, "n3")),
     ["a.1@n3", "a.2@n3", "a.3@n3"]),
    ("new slots go to the nodes with the fewest tasks, counting those that stay",
     N, (Service("a", 4),), (Task("a", 1, "n3"), Task("a", 2, "n3")),
     ["a.1@n3", "a.2@n3", "a.3@n1", "a.4@n2"]),
    ("a task on a drained node is placed again by the spread rule",
     _drained("n2"), (Service("a", 3),), (Task("a", 1, "n1"), Task("a", 2, "n2"), Task("a", 3, "n3")),
     ["a.1@n1", "a.2@n1", "a.3@n3"]),
    ("a task on a node that is gone is placed again",
     N[:2], (Service("a", 2),), (Task("a", 1, "n1"), Task("a", 2, "n3")),
     ["a.1@n1", "a.2@n2"]),
    ("a task on a node its service may no longer use is placed again",
     N, (Service("a", 2, constraints=(Constraint("node.role", "manager", False),)),),
     (Task("a", 1, "n1"), Task("a", 2, "n2")), ["a.1@n3", "a.2@n2"]),
    ("scaling down keeps the lower slots where they run",
     N, (Service("a", 1),), (Task("a", 1, "n2"), Task("a", 2, "n1")), ["a.1@n2"]),
    ("another service's tasks that stay count in the totals",
     N, (Service("a", 1), Service("b", 2)), (Task("a", 1, "n1"), Task("b", 1, "n2")),
     ["a.1@n1", "b.1@n2", "b.2@n3"]),
    ("tasks of a service that is gone are forgotten",
     N, (Service("b", 1),), (Task("a", 1, "n1"),), ["b.1@n1"]),
]


@pytest.mark.parametrize("what, nodes, services, previous, expected", PLACEMENTS,
                         ids=[p[0] for p in PLACEMENTS])
def test_sticky_placement(what, nodes, services, previous, expected):
    placed = place_tasks(nodes, services, previous)
    assert [f"{t.name}@{t.node}" for t in placed] == expected


def test_placement_without_previous_is_unchanged_for_the_shipped_scenarios():
    for scenario in ("hello-a", "three-nodes"):
        lab = load_lab(SCENARIOS / f"{scenario}.yaml")
        assert place_tasks(lab.nodes, lab.services, ()) == lab.tasks
        assert place_tasks(lab.nodes, lab.services, lab.tasks) == lab.tasks


def test_macs_follow_the_kept_addresses():
    [(lab1, a1), (lab2, a2)] = converge(three_nodes(3), three_nodes(4))
    p1, p2 = build_plan(lab1, a1), build_plan(lab2, a2)
    macs = lambda p: {(v.b.netns, v.b.name): v.b.mac for v in p.veths}   # noqa: E731
    m1, m2 = macs(p1), macs(p2)
    assert all(m2[k] == m for k, m in m1.items())
    assert ipaddress.IPv4Address("10.0.0.11") == a2.tasks["web.4"].ingress_ip
