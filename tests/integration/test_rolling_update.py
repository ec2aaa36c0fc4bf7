"""Rolling updates and rollback (issue 14), for real in netlab vm, on
scenarios/rolling.yaml (web:1 in two replicas, a health check every 2 s,
update_config parallelism 1, delay 2 s, stop-first, failure_action rollback,
monitor 4 s): an update under load loses no request and the replies show the
versions mix and end at web:2; a version that fails its health check is
rolled back by the manager. Read back with ``ipvsadm`` and the replies."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.integration import forked
from tests.integration.conftest import lab_events, lab_netns, netlab, sh, wait_for


def _dests(lab, node: str) -> dict[str, str]:
    out = sh(lab.netns(f"{node}/ingress_sbox"), "ipvsadm", "-Ln")
    return {line.split()[1].split(":")[0]: line.split()[3] for line in out.splitlines()
            if line.strip().startswith("->") and "RemoteAddress" not in line}


def _bound(lab) -> bool:
    return all(set(_dests(lab, n).values()) == {"1"} and len(_dests(lab, n)) == 2
               for n in ("node1", "node2"))


ORDERS = {
    # stop-first: the old task leaves, then the new one starts in its slot (same name).
    "stop-first": ([("web.1", "updating"), ("web.1", "healthy"), ("web.2", "updating"),
                    ("web.2", "healthy")], ["web.1", "web.2"]),
    # start-first: the new one (<slot>.1) starts beside the old, which leaves once it runs.
    "start-first": ([("web.1", "updating"), ("web.1.1", "healthy"), ("web.1", "shutdown"),
                     ("web.2", "updating"), ("web.2.1", "healthy"), ("web.2", "shutdown")],
                    ["web.1.1", "web.2.1"]),
}


@pytest.mark.parametrize("order", list(ORDERS))
def test_an_update_under_load_loses_no_request_and_ends_on_the_new_version(lab_up, figure,
                                                                           order):
    lab = lab_up("rolling.yaml", time_scale="1")
    wait_for("both tasks healthy", lambda: _bound(lab), timeout=60)
    assert {r["version"] for r in lab.curl("node1:8080", 4)} == {"1"}
    load = forked.netlab_started(["load", lab.name, "node1:8080", "--concurrency", "4",
                                  "--duration", "600", "--timeout", "2", "--json"])
    try:
        line = load.stderr.readline()
        assert "sending to node1:8080" in line, (line, load.communicate())
        time.sleep(1)
        started = time.time()
        out = netlab("update", lab.name, "web", "--image", "web:2", "--update-order", order,
                     timeout=300)
        took = time.time() - started
        assert "web: completed: update completed" in out.stdout, out.stdout
        time.sleep(1)
    finally:
        load.send_signal(signal.SIGTERM)
        stdout, err = load.communicate(timeout=120)
    doc = json.loads(stdout)
    assert doc["failed"] == 0, (doc["failures"][:5], err[-1000:])
    # Both versions answered while it ran: per version, and per slot (its two tasks).
    assert set(doc["versions"]) == {"1", "2"}, doc["versions"]
    by_slot: dict[str, set[str]] = {}
    for task, versions in doc["replies_by_version"].items():      # "web.1.1@node1"
        by_slot.setdefault(task.partition("@")[0].split(".")[1], set()).update(versions)
    assert by_slot == {"1": {"1", "2"}, "2": {"1", "2"}}, doc["replies_by_version"]
    assert {r["version"] for r in lab.curl("node1:8080", 4)} == {"2"}
    assert _bound(lab)
    status = json.loads(netlab("status", lab.name, "--json").stdout)
    assert status["drift"] == []
    steps, names = ORDERS[order]
    assert sorted(t["name"] for t in status["tasks"]) == names
    listed = lab_netns(lab.name)                      # by `ip netns list`
    assert all(f"nl-{lab.name}.{n}" in listed for n in names), listed
    said = [(e.subject, e.action) for e in lab_events(lab.name)]
    said = said[said.index(("web", "updating")):]     # the tasks' first healthy came before
    expected = [("web", "updating"), ("web", "update-plan"), *steps, ("web", "completed")]
    assert [s for s in said if s in expected] == expected, said
    figure(f"rolling update of 2 tasks, {order}, under load",
           f"{took:.1f} s, {doc['failed']} of {doc['requests']} requests failed")


def test_a_version_failing_its_health_check_is_rolled_back(lab_up):
    lab = lab_up("rolling.yaml", time_scale="1")
    wait_for("both tasks healthy", lambda: _bound(lab), timeout=60)
    before = {r["task_ip"] for r in lab.curl("node1:8080", 4)}
    out = netlab("update", lab.name, "web", "--image", "web:2", "--env",
                 "NETLAB_APP_HEALTH=fail", check=False, timeout=300)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "update rolled back due to failure or early termination of task web.1" in out.stderr \
        + out.stdout, (out.stdout, out.stderr)
    wait_for("both tasks of web:1 serve again", lambda: _bound(lab) and {
        r["version"] for r in lab.curl("node1:8080", 4)} == {"1"}, timeout=120)
    said = [(e.subject, e.action) for e in lab_events(lab.name)]
    order = [("web.1", "updating"), ("web.1", "unhealthy"), ("web", "rollback-started"),
             ("web", "rollback-completed")]
    assert [s for s in said if s in order] == order, said
    after = {r["task_ip"] for r in lab.curl("node1:8080", 4)}
    assert after != before                       # web.1 is a new task of web:1
    status = json.loads(netlab("status", lab.name, "--json").stdout)
    assert status["drift"] == [] and {t["state"] for t in status["tasks"]} == {"running"}
