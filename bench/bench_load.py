"""Benchmark: ``netlab load`` through the routing mesh against the same load sent straight
to one task, and who is busy meanwhile.

Brings up the seed (scenarios/hello-a.yaml: 2 nodes, 2 replicas, -p 5000:3000)
and sends the same load (``--requests`` at ``--concurrency``, the engine of
``netlab load``), once with a new connection per request and once with
keep-alive connections:

- ``mesh``: from the client namespace to node1:5000 (node1's DOCKER-INGRESS
  DNAT, the ingress_sbox's mark, IPVS and SNAT, the overlay, VXLAN to node2
  for half the requests, the task's REDIRECT to 3000);
- ``direct``: from node1's ingress_sbox (a namespace on the ingress overlay,
  so it routes to the task without any change) to hello-a.1's overlay
  address and target port, 10.0.0.5:3000: one bridge between them, no NAT,
  no IPVS.

For each run it prints requests/s, and the CPU time (user+system from
/proc/<pid>/stat, see netlab.kernel.procs) used during the run by the
workload supervisor (the one process that plays every task app) and by the
load generator (this process), each divided by the run's wall time: a
figure near 1.0 is one CPU kept busy, i.e. that single-threaded process is
the bottleneck (the figure includes the kernel's work done in that process's
context: the packets a process sends are mostly carried through every
namespace of the path by its own system calls). Then the ratio mesh/direct
against the 0.6 target.

Needs IPVS, so run it alone, inside the VM, under the VM lock:

    flock /tmp/netlab-vm.lock .venv/bin/netlab vm --timeout 1800 -- \\
        .venv/bin/python bench/bench_load.py
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_up_down import REPO  # noqa: E402

from netlab import lifecycle  # noqa: E402
from netlab.kernel.reader import LinuxReader  # noqa: E402
from netlab.kernel import netns, procs, xtables  # noqa: E402
from netlab.load import engine, report, target  # noqa: E402
from netlab.scenario import load_lab  # noqa: E402
from netlab.state import StateStore  # noqa: E402

TARGET = 0.6
WARMUP = 50
BUSY = 0.9   # CPU/wall from which a single-threaded process is taken as the bottleneck


@dataclass(frozen=True)
class Run:
    """One load run: what it reached and who was busy."""

    path: str
    keepalive: bool
    requests: int
    ok: int
    seconds: float
    app: procs.CpuTimes    # CPU the supervisor used during the run
    load: procs.CpuTimes   # CPU the load generator (this process) used during the run

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def busy(self, cpu: procs.CpuTimes) -> float:
        """CPU seconds per wall second: 1.0 is one CPU kept busy."""
        return cpu.total / self.seconds if self.seconds else 0.0

    def per_request_ms(self, cpu: procs.CpuTimes) -> float:
        return 1000 * cpu.total / self.ok if self.ok else 0.0

    @property
    def bottleneck(self) -> str:
        """The single-threaded process that was (nearly) always on a CPU, if one was."""
        busy = {"load generator": self.busy(self.load), "app": self.busy(self.app)}
        name, most = max(busy.items(), key=lambda kv: kv[1])
        return name if most >= BUSY else (
            "neither (each waited: on the other, the network, or a CPU of a busy machine)")


def one_run(path: str, source_netns: str, dst: target.Destination, supervisor: int,
            requests: int, concurrency: int, keepalive: bool) -> Run:
    """Send the load from ``source_netns`` to ``dst``, measuring CPU around it."""
    spec = engine.LoadSpec(dst.ip, dst.port, dst.target, requests, concurrency, None, 5.0,
                           keepalive)
    warm = engine.LoadSpec(dst.ip, dst.port, dst.target, WARMUP, concurrency, None, 5.0,
                           keepalive)
    netns.in_thread(source_netns, lambda: engine.run(warm))
    me = os.getpid()
    app0, load0 = procs.cpu_times(supervisor), procs.cpu_times(me)
    outcomes, started, ended = netns.in_thread(source_netns, lambda: engine.run(spec))
    app, load = procs.cpu_times(supervisor) - app0, procs.cpu_times(me) - load0
    summary = report.summarize(outcomes, started, ended)
    if summary.failed:
        print(f"    ({path}: {summary.failed} failed: {summary.errors})")
    return Run(path, keepalive, summary.requests, summary.ok, ended - started, app, load)


def line(r: Run) -> str:
    def cpu(c: procs.CpuTimes) -> str:
        return (f"{r.busy(c):4.2f} (sys {c.system / r.seconds:4.2f}, "
                f"{r.per_request_ms(c):6.2f} ms/request)")
    return (f"    {r.path:<7} {r.rps:8.1f} requests/s ({r.ok}/{r.requests} ok in "
            f"{r.seconds:6.2f} s); CPU/wall: app (supervisor) {cpu(r.app)}, "
            f"load generator {cpu(r.load)}; bottleneck: {r.bottleneck}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", "-n", type=int, default=2000)
    parser.add_argument("--concurrency", "-c", type=int, default=10)
    parser.add_argument("--iptables", choices=xtables.CHOICES, default=None)
    args = parser.parse_args()
    backend = xtables.choose(args.iptables)
    where = "in netlab vm (emulated)" if os.environ.get("NETLAB_IN_VM") else "natively"
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    lab = load_lab(REPO / "scenarios" / "hello-a.yaml", name_override=f"hl{secrets.token_hex(2)}")
    print(f"netlab bench load: kernel {platform.release()}, {where}, {os.cpu_count()} CPUs, "
          f"iptables {backend}, {args.requests} requests at concurrency {args.concurrency} "
          f"(after {WARMUP} warm-up requests)")
    print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    lifecycle.up(lab, "(bench)", store, backend)
    try:
        state = store.load(lab.name)
        assert state.supervisor_pid is not None
        client = target.source(state, "client")
        mesh = target.destination(state, "node1:5000", client, LinuxReader())
        task = next(t for t in state.model.tasks if t.node == "node1")
        ip = str(state.allocations.tasks[task.name].ingress_ip)
        port = state.model.service(task.service).ports[0].target
        direct = target.Destination(f"{ip}:{port}", ip, port)
        sbox = state.targets["node1/ingress_sbox"]
        print(f"  mesh:   client -> {mesh.target} ({mesh.ip}:{mesh.port}), IPVS over "
              f"{len(state.model.tasks)} tasks")
        print(f"  direct: node1/ingress_sbox -> {task.name} at {ip}:{port}")
        ratios = {}
        for keepalive in (False, True):
            print(f"  {'keep-alive connections' if keepalive else 'a new connection each request'}:")
            runs = {}
            for path, src, dst in (("direct", sbox, direct), ("mesh", client.netns, mesh)):
                runs[path] = one_run(path, src, dst, state.supervisor_pid, args.requests,
                                     args.concurrency, keepalive)
                print(line(runs[path]))
            ratio = runs["mesh"].rps / runs["direct"].rps if runs["direct"].rps else 0.0
            ratios[keepalive] = ratio
            print(f"    ratio mesh/direct {ratio:.2f} (target >= {TARGET}: "
                  f"{'met' if ratio >= TARGET else 'NOT met'})")
    finally:
        lifecycle.down(lab.name, store)
    print(f"  load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"  summary: mesh/direct new connections {ratios[False]:.2f}, keep-alive "
          f"{ratios[True]:.2f} (target {TARGET})")


if __name__ == "__main__":
    main()
