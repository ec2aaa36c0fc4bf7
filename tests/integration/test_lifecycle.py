"""``down`` leaves nothing, the root namespace is untouched, and a killed ``up`` is cleaned up."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

from netlab.plan import names
from tests.integration import forked
from tests.integration.conftest import SCENARIOS, lab_netns, netlab
from tests.integration.leftovers import STATE, root_snapshot


def supervisor_pid(lab: str) -> int | None:
    try:
        return json.loads((STATE / f"{lab}.json").read_text())["supervisor_pid"]
    except FileNotFoundError:
        return None


def test_down_leaves_nothing_and_root_namespace_is_unchanged():
    before = root_snapshot()
    name = "t" + secrets.token_hex(3)
    try:
        netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", name)
        pid = supervisor_pid(name)
        assert pid and Path(f"/proc/{pid}").exists()
        assert len(lab_netns(name)) == 10
    finally:
        netlab("down", name)
    assert lab_netns(name) == []
    assert not Path(f"/proc/{pid}").exists(), "the task apps' supervisor is still running"
    assert not (STATE / f"{name}.json").exists()
    assert not list(STATE.glob(f"{name}.*"))
    after = root_snapshot()
    for key in before:
        assert after[key] == before[key], f"root namespace {key} changed"


def test_down_after_up_killed_halfway_leaves_nothing():
    name = "t" + secrets.token_hex(3)
    # up in a process of its own (a fork of this one: no Python start-up to wait for)
    proc = forked.netlab_started(["up", str(SCENARIOS / "three-nodes.yaml"), "--name", name])
    try:
        deadline = time.monotonic() + 900
        while len(lab_netns(name)) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "up finished before it could be killed; kill earlier"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert lab_netns(name), "nothing to clean up: the test did not test anything"
    finally:
        down = netlab("down", name)
    assert "down" in down.stdout
    assert lab_netns(name) == []
    assert not (STATE / f"{name}.json").exists()


def test_down_without_state_file_uses_the_prefix():
    name = "t" + secrets.token_hex(3)
    netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", name)
    pid = supervisor_pid(name)
    (STATE / f"{name}.json").unlink()
    netlab("down", name)
    assert lab_netns(name) == []
    assert pid and not Path(f"/proc/{pid}").exists()


def test_an_empty_mount_point_left_by_a_killed_run_is_made_a_namespace_again():
    """A run killed between making /run/netns/NAME and bind-mounting the namespace
    onto it leaves an empty file: up makes the namespace again (it was read as
    existing, and entering it failed with EINVAL), and down removes such a file."""
    name = "t" + secrets.token_hex(3)
    task_ns = names.task_ns(name, "hello-a.1")
    netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", name)
    try:
        subprocess.run(["umount", f"/run/netns/{task_ns}"], check=True, timeout=30)
        assert os.path.getsize(f"/run/netns/{task_ns}") == 0      # a plain empty file now
        netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", name)
        links = subprocess.run(["ip", "-n", task_ns, "-br", "addr", "show", "eth0"],
                               capture_output=True, text=True, timeout=30, check=True).stdout
        assert links.split()[0].startswith("eth0") and "10.0.0." in links, links
        subprocess.run(["umount", f"/run/netns/{task_ns}"], check=True, timeout=30)
    finally:
        netlab("down", name)
    assert lab_netns(name) == [] and not os.path.lexists(f"/run/netns/{task_ns}")


def test_down_of_unknown_lab_exits_2():
    proc = netlab("down", "t" + secrets.token_hex(3), check=False)
    assert proc.returncode == 2 and "no lab named" in proc.stderr


def _ip_netns(*args: str) -> None:
    subprocess.run(["ip", "netns", *args], check=True, capture_output=True)


def test_labs_whose_names_once_collided_coexist(tmp_path):
    """Lab T with node a-node1 and lab T-a with node node1 were both nl-T-a-node1."""
    lab = "t" + secrets.token_hex(3)
    scenario = tmp_path / "s.yaml"
    scenario.write_text("nodes: {a-node1: {role: manager}, node2: {}}\n"
                        "services:\n  web: {deploy: {replicas: 2}, ports: [\"8080:80\"]}\n")
    try:
        netlab("up", str(scenario), "--name", lab)
        netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", f"{lab}-a")
        mine, theirs = lab_netns(lab), lab_netns(f"{lab}-a")
        assert len(mine) == len(theirs) == 10 and not set(mine) & set(theirs)
        netlab("down", lab)
        assert lab_netns(lab) == [] and lab_netns(f"{lab}-a") == theirs
        replies = json.loads(netlab("curl", f"{lab}-a", "node1:5000", "--count", "2",
                                    "--json").stdout)
        assert [r["ok"] for r in replies] == [True, True]
    finally:
        netlab("down", lab, check=False)
        netlab("down", f"{lab}-a", check=False)
    assert lab_netns(f"{lab}-a") == []


def test_down_all_leaves_namespaces_it_cannot_prove_its_own():
    lab = "t" + secrets.token_hex(3)
    foreign = [names.node_ns(f"{lab}x", "node1"), f"nl-{lab}-old"]   # another lab; the old scheme
    try:
        for name in foreign:
            _ip_netns("add", name)
        netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", lab)
        out = netlab("down", "--all").stdout
        assert f"lab {lab} is down" in out and lab_netns(lab) == []
        [listed] = [line for line in out.splitlines() if line.startswith("left ")]
        assert all(name in listed for name in foreign) and f"netlab down {lab}x" in listed
        assert set(foreign) <= set(os.listdir("/var/run/netns"))
    finally:
        netlab("down", lab, check=False)
        for name in foreign:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_up_refuses_namespaces_of_its_name_that_no_state_claims():
    lab = "t" + secrets.token_hex(3)
    stray = names.node_ns(lab, "node1")
    _ip_netns("add", stray)
    try:
        proc = netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", lab, check=False)
        assert proc.returncode == 2 and f"netlab down {lab}" in proc.stderr
        assert lab_netns(lab) == [stray] and not (STATE / f"{lab}.json").exists()
        netlab("down", lab)
        assert lab_netns(lab) == []
    finally:
        subprocess.run(["ip", "netns", "delete", stray], capture_output=True)
