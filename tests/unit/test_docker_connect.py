"""Reaching a real Engine: the four errors a user of a real Swarm meets, one line, exit 3."""

from __future__ import annotations

import json
import socket

import pytest
import requests
from click.testing import CliRunner

from netlab.cli.main import cli
from netlab.docker import connect
from netlab.docker.snapshot import read_snapshot, scenario_names
from netlab.errors import MissingFeature


class InfoOnly:
    """An Engine that answers /info only (what the checks need)."""

    def __init__(self, swarm: dict) -> None:
        self._info = {"Name": "n1", "Swarm": swarm}

    def info(self):
        return self._info


def test_no_daemon_at_a_socket_is_exit_3_naming_the_url(tmp_path):
    url = f"unix://{tmp_path}/docker.sock"
    result = CliRunner().invoke(cli, ["swarm", "export", "--docker", url, "--json"])
    assert result.exit_code == 3
    doc = json.loads(result.stdout)
    assert doc["error"] == (f"no Docker daemon answers at {url}; start docker or pass --docker URL")
    assert doc["field"] == "--docker" and doc["exit_code"] == 3
    assert "Traceback" not in result.output


def test_a_socket_nobody_listens_on_is_no_daemon(tmp_path):
    path = tmp_path / "docker.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))          # bound, never listening: connect() is refused
    try:
        with pytest.raises(MissingFeature, match="no Docker daemon answers at unix://"):
            connect.connect(f"unix://{path}")
    finally:
        s.close()


def test_permission_denied_on_the_socket_says_root_or_docker_group():
    err = requests.exceptions.ConnectionError(
        ("Connection aborted.", PermissionError(13, "Permission denied")))
    msg = str(connect.unreachable("unix:///var/run/docker.sock", err))
    assert msg == ("--docker: permission denied on /var/run/docker.sock: run as root or as a "
                   "member of the docker group")
    assert connect.unreachable("unix:///var/run/docker.sock", err).exit_code == 3


def test_not_a_swarm_and_worker_are_exit_3():
    with pytest.raises(MissingFeature, match=r"not part of a Swarm \(docker swarm init or join"):
        read_snapshot(InfoOnly({"LocalNodeState": "inactive", "NodeID": ""}))
    with pytest.raises(MissingFeature, match="is a Swarm worker; services and tasks are only known "
                                             "to managers: run on a manager"):
        read_snapshot(InfoOnly({"LocalNodeState": "active", "NodeID": "x",
                                "ControlAvailable": False}))
    # A worker is still a Swarm node for what needs no manager.
    assert connect.swarm_info(InfoOnly({"LocalNodeState": "active", "NodeID": "x",
                                        "ControlAvailable": False}), cluster_wide=False)


def test_docker_host_is_the_default_url(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://10.1.2.3:2375")
    assert connect.docker_url(None) == "tcp://10.1.2.3:2375"
    assert connect.docker_url("unix:///x.sock") == "unix:///x.sock"
    monkeypatch.delenv("DOCKER_HOST")
    assert connect.docker_url(None) == "unix:///var/run/docker.sock"


def test_hostnames_become_valid_distinct_node_names():
    assert scenario_names(["node1", "Worker_2.example.com", "a-very-long-hostname", "lan",
                           "node1", "ip-10-0-0-5.ec2.internal"]) == [
        "node1", "worker-2", "a-very-lon", "lan-4", "node1-5", "ip-10-0-5"]
