"""Benchmark: how long a ``netlab`` command takes to start, against the 0.15 s target.

Prints, from one run, the median wall time of N runs each of ``netlab --help``,
``netlab --version`` and ``netlab exec LAB node1 -- true`` (each a fresh
process, as a user or a script runs them), the ratio of each to the target,
and the floors: ``python -c pass`` with the same interpreter, and ``ip netns exec
NS true``, which exec ends in. It also prints the
median CPU time of each, steadier than wall time on a machine shared with other work.

``exec`` needs a lab whose node1 namespace exists. By default the lab is the
seed's state file in a private store plus node1's namespace alone (``ip netns
add``): exec reads the state, checks the namespace and runs ``ip netns exec``,
which is all it does on a full lab too. ``--native-without-ipvs`` brings the
whole seed lab up instead, skipping only IPVS (see bench_up_down.py). Both
need root; everything made is named ``nl-bst<hex>`` and removed at the end.

    sudo .venv/bin/python bench/bench_startup.py --runs 21
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SEED = REPO / "scenarios" / "hello-a.yaml"
TARGET_S = 0.15


def medians(argv: list[str], runs: int, env: dict[str, str]) -> tuple[float, float]:
    """The median wall time and the median CPU time (user + system, of the process and
    its children) of ``runs`` runs of ``argv``; raises RuntimeError when one fails.

    CPU time is the steadier figure on a machine shared with other work: wall time
    also counts the waits for a core."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True, timeout=60)
        walls.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
    return statistics.median(walls), statistics.median(cpus)


def state_only_lab(store_dir: Path, lab_name: str) -> list[str]:
    """The seed's state file for ``lab_name`` in ``store_dir`` and node1's namespace; the
    namespaces made (to remove)."""
    from netlab import ipam, lifecycle
    from netlab.scenario import load_lab
    from netlab.state import StateStore

    lab = load_lab(SEED, name_override=lab_name)
    state = lifecycle.state_for(lab, ipam.allocate(lab), str(SEED))
    StateStore(store_dir).save(state)
    ns = state.targets["node1"]
    subprocess.run(["ip", "netns", "add", ns], check=True)
    return [ns]


def full_lab(store_dir: Path, lab_name: str) -> None:
    """The seed lab, brought up natively without IPVS (bench_up_down's helper)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_up_down import where_and_setup

    from netlab import lifecycle
    from netlab.kernel import xtables
    from netlab.scenario import load_lab
    from netlab.state import StateStore

    where_and_setup(True)
    lab = load_lab(SEED, name_override=lab_name)
    lifecycle.up(lab, str(SEED), StateStore(store_dir), xtables.choose(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command (median)")
    parser.add_argument("--native-without-ipvs", action="store_true",
                        help="exec into a whole seed lab brought up without IPVS")
    args = parser.parse_args()
    netlab = str(Path(sys.executable).parent / "netlab")
    if not os.path.exists(netlab):
        sys.exit(f"bench_startup: {netlab} is missing (hint: bash scripts/setup.sh)")
    if os.geteuid() != 0 or shutil.which("ip") is None:
        sys.exit("bench_startup: needs root and the ip command (exec enters a namespace)")
    store_dir = Path(tempfile.mkdtemp(prefix="netlab-bench-startup-"))
    store_dir.chmod(0o700)
    lab_name = f"bst{secrets.token_hex(2)}"
    env = {**os.environ, "NETLAB_STATE_DIR": str(store_dir)}
    made: list[str] = []
    try:
        if args.native_without_ipvs:
            full_lab(store_dir, lab_name)
            fixture = "the seed lab up natively, IPVS NOT programmed (--native-without-ipvs)"
        else:
            made = state_only_lab(store_dir, lab_name)
            fixture = "the seed's state file and node1's namespace only"
        rows = {
            "python -c pass (floor)": medians([sys.executable, "-c", "pass"], args.runs, env),
            "netlab --help": medians([netlab, "--help"], args.runs, env),
            "netlab --version": medians([netlab, "--version"], args.runs, env),
            "ip netns exec NS true (floor of exec)":
                medians(["ip", "netns", "exec", f"nl-{lab_name}.node1", "true"], args.runs, env),
            f"netlab exec {lab_name} node1 -- true":
                medians([netlab, "exec", lab_name, "node1", "--", "true"], args.runs, env),
        }
    finally:
        if args.native_without_ipvs:
            subprocess.run([netlab, "down", lab_name], env=env, stdout=subprocess.DEVNULL)
        for ns in made:
            subprocess.run(["ip", "netns", "delete", ns], check=False)
        shutil.rmtree(store_dir, ignore_errors=True)
    load = os.getloadavg()
    print(f"netlab bench startup: kernel {platform.release()}, "
          f"{'in netlab vm (emulated)' if os.environ.get('NETLAB_IN_VM') else 'natively'}, "
          f"exec into {fixture}; median of {args.runs} runs each; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"  {'command':<40} {'wall':>9} {'CPU':>9}   wall against the {TARGET_S} s target")
    for label, (wall, cpu) in rows.items():
        verdict = "" if "(floor" in label else (
            f"   {wall / TARGET_S:4.2f}x " + ("(met)" if wall <= TARGET_S else "(MISSED)")
            + f"; CPU {cpu / TARGET_S:4.2f}x")
        print(f"  {label:<40} {wall * 1000:6.1f} ms {cpu * 1000:6.1f} ms{verdict}")

if __name__ == "__main__":
    main()
