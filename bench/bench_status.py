"""Benchmark: ``status`` (the full drift check) on the seed lab and the 16-node, 200-task lab.

Brings each lab up as bench_up_down does, then prints, from one run, the
wall time of reading the kernel back and comparing it with the plan (the
part of ``status`` that touches the kernel), split into the read and the
pure comparison, with the number of namespaces read and of drift items
(0 expected right after up). Run it as root on a kernel with IPVS, or in
the VM, alone:

    flock /tmp/netlab-vm.lock netlab vm -- .venv/bin/python bench/bench_status.py
"""

from __future__ import annotations

import os
import platform
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_up_down import REPO, generated_lab   # noqa: E402  (the same generated lab)

from netlab import lifecycle                     # noqa: E402
from netlab.diff.compare import plan_drift       # noqa: E402
from netlab.kernel import xtables                # noqa: E402
from netlab.kernel import netns                  # noqa: E402
from netlab.kernel.iptables import SaveRead      # noqa: E402
from netlab.kernel.observe import read_netns, read_view   # noqa: E402
from netlab.scenario import load_lab             # noqa: E402
from netlab.state import StateStore              # noqa: E402


def measure(lab, store: StateStore, backend: str) -> dict[str, float]:
    result = lifecycle.up(lab, "(generated)", store, backend)
    try:
        t0 = time.monotonic()
        view = read_view(result.plan, backend)
        t1 = time.monotonic()
        found = plan_drift(result.plan, view)
        t2 = time.monotonic()
        # The read, part by part, one after the other (in read_view they overlap).
        present = [ns for ns in result.plan.netns if ns.name in view.seen]
        SaveRead({ns.name: netns.path(ns.name) for ns in present}, backend).result()
        t3 = time.monotonic()
        for ns in present:
            items = result.plan.items_in(ns.name)
            read_netns(ns.name, [s.key for s in items.sysctls],
                       bool(items.ipvs) or ns.role == "sandbox")
        t4 = time.monotonic()
    finally:
        lifecycle.down(lab.name, store)
    for d in found[:5]:
        print(f"    unexpected drift: {d.target or d.netns} {d.kind}: {d.detail}")
    return {"read_s": t1 - t0, "compare_s": t2 - t1, "netns": len(view.seen),
            "save_s": t3 - t2, "netlink_s": t4 - t3,
            "drift": len(found), "rules": len(result.plan.rules)}


def main() -> None:
    backend = xtables.choose(None)
    where = "in netlab vm (emulated)" if os.environ.get("NETLAB_IN_VM") else "natively"
    store = StateStore(Path(tempfile.mkdtemp(prefix="netlab-bench-")))
    tag = secrets.token_hex(2)
    seed = load_lab(REPO / "scenarios" / "hello-a.yaml", name_override=f"ss{tag}")
    big = generated_lab(f"sb{tag}")
    print(f"netlab bench status: kernel {platform.release()}, {where}, iptables {backend}, "
          f"{os.cpu_count()} CPUs")
    rows = {"seed (2 nodes, 2 tasks)": measure(seed, store, backend),
            "generated (16 nodes, 200 tasks)": measure(big, store, backend)}
    for label, r in rows.items():
        print(f"  {label:<34} drift check {r['read_s'] + r['compare_s']:6.2f} s "
              f"(read {r['read_s']:6.2f} s, compare {r['compare_s']:5.2f} s)  "
              f"{r['netns']:>4} netns read  {r['rules']:>5} planned rules  {r['drift']} drift")
        print(f"  {'':<34} alone: iptables-save of every netns {r['save_s']:6.2f} s, "
              f"netlink+sysctl+IPVS threads {r['netlink_s']:6.2f} s")
    b = rows["generated (16 nodes, 200 tasks)"]
    print(f"  per namespace (generated): {1000 * (b['read_s'] + b['compare_s']) / b['netns']:.1f} ms")


if __name__ == "__main__":
    main()
