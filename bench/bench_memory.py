"""Benchmark: the workload supervisor's memory per task, for a lab of 100 and of 1,000 tasks.

Brings up a generated lab (16 nodes, 10 services, on the ingress network and,
with ``--networks``, on one user overlay network too, so every task also has
DNS records naming every task of its network) of each size, reads the
supervisor's resident memory (VmRSS of /proc/<pid>/status, see
netlab.kernel.procs) once it serves every task, and prints per-task memory
at each size, the marginal memory of the 900 added tasks, and the ratio.

The supervisor and the task namespaces work without IPVS, so on a kernel
without it run it natively with ``--native-without-ipvs`` (IPVS is not
programmed; nothing here sends traffic through the mesh):

    .venv/bin/python bench/bench_memory.py --native-without-ipvs
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import platform
import resource
import secrets
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_up_down import generated_lab, where_and_setup  # noqa: E402

from netlab import lifecycle  # noqa: E402
from netlab.kernel import procs, xtables  # noqa: E402
from netlab.model import IngressNetwork, Lab, OverlayNetwork, place_tasks  # noqa: E402
from netlab.state import StateStore  # noqa: E402

SIZES = (100, 1000)


def lab_of(name: str, tasks: int, networks: bool) -> Lab:
    """The generated lab with ``tasks`` tasks, its ingress subnet wide enough for them
    (and, with ``networks``, every service on the user network ``back`` as well)."""
    lab = generated_lab(name, tasks=tasks)
    lab = replace(lab, ingress=IngressNetwork(subnet=ipaddress.IPv4Network("10.0.0.0/21")))
    if networks:
        net = OverlayNetwork("back", ipaddress.IPv4Network("10.1.0.0/21"))
        services = tuple(replace(s, networks=("back",)) for s in lab.services)
        lab = replace(lab, networks=(net,), services=services,
                      tasks=place_tasks(lab.nodes, services))
    return lab


def measure(lab: Lab, store: StateStore, backend: str) -> dict[str, float]:
    """Up ``lab``, read the supervisor's RSS, down it."""
    t0 = time.monotonic()
    result = lifecycle.up(lab, "(generated)", store, backend)
    up_s = time.monotonic() - t0
    try:
        pid = result.supervisor_pid
        time.sleep(1.0)   # let the supervisor settle after its last reload
        rss = procs.rss_kib(pid)
        cpu = procs.cpu_times(pid).total
    finally:
        t1 = time.monotonic()
        lifecycle.down(lab.name, store)
        down_s = time.monotonic() - t1
    return {"tasks": len(lab.tasks), "rss_kib": rss, "up_s": up_s, "down_s": down_s,
            "cpu_s": cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native-without-ipvs", action="store_true")
    parser.add_argument("--networks", action="store_true",
                        help="every service also on a user overlay network (DNS records)")
    parser.add_argument("--iptables", choices=xtables.CHOICES, default=None)
    parser.add_argument("--sizes", type=int, nargs=2, default=SIZES, metavar="N",
                        help=f"the two lab sizes in tasks (default {SIZES[0]} {SIZES[1]})")
    args = parser.parse_args()
    where = where_and_setup(args.native_without_ipvs)
    backend = xtables.choose(args.iptables)
    # The supervisor inherits this limit: it holds 1-3 descriptors per task.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    tag = secrets.token_hex(2)
    what = "ingress and a user network (DNS records)" if args.networks else "ingress only"
    print(f"netlab bench supervisor memory: kernel {platform.release()}, {where}, "
          f"iptables {backend}, 16 nodes, 10 services, {what}")
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    rows = []
    for n in args.sizes:
        r = measure(lab_of(f"hm{tag}{n}", n, args.networks), store, backend)
        rows.append(r)
        print(f"  {n:>5} tasks: supervisor RSS {r['rss_kib'] / 1024:7.1f} MiB, "
              f"{r['rss_kib'] / n:6.1f} KiB per task (up {r['up_s']:.1f} s, down "
              f"{r['down_s']:.1f} s, supervisor CPU {r['cpu_s']:.2f} s)")
    small, big = rows
    marginal = (big["rss_kib"] - small["rss_kib"]) / (big["tasks"] - small["tasks"])
    print(f"  marginal: {marginal:.1f} KiB per added task "
          f"({small['tasks']} -> {big['tasks']} tasks)")
    print(f"  ratio RSS {big['tasks']}/{small['tasks']} tasks: "
          f"{big['rss_kib'] / small['rss_kib']:.2f}x for {big['tasks'] / small['tasks']:.0f}x "
          f"the tasks; per task {(big['rss_kib'] / big['tasks']) / (small['rss_kib'] / small['tasks']):.2f}x")
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
