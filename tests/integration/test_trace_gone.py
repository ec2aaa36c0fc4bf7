"""``netlab trace`` to tasks that went away, on real labs (issue 8).

Each test breaks the seed lab the way a living swarm does (a destination
drained to weight 0, a destination left behind by a scale-down, a task's
namespace removed by hand, a node cut off the LAN or taken down by
``netlab node``) and checks the trace's cause against the kernel read back
with the standard tools (ipvsadm, ip), independent of netlab's code.
"""

from __future__ import annotations

import json
import subprocess

from netlab.plan import names
from tests.integration.conftest import netlab, restarted, sh, wait_for


def _trace(lab, target: str, repeat: int = 2) -> tuple[int, dict]:
    proc = netlab("trace", lab.name, target, "--repeat", str(repeat), "--timeout", "1", "--json",
                  check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _ipvs(lab, node: str) -> str:
    return sh(lab.netns(f"{node}/ingress_sbox"), "ipvsadm", "-Ln")


def test_a_weight_0_destination_is_skipped_and_noted_not_failed(lab_up):
    lab = lab_up("hello-a.yaml")
    sh(lab.netns("node2/ingress_sbox"), "ipvsadm", "-e", "-f", "256", "-r", "10.0.0.5:0", "-m",
       "-w", "0")
    assert any("10.0.0.5:0" in line and " 0 " in line for line in _ipvs(lab, "node2").splitlines())
    code, doc = _trace(lab, "node2:5000")
    assert code == 0 and doc["verdicts"] == ["delivered", "delivered"]
    assert doc["picks"] == ["hello-a.2", "hello-a.2"] and doc["causes"] == [None, None]
    for trace in doc["traces"]:
        ipvs = next(h for h in trace["hops"] if h["event"] == "ipvs")
        assert "skipped 10.0.0.5:0 (hello-a.1 on node1)" in ipvs["detail"]
        assert "ipvs-table" in ipvs["evidence"] and trace["notes"]


def test_a_destination_left_after_a_scale_down_names_the_task_when_and_why(lab_up):
    lab = lab_up("hello-a.yaml")
    netlab("scale", lab.name, "hello-a=1")
    assert "10.0.0.6" not in _ipvs(lab, "node2")
    # The destination comes back (as moby/moby#33790's did): the task stays gone.
    sh(lab.netns("node2/ingress_sbox"), "ipvsadm", "-a", "-f", "256", "-r", "10.0.0.6:0", "-m",
       "-w", "1")
    code, doc = _trace(lab, "node2:5000")
    assert code == 1 and sorted(doc["verdicts"]) == ["delivered", "dropped"]
    dead = doc["traces"][doc["verdicts"].index("dropped")]
    cause = dead["cause"]
    assert (cause["kind"], cause["task"], cause["node"], cause["ip"]) == (
        "stale-backend", "hello-a.2", "node2", "10.0.0.6")
    assert (cause["sandbox"], cause["fwmark"], cause["weight"]) == ("node2/ingress_sbox", 256, 1)
    assert cause["ended_by"] == "scale hello-a=1" and cause["ended_at"].endswith("Z")
    assert "still lists 10.0.0.6:0 weight 1" in cause["summary"] and "netlab up" in cause["fix"]
    assert dead["backend"]["task"] == "hello-a.2" and dead["hops"][-1]["event"] == "drop"
    assert "hello-a.2" in doc["picks"] and "hello-a.1" in doc["picks"]
    # netlab up converges: the destination goes and every request is delivered.
    netlab("up", str(lab.scenario), "--name", lab.name)
    assert "10.0.0.6:0" not in _ipvs(lab, "node2")
    code, doc = _trace(lab, "node2:5000")
    assert code == 0 and doc["causes"] == [None, None]


def test_a_task_whose_namespace_then_its_link_were_removed_by_hand(lab_up):
    lab = lab_up("hello-a.yaml")
    task_ns, overlay = lab.netns("hello-a.1"), lab.netns("node1/ov-ingress")
    subprocess.run(["ip", "netns", "del", task_ns], check=True)
    assert task_ns not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                         text=True).stdout
    # Only the name went: the task's app holds its namespace, which still answers.
    code, doc = _trace(lab, "node2:5000")
    assert code == 0 and sorted(doc["picks"]) == ["hello-a.1", "hello-a.2"]
    for trace in doc["traces"]:
        assert trace["missing"] == ["hello-a.1"] and trace["cause"] is None
        assert any("no namespace is named for hello-a.1" in n for n in trace["notes"])
    # Its port on node1's br0 goes too: now the task is gone for good.
    sh(overlay, "ip", "link", "del", names.veth_for("10.0.0.5"))
    code, doc = _trace(lab, "node2:5000")
    assert code == 1 and sorted(doc["verdicts"]) == ["delivered", "dropped"]
    dead = doc["traces"][doc["verdicts"].index("dropped")]
    cause = dead["cause"]
    assert (cause["kind"], cause["task"], cause["node"]) == ("stale-backend", "hello-a.1", "node1")
    assert f"its namespace {task_ns} no longer exists" in cause["summary"]
    assert "10.0.0.5:0" in _ipvs(lab, "node2") and cause["weight"] == 1


def test_a_backend_on_a_node_cut_by_hand_says_the_vxlan_packet_went_nowhere(lab_up):
    lab = lab_up("hello-a.yaml")
    sh(lab.netns("node1"), "ip", "link", "set", "eth0", "down")
    assert "state DOWN" in sh(lab.netns("node1"), "ip", "link", "show", "eth0")
    code, doc = _trace(lab, "node2:5000")
    assert code == 1 and sorted(doc["verdicts"]) == ["delivered", "dropped"]
    cause = doc["traces"][doc["verdicts"].index("dropped")]["cause"]
    assert (cause["kind"], cause["node"], cause["ip"]) == ("node-cut", "node1", "192.168.56.11")
    assert "node1/eth0 DOWN" in cause["link"]
    assert "the VXLAN packet to 192.168.56.11 (node1) went nowhere" in cause["summary"]
    sh(lab.netns("node1"), "ip", "link", "set", "eth0", "up")
    code, doc = _trace(lab, "node2:5000")
    assert code == 0 and doc["causes"] == [None, None]


def test_a_request_to_a_node_netlab_took_down_names_it(lab_up):
    lab = lab_up("hello-a.yaml", time_scale="0.1")
    netlab("node", lab.name, "node2", "down")
    assert "state DOWN" in sh(lab.netns("lan"), "ip", "link", "show", "veth-node2")
    wait_for("the manager restarts node2's task", lambda: restarted(lab.name, "node2"))
    code, doc = _trace(lab, "node2:5000", repeat=1)
    assert code == 1 and doc["verdict"] == "dropped"
    assert (doc["cause"]["kind"], doc["cause"]["node"]) == ("node-down", "node2")
    assert "lan/veth-node2 DOWN" in doc["cause"]["link"]
    # The mesh on the live node answers from live tasks only: both now on node1.
    code, doc = _trace(lab, "node1:5000")
    assert code == 0 and {t["backend"]["node"] for t in doc["traces"]} == {"node1"}


def test_a_trace_in_the_window_before_anyone_notices_a_cut_names_it(lab_up):
    """At time scale 10 (NetworkDB holds a cut node failed after 50-60 s, the manager
    after 135-165 s), a trace right after ``netlab node … down`` still finds node2's
    task in node1's IPVS (read by ipvsadm) and names the cut and what comes next."""
    lab = lab_up("hello-a.yaml", time_scale="10")
    netlab("node", lab.name, "node2", "down")
    assert "state DOWN" in sh(lab.netns("lan"), "ip", "link", "show", "veth-node2")
    assert "10.0.0.6:0" in _ipvs(lab, "node1")          # nobody noticed yet
    code, doc = _trace(lab, "node1:5000")
    assert code == 1 and sorted(doc["verdicts"]) == ["delivered", "dropped"], doc["verdicts"]
    cause = doc["traces"][doc["verdicts"].index("dropped")]["cause"]
    assert (cause["kind"], cause["node"]) == ("node-cut", "node2")
    assert "lan/veth-node2 DOWN" in cause["link"]
    assert "not noticed yet" in cause["summary"] and "NetworkDB" in cause["summary"]
    assert cause["fix"].startswith("wait for the other nodes and the manager to notice")
