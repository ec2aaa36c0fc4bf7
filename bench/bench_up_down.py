"""Benchmark: ``up`` and ``down`` of the seed lab and of a generated 16-node, 200-task lab.

Prints, from one run, the wall time of up and down, the netlink requests and
iptables commits that up made, and ratios (large/seed). Run it as root on a
kernel with IPVS, or inside the VM:

    netlab vm -- .venv/bin/python bench/bench_up_down.py

``--native-without-ipvs`` measures on a kernel without IPVS by skipping only
the IPVS calls and the ``-m ipvs`` SNAT rule (said in the output): a lower
bound for the rest of the programming, never a substitute for the VM figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import secrets
import tempfile
import time
from pathlib import Path

from netlab import lifecycle
from netlab.kernel import xtables
from netlab.model import Lab, Node, PublishedPort, Service, place_tasks
from netlab.scenario import load_lab
from netlab.state import StateStore

REPO = Path(__file__).resolve().parents[1]


def generated_lab(name: str, nodes: int = 16, tasks: int = 200, services: int = 10) -> Lab:
    """``nodes`` nodes and ``services`` services sharing ``tasks`` replicas."""
    ns = tuple(Node(f"node{i + 1}", "manager" if i == 0 else "worker") for i in range(nodes))
    per = tasks // services
    svcs = tuple(Service(f"svc{i + 1}", per, (PublishedPort(8000 + i, 80),)) for i in range(services))
    return Lab(name, ns, svcs, tasks=place_tasks(ns, svcs))


def strip_ipvs() -> None:
    """For --native-without-ipvs: no IPVS calls, no -m ipvs rule, no vs.* sysctls, and
    no bridge-nf-call-iptables (netlab loads br_netfilter only in its VM)."""
    from netlab.kernel import apply as kernel_apply, features
    from netlab.plan import build

    features.require_lab_features = lambda _backend: None
    kernel_apply.ipvs.sync = lambda _ns, _wanted, _holds=None: 0
    original = build.build_plan

    def build_plan(lab, allocations=None, **kw):
        plan = original(lab, allocations, **kw)
        return dataclasses.replace(
            plan, ipvs=(),
            rules=tuple(r for r in plan.rules if not any(m.name == "ipvs" for m in r.matches)),
            sysctls=tuple(s for s in plan.sysctls
                          if ".vs." not in s.key and not s.key.startswith("net.bridge.")))

    lifecycle.build_plan = build_plan
    build.build_plan = build_plan     # status's plan (rebuilt from the state) is the same


def where_and_setup(native_without_ipvs: bool, consequence: str = "") -> str:
    """Where the benchmark runs, said in its output; strips IPVS for ``--native-without-ipvs``."""
    where = "in netlab vm (emulated)" if os.environ.get("NETLAB_IN_VM") else "natively"
    if native_without_ipvs:
        strip_ipvs()
        where += ", IPVS NOT programmed (--native-without-ipvs)" + consequence
    return where


def measure(lab: Lab, store: StateStore, backend: str) -> dict[str, float]:
    t0 = time.monotonic()
    result = lifecycle.up(lab, "(generated)", store, backend)
    t1 = time.monotonic()
    lifecycle.down(lab.name, store)
    t2 = time.monotonic()
    return {"up_s": t1 - t0, "apply_s": result.stats.seconds, "down_s": t2 - t1,
            "netns": len(result.plan.netns), "netlink": result.stats.netlink_requests,
            "commits": result.stats.iptables_commits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--native-without-ipvs", action="store_true")
    parser.add_argument("--iptables", choices=xtables.CHOICES, default=None)
    args = parser.parse_args()
    where = where_and_setup(args.native_without_ipvs)
    backend = xtables.choose(args.iptables)
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    tag = secrets.token_hex(2)
    seed = load_lab(REPO / "scenarios" / "hello-a.yaml", name_override=f"bs{tag}")
    big = generated_lab(f"bb{tag}")
    print(f"netlab bench up/down: kernel {platform.release()}, {where}, iptables {backend}")
    rows = {"seed (2 nodes, 2 tasks)": measure(seed, store, backend),
            "generated (16 nodes, 200 tasks)": measure(big, store, backend)}
    for label, r in rows.items():
        print(f"  {label:<34} up {r['up_s']:7.2f} s (apply {r['apply_s']:6.2f} s)  "
              f"down {r['down_s']:6.2f} s  {r['netns']:>4} netns  "
              f"{r['netlink']:>6} netlink requests  {r['commits']:>4} iptables commits")
    s, b = rows.values()
    print(f"  ratio generated/seed: up {b['up_s'] / s['up_s']:.1f}x, down {b['down_s'] / s['down_s']:.1f}x, "
          f"netns {b['netns'] / s['netns']:.1f}x, netlink {b['netlink'] / s['netlink']:.1f}x")
    print(f"  per namespace (generated): up {1000 * b['up_s'] / b['netns']:.1f} ms, "
          f"down {1000 * b['down_s'] / b['netns']:.1f} ms")


if __name__ == "__main__":
    main()
