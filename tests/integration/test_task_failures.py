"""Tasks that fail and are restarted (issue 14), for real in netlab vm: a killed
task leaves every IPVS table at once and a new one, with a new address,
answers after the restart delay; a task with a health check gets no traffic
until it is healthy, and one that turns unhealthy is taken out and replaced;
a hung task without a health check stays in the load balancers, as on a Swarm.

Read back with ``ipvsadm`` in each node's ingress_sbox, with ``netlab curl``
(the replies name the task and its address), and with the event log.
"""

from __future__ import annotations

import json
import time

from tests.integration.conftest import lab_events, netlab, sh
from tests.integration.conftest import wait_for as _wait_for

SCALE = "0.1"       # restart delay 0.5 s

HEALTHY_SCENARIO = """\
name: health
nodes:
  node1: {role: manager}
  node2: {role: worker}
services:
  hello-a:
    deploy:
      replicas: 2
      restart_policy: {condition: any, delay: 5s}
    ports: ["5000:3000"]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:3000/health"]
      interval: 2s
      timeout: 1s
      retries: 2
"""


def wait_for(what, check, timeout: float = 120.0, every: float = 0.2, lab=None):
    """conftest's wait_for, with the lab's events and IPVS tables in its failure."""
    try:
        return _wait_for(what, check, timeout, every)
    except AssertionError as err:
        if lab is None:
            raise
        evs = "\n".join(f"{e.time:.3f} {e.subject} {e.action} {e.message}"
                         for e in lab_events(lab.name))
        raise AssertionError(f"{err}\nevents:\n{evs}\nIPVS: {_all_dests(lab)}") from None


def _dests(lab, node: str) -> dict[str, str]:
    """address -> weight of every destination of ``node``'s ingress_sbox, by ipvsadm."""
    out = sh(lab.netns(f"{node}/ingress_sbox"), "ipvsadm", "-Ln")
    return {line.split()[1].split(":")[0]: line.split()[3] for line in out.splitlines()
            if line.strip().startswith("->") and "RemoteAddress" not in line}


def _all_dests(lab) -> dict[str, dict[str, str]]:
    return {node: _dests(lab, node) for node in ("node1", "node2")}


def _said(lab, since: float = 0.0) -> list[tuple[str, str]]:
    evs = lab_events(lab.name)
    errors = [e.message for e in evs if e.action == "error"]
    assert not errors, errors
    return [(e.subject, e.action) for e in evs if e.time >= since]


def _started(lab) -> None:
    """Wait for the manager to run and see both nodes (under emulation its start takes
    seconds; a fault made before would be noticed only then)."""
    wait_for("the manager starts and sees both nodes", lambda: {
        (e.subject, e.action) for e in lab_events(lab.name)} >= {
            (lab.name, "started"), ("node1", "ready"), ("node2", "ready")}, lab=lab)


def _status(lab) -> dict:
    return json.loads(netlab("status", lab.name, "--json").stdout)


def test_a_killed_task_leaves_every_load_balancer_and_a_new_one_answers(lab_up, figure):
    lab = lab_up("hello-a.yaml", time_scale=SCALE)
    _started(lab)
    assert _all_dests(lab) == {n: {"10.0.0.5": "1", "10.0.0.6": "1"} for n in ("node1", "node2")}
    killed = time.time()
    out = netlab("task", lab.name, "hello-a.2", "kill").stdout
    assert "hello-a.2 exited with code 137" in out, out
    gone = wait_for("10.0.0.6 out of every IPVS table", lambda: all(
        "10.0.0.6" not in d for d in _all_dests(lab).values()) and time.time(), every=0.05, lab=lab)
    wait_for("the new hello-a.2 runs", lambda: ("hello-a.2", "running") in _said(lab, killed), lab=lab)
    evs = [e for e in lab_events(lab.name) if e.time >= killed and e.subject == "hello-a.2"]
    said = [e.action for e in evs]
    assert said == ["failed", "restart-scheduled", "shutdown", "assigned", "running"], said
    at = {e.action: e.time for e in evs}
    assert "task: non-zero exit (137)" in evs[0].message
    delay = at["assigned"] - at["failed"]
    assert 0.45 <= delay <= 3.0, delay            # the restart delay, 5 s x 0.1
    # A new task in slot 2, with a new address, in every load balancer.
    assert _all_dests(lab) == {n: {"10.0.0.5": "1", "10.0.0.7": "1"} for n in ("node1", "node2")}
    replies = lab.curl("node2:5000", 4)
    assert {(r["task"], r["task_ip"]) for r in replies} == {("hello-a.1", "10.0.0.5"),
                                                          ("hello-a.2", "10.0.0.7")}
    doc = _status(lab)
    failed = [t for t in doc["history"] if t["name"] == "hello-a.2" and t["state"] != "running"]
    assert [(t["state"], t["address"], t["ended_by"]) for t in failed] == [
        ("failed", "10.0.0.6", "task: non-zero exit (137)")], doc["history"]
    assert doc["drift"] == []
    figure("task kill to out of IPVS, failed to assigned",
           f"{gone - killed:.2f} s, {delay:.2f} s (restart delay 0.5 s)")


def test_a_hung_task_without_a_health_check_stays_in_the_load_balancers(lab_up):
    lab = lab_up("hello-a.yaml", time_scale=SCALE)
    _started(lab)
    netlab("task", lab.name, "hello-a.2", "hang")
    time.sleep(3)                   # six restart delays, thirty heartbeats: nothing notices
    assert _all_dests(lab) == {n: {"10.0.0.5": "1", "10.0.0.6": "1"} for n in ("node1", "node2")}
    assert not [s for s in _said(lab) if s[0] == "hello-a.2"]
    # Its connections wait, unanswered: a request to it times out.
    timed_out = netlab("curl", lab.name, "node1:5000", "--count", "2", "--timeout", "1",
                       check=False)
    assert "hello-a.1" in timed_out.stdout and timed_out.returncode != 0, timed_out
    netlab("task", lab.name, "hello-a.2", "healthy")
    assert {r["task"] for r in lab.curl("node1:5000", 4)} == {"hello-a.1", "hello-a.2"}


def test_a_task_gets_traffic_once_healthy_and_an_unhealthy_one_is_replaced(lab_up, tmp_path,
                                                                            figure):
    scenario = tmp_path / "health.yaml"
    scenario.write_text(HEALTHY_SCENARIO)
    lab = lab_up(str(scenario), time_scale="1")      # interval 2 s: weight 0 is seen first
    first = _all_dests(lab)
    assert first == {n: {"10.0.0.5": "0", "10.0.0.6": "0"} for n in ("node1", "node2")}, first
    assert {t["state"] for t in _status(lab)["tasks"]} == {"starting"}
    wait_for("both healthy", lambda: _all_dests(lab) == {
        n: {"10.0.0.5": "1", "10.0.0.6": "1"} for n in ("node1", "node2")}, every=0.1, lab=lab)
    assert {t["state"] for t in _status(lab)["tasks"]} == {"running"}
    said = _said(lab)
    for task in ("hello-a.1", "hello-a.2"):
        assert [a for s, a in said if s == task] == ["healthy", "running"], said
    made = time.time()
    netlab("task", lab.name, "hello-a.2", "unhealthy")
    # Regular requests are still answered; only its health check fails.
    assert {r["task"] for r in lab.curl("node1:5000", 4)} == {"hello-a.1", "hello-a.2"}
    wait_for("hello-a.2 unhealthy and out", lambda: all(
        "10.0.0.6" not in d for d in _all_dests(lab).values()), timeout=60, every=0.1, lab=lab)
    out_at = time.time()
    wait_for("the new hello-a.2 healthy", lambda: _all_dests(lab) == {
        n: {"10.0.0.5": "1", "10.0.0.7": "1"} for n in ("node1", "node2")}, timeout=60,
        every=0.1, lab=lab)
    evs = [e for e in lab_events(lab.name) if e.time >= made and e.subject == "hello-a.2"]
    assert [e.action for e in evs] == ["unhealthy", "failed", "restart-scheduled", "shutdown",
                                       "assigned", "starting", "healthy", "running"], evs
    at = {e.action: e.time for e in evs}
    detect = at["unhealthy"] - made
    assert 2.0 <= detect <= 7.0, detect            # 2 failed checks, 2 s apart
    assert 1.9 <= at["shutdown"] - at["unhealthy"] <= 5.0   # the gossip delay, 2 s
    assert 4.9 <= at["assigned"] - at["failed"] <= 9.0      # the restart delay, 5 s
    assert "dockerexec: unhealthy container" in evs[1].message
    assert _status(lab)["drift"] == []
    figure("unhealthy: made to noticed, to out of IPVS",
           f"{detect:.2f} s (2 checks every 2 s), {out_at - made:.2f} s")
