"""Benchmark: how long ``netlab trace --docker`` takes on a real two-node Swarm.

Inside `netlab vm` only (dockerd rewrites the network of the machine it runs
on): starts a real Swarm (tests.harness.dockerd: Debian's Docker 20.10, node1 in
the guest's root namespace, node2 in a namespace of its own), runs the seed
(hello-a, 2 replicas, -p 5000:3000), and on node1 times, in this one process:
reading the Engine (snapshot), making the client namespace, reading Docker's
namespaces, ``--runs`` traced requests to 192.168.77.1:5000 (median per trace
and per phase, tasks picked), and removing the client namespace.

    flock /tmp/netlab-vm.lock .venv/bin/netlab vm -- .venv/bin/python bench/bench_trace_docker.py
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from netlab.docker.connect import connect
from netlab.docker.snapshot import read_snapshot
from netlab.docker.trace import (RealTracer, client_namespace, parse_target, plan_path,
                                 read_namespaces)
from netlab.kernel import xtables

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.harness
from tests.harness.dockerd import RealSwarm  # noqa: E402

TARGET = "192.168.77.1:5000"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    where = "in netlab vm (emulated)" if os.environ.get("NETLAB_IN_VM") else "natively"
    laps: dict[str, float] = {}
    times, phases, picks, hops = [], [], [], []
    examples = {}
    with RealSwarm(nodes=2) as swarm:
        swarm.seed(replicas=2)
        version = swarm.manager.docker("version", "--format", "{{.Server.Version}}").stdout.strip()
        backend = xtables.choose(None)
        target = parse_target(TARGET)
        t0 = time.perf_counter()
        snap = read_snapshot(connect(None))
        laps["read the Engine (snapshot)"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        with client_namespace() as client:
            laps["make the client namespace"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            path = plan_path(snap, client, target)
            tracer = RealTracer(snap, client, path, read_namespaces(path), target, backend,
                                "unix:///var/run/docker.sock")
            laps["read Docker's namespaces"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            tracer.once(2.0)                   # cold: imports (scapy, conntrack) once per process
            laps["first trace (imports scapy)"] = time.perf_counter() - t0
            for _ in range(args.runs):
                t0 = time.perf_counter()
                trace, _frames = tracer.once(2.0)
                times.append(time.perf_counter() - t0)
                phases.append(tracer.phases)
                picks.append(f"{trace.backend.task}@{trace.backend.node}" if trace.backend
                             else trace.verdict)
                hops.append(len(trace.hops))
                if trace.backend:
                    examples.setdefault(trace.backend.node, trace)
            t0 = time.perf_counter()
        laps["remove the client namespace"] = time.perf_counter() - t0
    med = statistics.median(times)
    print(f"netlab bench trace --docker: kernel {platform.release()}, {where}, Docker {version}, "
          f"iptables {backend}")
    print(f"  two-node Swarm, node1 {TARGET}, {args.runs} traces: median {med:.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}); median {statistics.median(hops):.0f} hops")
    print(f"  picks: {', '.join(picks)}")
    for phase in phases[0]:
        print(f"    {phase:<34} {statistics.median(p[phase] for p in phases):.3f} s")
    for what, secs in laps.items():
        print(f"  {what:<36} {secs:.3f} s")
    for node, trace in sorted(examples.items()):
        print(f"  a pick on {node}: {trace.backend.task}; the request's hops but rx/tx:")
        for h in trace.hops:
            if h.leg == "request" and h.event not in ("rx", "tx"):
                where = f"{h.iface} {h.dir}" if h.iface and h.dir else h.iface or ""
                print(f"    {h.seq:>2}  {h.netns:<18} {where:<15} {h.event:<9} {h.detail}")


if __name__ == "__main__":
    main()
