"""``netlab swarm export``: a Swarm (as typed data) written as a scenario netlab accepts."""

from __future__ import annotations

from pathlib import Path

import pytest

from netlab.docker.export import export
from netlab.docker.snapshot import (RealNetwork, RealNode, RealPort, RealService, RealTask,
                                    Snapshot)
from netlab.kernel import netns
from netlab.scenario import load_lab, load_lab_from_text

REPO = Path(__file__).resolve().parents[2]


def _node(name, role="worker", **kw):
    return RealNode(f"id-{name}", name, name, role, "192.168.59.11", kw.get("availability", "active"),
                    kw.get("state", "ready"))


def _task(service, slot, node, addr, net="ingress"):
    return RealTask(f"t-{service}-{slot}", service, slot, node, "running", "running", None,
                    {net: addr}, f"{service}.{slot}")


INGRESS = RealNetwork("ingressid0123456789", "ingress", "overlay", "swarm", "10.0.0.0/24",
                      "10.0.0.1", 4096, True)


def _snap(services, tasks, networks=(INGRESS,), nodes=None):
    nodes = nodes or (_node("node1", "manager"), _node("node2"))
    return Snapshot("node1", nodes, networks, services, tasks, (), "clusterid0123456789")


def test_seed_swarm_exports_to_hello_a_in_meaning():
    """What "in meaning" ignores: comments and the lab's name (the Swarm's cluster id is no
    name); everything else is compared: nodes (names, roles, availability), ingress and
    underlay, user networks, services (replicas, ports, endpoint mode, networks,
    constraints, expose) and netlab's placement of the tasks."""
    seed = RealService("s1", "hello-a", "replicated", 2, "vip",
                       (RealPort(5000, 3000, "tcp", "ingress"),), (), {"ingress": "10.0.0.3/24"})
    snap = _snap((seed,), (_task("hello-a", 1, "node1", "10.0.0.4/24"),
                           _task("hello-a", 2, "node2", "10.0.0.5/24")))
    out = export(snap)
    want = load_lab(REPO / "scenarios" / "hello-a.yaml")
    got = load_lab_from_text(out.text, "export", name_override=want.name)
    assert got == want
    assert out.lab.name == "swarm" and out.warnings == ()


def test_networks_host_ports_dnsrr_udp_and_availability_are_written():
    backend = RealNetwork("backendid123456789", "backend", "overlay", "swarm", "10.0.1.0/24",
                          "10.0.1.1", 4097, False)
    web = RealService("w", "web", "replicated", 2, "vip",
                      (RealPort(8080, 80, "tcp", "ingress"), RealPort(5353, 53, "udp", "ingress")),
                      ("backend",), {})
    cache = RealService("c", "cache", "replicated", 1, "dnsrr",
                        (RealPort(6379, 6379, "tcp", "host"),), ("backend",), {})
    nodes = (_node("node1", "manager"), _node("node2", availability="drain"))
    out = export(_snap((cache, web), (), (INGRESS, backend), nodes))
    lab = load_lab_from_text(out.text, "x")
    assert lab.node("node2").availability == "drain"
    assert lab.network("backend").subnet.compressed == "10.0.1.0/24"
    assert lab.service("web").networks == ("backend",)
    assert [(p.published, p.target, p.protocol, p.mode) for p in lab.service("web").ports] == [
        (8080, 80, "tcp", "ingress"), (5353, 53, "udp", "ingress")]
    assert lab.service("cache").endpoint_mode == "dnsrr"
    assert lab.service("cache").ports[0].mode == "host"


def test_global_sctp_and_portless_services_are_said_not_hidden():
    glob = RealService("g", "agent", "global", None, "vip",
                       (RealPort(9000, 9000, "tcp", "ingress"), RealPort(9001, 9001, "sctp", "ingress")),
                       (), {})
    lone = RealService("l", "lonely", "replicated", 1, "vip", (), (), {})
    out = export(_snap((glob, lone), ()))
    assert out.lab.service("agent").replicas == 2
    assert any("agent is global" in w for w in out.warnings)
    assert any("9001:9001/sctp left out" in w for w in out.warnings)
    assert any("lonely publishes no port" in w for w in out.warnings)
    assert [s.name for s in out.lab.services] == ["agent"]
    for w in out.warnings:                 # each said in the file too
        assert f"# note: {w}" in out.text


def test_a_placement_netlab_would_not_choose_is_noted():
    seed = RealService("s1", "hello-a", "replicated", 2, "vip",
                       (RealPort(5000, 3000, "tcp", "ingress"),), (), {})
    snap = _snap((seed,), (_task("hello-a", 1, "node2", "10.0.0.4/24"),
                           _task("hello-a", 2, "node2", "10.0.0.5/24")))
    out = export(snap)
    assert "task hello-a.1 runs on node2 in the Swarm; netlab's scheduler places it on node1" \
        in out.warnings


@pytest.mark.parametrize("bad", ["/var/run/netns/x", "/var/run/docker/netns/../../x",
                                 "/var/run/docker/netns/", "/etc/passwd", "/proc/2/ns/net",
                                 "/var/run/docker/netns/a/b"])
def test_only_dockers_namespaces_and_the_hosts_may_be_entered(bad):
    with pytest.raises(netns.NetnsError, match="refusing network namespace"):
        netns.docker_path(bad)
    assert netns.docker_path("/var/run/docker/netns/ingress_sbox").endswith("ingress_sbox")
    assert netns.docker_path("/proc/1/ns/net") == "/proc/1/ns/net"


def test_cli_export_writes_a_file_validate_accepts(tmp_path, monkeypatch):
    import json

    from click.testing import CliRunner

    from netlab.cli import swarm as cli_swarm
    from netlab.cli.main import cli
    seed = RealService("s1", "hello-a", "replicated", 2, "vip",
                       (RealPort(5000, 3000, "tcp", "ingress"),), (), {})
    glob = RealService("g", "agent", "global", None, "vip", (RealPort(9000, 9000, "tcp", "host"),),
                       (), {})
    snap = _snap((seed, glob), ())
    monkeypatch.setattr(cli_swarm, "engine", lambda: cli_swarm.Engine(lambda url, manager=None: snap, None))
    out = tmp_path / "swarm.yaml"
    r = CliRunner().invoke(cli, ["swarm", "export", "-o", str(out), "--name", "prod"])
    assert r.exit_code == 0, r.output
    assert "warning: service agent is global" in r.stderr
    assert CliRunner().invoke(cli, ["validate", str(out)]).exit_code == 0
    assert load_lab(out).name == "prod"
    doc = json.loads(CliRunner().invoke(cli, ["swarm", "export", "--json"]).stdout)
    assert doc["lab"] == "swarm" and doc["services"] == ["hello-a", "agent"]
    assert load_lab_from_text(doc["scenario"], "x").service("agent").replicas == 2
    bad = CliRunner().invoke(cli, ["swarm", "export", "--name", "Not_A_Name"])
    assert bad.exit_code == 2 and "--name" in bad.stderr


# -- the keys a manager needs: image, restart policy, health check, update and rollback ----

def _web(**kw):
    return RealService("w", "web", "replicated", 2, "vip", (RealPort(8080, 80, "tcp", "ingress"),),
                       (), {}, **kw)


def test_image_policies_and_health_check_are_written_back_when_not_the_defaults():
    svc = _web(image="registry:5000/web:2@sha256:0123abcd",
               restart={"Condition": "on-failure", "Delay": 10_000_000_000, "MaxAttempts": 3,
                        "Window": 90_000_000_000},
               healthcheck={"Test": ["CMD-SHELL", "curl -f http://localhost:80/health || exit 1"],
                            "Interval": 2_000_000_000, "Timeout": 500_000_000, "Retries": 2},
               update={"Parallelism": 0, "Delay": 2_000_000_000, "FailureAction": "rollback",
                       "Monitor": 4_000_000_000, "MaxFailureRatio": 0.25, "Order": "start-first"},
               rollback={"Parallelism": 1, "FailureAction": "continue", "Monitor": 0})
    out = export(_snap((svc,), ()))
    assert out.warnings == ()
    s = out.lab.service("web")
    assert (s.image, s.version) == ("registry:5000/web:2", "2")
    assert (s.restart_policy.condition, s.restart_policy.delay, s.restart_policy.max_attempts,
            s.restart_policy.window) == ("on-failure", 10.0, 3, 90.0)
    assert s.healthcheck is not None
    assert (s.healthcheck.port, s.healthcheck.path, s.healthcheck.interval, s.healthcheck.timeout,
            s.healthcheck.retries, s.healthcheck.start_period) == (80, "/health", 2.0, 0.5, 2, 0.0)
    u = s.update_config
    assert (u.parallelism, u.delay, u.failure_action, u.monitor, u.max_failure_ratio, u.order) == \
        (0, 2.0, "rollback", 4.0, 0.25, "start-first")
    r = s.rollback_config
    assert (r.parallelism, r.failure_action, r.monitor) == (1, "continue", 5.0)
    assert "restart_policy: {condition: on-failure, delay: 10s, max_attempts: 3, window: 1m30s}" \
        in out.text
    assert ("update_config: {parallelism: 0, delay: 2s, failure_action: rollback, monitor: 4s, "
            "max_failure_ratio: 0.25, order: start-first}") in out.text
    assert "rollback_config: {failure_action: continue}" in out.text
    assert '    image: "registry:5000/web:2"' in out.text
    assert ('    healthcheck: {test: ["CMD-SHELL", "curl -f http://localhost:80/health || exit 1"], '
            "interval: 2s, timeout: 500ms, retries: 2}") in out.text


def test_swarms_defaults_and_netlabs_own_image_write_nothing():
    svc = _web(image="netlab/task:latest@sha256:0123", restart={"Condition": "any",
               "Delay": 5_000_000_000, "MaxAttempts": 0},
               healthcheck={"Test": ["NONE"]},
               update={"Parallelism": 1, "FailureAction": "pause", "Monitor": 5_000_000_000,
                       "MaxFailureRatio": 0, "Order": "stop-first"},
               rollback={"Parallelism": 1})
    out = export(_snap((svc,), ()))
    assert out.warnings == ()
    assert not any(key in out.text for key in ("image:", "healthcheck:", "restart_policy:",
                                              "update_config:", "rollback_config:"))
    assert out.lab.service("web") == load_lab_from_text(
        'services: {web: {deploy: {replicas: 2}, ports: ["8080:80"]}}\n'
        "nodes: {node1: {role: manager}, node2: {}}\n", "x").service("web")


def test_what_the_scenario_cannot_hold_is_said_and_left_out():
    svc = _web(image="@sha256:0123abcd",
               healthcheck={"Test": ["CMD", "pg_isready"]},
               restart={"Condition": "sometimes", "Delay": -1},
               update={"FailureAction": "explode", "Order": "random", "MaxFailureRatio": 2},
               rollback={"FailureAction": "rollback"})
    out = export(_snap((svc,), ()))
    said = "\n".join(out.warnings)
    for part in ("image '@sha256:0123abcd' left out", "health check 'CMD pg_isready' left out",
                 "restart policy condition 'sometimes' left out",
                 "restart policy Delay -1 left out",
                 "update_config failure action 'explode' left out",
                 "update_config order 'random' left out",
                 "update_config max failure ratio 2 left out",
                 "rollback_config failure action 'rollback' left out"):
        assert part in said, said
    s = out.lab.service("web")
    assert s.healthcheck is None and s.image == "netlab/app:latest"


def test_a_health_check_on_a_port_the_export_does_not_publish_is_left_out():
    svc = _web(healthcheck={"Test": ["CMD", "curl", "-f", "http://localhost:9000/"]})
    out = export(_snap((svc,), ()))
    assert any("health check 'CMD curl -f http://localhost:9000/' left out" in w
               for w in out.warnings)


def test_the_engines_service_spec_is_read_into_the_snapshot():
    from netlab.docker.snapshot import _services
    raw = [{"ID": "abc", "Spec": {
        "Name": "web", "Mode": {"Replicated": {"Replicas": 2}},
        "TaskTemplate": {"ContainerSpec": {"Image": "web:2@sha256:00", "Healthcheck": {
            "Test": ["CMD", "curl", "-f", "http://localhost/"]}},
            "RestartPolicy": {"Condition": "none"}},
        "UpdateConfig": {"Parallelism": 2}, "RollbackConfig": {"Order": "start-first"}}}]
    svc = _services(raw, {})[0]
    assert svc.image == "web:2@sha256:00"
    assert svc.restart == {"Condition": "none"}
    assert svc.healthcheck == {"Test": ["CMD", "curl", "-f", "http://localhost/"]}
    assert (svc.update, svc.rollback) == ({"Parallelism": 2}, {"Order": "start-first"})
    bare = _services([{"ID": "abc", "Spec": {"Name": "x"}}], {})[0]
    assert (bare.image, bare.restart, bare.healthcheck, bare.update, bare.rollback) == \
        ("", None, None, None, None)


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (5_000_000_000, "5s"), (90_000_000_000, "1m30s"), (3_600_000_000_000, "1h"),
    (3_930_000_000_000, "1h5m30s"), (500_000_000, "500ms"), (2_500_000_000, "2500ms"),
    (1500, "1500ns"), (10_000, "10us")])
def test_durations_are_written_as_compose_reads_them(ns, text):
    from netlab.docker.export import _duration
    from netlab.scenario.fields import parse_duration
    assert _duration(ns) == text
    assert parse_duration(text) == pytest.approx(ns / 1e9)
