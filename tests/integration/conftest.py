"""Fixtures for integration tests: root, a real kernel with IPVS (the VM here).

Each test makes its own uniquely named lab and always tears it down. The
kernel is observed with the standard tools (the machine's own
``iptables-save``, which is iptables-nft in netlab vm as on Debian 12;
``iptables-legacy-save`` for a lab brought up with ``--iptables legacy``;
ipvsadm, ip, bridge), independent of netlab's own code.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from netlab.plan import names
from tests.harness.dockerd import RealSwarm
from tests.integration import forked

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
#: The save command of each backend, as a user types it: the machine's default
#: ``iptables-save`` for labs brought up with the default (auto) backend.
SAVE = {"auto": "iptables-save", "legacy": "iptables-legacy-save", "nft": "iptables-nft-save"}


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.integration)
    # The tests on the shared real Swarm run last, together: its dockerd owns the
    # guest's default Docker paths (/var/run/docker.sock), which the one-node
    # Swarm and Engine of other modules use too, and it stops only when the
    # session ends. Their order among themselves is kept.
    shared = [item for item in items if "real_swarm" in getattr(item, "fixturenames", ())]
    items[:] = [item for item in items if item not in shared] + shared


@pytest.fixture(scope="session", autouse=True)
def _needs_root_and_ipvs():
    """These tests are never skipped: without root or IPVS they fail, loudly."""
    assert os.geteuid() == 0, "integration tests need root (scripts/test.sh runs them in netlab vm)"
    assert Path("/proc/net/ip_vs").exists() or subprocess.run(
        ["modprobe", "ip_vs"], capture_output=True).returncode == 0, \
        "integration tests need IPVS: run them through scripts/test.sh (it uses netlab vm)"


#: Where each test's figures are kept until the summary (see :func:`figure`).
FIGURES = pytest.StashKey[list]()


@pytest.fixture
def figure(request):
    """``figure("20 up/down cycles", "3.1 s each")``: a measured figure of the test,
    printed in the run's summary (and at once, for ``-s``)."""
    kept = request.config.stash.setdefault(FIGURES, [])

    def record(what: str, value: str) -> None:
        kept.append(f"{request.node.name}: {what}: {value}")
        print(f"figure: {what}: {value}")

    return record


def pytest_terminal_summary(terminalreporter, config):
    kept = config.stash.get(FIGURES, [])
    if kept:
        terminalreporter.section("figures")
        for line in kept:
            terminalreporter.write_line(line)


def netlab(*args: str, check: bool = True, timeout: float = 600,
           process: bool = False) -> subprocess.CompletedProcess:
    """Run the netlab CLI as a user would.

    By default the command runs in this process through Click's CliRunner:
    same parsing, output and exit codes, without paying a Python start-up per
    command (seconds each under plain emulation in ``netlab vm``, where the
    filesystem is 9p). ``process=True`` runs it in a real process of its own,
    as ``netlab exec`` needs (it replaces its process with the command): a fork
    of this one running the same CLI, so no Python start-up is paid either.
    """
    if process:
        proc = forked.netlab(list(args), timeout)
    else:
        from click.testing import CliRunner

        from netlab.cli.main import cli
        result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
        proc = subprocess.CompletedProcess(list(args), result.exit_code,
                                           result.stdout, result.stderr)
    if check and proc.returncode != 0:
        raise AssertionError(f"netlab {' '.join(args)} exited {proc.returncode}\n"
                             f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def sh(netns: str, *cmd: str) -> str:
    """Run a standard tool inside a namespace and return its stdout."""
    return subprocess.run(["ip", "netns", "exec", netns, *cmd], capture_output=True,
                          text=True, check=True, timeout=60).stdout


def lab_netns(lab: str) -> list[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    return sorted(line.split()[0] for line in out.splitlines()
                  if line.split() and line.split()[0].startswith(names.lab_prefix(lab)))


@dataclass
class RunningLab:
    name: str
    scenario: Path
    up_output: str
    iptables: str = "auto"

    @property
    def save(self) -> str:
        """The iptables-save command that shows this lab's rules."""
        return SAVE[self.iptables]

    def netns(self, target: str) -> str:
        """The kernel name of a target's namespace, from the lab's state file."""
        from netlab.state import StateStore
        return StateStore().load(self.name).targets[target]

    def curl(self, target: str, count: int) -> list[dict]:
        return json.loads(netlab("curl", self.name, target, "--count", str(count), "--json").stdout)

    def status(self) -> dict:
        return json.loads(netlab("status", self.name, "--json").stdout)


#: The time scale of the labs tests bring up unless they ask for another: the
#: manager ten times slower than Swarm's (a node down 135 s or more after its
#: last heartbeat), so that a test cutting a link by hand for other reasons sees
#: the lab as it left it. Tests of the manager pass a short one.
TEST_TIME_SCALE = "10"


def _bring_up(scenario: str, iptables: str = "auto", time_scale: str = TEST_TIME_SCALE):
    name = "t" + secrets.token_hex(3)
    path = SCENARIOS / scenario
    try:
        out = netlab("up", str(path), "--name", name, "--iptables", iptables,
                     "--time-scale", time_scale)
    except BaseException:
        netlab("down", name, check=False)
        raise
    return RunningLab(name, path, out.stdout, iptables)


def _tear_down(lab: RunningLab) -> None:
    netlab("down", lab.name, check=False)
    assert lab_netns(lab.name) == [], f"down left namespaces of {lab.name} behind"


@pytest.fixture(scope="module")
def seed_lab():
    """The seed scenario, up once for a module's read-only checks, then torn down."""
    lab = _bring_up("hello-a.yaml")
    yield lab
    _tear_down(lab)


@pytest.fixture(scope="module")
def legacy_seed_lab():
    """The seed scenario with its rules in the legacy backend (``--iptables legacy``)."""
    lab = _bring_up("hello-a.yaml", "legacy")
    yield lab
    _tear_down(lab)


@pytest.fixture(params=["auto", "legacy"])
def any_seed_lab(request):
    """The seed lab of each backend: the machine's default (nft here), then legacy."""
    return request.getfixturevalue("seed_lab" if request.param == "auto" else "legacy_seed_lab")


@pytest.fixture
def copied_lab(tmp_path):
    """``copied_lab("hello-a.yaml")`` copies a scenario into a scratch folder and brings
    it up under a unique name; ``lab.scenario`` is the copy, for a test to edit or
    delete. Torn down afterwards, leaving no namespace."""
    made: list[RunningLab] = []

    def make(scenario: str, time_scale: str = TEST_TIME_SCALE) -> RunningLab:
        copy = tmp_path / scenario
        shutil.copy(SCENARIOS / scenario, copy)
        made.append(_bring_up(str(copy), time_scale=time_scale))
        return made[-1]

    yield make
    for lab in made:
        _tear_down(lab)


@pytest.fixture
def lab_up():
    """``lab_up("three-nodes.yaml")`` brings a uniquely named lab up for one test."""
    made: list[RunningLab] = []

    def make(scenario: str, time_scale: str = TEST_TIME_SCALE) -> RunningLab:
        made.append(_bring_up(scenario, time_scale=time_scale))
        return made[-1]

    yield make
    for lab in made:
        _tear_down(lab)


@pytest.fixture(scope="session")
def real_swarm():
    """One real two-node Swarm running the seed (``docker service create --name hello-a
    --replicas 2 -p 5000:3000``), started once and shared by every test that needs
    one (they only read it, or restore what they change). When the session ends it is
    stopped and nothing of it is left: no daemon, no mounted Docker namespace, no
    second node's namespace, no veth or bridge."""
    real = RealSwarm(nodes=2).start()
    pids = [p.pid for node in real.nodes for p in node.procs]
    try:
        real.seed()
        yield real
    finally:
        real.stop()
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or \
            Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z", f"pid {pid} still runs"
    netns_dir = Path("/var/run/docker/netns")
    assert not netns_dir.is_dir() or not any(
        os.path.ismount(p) for p in netns_dir.iterdir()), "a Docker namespace is still mounted"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert "rs-node2" not in listed, listed
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert "rs-lan" not in links and "docker_gwbridge" not in links, links


def wait_for(what: str, check, timeout: float = 120.0, every: float = 0.2):
    """Poll ``check()`` until it returns something true (returned), or fail naming
    ``what`` after ``timeout`` s (generous: Python is slow under emulation)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not after {timeout:g} s")
        time.sleep(every)


def lab_events(lab: str) -> list:
    """The lab's event log (netlab.manager.events), read from the store."""
    from netlab.manager.events import parse_lines
    from netlab.state import StateStore
    return parse_lines(StateStore().read_file(lab, f"{lab}.events") or b"")


def restarted(lab: str, node: str) -> bool:
    """Whether the manager has restarted ``node``'s tasks (a task ``running`` event
    after the node's ``restarting-tasks``); an ``error`` event fails at once."""
    evs = lab_events(lab)
    errors = [e.message for e in evs if e.action == "error"]
    assert not errors, errors
    idx = next((i for i, e in enumerate(evs) if (e.subject, e.action) == (node, "restarting-tasks")),
               None)
    return idx is not None and any(e.kind == "task" and e.action == "running" for e in evs[idx:])
