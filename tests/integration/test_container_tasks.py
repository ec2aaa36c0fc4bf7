"""``netlab up --tasks containers``: the seed's tasks as real Docker containers, inside
``netlab vm`` (dockerd rewrites the machine it runs on; it never runs on the host).

A private dockerd (Debian's Docker 20.10 unpacked by ``scripts/docker-root.sh``, run
with ``--iptables=false --bridge=none``: it only runs containers) and the offline
image of ``scripts/task-image.sh``. Read back with ``docker ps``/``docker inspect``,
``ip netns``, ``ipvsadm`` and real requests through the mesh.
"""

from __future__ import annotations

import json
import os
import secrets

import pytest

from tests.harness.dockerd import DockerNode, RealSwarm
from tests.integration.conftest import SCENARIOS, lab_netns, netlab, sh

@pytest.fixture(scope="module")
def dockerd():
    """node1 of tests.harness.dockerd's harness as a plain Engine: no Swarm, no rules, no bridge."""
    engine = RealSwarm(swarm=False, networking=False).start()   # builds the task image too
    try:
        yield engine.manager
    finally:
        engine.stop()


def _ps(d: DockerNode, lab: str) -> dict[str, str]:
    """name -> hostname of the lab's running containers, as ``docker ps`` lists them."""
    names = d.docker("ps", "--filter", f"label=netlab.lab={lab}", "--format",
                     "{{.Names}}").stdout.split()
    if not names:
        return {}
    inspected = json.loads(d.docker("inspect", *names).stdout)
    return {c["Name"].lstrip("/"): c["Config"]["Hostname"] for c in inspected
            if c["HostConfig"]["NetworkMode"] == "none"}


def _dests(ns: str) -> list[str]:
    return sorted(line.split()[1].split(":")[0] for line in sh(ns, "ipvsadm", "-Ln").splitlines()
                  if line.strip().startswith("->") and "RemoteAddress" not in line
                  and line.split()[3] == "1")


def test_seed_tasks_as_containers_scale_and_down(dockerd):
    lab = "c" + secrets.token_hex(3)
    try:
        netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", lab, "--tasks", "containers",
               "--docker", dockerd.url)
        assert _ps(dockerd, lab) == {f"nl-{lab}.hello-a.1": "hello-a.1",
                                     f"nl-{lab}.hello-a.2": "hello-a.2"}
        # The task namespace is the container's: same inode as /proc/<pid>/ns/net.
        pid = dockerd.docker("inspect", "-f", "{{.State.Pid}}", f"nl-{lab}.hello-a.1").stdout
        assert os.stat(f"/proc/{pid.strip()}/ns/net").st_ino == \
            os.stat(f"/var/run/netns/nl-{lab}.hello-a.1").st_ino
        replies = json.loads(netlab("curl", lab, "node1:5000", "--count", "4", "--json").stdout)
        assert [r["task"] for r in replies] in (["hello-a.1", "hello-a.2"] * 2,
                                                ["hello-a.2", "hello-a.1"] * 2)
        # The answer came from the busybox server in the container, not netlab's app.
        body = json.loads(sh(f"nl-{lab}.client", "curl", "-s", "-m", "5",
                             f"http://{_lan(lab, 'node1')}:5000/x"))
        assert body["server"] == "busybox" and body["path"] == "/x"
        assert body["client"].startswith("10.0.0.")      # the ingress_sbox's SNAT, as Swarm
        sbox = f"nl-{lab}.node1.ingress_sbox"
        assert len(_dests(sbox)) == 2
        # Traced hop by hop, a request ends in a container as in a task netlab made.
        trace = json.loads(netlab("trace", lab, "node2:5000", "--json").stdout)
        assert trace["verdict"] == "delivered", trace["reason"]
        events = [h["event"] for h in trace["hops"]
                  if h["leg"] == "request" and h["event"] not in ("rx", "tx")]
        assert {"dnat", "mark", "ipvs", "snat", "redirect", "deliver"} <= set(events), events
        assert trace["backend"]["task"] == trace["reply"]["task"] in ("hello-a.1", "hello-a.2")

        out = netlab("scale", lab, "hello-a=3").stdout
        assert "hello-a.3" in out
        assert sorted(_ps(dockerd, lab).values()) == ["hello-a.1", "hello-a.2", "hello-a.3"]
        assert len(_dests(sbox)) == 3
        replies = json.loads(netlab("curl", lab, "node1:5000", "--count", "6", "--json").stdout)
        assert sorted({r["task"] for r in replies}) == ["hello-a.1", "hello-a.2", "hello-a.3"]

        netlab("scale", lab, "hello-a=2")
        assert sorted(_ps(dockerd, lab).values()) == ["hello-a.1", "hello-a.2"]
        assert f"nl-{lab}.hello-a.3" not in lab_netns(lab)
        assert len(_dests(sbox)) == 2
        status = json.loads(netlab("status", lab, "--json").stdout)
        assert status["drift"] == [], status["drift"]
    finally:
        out = netlab("down", lab, check=False).stdout
    assert "2 task containers removed" in out, out
    assert dockerd.docker("ps", "-a", "--filter", f"label=netlab.lab={lab}", "-q").stdout == ""
    assert lab_netns(lab) == []


def test_east_west_by_name_through_the_embedded_dns_in_containers(dockerd):
    """web.1 (a container) resolves api through its embedded DNS (netlab's app, its socket
    in the container's namespace) and reaches api's three containers through the VIP."""
    lab = "c" + secrets.token_hex(3)
    try:
        netlab("up", str(SCENARIOS / "east-west.yaml"), "--name", lab, "--tasks", "containers",
               "--docker", dockerd.url)
        assert len(_ps(dockerd, lab)) == 7
        replies = json.loads(netlab("curl", lab, "api:80", "--from", "web.1", "--count", "6",
                                    "--json").stdout)
        assert all(r["ok"] for r in replies), replies
        assert sorted({r["task"] for r in replies}) == ["api.1", "api.2", "api.3"]
        cache = json.loads(netlab("curl", lab, "cache:6379", "--from", "api.1", "--count", "2",
                                  "--json").stdout)
        assert sorted({r["task"] for r in cache}) == ["cache.1", "cache.2"]
        # A process in the container resolves through the embedded DNS too. Its
        # resolv.conf is the task's; busybox's nslookup takes a domain from the hostname
        # ("web.1" -> "1") and asks api.1, so it is asked for the absolute name.
        resolv = dockerd.docker("exec", f"nl-{lab}.web.1", "cat", "/etc/resolv.conf").stdout
        assert [line for line in resolv.splitlines() if not line.startswith("#")] == \
            ["nameserver 127.0.0.11", "options ndots:0"], resolv
        from netlab.state import StateStore
        vip = str(StateStore().load(lab).allocations.networks["backend"].vips["api"].vip)
        looked = dockerd.docker("exec", f"nl-{lab}.web.1", "nslookup", "api.", check=False)
        assert vip in looked.stdout.split(), looked
    finally:
        out = netlab("down", lab, check=False).stdout
    assert "7 task containers removed" in out, out
    assert lab_netns(lab) == []


def test_a_real_container_killed_is_noticed_and_restarted(dockerd):
    """docker kill: the manager sees the container exit (137), takes the task out of
    every load balancer and starts a new container in its slot after the restart
    delay (5 s x 0.1), with a new address."""
    from tests.integration.conftest import lab_events, wait_for
    lab = "c" + secrets.token_hex(3)
    try:
        netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", lab, "--tasks", "containers",
               "--docker", dockerd.url, "--time-scale", "0.1")
        sbox = f"nl-{lab}.node1.ingress_sbox"
        assert _dests(sbox) == ["10.0.0.5", "10.0.0.6"]
        old = dockerd.docker("inspect", "-f", "{{.Id}}", f"nl-{lab}.hello-a.2").stdout.strip()
        dockerd.docker("kill", f"nl-{lab}.hello-a.2")
        wait_for("the new hello-a.2 runs", lambda: ("hello-a.2", "running") in [
            (e.subject, e.action) for e in lab_events(lab)], timeout=180)
        said = [(e.subject, e.action, e.message) for e in lab_events(lab)
                if e.subject == "hello-a.2"]
        assert [a for _s, a, _m in said] == ["failed", "restart-scheduled", "shutdown",
                                            "assigned", "running"], said
        assert "task: non-zero exit (137)" in said[0][2]
        assert _dests(sbox) == ["10.0.0.5", "10.0.0.7"]
        new = dockerd.docker("inspect", "-f", "{{.Id}} {{.State.Running}}",
                             f"nl-{lab}.hello-a.2").stdout.split()
        assert new[0] != old and new[1] == "true", new
        replies = json.loads(netlab("curl", lab, "node1:5000", "--count", "4", "--json").stdout)
        assert {(r["task"], r["task_ip"]) for r in replies} == {("hello-a.1", "10.0.0.5"),
                                                              ("hello-a.2", "10.0.0.7")}
    finally:
        netlab("down", lab, check=False)
    assert lab_netns(lab) == []


def test_missing_image_is_exit_3_and_changes_nothing(dockerd):
    dockerd.docker("tag", "netlab/task:latest", "netlab/task:kept")
    dockerd.docker("rmi", "netlab/task:latest")
    lab = "c" + secrets.token_hex(3)
    try:
        proc = netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", lab, "--tasks",
                      "containers", "--docker", dockerd.url, check=False)
        assert proc.returncode == 3, proc.stderr
        assert "scripts/task-image.sh" in proc.stderr
        assert lab_netns(lab) == []
    finally:
        dockerd.docker("tag", "netlab/task:kept", "netlab/task:latest")
        dockerd.docker("rmi", "netlab/task:kept")


def _lan(lab: str, node: str) -> str:
    from netlab.state import StateStore
    return StateStore().load(lab).lan[node]
