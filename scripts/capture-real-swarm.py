"""Record a real Docker Swarm running the seed, for netlab's tests to compare against.

Inside `netlab vm` (dockerd rewrites the network of the machine it runs on),
this starts a real two-node Swarm (tests.harness.dockerd: Debian's Docker 20.10,
node1 in the guest's root namespace, node2 in a namespace of its own), runs
the seed (`docker service create --name hello-a --replicas 2 -p 5000:3000`),
and writes to OUT:

- ``api/``: what the Engine API answers node1 (the manager): version, info,
  nodes, networks (verbose inspect), services, tasks, containers (inspect);
  and node2's info and containers;
- ``netns/<name>/``: for node1's root namespace (``host``) and every
  namespace under /var/run/docker/netns: ``iptables-save`` (the machine's
  default backend), ``ip -d -j link``, ``ip -j addr``, ``ip -j route``,
  ``ip -j neigh``, ``bridge -j fdb``, ``ipvsadm -Sn``, and the sysctls netlab
  plans;
- ``answers.txt``: ten requests to 192.168.77.1:5000 from node1 itself.

    sudo bash scripts/docker-root.sh
    flock /tmp/netlab-vm.lock .venv/bin/netlab vm --rwdir tests/fixtures -- \\
        .venv/bin/python scripts/capture-real-swarm.py tests/fixtures/real-swarm
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.harness
from tests.harness.dockerd import RealSwarm  # noqa: E402

SYSCTLS = ("net.ipv4.ip_forward", "net.ipv4.vs.conntrack", "net.ipv4.vs.expire_nodest_conn",
           "net.ipv4.vs.expire_quiescent_template", "net.ipv4.vs.conn_reuse_mode",
           "net.ipv4.conf.all.rp_filter", "net.ipv4.conf.default.rp_filter",
           "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
           "net.ipv6.conf.all.disable_ipv6", "net.ipv6.conf.default.disable_ipv6")


def run(netns: str | None, *cmd: str) -> str:
    enter = [] if netns is None else ["nsenter", f"--net={netns}"]
    proc = subprocess.run([*enter, *cmd], capture_output=True, text=True, timeout=60)
    return proc.stdout if proc.returncode == 0 else f"# exit {proc.returncode}: {proc.stderr}"


def dump_netns(out: Path, name: str, path: str | None) -> None:
    d = out / "netns" / name
    d.mkdir(parents=True, exist_ok=True)
    (d / "iptables-save.txt").write_text(run(path, "iptables-save"))
    (d / "link.json").write_text(run(path, "ip", "-d", "-j", "link"))
    (d / "addr.json").write_text(run(path, "ip", "-j", "addr"))
    (d / "route.json").write_text(run(path, "ip", "-j", "route"))
    (d / "neigh.json").write_text(run(path, "ip", "-j", "neigh"))
    (d / "fdb.json").write_text(run(path, "bridge", "-j", "fdb"))
    (d / "ipvsadm.txt").write_text(run(path, "ipvsadm", "-Sn"))
    sysctls = {}
    for key in SYSCTLS:
        value = run(path, "sysctl", "-n", key)
        if not value.startswith("#"):
            sysctls[key] = value.strip()
    link_text = (d / "link.json").read_text()
    ifaces = json.loads(link_text or "[]") if link_text.startswith("[") else []
    for link in ifaces:
        for key in ("route_localnet", "rp_filter", "forwarding"):
            k = f"net.ipv4.conf.{link['ifname']}.{key}"
            value = run(path, "sysctl", "-n", k)
            if not value.startswith("#"):
                sysctls[k] = value.strip()
    (d / "sysctls.json").write_text(json.dumps(sysctls, indent=1, sort_keys=True) + "\n")


def dump_api(out: Path, swarm: RealSwarm) -> None:
    import docker
    d = out / "api"
    d.mkdir(parents=True, exist_ok=True)

    def save(name: str, value: object) -> None:
        (d / f"{name}.json").write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")

    api = docker.APIClient(base_url=swarm.manager.url)
    save("version", api.version())
    save("info", api.info())
    save("nodes", api.nodes())
    save("networks", [api.inspect_network(n["Id"], verbose=True) for n in api.networks()])
    save("services", api.services())
    save("tasks", api.tasks())
    save("containers", [api.inspect_container(c["Id"]) for c in api.containers(all=True)])
    for node in swarm.nodes[1:]:
        other = docker.APIClient(base_url=node.url)
        save(f"{node.name}-info", other.info())
        save(f"{node.name}-containers",
             [other.inspect_container(c["Id"]) for c in other.containers(all=True)])


def answers(url: str, n: int = 10) -> list[str]:
    out = []
    for _ in range(n):
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                out.append(reply.read().decode().strip())
        except OSError as err:
            out.append(f"error: {err}")
    return out


def main(out: Path) -> int:
    with RealSwarm(nodes=2) as swarm:
        swarm.seed()
        out.mkdir(parents=True, exist_ok=True)
        lines = answers("http://192.168.77.1:5000/")
        (out / "answers.txt").write_text("\n".join(lines) + "\n")
        print("\n".join(lines))
        dump_api(out, swarm)
        dump_netns(out, "host", None)
        netns_dir = Path("/var/run/docker/netns")
        for entry in sorted(netns_dir.iterdir()):
            dump_netns(out, entry.name, str(entry))
        print(f"recorded {len(list(netns_dir.iterdir()))} namespaces to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
