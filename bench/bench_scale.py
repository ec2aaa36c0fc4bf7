"""Benchmark: how long a live change takes to converge, and how long the mesh is out after a
node fails.

From one run, on the seed (hello-a, 2 nodes) and on a generated 16-node,
200-task lab (see bench_up_down.py):

- ``scale``: the time from the call to the last node converged (as the lab's
  change log records it), hello-a 2 → 10 → 2 and svc1 20 → 40 → 20;
- ``node down``: the time from the call until the mesh answers again on every
  live node: from the moment the node is cut off, poll rounds run alongside
  the change, each sending from the client as many requests to each live
  node's published port as the service has tasks (so IPVS round robin tries
  each backend); the first round where all answer ends the wait. Each request
  is bounded (1 s), and so is the wait (60 s).

The same scales on a real Swarm are bench_real_swarm.py's (one dockerd per
node inside the VM). Run it as root on a kernel with IPVS, alone, inside the VM:

    flock /tmp/netlab-vm.lock .venv/bin/netlab vm -- .venv/bin/python bench/bench_scale.py
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_up_down import REPO, generated_lab  # noqa: E402

from netlab import converge, lifecycle  # noqa: E402
from netlab.client import http_get  # noqa: E402
from netlab.kernel.reader import LinuxReader  # noqa: E402
from netlab.kernel import xtables  # noqa: E402
from netlab.scenario import load_lab  # noqa: E402
from netlab.state import StateStore  # noqa: E402

POLL_TIMEOUT = 1.0
WAIT_MAX = 60.0


def timed_scale(store: StateStore, lab: str, service: str, n: int) -> tuple[float, float]:
    """(wall seconds of the call, started → converged from the change log)."""
    t0 = time.monotonic()
    converge.scale(lab, {service: n}, store)
    wall = time.monotonic() - t0
    change = store.load(lab).changes[-1]
    return wall, change.converged - change.started


def mesh_answers(store: StateStore, lab: str, service: str, port: int,
                 live: list[str]) -> bool:
    """One poll round: every ``live`` node answers as many requests as ``service`` has
    tasks (read from the state as it is now)."""
    st = store.load(lab)
    tasks = len(st.model.tasks_of(service))
    for node in live:
        for _ in range(max(tasks, 1)):
            try:
                http_get(LinuxReader(), st.targets["client"], st.lan[node], port, f"{node}:{port}",
                         POLL_TIMEOUT)
            except (OSError, ValueError):
                return False
    return True


def timed_node_down(store: StateStore, lab: str, node: str, service: str,
                    port: int) -> tuple[float, float, float, int]:
    """(seconds to converge, seconds from the call until the first poll round that all
    answered started and ended, rounds polled); nan when none did within WAIT_MAX.

    The rounds run in a thread alongside the change, from the moment the node is
    cut off the LAN (the change's second progress message), so the figure is the
    mesh's outage as a client sees it, not the change's own time.
    """
    cut = threading.Event()
    said: list[str] = []
    result: dict[str, float] = {}

    def progress(message: str) -> None:
        said.append(message)
        if len(said) == 2:      # the first step ("cutting … off the LAN") is done
            cut.set()

    def poll() -> None:
        cut.wait(WAIT_MAX)
        rounds = 0
        while time.monotonic() - t0 < WAIT_MAX:
            rounds += 1
            began = time.monotonic() - t0
            if mesh_answers(store, lab, service, port, ready):
                result.update(began=began, answered=time.monotonic() - t0, rounds=rounds)
                return
        result.update(began=float("nan"), answered=float("nan"), rounds=rounds)

    st = store.load(lab)
    ready = [n.name for n in st.model.nodes if n.name != node and n.state != "down"]
    t0 = time.monotonic()
    poller = threading.Thread(target=poll)
    poller.start()
    converge.node(lab, node, "down", store, progress)
    converged = time.monotonic() - t0
    cut.set()
    poller.join()
    return converged, result["began"], result["answered"], int(result["rounds"])


def bench(store: StateStore, lab, backend: str, service: str, port: int, low: int,
          high: int) -> list[str]:
    lifecycle.up(lab, "(bench)", store, backend)
    try:
        up_wall, up_log = timed_scale(store, lab.name, service, high)
        down_wall, down_log = timed_scale(store, lab.name, service, low)
        conv, began, answered, rounds = timed_node_down(store, lab.name, "node2", service,
                                                        port)
        t0 = time.monotonic()
        converge.node(lab.name, "node2", "up", store)
        back = time.monotonic() - t0
    finally:
        lifecycle.down(lab.name, store)
    return [f"    scale {service} {low}→{high}: {up_wall:6.2f} s to the last node converged "
            f"(change log {up_log:.2f} s)",
            f"    scale {service} {high}→{low}: {down_wall:6.2f} s (change log {down_log:.2f} s)",
            f"    node node2 down: converged in {conv:.2f} s; the mesh answers again on every "
            f"live node: the first round all answered ran {began:.2f} → {answered:.2f} s "
            f"after the call ({rounds} poll round(s))",
            f"    node node2 up:   {back:.2f} s (no task moves back)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iptables", choices=xtables.CHOICES, default=None)
    args = parser.parse_args()
    backend = xtables.choose(args.iptables)
    # One apply holds a netlink socket (and its event loop's descriptors) per namespace
    # it touches: the generated lab needs more than the usual soft limit of 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    raised = max(hard, 65536)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, raised))   # root may raise both
    except (ValueError, OSError):
        raised = hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    where = "in netlab vm" if os.environ.get("NETLAB_IN_VM") else "natively"
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    tag = secrets.token_hex(2)
    print(f"netlab bench scale/node: kernel {platform.release()}, {where}, iptables {backend}, "
          f"open files limit raised from {soft} to {raised}")
    seed = load_lab(REPO / "scenarios" / "hello-a.yaml", name_override=f"ss{tag}")
    print("  seed (hello-a, 2 nodes):")
    print("\n".join(bench(store, seed, backend, "hello-a", 5000, 2, 10)))
    big = generated_lab(f"sb{tag}")
    print("  generated (16 nodes, 10 services, 200 tasks):")
    print("\n".join(bench(store, big, backend, "svc1", 8000, 20, 40)))
    print("  a real Swarm doing the same: bench/bench_real_swarm.py")


if __name__ == "__main__":
    main()
