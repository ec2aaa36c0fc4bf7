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
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import REPO, SCENARIOS, lab_netns, netlab, sh

DOCKER_ROOT = Path(os.environ.get("NETLAB_DOCKER_ROOT", "/var/lib/netlab/docker-root"))
RUN = Path("/run/netlab-test-docker")
SOCK = RUN / "docker.sock"
URL = f"unix://{SOCK}"


class Dockerd:
    """containerd + dockerd from DOCKER_ROOT with private state; ended by pid.

    The recipe of bench/bench_real_swarm.py, without a Swarm and without
    Docker's networking (``--iptables=false --bridge=none``).
    """

    def __init__(self) -> None:
        self.env = {**os.environ, "PATH": f"{DOCKER_ROOT}/usr/bin:{DOCKER_ROOT}/usr/sbin:"
                    f"{DOCKER_ROOT}/sbin:" + os.environ["PATH"], "DOCKER_HOST": URL}
        self.procs: list[subprocess.Popen] = []
        self.mounts: list[str] = []

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], capture_output=True, text=True, check=check,
                              env=self.env, timeout=300)

    def start(self) -> None:
        RUN.mkdir(parents=True, exist_ok=True)
        for path in ("/var/lib/docker", "/etc/docker"):   # the guest's /etc and /var are overlays
            Path(path).mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "tmpfs", path], check=True)
            self.mounts.append(path)
        # dockerd runs apparmor_parser --version, which warns without its parser.conf
        # and so breaks dockerd's parse of the version (the guest's /etc is an overlay);
        # the parser's policy features are in the unpacked tree, and it loads
        # docker-default through securityfs (as the harness of the swarm branch does).
        Path("/etc/apparmor").mkdir(exist_ok=True)
        Path("/etc/apparmor/parser.conf").write_text(
            (DOCKER_ROOT / "etc/apparmor/parser.conf").read_text().replace(
                "policy-features=/usr/share/", f"policy-features={DOCKER_ROOT}/usr/share/"))
        if Path("/sys/kernel/security").is_dir() and not os.path.ismount("/sys/kernel/security"):
            if subprocess.run(["mount", "-t", "securityfs", "securityfs",
                               "/sys/kernel/security"]).returncode == 0:
                self.mounts.append("/sys/kernel/security")
        log = open(RUN / "containerd.log", "w")
        self.procs.append(subprocess.Popen(
            ["containerd", "--root", "/var/lib/docker/containerd", "--state", str(RUN / "ctd"),
             "--address", str(RUN / "containerd.sock")], env=self.env, stdout=log, stderr=log))
        log = open(RUN / "dockerd.log", "w")
        self.procs.append(subprocess.Popen(
            ["dockerd", "--containerd", str(RUN / "containerd.sock"), "-H", URL,
             "--pidfile", str(RUN / "dockerd.pid"), "--storage-driver", "vfs",
             "--iptables=false", "--ip-masq=false", "--bridge=none"],
            env=self.env, stdout=log, stderr=log))
        t0 = time.monotonic()
        while self.docker("info", check=False).returncode != 0:
            if time.monotonic() - t0 > 180 or self.procs[-1].poll() is not None:
                raise RuntimeError("dockerd did not answer: "
                                   + (RUN / "dockerd.log").read_text()[-2000:])
            time.sleep(0.5)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for path in reversed(self.mounts):
            subprocess.run(["umount", "-l", path], check=False)


@pytest.fixture(scope="module")
def dockerd():
    assert os.environ.get("NETLAB_IN_VM") == "1", \
        "this test starts dockerd: run it inside netlab vm (see tests/integration/README or common brief)"
    assert (DOCKER_ROOT / "usr/sbin/dockerd").exists(), \
        f"no dockerd under {DOCKER_ROOT}: run sudo bash scripts/docker-root.sh on the host"
    d = Dockerd()
    try:
        d.start()
        build = subprocess.run(["bash", str(REPO / "scripts" / "task-image.sh")],
                               capture_output=True, text=True, env=d.env, timeout=300)
        assert build.returncode == 0, build.stderr
        yield d
    finally:
        d.stop()


def _ps(d: Dockerd, lab: str) -> dict[str, str]:
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
               "--docker", URL)
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
               "--docker", URL)
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


def test_missing_image_is_exit_3_and_changes_nothing(dockerd):
    dockerd.docker("tag", "netlab/task:latest", "netlab/task:kept")
    dockerd.docker("rmi", "netlab/task:latest")
    lab = "c" + secrets.token_hex(3)
    try:
        proc = netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", lab, "--tasks",
                      "containers", "--docker", URL, check=False)
        assert proc.returncode == 3, proc.stderr
        assert "scripts/task-image.sh" in proc.stderr
        assert lab_netns(lab) == []
    finally:
        dockerd.docker("tag", "netlab/task:kept", "netlab/task:latest")
        dockerd.docker("rmi", "netlab/task:kept")


def _lan(lab: str, node: str) -> str:
    from netlab.state import StateStore
    return StateStore().load(lab).lan[node]
