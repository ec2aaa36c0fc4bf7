"""Benchmark: a 1,000-task lab at kernel speed (issue 17), against its targets.

Builds 32 nodes / 8 services / 1,000 tasks on an ingress /16, and a 100-task
lab of the same shape, and prints from one run, for each: ``up``, ``status``
(the same code as ``netlab status``, drift counted; then again with nothing
changed, where the nft save texts the first one kept are still good), scaling one service up
by one task and down by one, ``node down`` and ``node up`` of the last node,
and ``down``; then the cost per task at 1,000 over the cost at 100, and the
netlink requests and iptables commits of ``up``. Each figure is printed with
its target. Every lab it makes is removed (try/finally, by lab name).

Natively it programs everything but IPVS (a kernel without IPVS: the IPVS
calls, the ``-m ipvs`` rule and the vs sysctls are skipped, as
bench_up_down's ``--native-without-ipvs``; said in the output). Inside
``netlab vm`` it programs IPVS too:

    .venv/bin/python bench/bench_thousand.py
    flock /tmp/netlab-vm.lock .venv/bin/netlab vm --timeout 3600 -- .venv/bin/python bench/bench_thousand.py
"""

from __future__ import annotations

import argparse
import atexit
import ipaddress
import os
import platform
import resource
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_up_down import where_and_setup  # noqa: E402

from netlab import converge, lifecycle  # noqa: E402
from netlab.cli.status import Readers, status_of  # noqa: E402
from netlab.kernel import xtables  # noqa: E402
from netlab.model import IngressNetwork, Lab, Node, PublishedPort, Service, place_tasks  # noqa: E402
from netlab.state import StateStore  # noqa: E402

TARGETS = {"up_1000": 15.0, "down_1000": 2.0, "status_1000": 2.0, "change_1000": 0.5,
           "per_task_ratio": 1.2}


def lab_of(name: str, tasks: int, nodes: int = 32, services: int = 8) -> Lab:
    """``nodes`` nodes, ``services`` services sharing ``tasks`` replicas, ingress /16."""
    ns = tuple(Node(f"node{i + 1}", "manager" if i == 0 else "worker") for i in range(nodes))
    per, extra = divmod(tasks, services)
    svcs = tuple(Service(f"svc{i + 1}", per + (1 if i < extra else 0),
                         (PublishedPort(8000 + i, 80),)) for i in range(services))
    return Lab(name, ns, svcs, tasks=place_tasks(ns, svcs),
               ingress=IngressNetwork(subnet=ipaddress.IPv4Network("10.0.0.0/16")))


#: CPU seconds (this process and its children) of each step, by the step's wall time key.
CPU: dict[float, float] = {}


def _cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, object]:
    """Wall seconds of ``fn()`` and its result; its CPU seconds go to :data:`CPU`
    (a figure less hurt than wall time by other work sharing the machine; the
    task apps' supervisor, started apart, is not counted)."""
    c0, t0 = _cpu(), time.monotonic()
    out = fn()
    wall = time.monotonic() - t0
    CPU[wall] = _cpu() - c0
    return wall, out


def run(lab: Lab, store: StateStore, backend: str) -> dict[str, float]:
    """Every step on ``lab``; it is always torn down."""
    row: dict[str, float] = {}
    svc = lab.services[0]
    last = lab.nodes[-1].name
    try:
        row["up"], up = timed(lambda: lifecycle.up(lab, "(generated)", store, backend))
        row["netns"] = len(up.plan.netns)
        row["netlink"] = up.stats.netlink_requests
        row["commits"] = up.stats.iptables_commits
        row["status"], doc = timed(lambda: status_of(store.load(lab.name), Readers(), store))
        row["drift"] = len(doc["drift"])
        # Again, nothing changed: the save texts kept by the first are still good (nft).
        row["status_again"], _ = timed(lambda: status_of(store.load(lab.name), Readers(), store))
        row["scale_up"], _ = timed(lambda: converge.scale(lab.name, {svc.name: svc.replicas + 1},
                                                          store))
        row["scale_down"], _ = timed(lambda: converge.scale(lab.name, {svc.name: svc.replicas},
                                                            store))
        row["node_down"], _ = timed(lambda: converge.node(lab.name, last, "down", store))
        row["node_up"], _ = timed(lambda: converge.node(lab.name, last, "up", store))
        row["status_after"], doc = timed(lambda: status_of(store.load(lab.name), Readers(), store))
        row["drift_after"] = len(doc["drift"])
    finally:
        row["down"], _ = timed(lambda: lifecycle.down(lab.name, store))
    return row


def verdict(value: float, target: float) -> str:
    return f"(target <= {target:g}: {'met' if value <= target else 'NOT met'})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--iptables", choices=xtables.CHOICES, default=None)
    args = parser.parse_args()
    in_vm = bool(os.environ.get("NETLAB_IN_VM"))
    where = where_and_setup(not in_vm)
    if not in_vm:
        from netlab.kernel import ipvs
        ipvs.set_weights = lambda _ns, _fwmark, dests, _weight: len(dests)
        ipvs.set_weights_in = lambda _ns, services, _weight: sum(len(d) for _, d in services)
        ipvs.read = lambda _ns: []          # status: no IPVS table to read here
        ipvs.read_here = list
        from netlab.cli import common
        converge.build_plan = common.build_plan = lifecycle.build_plan   # the plan without IPVS
    backend = xtables.choose(args.iptables)
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    atexit.register(shutil.rmtree, store.root, True)   # its labs are down by then (run's finally)
    tag = secrets.token_hex(2)
    print(f"netlab bench thousand: kernel {platform.release()}, {where}, iptables {backend}")
    print(f"  load before: {os.getloadavg()[0]:.2f} (1-min average; other work may share the machine)")
    rows = {}
    for n in (args.small, args.tasks):
        rows[n] = run(lab_of(f"bt{tag}{n}", n), store, backend)
        r = rows[n]
        print(f"  32 nodes / 8 services / {n} tasks ({int(r['netns'])} netns):")
        cpu = {k: CPU.get(v, 0.0) for k, v in r.items()}
        print(f"    up {r['up']:7.2f} s, cpu {cpu['up']:.2f} s  ({int(r['netlink'])} netlink requests, "
              f"{int(r['commits'])} iptables commits)")
        print(f"    status {r['status']:6.2f} s, cpu {cpu['status']:.2f} s (drift {int(r['drift'])}), "
              f"again {r['status_again']:6.2f} s, cpu {cpu['status_again']:.2f} s, "
              f"after the changes {r['status_after']:6.2f} s (drift {int(r['drift_after'])})")
        print(f"    scale +1 {r['scale_up']:5.2f} s (cpu {cpu['scale_up']:.2f}), scale -1 "
              f"{r['scale_down']:5.2f} s (cpu {cpu['scale_down']:.2f}), node down {r['node_down']:5.2f} s "
              f"(cpu {cpu['node_down']:.2f}), node up {r['node_up']:5.2f} s")
        print(f"    down {r['down']:6.2f} s, cpu {cpu['down']:.2f} s")
    small, big = rows[args.small], rows[args.tasks]
    ratio = (big["up"] / args.tasks) / (small["up"] / args.small)
    print(f"  at {args.tasks} tasks:")
    print(f"    up {big['up']:.2f} s {verdict(big['up'], TARGETS['up_1000'])}")
    print(f"    down {big['down']:.2f} s {verdict(big['down'], TARGETS['down_1000'])}")
    print(f"    status {big['status']:.2f} s {verdict(big['status'], TARGETS['status_1000'])}, "
          f"again (rules kept, nft) {big['status_again']:.2f} s "
          f"{verdict(big['status_again'], TARGETS['status_1000'])}")
    for key in ("scale_up", "scale_down", "node_down"):
        print(f"    {key.replace('_', ' ')} {big[key]:.2f} s {verdict(big[key], TARGETS['change_1000'])}")
    print(f"    up per task {1000 * big['up'] / args.tasks:.1f} ms vs "
          f"{1000 * small['up'] / args.small:.1f} ms "
          f"at {args.small}: ratio {ratio:.2f} {verdict(ratio, TARGETS['per_task_ratio'])}")
    print(f"    netlink requests per task {big['netlink'] / args.tasks:.1f} "
          f"(at {args.small}: {small['netlink'] / args.small:.1f}); iptables commits per task "
          f"{big['commits'] / args.tasks:.2f} (at {args.small}: {small['commits'] / args.small:.2f})")
    print(f"  load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
