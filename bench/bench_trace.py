"""Benchmark: how long ``netlab trace`` takes on the seed lab once it is up.

Brings the seed scenario up, sends one untraced request (the baseline: what
the request itself costs), then traces ``--runs`` requests to node2:5000 and
prints the median time per trace, the time per phase, and the ratio of a
trace to a bare request, all from this one run. Says where it ran: in
``netlab vm`` (emulated) or natively.

``--native-without-ipvs`` runs on a kernel without IPVS by leaving IPVS out
(said in the output): the request then ends refused in the ingress_sbox, so
the figure covers capture, counters, conntrack and correlation of a shorter
path; it is a lower bound, not the VM figure.

    netlab vm -- .venv/bin/python bench/bench_trace.py
    .venv/bin/python bench/bench_trace.py --native-without-ipvs
"""

from __future__ import annotations

import argparse
import platform
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_up_down import REPO, where_and_setup  # noqa: E402

from netlab import lifecycle  # noqa: E402
from netlab.kernel import xtables  # noqa: E402
from netlab.client import curl  # noqa: E402
from netlab.scenario import load_lab  # noqa: E402
from netlab.state import StateStore  # noqa: E402
from netlab.kernel.reader import LinuxReader  # noqa: E402
from netlab.trace.run import Tracer, parse  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--native-without-ipvs", action="store_true")
    parser.add_argument("--iptables", choices=xtables.CHOICES, default=None)
    args = parser.parse_args()
    where = where_and_setup(args.native_without_ipvs, ": requests end refused in ingress_sbox")
    backend = xtables.choose(args.iptables)
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    name = f"bt{secrets.token_hex(2)}"
    scenario = REPO / "scenarios" / "hello-a.yaml"
    lab = load_lab(scenario, name_override=name)
    result = lifecycle.up(lab, str(scenario), store, backend)
    try:
        state = store.load(name)
        reader = LinuxReader()
        target = parse(state, "node2:5000", "client", reader)
        t0 = time.perf_counter()
        curl(reader, state.targets["client"], target.node_ip, 5000, "node2:5000", count=1, timeout=2)
        bare = time.perf_counter() - t0
        tracer = Tracer(result.lab, result.allocations, result.plan, target, backend)
        t0 = time.perf_counter()
        tracer.once(2.0)                       # cold: imports (scapy, conntrack) happen once per process
        cold = time.perf_counter() - t0
        times, phases, verdicts, hops = [], [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            trace, _frames = tracer.once(2.0)
            times.append(time.perf_counter() - t0)
            phases.append(tracer.phases)
            verdicts.append(trace.verdict)
            hops.append(len(trace.hops))
    finally:
        lifecycle.down(name, store)
    med = statistics.median(times)
    print(f"netlab bench trace: kernel {platform.release()}, {where}, iptables {backend}")
    print(f"  seed lab, node2:5000, {args.runs} traces: median {med:.3f} s "
          f"(min {min(times):.3f}, max {max(times):.3f}); {statistics.median(hops):.0f} hops; "
          f"verdicts {sorted(set(verdicts))}")
    for phase in phases[0]:
        print(f"    {phase:<34} {statistics.median(p[phase] for p in phases):.3f} s")
    print(f"  first trace in a fresh process (imports scapy): {cold:.3f} s")
    print(f"  bare request (no trace): {bare:.3f} s; trace/bare ratio {med / bare:.1f}x; "
          f"goal 1.5 s natively: {med / 1.5:.2f} of it")


if __name__ == "__main__":
    main()
