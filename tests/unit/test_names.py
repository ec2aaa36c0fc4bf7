"""Namespace names: one object, one name, across labs (no root needed)."""

from __future__ import annotations

import itertools

import pytest

from netlab.plan import names
from netlab.plan.build import build_plan
from netlab.scenario import load_lab_from_text

# Names chosen so that the old scheme (nl-<lab>-<object>) made them collide:
# hello + a-node1 vs hello-a + node1, a node called like another's sandbox or
# overlay, a service whose tasks look like nodes, and one-letter labels.
LABS = ["hello", "hello-a", "a", "a-node1", "hello-a-node1", "x1"]
NODES = ["a-node1", "node1", "node1-ingress", "ingress-sbox", "ov-ingress", "node1-ov-ingress",
         "a-ov-b", "a", "b", "1", "web"]
SERVICES = ["hello-a", "a", "node1", "web", "ov-ingress", "a-node1", "1"]
SLOTS = [1, 2, 10, 11]
NETWORKS = ["ingress", "b", "ingress-1"]


def every_object(lab: str) -> dict[str, tuple]:
    """netns name -> the object it stands for, for every object ``lab`` could hold."""
    objects: dict[tuple, str] = {("lan",): names.lan_ns(lab), ("client",): names.client_ns(lab)}
    for node in NODES:
        objects[("node", node)] = names.node_ns(lab, node)
        objects[("sandbox", node)] = names.sandbox_ns(lab, node)
        for net in NETWORKS:
            objects[("overlay", node, net)] = names.overlay_ns(lab, node, net)
    for service, slot in itertools.product(SERVICES, SLOTS):
        objects[("task", f"{service}.{slot}")] = names.task_ns(lab, f"{service}.{slot}")
    return {ns: (lab, *obj) for obj, ns in objects.items()}


def test_no_two_objects_of_any_labs_share_a_namespace_name():
    seen: dict[str, tuple] = {}
    count = 0
    for lab in LABS:
        for ns, obj in every_object(lab).items():
            count += 1
            assert ns not in seen, f"{ns} names both {seen[ns]} and {obj}"
            seen[ns] = obj
    assert len(seen) == count == len(LABS) * (2 + len(NODES) * (2 + len(NETWORKS))
                                               + len(SERVICES) * len(SLOTS))


def test_every_name_belongs_to_its_lab_only():
    for lab in LABS:
        for ns in every_object(lab):
            assert names.lab_of(ns) == lab
            assert names.owned_by(lab, ns)
            assert [other for other in LABS if names.owned_by(other, ns)] == [lab]


def test_the_old_collision_is_gone():
    # nl-hello-a-node1 was lab hello's node a-node1 and lab hello-a's node node1.
    assert names.node_ns("hello", "a-node1") == "nl-hello.a-node1"
    assert names.node_ns("hello-a", "node1") == "nl-hello-a.node1"
    assert not names.owned_by("hello", "nl-hello-a.node1")


def test_target_names_map_onto_namespace_names():
    assert names.sandbox_ns("hello-a", "node1") == "nl-hello-a.node1.ingress_sbox"
    assert names.overlay_ns("hello-a", "node1") == "nl-hello-a.node1.ov-ingress"
    assert names.task_ns("hello-a", "hello-a.1") == "nl-hello-a.hello-a.1"
    assert names.lan_ns("hello-a") == "nl-hello-a.lan"
    assert names.client_ns("hello-a") == "nl-hello-a.client"


def _scenario(node: str, service: str = "web") -> str:
    return (f"nodes: {{{node}: {{role: manager}}, other: {{}}}}\n"
            f"services:\n  {service}: {{deploy: {{replicas: 2}}, ports: [\"80:80\"]}}\n")


@pytest.mark.parametrize("lab1, node1, lab2, node2", [
    ("hello", "a-node1", "hello-a", "node1"),
    ("hello", "a-ov-b", "hello-a", "ov-b"),
    ("a", "b-web", "a-b", "web"),
])
def test_two_built_labs_share_no_namespace(lab1, node1, lab2, node2):
    one = build_plan(load_lab_from_text(_scenario(node1), "s.yaml", name_override=lab1))
    two = build_plan(load_lab_from_text(_scenario(node2), "s.yaml", name_override=lab2))
    ns1, ns2 = {n.name for n in one.netns}, {n.name for n in two.netns}
    assert len(ns1) == len(one.netns) and len(ns2) == len(two.netns)
    assert not ns1 & ns2
    assert all(names.owned_by(lab1, n) and not names.owned_by(lab2, n) for n in ns1)
    assert all(names.owned_by(lab2, n) and not names.owned_by(lab1, n) for n in ns2)
    # Each netns name is its target with "/" -> "." behind the lab's prefix.
    assert all(n.name == names.lab_prefix(lab1) + n.target.replace("/", ".") for n in one.netns)


def test_a_node_name_holding_ov_is_accepted_now():
    lab = load_lab_from_text(_scenario("a-ov-b"), "s.yaml", name_override="hello")
    assert [n.name for n in lab.nodes] == ["a-ov-b", "other"]


@pytest.mark.parametrize("bad", ["", "Hello", "a.b", "a/b", "..", "../../etc/x", "*", "/",
                                 "hello\n", "-a", "a-", "a" * 21, "a b", "é", "a\0b"])
def test_lab_names_that_could_reach_a_path_are_refused(bad):
    assert not names.is_lab(bad)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "nl-x./etc", "nl-x..a", "nl-x.", "nl-x",
                                 "nl-xy.a", "nl-x.a/b", "nl-x.a\n", "nl-x.A", "x.a", 7, None])
def test_a_namespace_name_outside_the_lab_is_not_owned(bad):
    assert not names.owned_by("x", bad)
