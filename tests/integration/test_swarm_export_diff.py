"""``netlab swarm export`` and ``netlab swarm diff`` on a real one-node Swarm, inside `netlab vm`.

The seed runs on a real dockerd (tests.harness.dockerd). The exported scenario is
accepted by ``netlab validate``, and diffing the node against it finds no
difference (what netlab leaves out is listed as known, each with why); a rule
put into the real ingress_sbox by hand, and a scenario that asks for a third
task, are each reported with the object behind them (exit 1). The real node
is read back with the standard tools too, independently of netlab's readers.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from netlab.scenario import load_lab
from tests.harness.dockerd import IMAGE, RealSwarm
from tests.integration.conftest import netlab

SBOX = "/var/run/docker/netns/ingress_sbox"
STRAY = ("-t", "nat", "-A", "POSTROUTING", "-d", "10.0.0.0/24", "-p", "udp", "-j", "ACCEPT")


@pytest.fixture(scope="module")
def swarm():
    real = RealSwarm(nodes=1).start()
    try:
        real.seed()
        yield real
    finally:
        real.stop()


@pytest.fixture(scope="module")
def exported(swarm, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "swarm.yaml"
    netlab("swarm", "export", "--docker", swarm.manager.url, "-o", str(out))
    return out


def _diff(swarm, scenario, *extra):
    proc = netlab("swarm", "diff", str(scenario), "--docker", swarm.manager.url, "--json", *extra,
                  check=False)
    return proc.returncode, json.loads(proc.stdout)


def test_export_is_a_valid_scenario_of_the_real_swarm(swarm, exported):
    netlab("validate", str(exported))
    lab = load_lab(exported)
    assert [(n.name, n.role) for n in lab.nodes] == [("node1", "manager")]
    (svc,) = lab.services
    assert (svc.name, svc.replicas, svc.endpoint_mode) == ("hello-a", 2, "vip")
    assert [(p.published, p.target, p.protocol, p.mode) for p in svc.ports] == [
        (5000, 3000, "tcp", "ingress")]
    # Docker's own view of the same service
    inspect = json.loads(swarm.manager.docker("service", "inspect", "hello-a").stdout)[0]
    assert inspect["Spec"]["Mode"]["Replicated"]["Replicas"] == svc.replicas


def test_diff_against_the_export_is_equal_with_known_differences(swarm, exported):
    code, report = _diff(swarm, exported)
    assert code == 0 and report["differences"] == [], json.dumps(report["differences"], indent=1)
    targets = {ns["target"] for ns in report["namespaces"]}
    assert {"node1", "node1/ingress_sbox", "node1/ov-ingress", "hello-a.1", "hello-a.2"} == targets
    assert all(k["why"] for k in report["known"])
    # the ingress_sbox compared is the real one: ipvsadm lists the two tasks there
    ipvs = subprocess.run(["nsenter", f"--net={SBOX}", "ipvsadm", "-Ln"], capture_output=True,
                          text=True, check=True).stdout
    assert ipvs.count("Masq") == 2, ipvs


def test_a_rule_added_by_hand_is_a_difference_naming_the_sandbox(swarm, exported):
    subprocess.run(["nsenter", f"--net={SBOX}", "iptables", *STRAY], check=True)
    try:
        code, report = _diff(swarm, exported)
    finally:
        subprocess.run(["nsenter", f"--net={SBOX}", "iptables", "-t", "nat", "-D", *STRAY[3:]],
                       check=True)
    assert code == 1
    (x,) = report["differences"]
    assert (x["target"], x["kind"], x["plan"]) == ("node1/ingress_sbox", "iptables", "absent")
    assert x["real"] == "-A POSTROUTING -d 10.0.0.0/24 -p udp -j ACCEPT"
    assert x["path"] == SBOX and "ingress sandbox" in x["behind"]


def test_a_third_task_in_the_scenario_is_missing_on_the_node(swarm, exported, tmp_path):
    three = tmp_path / "three.yaml"
    three.write_text(exported.read_text().replace("replicas: 2", "replicas: 3"))
    code, report = _diff(swarm, three)
    assert code == 1
    missing = [x for x in report["differences"] if x["target"] == "hello-a.3"]
    assert missing and missing[0]["real"] == "absent", report["differences"]
    ipvs = [x for x in report["differences"] if x["kind"] == "ipvs"]
    assert ipvs and all(x["target"] == "node1/ingress_sbox" for x in ipvs), ipvs


def test_a_user_network_its_load_balancer_and_its_task_compare_equal(swarm, tmp_path):
    """docker network create -d overlay backend; a service on it (no published port): the
    export has the network and its subnet, and the diff maps lb_<id> to node1/lb-backend
    and 1-<id> to node1/ov-backend and finds them equal to the plan."""
    m = swarm.manager
    m.docker("network", "create", "-d", "overlay", "backend")
    try:
        m.docker("service", "create", "--detach", "--no-resolve-image", "--name", "api",
                 "--network", "backend", "--replicas", "1", "--hostname", "{{.Task.Name}}", IMAGE)
        swarm.wait_running("api", 1)
        out = tmp_path / "backend.yaml"
        netlab("swarm", "export", "--docker", m.url, "-o", str(out))
        lab = load_lab(out)
        real = json.loads(m.docker("network", "inspect", "backend").stdout)[0]
        assert str(lab.network("backend").subnet) == real["IPAM"]["Config"][0]["Subnet"]
        assert lab.service("api").networks == ("backend",)
        code, report = _diff(swarm, out)
        assert code == 0, json.dumps(report["differences"], indent=1)
        targets = {ns["target"] for ns in report["namespaces"]}
        assert {"node1/lb-backend", "node1/ov-backend", "api.1"} <= targets, targets
    finally:
        m.docker("service", "rm", "api", check=False)
        m.docker("network", "rm", "backend", check=False)
