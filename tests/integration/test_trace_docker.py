"""``netlab trace --docker`` on a real two-node Swarm (Debian's Docker 20.10 in netlab vm,
tests.harness.dockerd): the seed's request to node1:5000 traced through Docker's own namespaces.

Rule texts are cross-checked with the machine's ``iptables-save`` and containers with
``docker ps``, independent of netlab's code; afterwards no client namespace or veth is left,
also when the trace is stopped by SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.integration import forked
from tests.integration.conftest import netlab

NODE1 = "192.168.77.1:5000"


def _requests(trace: dict) -> list[str]:
    return [h["event"] for h in trace["hops"] if h["leg"] == "request"
            and h["event"] not in ("rx", "tx")]


def _leftovers() -> tuple[list[str], list[str]]:
    ns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout
    return ([n.split()[0] for n in ns.splitlines() if n.startswith("nl-dtrace-")],
            [lk.split()[0] for lk in links.splitlines() if lk.startswith("nldt")])


@pytest.fixture(scope="module")
def swarm(real_swarm):
    """The session's shared two-node Swarm running the seed (conftest.real_swarm);
    the traces only read it."""
    return real_swarm


@pytest.fixture(scope="module")
def four(swarm):
    """Four requests to node1:5000 (one --repeat run): round robin over hello-a.1 and .2."""
    return json.loads(netlab("trace", "--docker", NODE1, "--repeat", "4", "--json").stdout)


def test_round_robin_over_both_nodes(four):
    assert four["verdicts"] == ["delivered"] * 4
    assert sorted(four["counts"].items()) == [("hello-a.1", 2), ("hello-a.2", 2)]
    assert {t["backend"]["node"] for t in four["traces"]} == {"node1", "node2"}


def test_local_task_same_hops_as_a_lab(swarm, four):
    root_rules = subprocess.run(["iptables-save"], capture_output=True, text=True,
                                check=True).stdout.splitlines()
    ps = swarm.manager.docker("ps", "--format",
                              '{{.ID}} {{.Label "com.docker.swarm.task.name"}}').stdout.split("\n")
    for trace in (t for t in four["traces"] if t["backend"]["node"] == "node1"):
        task = trace["backend"]["task"]
        assert _requests(trace) == ["dnat", "mark", "ipvs", "snat", "redirect", "deliver"]
        hop = {h["event"]: h for h in trace["hops"] if h["leg"] == "request"}
        assert hop["dnat"]["netns"] == "node1" and hop["dnat"]["rule"] in root_rules
        assert hop["dnat"]["rule"].endswith("-j DNAT --to-destination 172.18.0.2:5000")
        assert hop["mark"]["netns"] == hop["ipvs"]["netns"] == hop["snat"]["netns"] == \
            "node1/ingress_sbox"
        assert f"({task} on node1)" in hop["ipvs"]["detail"]
        assert hop["redirect"]["netns"] == hop["deliver"]["netns"] == task
        container = next(line.split()[0] for line in ps if line.split()[1:] and
                         line.split()[1].startswith(task + "."))
        assert hop["deliver"]["detail"].endswith(f"(container {container})")
        assert trace["reply"]["task"].startswith(task + ".")        # the app's own hostname
        assert trace["hops"][0]["netns"] == "client"


def test_remote_task_stops_at_vxlan_and_says_so(four):
    for trace in (t for t in four["traces"] if t["backend"]["node"] == "node2"):
        events = _requests(trace)
        assert events[:4] == ["dnat", "mark", "ipvs", "snat"] and "encap" in events
        assert "redirect" not in events and "deliver" not in events
        encap = next(h for h in trace["hops"] if h["event"] == "encap" and h["leg"] == "request")
        assert (f"sent over VXLAN to 192.168.77.2 (node2, where {trace['backend']['task']} "
                "runs), not observable here") in encap["detail"]


def test_nothing_left_after_the_traces(four):
    assert _leftovers() == ([], [])


def test_another_nodes_address_is_refused_and_changes_nothing(swarm):
    out = netlab("trace", "--docker", "192.168.77.2:5000", check=False)
    assert out.returncode == 2
    assert "192.168.77.2 is not an address of this node" in out.stderr
    assert _leftovers() == ([], [])


def test_sigterm_removes_the_client_namespace(swarm):
    # trace in a process of its own (a fork of this one: no Python start-up to wait for)
    proc = forked.netlab_started(["trace", "--docker", NODE1, "--repeat", "100"])
    try:
        deadline = time.monotonic() + 300
        while f"nl-dtrace-{proc.pid}" not in _leftovers()[0]:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate(10)
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert _leftovers() == ([], [])
