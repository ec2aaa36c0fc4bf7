"""Scenario loading and validation: every bad input names its field and place."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from netlab import ipam
from netlab.cli.validate import validate
from netlab.errors import BadInput
from netlab.model import Constraint, PublishedPort
from netlab.scenario import (
    Issue, ScenarioError, format_issue, format_issues, load_lab, load_lab_from_text,
)

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"

GOOD = """\
name: lab
nodes:
  node1: {role: manager}
  node2: {role: worker}
services:
  web:
    deploy:
      replicas: 2
    ports:
      - "8080:80"
"""


def yaml_text(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def at(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, column) of the ``nth`` occurrence of ``needle`` in ``text``."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    before = text[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def issues_of(text: str, source: str = "lab.yaml", **kwargs) -> list[Issue]:
    with pytest.raises(ScenarioError) as info:
        load_lab_from_text(text, source, **kwargs)
    return info.value.issues


def only_issue(text: str, source: str = "lab.yaml", **kwargs) -> Issue:
    issues = issues_of(text, source, **kwargs)
    assert len(issues) == 1, format_issues(issues, source)
    return issues[0]


def assert_issue(text: str, path: str, needle: str | None, message: str, nth: int = 0) -> Issue:
    """Exactly one issue, at ``path``, pointing at ``needle``, whose message has ``message``."""
    issue = only_issue(text)
    assert issue.path == path
    assert message in issue.message, issue.message
    assert issue.hint, "every issue carries a hint"
    if needle is not None:
        assert (issue.line, issue.column) == at(text, needle, nth)
    return issue


# --- the shipped scenarios ------------------------------------------------

def test_hello_a_seed_loads_and_places_one_task_per_node():
    lab = load_lab(SCENARIOS / "hello-a.yaml")
    assert lab.name == "hello-a"
    assert [(n.name, n.role) for n in lab.nodes] == [("node1", "manager"), ("node2", "worker")]
    service = lab.service("hello-a")
    assert service.replicas == 2
    assert service.ports == (PublishedPort(5000, 3000, "tcp", "ingress"),)
    assert [(t.name, t.node) for t in lab.tasks] == [("hello-a.1", "node1"), ("hello-a.2", "node2")]


def test_three_nodes_places_api_on_node1_only():
    lab = load_lab(SCENARIOS / "three-nodes.yaml")
    assert lab.name == "three-nodes"
    assert [n.name for n in lab.nodes] == ["node1", "node2", "node3"]
    assert [(t.name, t.node) for t in lab.tasks_of("web")] == [
        ("web.1", "node1"), ("web.2", "node2"), ("web.3", "node3")]
    assert [(t.name, t.node) for t in lab.tasks_of("api")] == [("api.1", "node1")]
    assert lab.service("api").ports == (PublishedPort(9000, 9000), PublishedPort(9053, 53, "udp"))


def test_lab_is_frozen_and_addressable():
    lab = load_lab_from_text(GOOD, "x.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        lab.name = "other"  # type: ignore[misc]
    ipam.allocate(lab)


def test_defaults_match_the_model():
    lab = load_lab_from_text("nodes: {node1: {role: manager}, node2: {}}\n", "lonely.yaml")
    assert lab.name == "lonely"
    assert lab.nodes[1].role == "worker" and lab.nodes[1].availability == "active"
    assert lab.services == () and lab.tasks == ()
    assert str(lab.ingress.subnet) == "10.0.0.0/24" and lab.ingress.vni == 4096
    assert lab.underlay.data_path_port == 4789


def test_replicas_default_to_one_and_zero_is_allowed():
    text = yaml_text("""
        nodes: {node1: {role: manager}}
        services:
          a: {ports: ["80:80"]}
          b: {deploy: {replicas: 0}, ports: ["81:80"]}
    """)
    lab = load_lab_from_text(text, "x.yaml")
    assert lab.service("a").replicas == 1 and lab.service("b").replicas == 0
    assert [t.name for t in lab.tasks] == ["a.1"]


def test_every_option_is_read():
    text = yaml_text("""
        name: full
        nodes:
          m1: {role: manager, availability: active}
          w1: {role: worker, availability: drain}
          w2: {availability: pause}
          w3:
        services:
          web:
            deploy:
              replicas: 3
              placement:
                constraints: ["node.role==worker", "node.hostname != w1"]
            ports: ["8080:80"]
        ingress: {subnet: 10.10.0.0/24, vni: 4097, mtu: 1400}
        underlay: {lan: 192.168.70.0/24, gwbridge: 172.20.0.0/16, data_path_port: 5789, lan_mtu: 1450}
    """)
    lab = load_lab_from_text(text, "x.yaml")
    assert [(n.name, n.role, n.availability) for n in lab.nodes] == [
        ("m1", "manager", "active"), ("w1", "worker", "drain"),
        ("w2", "worker", "pause"), ("w3", "worker", "active")]
    assert lab.service("web").constraints == (
        Constraint("node.role", "worker", True), Constraint("node.hostname", "w1", False))
    assert {t.node for t in lab.tasks} == {"w3"}
    assert (str(lab.ingress.subnet), lab.ingress.vni, lab.ingress.mtu) == ("10.10.0.0/24", 4097, 1400)
    assert (str(lab.underlay.lan), str(lab.underlay.gwbridge)) == ("192.168.70.0/24", "172.20.0.0/16")
    assert (lab.underlay.data_path_port, lab.underlay.lan_mtu) == (5789, 1450)


def test_compose_extensions_and_merge_keys():
    text = yaml_text("""
        x-published: &web-ports
          ports: ["8080:80"]
        nodes: {node1: {role: manager}}
        services:
          web:
            <<: *web-ports
            deploy: {replicas: 2}
    """)
    lab = load_lab_from_text(text, "x.yaml")
    assert lab.service("web").ports == (PublishedPort(8080, 80),)


# --- port syntax ----------------------------------------------------------

@pytest.mark.parametrize("entry, expected", [
    ('"5000:3000"', PublishedPort(5000, 3000, "tcp", "ingress")),
    ('"5000:3000/udp"', PublishedPort(5000, 3000, "udp", "ingress")),
    ("5000:3000", PublishedPort(5000, 3000)),  # plain scalar; not base 60 (3000 > 59)
    ("22:22", PublishedPort(22, 22)),  # a string, as Docker reads it (YAML 1.1 says 1342)
    ("{published: 9000, target: 9001}", PublishedPort(9000, 9001, "tcp", "ingress")),
    ('{published: "9000", target: 9001, protocol: udp, mode: ingress}', PublishedPort(9000, 9001, "udp")),
])
def test_port_syntax(entry, expected):
    text = f"nodes: {{node1: {{role: manager}}}}\nservices:\n  web:\n    ports:\n      - {entry}\n"
    assert load_lab_from_text(text, "x.yaml").service("web").ports == (expected,)


def test_long_form_port_in_block_style():
    text = yaml_text("""
        nodes: {node1: {role: manager}}
        services:
          web:
            ports:
              - published: 9000
                target: 9000
                protocol: tcp
                mode: ingress
              - "9001:9001/udp"
    """)
    assert load_lab_from_text(text, "x.yaml").service("web").ports == (
        PublishedPort(9000, 9000), PublishedPort(9001, 9001, "udp"))


def test_same_port_number_on_two_protocols_is_fine():
    text = 'nodes: {n1: {role: manager}}\nservices: {a: {ports: ["53:53"]}, b: {ports: ["53:53/udp"]}}\n'
    assert len(load_lab_from_text(text, "x.yaml").services) == 2


def svc(ports: str, extra: str = "") -> str:
    """A one-node scenario whose service ``web`` has the given ports block."""
    return f"nodes:\n  node1: {{role: manager}}\nservices:\n  web:\n{extra}    ports:\n{ports}"


@pytest.mark.parametrize("ports, path, needle, message", [
    ('      - "70000:80"\n', "services.web.ports[0].published", "70000", "published port 70000 is out of range"),
    ('      - "0:80"\n', "services.web.ports[0].published", '0:80"', "published port 0 is out of range"),
    ('      - "8080:99999"\n', "services.web.ports[0].target", "99999", "target port 99999 is out of range"),
    ('      - "8080:80/http"\n', "services.web.ports[0].protocol", "http", "unknown protocol 'http'"),
    ('      - "8080:abc"\n', "services.web.ports[0].target", "abc", "is not a number"),
    ('      - "3000"\n', "services.web.ports[0]", '"3000"', "no published port"),
    ("      - 3000\n", "services.web.ports[0]", "3000", "no published port"),
    ('      - "127.0.0.1:80:80"\n', "services.web.ports[0]", '"127', "host address"),
    ('      - "8000-8001:80"\n', "services.web.ports[0].published", "8000-", "port ranges"),
    ("      - true\n", "services.web.ports[0]", "true", "not true (a boolean)"),
    ("      - {published: 70000, target: 80}\n", "services.web.ports[0].published", "70000", "out of range"),
    ("      - {published: 80, target: 0}\n", "services.web.ports[0].target", "0}", "target port 0 is out of range"),
    ("      - {published: true, target: 80}\n", "services.web.ports[0].published", "true", "must be an integer"),
    ("      - {target: 80}\n", "services.web.ports[0].published", "{target", "published port is required"),
    ("      - {published: 80}\n", "services.web.ports[0].target", "{published", "target port is required"),
    ("      - {published: 80, target: 80, protocol: icmp}\n", "services.web.ports[0].protocol", "icmp",
     "unknown protocol 'icmp'"),
    ("      - {published: 80, target: 80, mode: vip}\n", "services.web.ports[0].mode", "vip",
     "unknown publish mode 'vip'"),
    ("      - {published: 80, target: 80, host_ip: 0.0.0.0}\n", "services.web.ports[0].host_ip", "host_ip",
     "unknown key 'host_ip'"),
    ("      - {published: 80, target: 80, targt: 80}\n", "services.web.ports[0].targt", "targt",
     "unknown key 'targt'"),
])
def test_bad_port(ports, path, needle, message):
    assert_issue(svc(ports), path, needle, message)


def test_publish_mode_host_is_read_for_tcp_and_udp():
    text = svc("      - {published: 6379, target: 6379, mode: host}\n"
               "      - {published: 53, target: 5353, protocol: udp, mode: host}\n")
    lab = load_lab_from_text(text, "x.yaml")
    assert lab.services[0].ports == (PublishedPort(6379, 6379, "tcp", "host"),
                                     PublishedPort(53, 5353, "udp", "host"))
    assert lab.services[0].host_ports == lab.services[0].ports
    assert lab.services[0].ingress_ports == ()


HOST_NODES = "nodes:\n  node1: {role: manager}\n  node2: {role: worker}\nservices:\n"


def test_two_services_may_share_a_host_mode_port_on_different_nodes():
    # swarmkit checkPortConflicts: "Multiple services with same port in host publish
    # mode can coexist - this is handled by the scheduler" (HostPortFilter).
    text = HOST_NODES + ("  a: {ports: [{published: 6379, target: 6379, mode: host}]}\n"
                         "  b: {ports: [{published: 6379, target: 6379, mode: host}]}\n")
    lab = load_lab_from_text(text, "x.yaml")
    assert {t.node for t in lab.tasks} == {"node1", "node2"}


def test_host_mode_replicas_spread_one_per_node_even_against_the_task_count():
    # HostPortFilter: the second task publishing 6379 in host mode cannot join the first.
    text = HOST_NODES + ("  hello: {ports: [\"5000:80\"]}\n"
                         "  cache: {deploy: {replicas: 2}, ports: [{published: 6379, target: 6379, mode: host}]}\n")
    lab = load_lab_from_text(text, "x.yaml")
    assert sorted(t.node for t in lab.tasks_of("cache")) == ["node1", "node2"]


def test_more_host_mode_tasks_than_nodes_is_refused_as_swarm_leaves_them_pending():
    text = HOST_NODES + "  cache:\n    deploy: {replicas: 3}\n    ports: [{published: 6379, target: 6379, mode: host}]\n"
    issue = assert_issue(text, "services.cache.deploy.replicas", "3}", "no node can run every task")
    assert "6379/tcp in host mode, one per node, and 2 nodes may run this service" in issue.message
    assert "host-mode port already in use" in issue.hint


def test_host_mode_port_shared_across_services_beyond_the_nodes_is_refused():
    text = HOST_NODES + ("  a: {deploy: {replicas: 2}, ports: [{published: 6379, target: 6379, mode: host}]}\n"
                         "  b: {ports: [{published: 6379, target: 6379, mode: host}]}\n")
    issue = only_issue(text)
    assert issue.path == "services.b"
    assert "(with a (2))" in issue.message


@pytest.mark.parametrize("a, b, how", [
    ('"6379:6379"', "{published: 6379, target: 6379, mode: host}", "an ingress port"),
    ("{published: 6379, target: 6379, mode: host}", '"6379:6379"', "a host-published port"),
])
def test_host_and_ingress_modes_never_share_a_port(a, b, how):
    text = HOST_NODES + f"  a: {{ports: [{a}]}}\n  b: {{ports: [{b}]}}\n"
    issue = only_issue(text)
    assert issue.path == "services.b.ports[0].published"
    assert issue.message.startswith(f"port '6379' is already in use by service 'a' as {how}")


def test_a_service_repeating_a_port_in_host_mode_is_refused_as_swarm_does():
    # swarmkit validateEndpointSpec: "duplicate published ports provided", whatever the mode.
    text = svc("      - {published: 6379, target: 6379, mode: host}\n"
               "      - {published: 6379, target: 6380, mode: host}\n")
    issue = only_issue(text)
    assert issue.path == "services.web.ports[1].published"
    assert "already published by services.web.ports[0]" in issue.message


def test_host_mode_udp_on_the_vxlan_port_is_refused():
    text = svc("      - {published: 4789, target: 4789, protocol: udp, mode: host}\n")
    assert "VXLAN data path port" in only_issue(text).message


def test_ports_not_a_list():
    assert_issue(svc("").replace("    ports:\n", '    ports: "8080:80"\n'),
                 "services.web.ports", '"8080', "must be a list")


def test_same_published_port_on_two_services():
    text = 'nodes: {n1: {role: manager}}\nservices:\n  a: {ports: ["8080:80"]}\n  b: {ports: ["8080:81"]}\n'
    issue = assert_issue(text, "services.b.ports[0].published", "8080", "port '8080' is already in use "
                         "by service 'a' as an ingress port (services.a.ports[0], line 3)", nth=1)
    assert "8081" in issue.hint


def test_same_published_port_twice_in_one_service():
    text = svc('      - "8080:80"\n      - published: 8080\n        target: 81\n')
    assert_issue(text, "services.web.ports[1].published", "8080", "already published", nth=1)


def test_published_udp_port_cannot_be_the_vxlan_port():
    assert_issue(svc('      - "4789:80/udp"\n'), "services.web.ports[0].published", "4789",
                 "VXLAN data path port")


def test_service_without_ports():
    text = "nodes: {n1: {role: manager}}\nservices:\n  web:\n    deploy: {replicas: 1}\n"
    issue = assert_issue(text, "services.web", "web", "publishes no port")
    assert issue.hint.startswith('this lab models the routing mesh; add ports: ["8080:80"]')
    assert "networks: [backend]" in issue.hint


def test_service_with_empty_ports():
    assert_issue("nodes: {n1: {role: manager}}\nservices:\n  web: {ports: []}\n", "services.web.ports", "[]",
                 "publishes no port")


# --- deploy, replicas, constraints, placement ------------------------------

@pytest.mark.parametrize("deploy, path, needle, message", [
    ("replicas: true", "services.web.deploy.replicas", "true", "not true (a boolean)"),
    ("replicas: yes", "services.web.deploy.replicas", "yes", "not true (a boolean)"),
    ("replicas: -1", "services.web.deploy.replicas", "-1", "replicas -1 is out of range"),
    ('replicas: "2"', "services.web.deploy.replicas", '"2"', "must be an integer, not a string"),
    ("replicas: 1.5", "services.web.deploy.replicas", "1.5", "not a decimal number"),
    ("replica: 2", "services.web.deploy.replica", "replica", "unknown key 'replica'"),
    ("mode: global", "services.web.deploy.mode", "mode", "unknown key 'mode'"),
    ("placement: {constraint: []}", "services.web.deploy.placement.constraint", "constraint",
     "unknown key 'constraint'"),
    ('placement: {constraints: "node.role==manager"}', "services.web.deploy.placement.constraints",
     '"node', "must be a list"),
    ('placement: {constraints: ["node.role=manager"]}', "services.web.deploy.placement.constraints[0]",
     '"node', "malformed constraint"),
    ('placement: {constraints: ["node.role"]}', "services.web.deploy.placement.constraints[0]",
     '"node', "malformed constraint"),
    ('placement: {constraints: ["node.labels.zone==a"]}', "services.web.deploy.placement.constraints[0]",
     '"node', "'node.labels.zone' is not supported"),
    ('placement: {constraints: ["node.rol==manager"]}', "services.web.deploy.placement.constraints[0]",
     '"node', "unknown constraint key 'node.rol'"),
    ('placement: {constraints: ["node.role==boss"]}', "services.web.deploy.placement.constraints[0]",
     '"node', "not 'boss'"),
    ("placement: {constraints: [1]}", "services.web.deploy.placement.constraints[0]", "1]",
     "must be a string"),
    ("[1]", "services.web.deploy", "[1]", "must be a mapping"),
])
def test_bad_deploy(deploy, path, needle, message):
    body = deploy if deploy.startswith("[") else f"{{{deploy}}}"
    text = f'nodes: {{node1: {{role: manager}}}}\nservices:\n  web:\n    deploy: {body}\n    ports: ["80:80"]\n'
    assert_issue(text, path, needle, message)


@pytest.mark.parametrize("raw, reading", [("1:00", 60), ("010", 8), ("0x10", 16), ("1_000", 1000)])
def test_yaml_11_number_traps_are_refused_with_what_they_would_mean(raw, reading):
    text = f'nodes: {{node1: {{role: manager}}}}\nservices:\n  web:\n    deploy: {{replicas: {raw}}}\n    ports: ["80:80"]\n'
    issue = assert_issue(text, "services.web.deploy.replicas", raw, "must be an integer, not a string")
    assert f"read it as {reading}" in issue.hint and "decimal" in issue.hint


def test_did_you_mean_for_unknown_keys():
    text = 'nodes: {node1: {rol: manager}}\nservices:\n  web: {replica: 2, ports: ["80:80"]}\n'
    first, second = issues_of(text)
    assert (first.path, second.path) == ("nodes.node1.rol", "services.web.replica")
    assert "did you mean 'role'?" in first.hint and "allowed keys: role, availability" in first.hint
    assert "did you mean 'replicas'?" in second.hint and "deploy:" in second.hint


def test_unknown_top_level_key():
    issue = assert_issue("nodez: {node1: {role: manager}}\nnodes: {node1: {role: manager}}\n", "nodez", "nodez", "unknown key 'nodez'")
    assert "did you mean 'nodes'?" in issue.hint


def test_constraints_match_no_node():
    text = yaml_text("""
        nodes: {node1: {role: manager}, node2: {}}
        services:
          web:
            deploy:
              placement:
                constraints: ["node.role==manager", "node.hostname!=node1"]
            ports: ["80:80"]
    """)
    issue = assert_issue(text, "services.web.deploy.placement.constraints", "[", "no node can run this service")
    assert "node.role==manager, node.hostname!=node1" in issue.message
    assert "node1 (manager, active)" in issue.hint


def test_all_nodes_drained_or_paused():
    text = 'nodes: {n1: {role: manager, availability: drain}, n2: {availability: pause}}\nservices:\n  web: {ports: ["80:80"]}\n'
    issue = assert_issue(text, "services.web", "web", "no node can run this service")
    assert "drained or paused" in issue.message


def test_matching_nodes_are_drained():
    text = yaml_text("""
        nodes: {n1: {role: manager, availability: drain}, n2: {}}
        services:
          web:
            deploy: {replicas: 2, placement: {constraints: [node.role==manager]}}
            ports: ["80:80"]
    """)
    issue = assert_issue(text, "services.web.deploy.placement.constraints", "[node", "no node can run")
    assert "node.role==manager (n1) are drained or paused" in issue.message


def test_zero_replicas_need_no_node():
    text = 'nodes: {n1: {role: manager, availability: drain}}\nservices:\n  web: {deploy: {replicas: 0}, ports: ["80:80"]}\n'
    assert load_lab_from_text(text, "x.yaml").tasks == ()


# --- nodes and names -------------------------------------------------------

@pytest.mark.parametrize("nodes, path, needle, message", [
    ("{Node1: {}}", "nodes.Node1", "Node1", "not a valid DNS label"),
    ("{node_1: {}}", "nodes.node_1", "node_1", "not a valid DNS label"),
    ("{-node: {}}", "nodes.-node", "-node", "not a valid DNS label"),
    ("{node-: {}}", "nodes.node-", "node-", "not a valid DNS label"),
    ("{abcdefghijk: {}}", "nodes.abcdefghijk", "abcdefghijk", "11 characters long; the limit is 10"),
    ("{lan: {}}", "nodes.lan", "lan", "is reserved"),
    ("{client: {}}", "nodes.client", "client", "is reserved"),
    ("{node1: {role: boss}}", "nodes.node1.role", "boss", "unknown role 'boss'"),
    ("{node1: {role: Manager}}", "nodes.node1.role", "Manager", "unknown role 'Manager'"),
    ("{node1: {availability: paused}}", "nodes.node1.availability", "paused", "unknown availability"),
    ("{node1: {role: 1}}", "nodes.node1.role", "1}", "must be one of manager, worker"),
    ("{node1: {labels: {}}}", "nodes.node1.labels", "labels", "unknown key 'labels'"),
    ("{node1: manager}", "nodes.node1", "manager", "must be a mapping, not a string"),
    ("[node1, node2]", "nodes", "[", "must be a mapping, not a list"),
    ("{}", "nodes", "{}", "no nodes"),
])
def test_bad_node(nodes, path, needle, message):
    assert_issue(f"nodes: {nodes}\n", path, needle, message)


def test_node_name_of_ten_characters_fits():
    assert load_lab_from_text("nodes: {abcdefghij: {role: manager}}\n", "x.yaml").nodes[0].name == "abcdefghij"


def test_missing_nodes():
    assert_issue('services: {web: {ports: ["80:80"]}}\n', "nodes", "services", "the scenario has no nodes")


def test_node_named_twice_is_caught_although_yaml_keeps_the_last():
    text = "nodes:\n  node1: {role: manager}\n  node2: {}\n  node1: {role: worker}\n"
    issue = assert_issue(text, "nodes.node1", "node1", "node name 'node1' is given twice (first on line 2)", nth=1)
    assert "keep only the last" in issue.hint


def test_service_named_twice():
    text = 'nodes: {n1: {role: manager}}\nservices:\n  web: {ports: ["80:80"]}\n  web: {ports: ["81:80"]}\n'
    assert_issue(text, "services.web", "web", "service name 'web' is given twice", nth=1)


def test_key_given_twice_inside_a_node():
    text = "nodes:\n  node1: {role: manager, role: worker}\n"
    assert_issue(text, "nodes.node1.role", "role", "key 'role' is given twice", nth=1)


@pytest.mark.parametrize("name, message", [
    ("Web", "not a valid DNS label"),
    ("web.app", "not a valid DNS label"),
    ("a" * 21, "21 characters long; the limit is 20"),
])
def test_bad_service_name(name, message):
    text = f'nodes: {{n1: {{role: manager}}}}\nservices:\n  {name}: {{ports: ["80:80"]}}\n'
    issue = only_issue(text)
    assert issue.path.startswith("services") and name in issue.path
    assert message in issue.message and (issue.line, issue.column) == (3, 3)


def test_service_name_with_a_dot_is_bracketed_in_the_path():
    text = 'nodes: {n1: {role: manager}}\nservices:\n  web.app: {ports: ["80:80"]}\n'
    assert only_issue(text).path == 'services["web.app"]'


@pytest.mark.parametrize("name, message", [
    ("Hello", "not a valid DNS label"),
    ("a" * 21, "the limit is 20"),
])
def test_bad_lab_name(name, message):
    assert_issue(f"name: {name}\nnodes: {{n1: {{role: manager}}}}\n", "name", name, message)


def test_lab_name_must_be_a_string():
    assert_issue("name: 2024\nnodes: {n1: {role: manager}}\n", "name", "2024", "must be a string")


def test_lab_name_defaults_to_the_file_stem_and_is_checked():
    assert load_lab_from_text("nodes: {n1: {role: manager}}\n", "dir/my-lab.yaml").name == "my-lab"
    issue = only_issue("nodes: {n1: {role: manager}}\n", source="My_Lab.yaml")
    assert issue.path == "name" and issue.line is None
    assert "from the file name" in issue.message and "name: my-lab" in issue.hint


def test_name_override_wins_and_is_checked():
    assert load_lab_from_text(GOOD, "x.yaml", name_override="other").name == "other"
    issue = only_issue(GOOD, name_override="Bad!")
    assert issue.path == "--name" and issue.line is None


# --- networks --------------------------------------------------------------

@pytest.mark.parametrize("section, path, needle, message, hint", [
    ("ingress: {subnet: banana}", "ingress.subnet", "banana", "not a network address", "ADDRESS/PREFIX"),
    ("ingress: {subnet: 10.0.0.1/24}", "ingress.subnet", "10.0.0.1", "host bits set", "10.0.0.0/24"),
    ('ingress: {subnet: "fd00::/64"}', "ingress.subnet", '"fd00', "not IPv4", "IPv4"),
    ("ingress: {subnet: 10.0.0.0/30}", "ingress.subnet", "10.0.0.0", "longer than /29", "/29"),
    ("ingress: {subnet: 10.0.0.0}", "ingress.subnet", "10.0.0.0", "no prefix length", "10.0.0.0/24"),
    ("ingress: {subnet: 24}", "ingress.subnet", "24", "must be a string", "10.0.0.0/24"),
    ("underlay: {lan: 192.168.56.1/24}", "underlay.lan", "192", "host bits set", "192.168.56.0/24"),
    ("underlay: {gwbridge: 172.18.0.0/33}", "underlay.gwbridge", "172", "not a network address", ""),
    ("ingress: {vni: 0}", "ingress.vni", "0}", "vni 0 is out of range 1-16777215", "4096"),
    ("ingress: {vni: 16777216}", "ingress.vni", "16777216", "out of range", "4096"),
    ("ingress: {mtu: 500}", "ingress.mtu", "500", "ingress mtu 500 is out of range 576-9000", "1450"),
    ("ingress: {mtu: 9001}", "ingress.mtu", "9001", "out of range", ""),
    ("ingress: {mtu: 1460}", "ingress.mtu", "1460", "does not fit the lan MTU 1500", "VXLAN"),
    ("underlay: {lan_mtu: 1400}", "underlay.lan_mtu", "1400", "ingress mtu 1450 does not fit", "1350"),
    ("underlay: {data_path_port: 80}", "underlay.data_path_port", "80", "out of range 1024-49151",
     "--data-path-port"),
    ("underlay: {data_path_port: 49152}", "underlay.data_path_port", "49152", "out of range", ""),
    ("underlay: {data_path_port: false}", "underlay.data_path_port", "false", "must be an integer", ""),
    ("ingress: {subnett: 10.0.0.0/24}", "ingress.subnett", "subnett", "unknown key", "did you mean 'subnet'?"),
    ("underlay: {vxlan_port: 4789}", "underlay.vxlan_port", "vxlan_port", "unknown key", "data_path_port"),
    ("ingress: 5", "ingress", "5", "must be a mapping", "subnet"),
])
def test_bad_network(section, path, needle, message, hint):
    text = f"nodes: {{node1: {{role: manager}}}}\n{section}\n"
    issue = assert_issue(text, path, needle, message)
    assert hint in issue.hint


def test_data_path_port_default_and_range_ends_are_fine():
    for port in (1024, 4789, 49151):
        lab = load_lab_from_text(f"nodes: {{n1: {{role: manager}}}}\nunderlay: {{data_path_port: {port}}}\n", "x.yaml")
        assert lab.underlay.data_path_port == port


def test_subnets_must_not_overlap():
    text = "nodes: {n1: {role: manager}}\ningress: {subnet: 10.1.0.0/24}\nunderlay: {lan: 10.1.0.0/16}\n"
    issue = assert_issue(text, "underlay.lan", "10.1.0.0/16", "overlaps the ingress subnet 10.1.0.0/24")
    assert "must not overlap" in issue.hint


def test_subnet_overlapping_a_default_is_reported_where_written():
    text = "nodes: {n1: {role: manager}}\nunderlay: {gwbridge: 10.0.0.0/16}\n"
    assert_issue(text, "underlay.gwbridge", "10.0.0.0", "overlaps the ingress subnet 10.0.0.0/24 (the default)")


def test_lan_and_gwbridge_overlap():
    text = "nodes: {n1: {role: manager}}\nunderlay:\n  gwbridge: 172.18.0.0/16\n  lan: 172.18.5.0/24\n"
    assert_issue(text, "underlay.lan", "172.18.5.0", "overlaps the gwbridge subnet 172.18.0.0/16")


def test_subnet_in_loopback():
    text = "nodes: {n1: {role: manager}}\ningress: {subnet: 127.1.0.0/24}\n"
    assert_issue(text, "ingress.subnet", "127", "overlaps loopback (127.0.0.0/8)")


def scaled(nodes: int, replicas: int, section: str) -> str:
    names = ", ".join(f"n{i}: {{role: {'manager' if i == 1 else 'worker'}}}" for i in range(1, nodes + 1))
    return (f"nodes: {{{names}}}\nservices:\n  web: {{deploy: {{replicas: {replicas}}}, "
            f'ports: ["80:80"]}}\n{section}\n')


def test_ingress_subnet_too_small():
    # /29 has 6 hosts: gateway + 2 sandboxes + 1 VIP + 3 tasks = 7.
    text = scaled(2, 3, "ingress: {subnet: 10.0.0.0/29}")
    issue = assert_issue(text, "ingress.subnet", "10.0.0.0", "has 6 usable addresses but this scenario needs 7")
    assert "1 gateway + 2 ingress sandboxes + 1 service VIPs + 3 tasks" in issue.message
    assert "10.0.0.0/28" in issue.hint


def test_ingress_subnet_exactly_big_enough_is_allocatable():
    lab = load_lab_from_text(scaled(2, 2, "ingress: {subnet: 10.0.0.0/29}"), "x.yaml")
    ipam.allocate(lab)


def test_lan_subnet_too_small():
    # /28 has 14 hosts; nodes start at host 11, and ipam wants 11 + nodes.
    text = scaled(4, 1, "underlay: {lan: 192.168.56.0/28}")
    assert_issue(text, "underlay.lan", "192.168.56.0", "has 14 usable addresses but this scenario needs 15")
    lab = load_lab_from_text(scaled(3, 1, "underlay: {lan: 192.168.56.0/28}"), "x.yaml")
    ipam.allocate(lab)


def test_gwbridge_subnet_too_small():
    # /29: bridge .1 + sandbox .2 leave 4 addresses for the tasks of one node.
    text = scaled(1, 5, "underlay: {gwbridge: 172.18.0.0/29}")
    issue = assert_issue(text, "underlay.gwbridge", "172.18.0.0", "needs 7")
    assert "n1 holds" in issue.message
    ipam.allocate(load_lab_from_text(scaled(1, 4, "underlay: {gwbridge: 172.18.0.0/29}"), "x.yaml"))


def test_default_subnet_too_small_points_at_the_field_without_a_line():
    names = ", ".join(f"n{i}: {{role: {'manager' if i == 1 else 'worker'}}}" for i in range(1, 10))
    text = (f"nodes: {{{names}}}\nservices:\n  web: {{deploy: {{replicas: 250}}, ports: [\"80:80\"]}}\n")
    issue = only_issue(text)
    assert issue.path == "ingress.subnet" and issue.line is None
    assert "(the default)" in issue.message


# --- the file as a whole ---------------------------------------------------

@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "~\n", "null\n", "---\n"])
def test_empty_scenario(text):
    issue = only_issue(text)
    assert issue.message == "the scenario is empty"
    assert "nodes:" in issue.hint and "ports:" in issue.hint


def test_empty_hint_is_itself_a_valid_scenario():
    hint = only_issue("").hint
    example = hint.split("start from: ", 1)[1]
    assert load_lab_from_text(example, "x.yaml").name == "demo"


@pytest.mark.parametrize("text, kind", [("- node1\n", "a list"), ("hello\n", "a string"), ("42\n", "a number")])
def test_top_level_must_be_a_mapping(text, kind):
    issue = only_issue(text)
    assert issue.path == "" and kind in issue.message and (issue.line, issue.column) == (1, 1)


def test_yaml_syntax_error_carries_the_parsers_position():
    text = "nodes:\n  node1: {role: manager}\n  node2: role: worker\n"
    issue = only_issue(text)
    assert issue.message.startswith("invalid YAML: mapping values are not allowed")
    assert (issue.line, issue.column) == (3, 14) and issue.hint


def test_yaml_tab_indentation():
    issue = only_issue("nodes:\n\tnode1: {role: manager}\n")
    assert (issue.line, issue.column) == (2, 1) and "tabs" in issue.hint


def test_yaml_unclosed_flow_mapping():
    issue = only_issue("nodes: {node1: {role: manager}\nservices: {}\n")
    assert issue.message.startswith("invalid YAML") and issue.line == 2


def test_two_documents_are_refused():
    issue = only_issue("nodes: {n1: {role: manager}}\n---\nnodes: {n2: {}}\n")
    assert issue.line == 2 and "one YAML document" in issue.hint


def test_unknown_tag_and_recursive_alias():
    assert "tag" in only_issue("nodes: !thing {n1: {role: manager}}\n").message
    assert only_issue("nodes: &a {n1: *a}\n").message == "an alias refers to the node that contains it"


def test_control_character():
    issue = only_issue("nodes: {n1: {role: manager}}\x07\n")
    assert (issue.line, issue.column) == (1, 29)
    issue = only_issue("name: caf\u00e9\nx-a: \u00e9\u00e9\x07\n")  # not a byte offset
    assert (issue.line, issue.column) == (2, 8)


FIVE_ERRORS = """\
name: five
nodes:
  node1: {role: manger}
services:
  web:
    deploy: {replicas: -2}
    ports: ["70000:80"]
ingress: {subnet: 10.0.0.0/33}
underlay: {data_path_port: 80}
"""


def test_five_errors_are_all_reported_in_file_order():
    issues = issues_of(FIVE_ERRORS)
    assert [(i.path, i.line) for i in issues] == [
        ("nodes.node1.role", 3),
        ("services.web.deploy.replicas", 6),
        ("services.web.ports[0].published", 7),
        ("ingress.subnet", 8),
        ("underlay.data_path_port", 9),
    ]
    assert all(i.hint and i.column for i in issues)


def test_many_errors_in_one_file_each_with_a_hint():
    text = yaml_text("""
        name: Bad_Lab
        nodes:
          lan: {}
          averyverylongnode: {}
          node1: {role: boss}
        services:
          web:
            deploy: {replicas: true}
            ports: ["8080:80", {published: 9000, target: 9000, mode: routing}]
            command: nginx
          api:
            ports: ["8080:81"]
          none: {}
        ingress: {subnet: 10.0.0.1/24, vni: 0, mtu: 1480}
        underlay: {lan: 127.0.0.0/24, data_path_port: 80}
    """)
    issues = issues_of(text)
    paths = [i.path for i in issues]
    assert paths == [
        "name", "nodes.lan", "nodes.averyverylongnode", "nodes.node1.role",
        "services.web.deploy.replicas", "services.web.ports[1].mode", "services.web.command",
        "services.api.ports[0].published", "services.none",
        "ingress.subnet", "ingress.vni", "ingress.mtu", "underlay.lan", "underlay.data_path_port",
    ]
    assert all(i.hint for i in issues)


def test_error_string_is_the_first_issue_and_format_lists_all():
    with pytest.raises(ScenarioError) as info:
        load_lab_from_text(FIVE_ERRORS, "five.yaml")
    err = info.value
    assert isinstance(err, BadInput) and err.exit_code == 2
    assert str(err).startswith(format_issue(err.issues[0], "five.yaml"))
    assert str(err) == ("five.yaml:3:17: nodes.node1.role: unknown role 'manger' "
                        "(hint: did you mean 'manager'? use one of: manager, worker)"
                        " [+4 more: netlab validate five.yaml]")
    assert "\n" not in str(err)
    lines = format_issues(err.issues, "five.yaml").splitlines()
    assert len(lines) == 5 and lines == err.format().splitlines()
    assert lines[2].startswith("five.yaml:7:14: services.web.ports[0].published: published port 70000")


def test_format_without_position_or_path():
    assert format_issue(Issue("", "no such file", "check the path", None, None), "a.yaml") == \
        "a.yaml: no such file (hint: check the path)"


def test_missing_file(tmp_path):
    with pytest.raises(ScenarioError) as info:
        load_lab(tmp_path / "nope.yaml")
    assert info.value.issues[0].message == "no such file"


def test_not_utf8(tmp_path):
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"nodes: {n1: {role: manager}}\n\xff\xfe\n")
    with pytest.raises(ScenarioError) as info:
        load_lab(path)
    assert "UTF-8" in info.value.issues[0].message


# --- the validate command --------------------------------------------------

def group() -> click.Group:
    @click.group()
    def cli() -> None:
        """test group"""
    cli.add_command(validate)
    return cli


def test_cli_validate_ok():
    path = str(SCENARIOS / "three-nodes.yaml")
    result = CliRunner().invoke(group(), ["validate", path])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"ok: {path}: 3 nodes, 2 services, 4 tasks\n"


def test_cli_validate_reports_every_issue_and_exits_2(tmp_path):
    path = tmp_path / "five.yaml"
    path.write_text(FIVE_ERRORS)
    result = CliRunner().invoke(validate, [str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 5
    assert all(line.startswith(f"{path}:") and "(hint: " in line for line in lines)
    assert "Traceback" not in result.output


def test_cli_validate_missing_file_exits_2(tmp_path):
    result = CliRunner().invoke(validate, [str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such file" in result.stderr


def test_cli_validate_name_option():
    result = CliRunner().invoke(validate, [str(SCENARIOS / "hello-a.yaml"), "--name", "Bad!"])
    assert result.exit_code == 2 and "--name:" in result.stderr


@pytest.mark.parametrize("text", [
    (SCENARIOS / "hello-a.yaml").read_text(),
    (SCENARIOS / "three-nodes.yaml").read_text(),
    "nodes: {n1: {role: manager}, n2: {}, n3: {}}\ningress: {subnet: 10.1.0.0/16}\nservices:\n"
    "  a: {deploy: {replicas: 500}, ports: ['80:80', '81:80', '53:53/udp']}\n"
    "  b: {deploy: {replicas: 0}, ports: ['90:90']}\n",
    (SCENARIOS / "east-west.yaml").read_text(),
    (SCENARIOS / "host-mode.yaml").read_text(),
    # user networks no service is on still make two namespaces per node each
    "nodes: {n1: {role: manager}, n2: {}, n3: {}}\nnetworks: {"
    + ", ".join(f"u{i}: {{driver: overlay}}" for i in range(40)) + "}\n"
    "services: {a: {deploy: {replicas: 3}, networks: [u0, u1], ports: ['80:80']}}\n",
    # many published ports on several nodes
    "nodes: {n1: {role: manager}, n2: {}, n3: {}, n4: {}}\nservices:\n"
    "  a: {deploy: {replicas: 2}, ports: [" + ", ".join(f"'{p}:80'" for p in range(1000, 1300))
    + "]}\n  b: {deploy: {replicas: 4}, ports: ['9000:80', {published: 9001, target: 81, mode: host}]}\n",
    # services on several networks, one of them on all
    "nodes: {n1: {role: manager}, n2: {}, n3: {}}\nnetworks: {u: {driver: overlay}, v: {driver: overlay}}\n"
    "services:\n  a: {deploy: {replicas: 7}, networks: [u, v], ports: ['80:80']}\n"
    "  b: {deploy: {replicas: 5, endpoint_mode: dnsrr}, networks: [v]}\n"
    "  c: {deploy: {replicas: 9}, networks: [u], expose: [81]}\n",
])
def test_plan_items_estimate_is_close_and_never_under(text):
    from netlab.plan.build import build_plan
    from netlab.plan.size import estimate
    lab = load_lab_from_text(text, "x.yaml")
    plan = build_plan(lab)
    actual = sum(len(getattr(plan, f.name)) for f in dataclasses.fields(plan)
                 if f.name != "lab")
    networks = [n.name for n in lab.networks]
    found = estimate(len(lab.nodes), lab.services, networks)
    assert actual <= found.items <= actual * 1.5
    assert len(plan.rules) <= found.rules <= len(plan.rules) * 1.5 + 20
    assert found.namespaces == len(plan.netns)


def test_a_lab_too_big_to_plan_is_refused_before_planning():
    names = ", ".join(f"n{i}: {{role: manager}}" for i in range(40))
    text = (f"nodes: {{{names}}}\nservices: {{web: {{deploy: {{replicas: 10000}}, ports: ['80:80']}}}}\n"
            "ingress: {subnet: 10.1.0.0/16}\n")
    issue = only_issue(text)
    assert issue.path == "services" and "netlab plans at most 400,000 objects and 160,000 rules" in issue.message
    assert "40 nodes, 10000 tasks" in issue.hint
