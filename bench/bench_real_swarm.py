"""Benchmark: the same scale as bench_scale.py's seed, on a real Docker Swarm and on
netlab, in one run inside `netlab vm`.

A one-node Swarm (Debian's Docker 20.10, unpacked by scripts/docker-root.sh;
nothing is installed on the host) runs the seed service (hello-a, 2 replicas,
-p 5000:3000, the offline image of scripts/task-image.sh). Timed, for both:

- from the scale command until the node's ingress_sbox lists every task as an
  IPVS destination of weight 1 (``ipvsadm -Ln`` read every 0.1 s) and, for
  Docker, ``docker service scale`` has returned: 2 → 10, then 10 → 2;
- for netlab, the same two scales of the seed lab (``converge.scale``: every
  node converged, destinations at weight 1).

What cannot be compared here, and is said in the output: a node failure (one
dockerd is one node; a second node needs a second machine) and a multi-node
scale. dockerd rewrites the root network namespace of the machine it runs on,
so this refuses to run outside `netlab vm` (NETLAB_IN_VM=1):

    flock /tmp/netlab-vm.lock .venv/bin/netlab vm -- .venv/bin/python bench/bench_real_swarm.py
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_up_down import REPO  # noqa: E402

from netlab import converge, lifecycle  # noqa: E402
from netlab.kernel import xtables  # noqa: E402
from netlab.plan import names  # noqa: E402
from netlab.scenario import load_lab  # noqa: E402
from netlab.state import StateStore  # noqa: E402

DOCKER_ROOT = Path(os.environ.get("NETLAB_DOCKER_ROOT", "/var/lib/netlab/docker-root"))
RUN = Path("/run/netlab-bench-docker")
SOCK = RUN / "docker.sock"
SBOX = Path("/var/run/docker/netns/ingress_sbox")
WAIT_MAX = 300.0
ADVERTISE = "192.168.77.1"


def sh(*cmd: str, check: bool = True, env: dict | None = None, timeout: float = 300,
       ) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=check, env=env,
                          timeout=timeout)


def weight_one_dests(netns_path: str) -> int:
    """How many IPVS destinations of weight 1 the namespace at ``netns_path`` lists."""
    out = sh("nsenter", f"--net={netns_path}", "ipvsadm", "-Ln", check=False).stdout
    return len(re.findall(r"->\s+[\d.]+:\d+\s+Masq\s+1\s", out))


def wait_dests(netns_path: str, n: int, t0: float) -> float:
    while time.monotonic() - t0 < WAIT_MAX:
        if weight_one_dests(netns_path) == n:
            return time.monotonic() - t0
        time.sleep(0.1)
    return float("nan")


class Dockerd:
    """containerd + dockerd from DOCKER_ROOT, with private state, ended by pid."""

    def __init__(self) -> None:
        self.env = {**os.environ, "PATH": f"{DOCKER_ROOT}/usr/bin:{DOCKER_ROOT}/usr/sbin:"
                    f"{DOCKER_ROOT}/sbin:" + os.environ["PATH"], "DOCKER_HOST": f"unix://{SOCK}"}
        self.procs: list[subprocess.Popen] = []
        self.mounts: list[str] = []

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return sh("docker", *args, check=check, env=self.env)

    def start(self) -> None:
        RUN.mkdir(parents=True, exist_ok=True)
        for path in ("/var/lib/docker", "/etc/docker"):   # the guest's /etc and /var are overlays
            Path(path).mkdir(parents=True, exist_ok=True)
            sh("mount", "-t", "tmpfs", "tmpfs", path)
            self.mounts.append(path)
        sh("ip", "link", "add", "nlbench0", "type", "dummy")     # the node's "LAN" address
        sh("ip", "addr", "add", f"{ADVERTISE}/24", "dev", "nlbench0")
        sh("ip", "link", "set", "nlbench0", "up")
        log = open(RUN / "containerd.log", "w")
        self.procs.append(subprocess.Popen(
            ["containerd", "--root", "/var/lib/docker/containerd", "--state", str(RUN / "ctd"),
             "--address", str(RUN / "containerd.sock")], env=self.env, stdout=log, stderr=log))
        log = open(RUN / "dockerd.log", "w")
        self.procs.append(subprocess.Popen(
            ["dockerd", "--containerd", str(RUN / "containerd.sock"), "-H", f"unix://{SOCK}",
             "--pidfile", str(RUN / "dockerd.pid"), "--storage-driver", "vfs"],
            env=self.env, stdout=log, stderr=log))
        t0 = time.monotonic()
        while self.docker("info", check=False).returncode != 0:
            if time.monotonic() - t0 > 120 or self.procs[-1].poll() is not None:
                raise RuntimeError("dockerd did not answer: "
                                   + (RUN / "dockerd.log").read_text()[-2000:])
            time.sleep(0.5)

    def stop(self) -> None:
        if SOCK.exists():
            self.docker("swarm", "leave", "--force", check=False)
        for proc in reversed(self.procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        sh("ip", "link", "del", "nlbench0", check=False)
        for path in reversed(self.mounts):
            sh("umount", "-l", path, check=False)


def real_swarm() -> list[str]:
    d = Dockerd()
    try:
        d.start()
        version = d.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        d.docker("swarm", "init", "--advertise-addr", ADVERTISE)
        sh("bash", str(REPO / "scripts" / "task-image.sh"), env=d.env)
        t0 = time.monotonic()
        d.docker("service", "create", "--detach", "--no-resolve-image", "--name", "hello-a",
                 "--replicas", "2",
                 "-p", "5000:3000", "--hostname", "{{.Task.Name}}", "netlab/task:latest")
        created = wait_dests(str(SBOX), 2, t0)
        lines = [f"    docker service create (2 replicas): {created:6.2f} s to 2 IPVS destinations"]
        if created != created:      # nan: say what the tasks are doing instead of timing more
            ps = d.docker("service", "ps", "--no-trunc", "--format",
                          "{{.Name}} {{.CurrentState}} {{.Error}}", "hello-a", check=False)
            return [f"  real Swarm (Docker {version}, one node): no IPVS destinations in "
                    f"{WAIT_MAX:.0f} s; tasks: {ps.stdout.strip() or ps.stderr.strip()}",
                    *lines, "    " + (RUN / "dockerd.log").read_text()[-1500:].replace("\n", "\n    ")]
        for before, after in ((2, 10), (10, 2)):
            t0 = time.monotonic()
            d.docker("service", "scale", "--detach", f"hello-a={after}")
            took = wait_dests(str(SBOX), after, t0)
            lines.append(f"    docker service scale hello-a {before}→{after}: {took:6.2f} s "
                         f"until ingress_sbox lists {after} destinations of weight 1")
        d.docker("service", "rm", "hello-a", check=False)
        return [f"  real Swarm (Docker {version}, one node):", *lines]
    finally:
        d.stop()


def netlab_seed(backend: str) -> list[str]:
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    lab = load_lab(REPO / "scenarios" / "hello-a.yaml", name_override="rsb")
    t0 = time.monotonic()
    lifecycle.up(lab, "(bench)", store, backend)
    lines = [f"    netlab up (2 nodes, 2 tasks): {time.monotonic() - t0:6.2f} s"]
    try:
        sbox = f"/var/run/netns/{names.sandbox_ns(lab.name, 'node1')}"
        for before, after in ((2, 10), (10, 2)):
            t0 = time.monotonic()
            converge.scale(lab.name, {"hello-a": after}, store)
            took = time.monotonic() - t0
            check = weight_one_dests(sbox)
            lines.append(f"    netlab scale hello-a {before}→{after}: {took:6.2f} s to every "
                         f"node converged (node1's ingress_sbox: {check} destinations of weight 1)")
    finally:
        lifecycle.down(lab.name, store)
    return ["  netlab (seed lab, 2 nodes):", *lines]


def main() -> None:
    if os.environ.get("NETLAB_IN_VM") != "1":
        sys.exit("bench_real_swarm: run it inside netlab vm (dockerd rewrites the root "
                 "network namespace of the machine it runs on)")
    if not (DOCKER_ROOT / "usr/sbin/dockerd").exists():
        sys.exit(f"bench_real_swarm: no dockerd under {DOCKER_ROOT}; run "
                 "sudo bash scripts/docker-root.sh on the host first")
    backend = xtables.choose(None)
    print(f"netlab bench real Swarm vs netlab: kernel {platform.release()}, in netlab vm, "
          f"iptables {backend}")
    print("\n".join(netlab_seed(backend)))
    print("\n".join(real_swarm()))
    print("  not compared: a node failure and a multi-node scale (one dockerd is one node)")


if __name__ == "__main__":
    main()
