"""Benchmark: the same scale as bench_scale.py's seed, on a real Docker Swarm and on
netlab, in one run inside `netlab vm`.

A real two-node Swarm (tests.harness.dockerd: Debian's Docker 20.10, unpacked by
scripts/docker-root.sh, nothing installed on the host; node2 in a network
namespace of its own) runs the seed service (hello-a, 2 replicas,
-p 5000:3000, the offline image of scripts/task-image.sh). Timed, for both:

- from the scale command until node1's ingress_sbox lists every task as an
  IPVS destination of weight 1 (``ipvsadm -Ln`` read every 0.1 s) and, for
  Docker, ``docker service scale`` has returned: 2 → 10, then 10 → 2;
- for netlab, the same two scales of the seed lab (``converge.scale``: every
  node converged, destinations at weight 1);
- for Docker, node2 cut off (its link down) until both tasks run on node1.

dockerd rewrites the root network namespace of the machine it runs on,
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.harness

from bench_up_down import REPO  # noqa: E402

from netlab import converge, lifecycle  # noqa: E402
from netlab.kernel import xtables  # noqa: E402
from netlab.plan import names  # noqa: E402
from netlab.scenario import load_lab  # noqa: E402
from netlab.state import StateStore  # noqa: E402
from tests.harness.dockerd import DOCKER_ROOT, DockerdError, RealSwarm  # noqa: E402

SBOX = Path("/var/run/docker/netns/ingress_sbox")
WAIT_MAX = 300.0


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


def tasks_on(swarm: RealSwarm, node: str) -> int:
    """How many hello-a tasks Docker says run on ``node``."""
    out = swarm.manager.docker("service", "ps", "--filter", "desired-state=running", "--format",
                               "{{.Node}} {{.CurrentState}}", "hello-a", check=False).stdout
    return sum(1 for line in out.splitlines() if line.startswith(f"{node} Running"))


def real_swarm() -> list[str]:
    swarm = RealSwarm(nodes=2)
    try:
        swarm.start()
        version = swarm.manager.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        t0 = time.monotonic()
        swarm.seed()
        created = wait_dests(str(SBOX), 2, t0)
        lines = [f"    docker service create (2 replicas): {created:6.2f} s to 2 IPVS destinations"]
        for before, after in ((2, 10), (10, 2)):
            t0 = time.monotonic()
            swarm.manager.docker("service", "scale", "--detach", f"hello-a={after}")
            took = wait_dests(str(SBOX), after, t0)
            lines.append(f"    docker service scale hello-a {before}→{after}: {took:6.2f} s "
                         f"until node1's ingress_sbox lists {after} destinations of weight 1")
        # node2 cut off: until Swarm has rescheduled both tasks onto node1
        t0 = time.monotonic()
        sh("ip", "link", "set", "rs-node2", "down")
        while tasks_on(swarm, "node1") < 2 and time.monotonic() - t0 < WAIT_MAX:
            time.sleep(0.5)
        lines.append(f"    node2 cut off: {time.monotonic() - t0:6.2f} s until both tasks run "
                     "on node1 (Swarm's heartbeat timeout, then rescheduling)")
        return [f"  real Swarm (Docker {version}, two nodes on one kernel):", *lines]
    except DockerdError as err:
        return [f"  real Swarm: failed: {err}"]
    finally:
        swarm.stop()


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
    print("  not compared: netlab's node down is an instant cut; Swarm waits for its "
          "heartbeat timeout first, so the two figures measure different things")


if __name__ == "__main__":
    main()
