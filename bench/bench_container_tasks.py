"""Benchmark: the seed lab with its tasks as netlab's namespaces and as real Docker
containers (``up --tasks containers``), in one run inside ``netlab vm``.

Timed for each mode: ``up`` (2 tasks), ``scale`` hello-a 2 → 10 and 10 → 2 (until
every node converged and the new destinations are at weight 1), and ``down``.
The dockerd is node1 of :class:`tests.harness.dockerd.RealSwarm` (one node: only its
container runtime is used), so this refuses to run outside ``netlab vm``:

    flock /tmp/netlab-vm.lock .venv/bin/netlab vm -- .venv/bin/python bench/bench_container_tasks.py
"""

from __future__ import annotations

import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.harness

from bench_up_down import REPO  # noqa: E402

from netlab import converge, lifecycle  # noqa: E402
from netlab.kernel import xtables  # noqa: E402
from netlab.scenario import load_lab  # noqa: E402
from netlab.state import StateStore  # noqa: E402
from tests.harness.dockerd import RealSwarm  # noqa: E402


def timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def one_mode(tasks: str, url: str | None, backend: str) -> list[str]:
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    lab = load_lab(REPO / "scenarios" / "hello-a.yaml", name_override=f"b{tasks[0]}")
    up = timed(lambda: lifecycle.up(lab, "(bench)", store, backend, tasks=tasks, docker=url))
    try:
        up10 = timed(lambda: converge.scale(lab.name, {"hello-a": 10}, store))
        down2 = timed(lambda: converge.scale(lab.name, {"hello-a": 2}, store))
    finally:
        gone = timed(lambda: lifecycle.down(lab.name, store))
    return [f"  tasks as {tasks:<10}: up {up:6.2f} s   scale 2→10 {up10:6.2f} s   "
            f"10→2 {down2:6.2f} s   down {gone:6.2f} s"]


def main() -> None:
    backend = xtables.choose(None)
    print(f"netlab bench tasks as containers: kernel {platform.release()}, in netlab vm, "
          f"iptables {backend}, seed lab (2 nodes)")
    print("\n".join(one_mode("namespaces", None, backend)))
    with RealSwarm(nodes=1) as swarm:
        version = swarm.manager.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        print("\n".join(one_mode("containers", swarm.manager.url, backend))
              + f"   (Docker {version})")


if __name__ == "__main__":
    main()
