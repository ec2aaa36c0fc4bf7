"""A Swarm worker: its Engine knows no nodes, services or tasks (only managers answer those
calls), so ``--manager URL`` names a manager's Engine to read them from, while this node's
id, local networks, task containers and namespaces are still read on the worker.

Fakes: the recorded two-node Swarm (tests/fixtures/real-swarm): node1's Engine is the
manager, node2's (its recorded ``/info`` and containers) the worker."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab.docker.snapshot import read_snapshot
from netlab.errors import MissingFeature
from tests.unit.recorded import TWO_NODES, CapturedEngine

API = TWO_NODES / "api"


class Only503(Exception):
    """What a worker's Engine answers to /nodes, /services, /tasks (an APIError 503)."""

    status_code = 503


class WorkerEngine(CapturedEngine):
    """node2's Engine: its /info and its own containers; the Swarm's objects refused."""

    def __init__(self, root: Path = TWO_NODES) -> None:
        super().__init__(root)
        self.asked: list[str] = []

    def info(self):
        return self._load("node2-info.json")

    def _refuse(self, what: str):
        self.asked.append(what)
        raise Only503(f"{what}: This node is not a swarm manager.")

    def nodes(self, filters=None):
        return self._refuse("nodes")

    def services(self, filters=None, status=None):
        return self._refuse("services")

    def tasks(self, filters=None):
        return self._refuse("tasks")

    def networks(self, names=None, ids=None, filters=None):
        self.asked.append("networks")
        return super().networks(names, ids, filters)

    def containers(self, quiet=False, all=False, trunc=False, latest=False, since=None,  # noqa: A002
                   before=None, limit=-1, size=False, filters=None):
        label = (filters or {}).get("label")
        return [{"Id": c["Id"], "Names": [c["Name"]], "Labels": c["Config"].get("Labels") or {}}
                for c in self._load("node2-containers.json")
                if label is None or label in (c["Config"].get("Labels") or {})]

    def inspect_container(self, container):
        return next(c for c in self._load("node2-containers.json") if c["Id"] == container)


class OtherSwarmManager(CapturedEngine):
    """A manager whose Swarm does not have node2."""

    def nodes(self, filters=None):
        return [n for n in super().nodes(filters) if n["ID"].startswith("r0t9")]


def _node2_netns() -> list[str]:
    ingress = next(n for n in json.loads((API / "networks.json").read_text())
                   if n["Name"] == "ingress")
    return sorted(["ingress_sbox", f"1-{ingress['Id'][:10]}", "88e08b50b865"])


def test_a_worker_without_manager_says_to_pass_one():
    with pytest.raises(MissingFeature, match=r"^--docker: this node is a Swarm worker; .*"
                                             r"pass --manager URL"):
        read_snapshot(WorkerEngine(), _node2_netns)


def test_a_worker_reads_the_swarm_from_the_manager_and_its_own_namespaces_locally():
    worker = WorkerEngine()
    snap = read_snapshot(worker, _node2_netns, manager=CapturedEngine(TWO_NODES))
    assert worker.asked == ["networks"]          # never nodes, services or tasks
    assert snap.this_node == "node2"
    assert [(n.name, n.role) for n in snap.nodes] == [("node1", "manager"), ("node2", "worker")]
    assert [(t.name, t.node) for t in snap.tasks] == [("hello-a.1", "node1"), ("hello-a.2", "node2")]
    assert snap.service("hello-a").vips["ingress"]
    targets = {s.path.rsplit("/", 1)[-1]: s.target for s in snap.sandboxes}
    assert targets["ingress_sbox"] == "node2/ingress_sbox"
    assert targets["88e08b50b865"] == "hello-a.2"      # node2's task, from node2's own Engine
    assert any(t == "node2/ov-ingress" for t in targets.values())
    assert snap.sandbox("node2").path == "/proc/1/ns/net"
    assert snap.cluster_id                              # the manager's, a worker's /info has none


def test_on_a_manager_the_local_engine_answers_and_manager_is_not_asked():
    class Untouchable:
        def __getattr__(self, name):
            raise AssertionError(f"the manager was asked {name}")
    snap = read_snapshot(CapturedEngine(TWO_NODES), list, manager=Untouchable())
    assert snap.this_node == "node1"


def test_a_manager_that_is_a_worker_or_of_another_swarm_is_refused():
    with pytest.raises(MissingFeature, match=r"^--manager: that Engine is a Swarm worker"):
        read_snapshot(WorkerEngine(), _node2_netns, manager=WorkerEngine())
    with pytest.raises(MissingFeature, match=r"^--manager: the Swarm that Engine manages has no "
                                             r"node e0o1p1icwjhl \(this one\)"):
        read_snapshot(WorkerEngine(), _node2_netns, manager=OtherSwarmManager(TWO_NODES))
    class NoSwarm(CapturedEngine):
        def info(self):
            doc = copy.deepcopy(super().info())
            doc["Swarm"]["LocalNodeState"] = "inactive"
            return doc
    with pytest.raises(MissingFeature, match=r"^--manager: this Docker is not part of a Swarm"):
        read_snapshot(WorkerEngine(), _node2_netns, manager=NoSwarm(TWO_NODES))


@pytest.mark.parametrize("args", [
    ["swarm", "diff", "scenarios/hello-a.yaml", "--manager", "ftp://m:2375"],
    ["swarm", "diff", "scenarios/hello-a.yaml", "--manager", "tcp://m"],
    ["swarm", "diff", "scenarios/hello-a.yaml", "--manager", ""],
    ["trace", "--docker", "192.168.59.12:5000", "--manager", "tcp://m:2375/path"],
    ["trace", "x", "node1:5000", "--manager", "tcp://m:2375"],
])
def test_bad_manager_is_one_line_exit_2(args):
    from netlab.cli.main import cli
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("Error: --manager: "), \
        r.stderr


def test_cli_diff_passes_an_explicit_manager_and_never_takes_one_from_the_environment(monkeypatch):
    from netlab.cli import swarm as cli_swarm
    from netlab.cli.main import cli
    asked: list = []

    def snapshot(url, manager=None):
        asked.append((url, manager))
        raise MissingFeature("stop here")
    monkeypatch.setattr(cli_swarm, "engine", lambda: cli_swarm.Engine(snapshot, None))
    monkeypatch.setenv("DOCKER_HOST", "tcp://192.168.59.11:2375")
    r = CliRunner().invoke(cli, ["swarm", "diff", "scenarios/hello-a.yaml"])
    assert r.exit_code == 3 and asked[-1] == ("tcp://192.168.59.11:2375", None)
    monkeypatch.delenv("DOCKER_HOST")
    r = CliRunner().invoke(cli, ["swarm", "diff", "scenarios/hello-a.yaml",
                                 "--manager", "tcp://192.168.59.11:2375"])
    assert r.exit_code == 3
    assert asked[-1] == ("unix:///var/run/docker.sock", "tcp://192.168.59.11:2375")
