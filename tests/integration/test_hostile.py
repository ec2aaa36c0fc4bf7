"""Hostile input against labs that are really up: a stale state whose supervisor pid
another lab's supervisor now has, and options that must be refused before a
packet leaves. The kernel is read back with ps, ipvsadm and ip."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time

from netlab.state import StateStore
from tests.integration.conftest import SCENARIOS, lab_netns, netlab, sh


def _ps_args(pid: int) -> str:
    """The command line ``ps`` shows for ``pid`` ("" when there is none); ``-ww``: whole,
    not cut to the terminal's width (80 columns with no terminal)."""
    return subprocess.run(["ps", "-ww", "-p", str(pid), "-o", "args="], capture_output=True,
                          text=True).stdout.strip()


def _gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _ps_args(pid):
            return True
        time.sleep(0.2)
    return False


def test_a_stale_state_never_stops_another_labs_supervisor():
    a, b = "hh" + secrets.token_hex(3), "hh" + secrets.token_hex(3)
    store = StateStore()
    try:
        for lab in (a, b):
            netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", lab)
        pid_a, pid_b = store.load(a).supervisor_pid, store.load(b).supervisor_pid
        assert f"{b}.endpoints.json" in _ps_args(pid_b)
        # a's supervisor dies and its pid is "reused" by b's: a's state now records b's pid.
        os.kill(pid_a, signal.SIGTERM)
        assert _gone(pid_a)
        stale = store.load(a)
        stale.supervisor_pid = pid_b
        store.save(stale)

        assert not _supervisor_running(a) and _supervisor_running(b)
        netlab("down", a)
        assert lab_netns(a) == []
        assert f"{b}.endpoints.json" in _ps_args(pid_b), "down of a stopped b's supervisor"
        replies = [r for r in _answers(b) if r["ok"]]
        assert len(replies) == 4, "b's task apps stopped answering after down of a"
    finally:
        netlab("down", a, check=False)
        netlab("down", b, check=False)
    assert lab_netns(a) == [] and lab_netns(b) == []
    assert _gone(pid_b)


def _supervisor_running(lab: str) -> bool:
    return json.loads(netlab("status", lab, "--json", check=False).stdout)["supervisor"]["running"]


def _answers(lab: str) -> list[dict]:
    return json.loads(netlab("curl", lab, "node1:5000", "--count", "4", "--json").stdout)


def test_hostile_options_on_a_live_lab_send_nothing():
    lab = "hh" + secrets.token_hex(3)
    try:
        netlab("up", str(SCENARIOS / "hello-a.yaml"), "--name", lab)
        sbox = StateStore().load(lab).targets["node1/ingress_sbox"]
        before = sh(sbox, "ipvsadm", "-Ln", "--stats")
        for args in (["curl", lab, "node1:5000", "--timeout", "nan"],
                     ["curl", lab, "node1:5000", "--timeout", "inf"],
                     ["curl", lab, "node1:5000", "-n", "١٠"],
                     ["trace", lab, "node1:5000", "--timeout", "-1"],
                     ["trace", lab, "node1:5000/"],
                     ["load", lab, "node1:5000", "-n", "1_000"],
                     ["load", lab, "node1:5000", "-c", "１０"],
                     ["curl", lab, "--from", "hello-a.1", "a..b:80"],
                     ["trace", lab, "--from", "hello-a.1", "a" * 64 + ":80"]):
            r = netlab(*args, check=False)
            assert r.returncode == 2, (args, r.stdout, r.stderr)
            assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert sh(sbox, "ipvsadm", "-Ln", "--stats") == before, "a refused request reached IPVS"
        assert _supervisor_running(lab) and len([r for r in _answers(lab) if r["ok"]]) == 4
    finally:
        netlab("down", lab, check=False)
    assert lab_netns(lab) == []
