"""A real Docker Swarm inside `netlab vm`: dockerd nodes for tests and benchmarks.

Debian's Docker 20.10 (docker.io, containerd, runc), unpacked by
``scripts/docker-root.sh`` into a private directory, runs here as one or more
Swarm nodes on the guest's one kernel, as netlab's own labs do:

- node1's dockerd runs in the guest's root network namespace, with Docker's
  default paths (``/var/run/docker.sock``, ``/var/run/docker/netns``), so it
  is seen exactly as on a user's machine;
- every further node runs in a network namespace of its own (``rs-<node>``,
  joined to node1 by a veth pair on 192.168.77.0/24), in a UTS namespace
  with its own hostname, with its own data root, exec root and socket.

dockerd rewrites the network namespace it runs in, so :class:`RealSwarm`
refuses to start outside `netlab vm` (``NETLAB_IN_VM=1``): the guest's
/etc, /var and root namespace are thrown away with the VM. Everything
started is ended by pid and every mount and link made is removed by
:meth:`RealSwarm.stop`.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DOCKER_ROOT = Path(os.environ.get("NETLAB_DOCKER_ROOT", "/var/lib/netlab/docker-root"))
SUBNET = "192.168.77"
IMAGE = "netlab/task:latest"


class DockerdError(RuntimeError):
    """dockerd or containerd did not start, or a docker command failed."""


def _sh(*cmd: str, check: bool = True, env: dict | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    if check and proc.returncode != 0:
        raise DockerdError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    return proc


@dataclass
class DockerNode:
    """One Swarm node: its containerd and dockerd, its paths and its address."""

    name: str
    index: int
    env: dict[str, str]
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def first(self) -> bool:
        return self.index == 1

    @property
    def addr(self) -> str:
        return f"{SUBNET}.{self.index}"

    @property
    def netns(self) -> str | None:
        """The network namespace name of a node after the first (None: the root one)."""
        return None if self.first else f"rs-{self.name}"

    @property
    def exec_root(self) -> Path:
        return Path("/var/run/docker") if self.first else Path(f"/var/run/docker-{self.name}")

    @property
    def data_root(self) -> Path:
        return Path("/var/lib/docker") if self.first else Path(f"/var/lib/docker-{self.name}")

    @property
    def run(self) -> Path:
        """Sockets, pid files and logs of this node."""
        return Path(f"/run/netlab-swarm/{self.name}")

    @property
    def sock(self) -> Path:
        return Path("/var/run/docker.sock") if self.first else self.run / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def docker(self, *args: str, check: bool = True, timeout: float = 300
               ) -> subprocess.CompletedProcess:
        """Run the docker CLI against this node."""
        return _sh("docker", "-H", self.url, *args, check=check, env=self.env, timeout=timeout)

    def log(self) -> str:
        try:
            return (self.run / "dockerd.log").read_text()[-3000:]
        except OSError:
            return ""


class RealSwarm:
    """Start, form and stop a real Swarm of ``nodes`` dockerd nodes (node1 manages)."""

    def __init__(self, nodes: int = 1, docker_root: Path = DOCKER_ROOT, *, swarm: bool = True,
                 networking: bool = True) -> None:
        """``swarm=False``: the daemons only, no Swarm formed (an Engine that runs
        containers, as for ``up --tasks containers``); ``networking=False``: dockerd
        with ``--iptables=false --ip-masq=false --bridge=none``, so it writes no
        rule and makes no bridge (one node only)."""
        if os.environ.get("NETLAB_IN_VM") != "1":
            raise DockerdError("a real dockerd rewrites its machine's network: "
                               "run this inside `netlab vm` only")
        if not (docker_root / "usr/sbin/dockerd").exists():
            raise DockerdError(f"no dockerd under {docker_root}: run scripts/docker-root.sh")
        if not networking and nodes != 1:
            raise DockerdError("networking=False is for one node: nodes reach each other "
                               "through Docker's own networking")
        self.root = docker_root
        self.swarm, self.networking = swarm, networking
        path = (f"{docker_root}/usr/bin:{docker_root}/usr/sbin:{docker_root}/sbin:"
                + os.environ.get("PATH", "/usr/bin:/bin"))
        self.nodes = [DockerNode(f"node{i}", i, {**os.environ, "PATH": path})
                      for i in range(1, nodes + 1)]
        self.mounts: list[str] = []
        self.links: list[str] = []
        self.netns: list[str] = []
        self.saved_rules: str | None = None     # the guest root namespace's rules before dockerd
        self.saved_forward: str | None = None   # and its net.ipv4.ip_forward

    @property
    def manager(self) -> DockerNode:
        return self.nodes[0]

    # -- start ---------------------------------------------------------------

    def start(self) -> RealSwarm:
        """Start every node's daemons, form the Swarm and load the task image on each.

        Raises DockerdError (with dockerd's log) when a daemon does not answer.
        """
        try:
            self.saved_rules = _sh("iptables-save", check=False).stdout
            self.saved_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
            self._prepare_guest()
            for node in self.nodes:
                if self.networking:
                    self._network(node)
                self._start_daemons(node)
            for node in self.nodes:
                self._wait(node)
            if self.swarm:
                self._form()
            for node in self.nodes:
                _sh("bash", str(Path(__file__).resolve().parents[2] / "scripts/task-image.sh"),
                    env={**node.env, "DOCKER_HOST": node.url})
        except BaseException:
            self.stop()
            raise
        return self

    def _prepare_guest(self) -> None:
        # dockerd runs `apparmor_parser --version` and parses its first line of
        # output; without /etc/apparmor/parser.conf that line is a warning.
        # Its configuration names the policy features under /usr/share, which
        # the guest sees read-only from the host: point it into the unpacked tree.
        conf = self.root / "etc/apparmor/parser.conf"
        if conf.exists() and not Path("/etc/apparmor/parser.conf").exists():
            Path("/etc/apparmor").mkdir(exist_ok=True)
            text = conf.read_text().replace(
                "policy-features=/usr/share/", f"policy-features={self.root}/usr/share/")
            Path("/etc/apparmor/parser.conf").write_text(text)
        if (Path("/sys/kernel/security").is_dir() and not os.path.ismount("/sys/kernel/security")
                and _sh("mount", "-t", "securityfs", "securityfs", "/sys/kernel/security",
                        check=False).returncode == 0):
            self.mounts.append("/sys/kernel/security")
        _sh("hostname", "node1")
        for node in self.nodes:
            for path in (node.data_root, Path("/etc/docker") if node.first else None):
                if path is None:
                    continue
                path.mkdir(parents=True, exist_ok=True)
                _sh("mount", "-t", "tmpfs", "tmpfs", str(path))
                self.mounts.append(str(path))
            node.run.mkdir(parents=True, exist_ok=True)

    def _network(self, node: DockerNode) -> None:
        """node1: a veth end (or dummy, alone) with 192.168.77.1; others: a namespace."""
        if node.first:
            if len(self.nodes) == 1:
                _sh("ip", "link", "add", "rs-lan", "type", "dummy")
                self.links.append("rs-lan")
            else:
                _sh("ip", "link", "add", "rs-lan", "type", "bridge")
                self.links.append("rs-lan")
            _sh("ip", "addr", "add", f"{node.addr}/24", "dev", "rs-lan")
            _sh("ip", "link", "set", "rs-lan", "up")
            return
        ns = node.netns
        assert ns is not None
        _sh("ip", "netns", "add", ns)
        self.netns.append(ns)
        _sh("ip", "link", "add", f"rs-{node.name}", "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        self.links.append(f"rs-{node.name}")
        _sh("ip", "link", "set", f"rs-{node.name}", "master", "rs-lan", "up")
        for cmd in (("addr", "add", f"{node.addr}/24", "dev", "eth0"),
                    ("link", "set", "eth0", "up"), ("link", "set", "lo", "up"),
                    ("route", "add", "default", "via", self.manager.addr)):
            _sh("ip", "-n", ns, *cmd)

    def _start_daemons(self, node: DockerNode) -> None:
        enter = [] if node.first else ["nsenter", f"--net=/var/run/netns/{node.netns}",
                                       "unshare", "--uts", "sh", "-c",
                                       f'hostname {node.name} && exec "$@"', "sh"]
        ctd = node.run / "containerd.sock"
        with open(node.run / "containerd.log", "w") as log:
            node.procs.append(subprocess.Popen(
                ["containerd", "--root", str(node.data_root / "containerd"),
                 "--state", str(node.run / "ctd"), "--address", str(ctd)],
                env=node.env, stdout=log, stderr=log))
        with open(node.run / "dockerd.log", "w") as log:
            node.procs.append(subprocess.Popen(
                [*enter, "dockerd", "--containerd", str(ctd), "-H", node.url,
                 "--data-root", str(node.data_root), "--exec-root", str(node.exec_root),
                 "--pidfile", str(node.run / "dockerd.pid"), "--storage-driver", "vfs",
                 *(() if self.networking else
                   ("--iptables=false", "--ip-masq=false", "--bridge=none"))],
                env=node.env, stdout=log, stderr=log))

    def _wait(self, node: DockerNode) -> None:
        t0 = time.monotonic()
        while node.docker("info", check=False, timeout=30).returncode != 0:
            if time.monotonic() - t0 > 180 or node.procs[-1].poll() is not None:
                raise DockerdError(f"dockerd of {node.name} did not answer:\n{node.log()}")
            time.sleep(0.5)

    def _form(self) -> None:
        self.manager.docker("swarm", "init", "--advertise-addr", self.manager.addr)
        token = self.manager.docker("swarm", "join-token", "-q", "worker").stdout.strip()
        for node in self.nodes[1:]:
            node.docker("swarm", "join", "--token", token, "--advertise-addr", node.addr,
                        f"{self.manager.addr}:2377")

    # -- the seed --------------------------------------------------------------

    def seed(self, replicas: int = 2, wait: float = 300) -> None:
        """``docker service create`` the seed (hello-a, -p 5000:3000) and wait for its
        tasks to run. Raises DockerdError with the tasks' states when they do not."""
        self.manager.docker(
            "service", "create", "--detach", "--no-resolve-image", "--name", "hello-a",
            "--replicas", str(replicas), "-p", "5000:3000", "--hostname", "{{.Task.Name}}",
            "--env", "NODE={{.Node.Hostname}}", IMAGE)
        self.wait_running("hello-a", replicas, wait)

    def wait_running(self, service: str, count: int, wait: float = 300) -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < wait:
            states = self.manager.docker("service", "ps", "--filter", "desired-state=running",
                                         "--format", "{{.CurrentState}}", service).stdout
            if sum(s.startswith("Running") for s in states.splitlines()) == count:
                return
            time.sleep(1)
        ps = self.manager.docker("service", "ps", "--no-trunc", "--format",
                                 "{{.Name}} {{.Node}} {{.CurrentState}} {{.Error}}", service,
                                 check=False)
        raise DockerdError(f"{service}: {count} tasks not running after {wait:.0f} s:\n"
                           f"{ps.stdout}{ps.stderr}\n{self.manager.log()}")

    # -- stop ------------------------------------------------------------------

    def stop(self) -> None:
        """Remove services and containers, leave the Swarm, end the daemons by pid,
        unmount and delete what :meth:`start` made. Never raises."""
        for node in reversed(self.nodes):
            if node.procs and node.procs[-1].poll() is None and node.sock.exists():
                if node.first and self.swarm:
                    node.docker("service", "rm", "hello-a", check=False, timeout=60)
                ids = node.docker("ps", "-aq", check=False, timeout=60).stdout.split()
                if ids:
                    node.docker("rm", "-f", *ids, check=False, timeout=120)
                if self.swarm:
                    node.docker("swarm", "leave", "--force", check=False, timeout=60)
            for proc in reversed(node.procs):
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            node.procs.clear()
        for ns in self.netns:
            _sh("ip", "netns", "del", ns, check=False)
        self._restore_root()
        for link in reversed(self.links):
            _sh("ip", "link", "del", link, check=False)
        for path in reversed(self.mounts):
            _sh("umount", "-l", path, check=False)
        for node in self.nodes:
            for netns_file in sorted((node.exec_root / "netns").glob("*")) \
                    if (node.exec_root / "netns").is_dir() else []:
                _sh("umount", "-l", str(netns_file), check=False)
        self.netns.clear()
        self.links.clear()
        self.mounts.clear()

    def _restore_root(self) -> None:
        """Put the guest's root namespace back as :meth:`start` found it: dockerd leaves
        its bridges (docker0, docker_gwbridge) and its iptables rules behind, and a next
        Swarm in the same VM then got docker_gwbridge on 172.19.0.0/16 (172.18 taken)
        beside a stale MASQUERADE of 172.18.0.0/16, which ``netlab swarm diff`` rightly
        reports; and net.ipv4.ip_forward. Never raises."""
        for link in ("docker_gwbridge", "docker0"):
            _sh("ip", "link", "del", link, check=False)
        if self.saved_rules is None:
            return
        for table in ("nat", "filter", "mangle"):
            _sh("iptables", "-t", table, "-F", check=False)
            _sh("iptables", "-t", table, "-X", check=False)
        _sh("iptables", "-P", "FORWARD", "ACCEPT", check=False)
        subprocess.run(["iptables-restore"], input=self.saved_rules, text=True,
                       capture_output=True, timeout=60, check=False)
        self.saved_rules = None
        if self.saved_forward is not None:     # dockerd sets FORWARD DROP only if it turns this on
            try:
                Path("/proc/sys/net/ipv4/ip_forward").write_text(self.saved_forward + "\n")
            except OSError:
                pass
            self.saved_forward = None

    def __enter__(self) -> RealSwarm:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
