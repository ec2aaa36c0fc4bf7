"""netlab against a real Docker Swarm (issue 9), inside `netlab vm`.

A real two-node Swarm (tests.harness.dockerd: Debian's Docker 20.10 from
scripts/docker-root.sh; node1 in the guest's root namespace, node2 in a
namespace of its own, VXLAN between them on the one kernel) runs the seed:
``docker service create --name hello-a --replicas 2 -p 5000:3000``. Then:

- ``netlab swarm export`` gives a scenario equal to scenarios/hello-a.yaml in
  meaning (nodes and roles, the service, its replicas, ports and modes);
- ``netlab swarm diff scenarios/hello-a.yaml`` finds no difference on node1;
- (``netlab trace --docker 192.168.77.1:5000``, delivered through dnat, mark,
  ipvs, snat, redirect and deliver, is test_trace_docker.py's, on the same
  Swarm: conftest.real_swarm, one per session);
- afterwards no dockerd, container, or namespace is left (checked when the
  session's Swarm stops).

The Swarm is read back with Docker's own CLI and the standard tools too.
"""

from __future__ import annotations

import json

import pytest

from netlab.scenario import load_lab
from tests.integration.conftest import SCENARIOS, netlab

NODE1 = "192.168.77.1"


@pytest.fixture(scope="module")
def swarm(real_swarm):
    """The session's shared real Swarm (conftest.real_swarm: stopped when the session
    ends, and checked then to leave no daemon, mount, namespace or link behind)."""
    return real_swarm


def test_the_real_swarm_runs_the_seed(swarm):
    """Docker's own view: two nodes, two running tasks, one on each node."""
    nodes = swarm.manager.docker("node", "ls", "--format", "{{.Hostname}} {{.Status}}").stdout
    assert sorted(nodes.split("\n")[:-1]) == ["node1 Ready", "node2 Ready"], nodes
    ps = swarm.manager.docker("service", "ps", "--filter", "desired-state=running",
                              "--format", "{{.Node}}", "hello-a").stdout.split()
    assert sorted(ps) == ["node1", "node2"], ps


def test_export_equals_the_seed_in_meaning(swarm, tmp_path):
    out = tmp_path / "exported.yaml"
    netlab("swarm", "export", "--docker", swarm.manager.url, "-o", str(out))
    exported, seed = load_lab(out), load_lab(SCENARIOS / "hello-a.yaml")
    assert {n.name: n.role for n in exported.nodes} == {n.name: n.role for n in seed.nodes}
    assert [(s.name, s.replicas, s.mode, s.ports, s.endpoint_mode)
            for s in exported.services] == \
        [(s.name, s.replicas, s.mode, s.ports, s.endpoint_mode) for s in seed.services]
    # and it runs as a lab's scenario: validate accepts it
    netlab("validate", str(out))


def test_diff_with_the_seed_finds_no_difference(swarm):
    proc = netlab("swarm", "diff", str(SCENARIOS / "hello-a.yaml"), "--docker",
                  swarm.manager.url, "--json", check=False)
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, proc.stdout
    assert report["differences"] == [], report["differences"]
    # the namespaces compared are the real ones, each mapped to its plan target
    targets = {ns["target"] for ns in report["namespaces"]}
    assert {"node1", "node1/ingress_sbox"} <= targets, targets
