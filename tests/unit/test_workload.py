"""The workload without root: endpoint files, the reply, and pid safety."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys

import pytest

from netlab.errors import NetlabError
from netlab.workload import supervisor
from netlab.workload.app import (
    MAX_REQUEST,
    http_response,
    parse_request_line,
    reply_body,
    reply_fields,
    request_complete,
    status_path_for,
    wants_keepalive,
)
from netlab.workload.endpoints import (
    AppEndpoint,
    dump_endpoints,
    endpoints_from_json,
    endpoints_to_json,
    load_endpoints,
)

EP = AppEndpoint("nl-hello-hello-a.1", "hello-a", "hello-a.1", "node1", "10.0.0.5", 3000, "tcp")
UDP = AppEndpoint("nl-hello-hello-a.1", "hello-a", "hello-a.1", "node1", "10.0.0.5", 3000, "udp")


# ---- endpoints ---------------------------------------------------------------------

def test_json_round_trip_keeps_every_field() -> None:
    text = endpoints_to_json([EP, UDP])
    doc = json.loads(text)
    assert doc["version"] == 1
    assert doc["endpoints"][0] == {
        "netns": "nl-hello-hello-a.1", "service": "hello-a", "task": "hello-a.1",
        "node": "node1", "task_ip": "10.0.0.5", "port": 3000, "protocol": "tcp", "image": "",
        "failing_health": "",
    }
    assert endpoints_from_json(text) == [EP, UDP]


def test_to_dict_names_every_field_and_round_trips() -> None:
    """The dict is written out by hand (faster than asdict): it must not miss a field."""
    for ep in (EP, UDP):
        assert list(ep.to_dict()) == [f.name for f in dataclasses.fields(AppEndpoint)]
        assert AppEndpoint.from_dict(ep.to_dict()) == ep


def test_protocol_defaults_to_tcp_when_absent() -> None:
    item = EP.to_dict()
    del item["protocol"]
    assert endpoints_from_json(json.dumps({"version": 1, "endpoints": [item]})) == [EP]


@pytest.mark.parametrize("change, message", [
    ({"protocol": "sctp"}, "protocol must be one of tcp, udp"),
    ({"port": 0}, "port must be an integer 1-65535"),
    ({"port": 70000}, "port must be an integer 1-65535"),
    ({"port": True}, "port must be an integer"),
    ({"port": "3000"}, "port must be an integer"),
    ({"service": ""}, "service must be a non-empty string"),
    ({"netns": "a/b"}, "netns must be a name or an absolute path"),
])
def test_bad_endpoint_is_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AppEndpoint(**{**EP.to_dict(), **change})


def test_netns_path() -> None:
    assert EP.netns_path == "/var/run/netns/nl-hello-hello-a.1"
    assert AppEndpoint(**{**EP.to_dict(), "netns": "/proc/42/ns/net"}).netns_path == "/proc/42/ns/net"


@pytest.mark.parametrize("text, message", [
    ("{", "not JSON"),
    ("[]", '"endpoints" list'),
    ('{"version": 2, "endpoints": []}', "version 2 is not 1"),
    ('{"version": 1, "endpoints": [{"netns": "x"}]}', r"endpoints\[0\]: missing field\(s\) service"),
    ('{"version": 1, "endpoints": [7]}', r"endpoints\[0\]: an endpoint must be an object"),
])
def test_bad_file_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(NetlabError, match=message):
        endpoints_from_json(text)


def test_unknown_field_is_named() -> None:
    doc = {"version": 1, "endpoints": [EP.to_dict(), {**EP.to_dict(), "colour": "red"}]}
    with pytest.raises(NetlabError, match=r"endpoints\[1\]: unknown field\(s\) colour"):
        endpoints_from_json(json.dumps(doc))


def test_same_socket_twice_is_refused() -> None:
    twin = AppEndpoint(EP.netns, "other", "other.1", "node2", "10.0.0.9", 3000, "tcp")
    with pytest.raises(ValueError, match="both need tcp/3000"):
        endpoints_to_json([EP, twin])
    doc = {"version": 1, "endpoints": [EP.to_dict(), twin.to_dict()]}
    with pytest.raises(NetlabError, match="both need tcp/3000"):
        endpoints_from_json(json.dumps(doc))
    endpoints_to_json([EP, UDP])  # same port, other protocol: fine


def test_file_round_trip_is_private(tmp_path) -> None:
    path = tmp_path / "lab.endpoints.json"
    dump_endpoints(path, [EP, UDP])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_endpoints(path) == [EP, UDP]
    dump_endpoints(path, [UDP])  # replaced atomically, no temp files left
    assert load_endpoints(path) == [UDP]
    assert [p.name for p in tmp_path.iterdir()] == ["lab.endpoints.json"]


def test_missing_file_is_a_netlab_error(tmp_path) -> None:
    with pytest.raises(NetlabError, match="cannot read endpoints file"):
        load_endpoints(tmp_path / "nope.json")


# ---- the reply -----------------------------------------------------------------

def test_reply_names_task_and_the_client_seen() -> None:
    assert reply_fields(EP, "10.0.0.2", 40000, "/x") == {
        "service": "hello-a", "task": "hello-a.1", "node": "node1", "task_ip": "10.0.0.5",
        "port": 3000, "client": "10.0.0.2", "client_port": 40000, "path": "/x",
    }
    body = reply_body(EP, "10.0.0.2", 40000, None)
    assert body.endswith(b"}\n")
    assert json.loads(body)["path"] is None


def test_http_response_is_complete_and_closes() -> None:
    body = reply_body(EP, "10.0.0.2", 40000, "/")
    raw = http_response(body)
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[0] == "HTTP/1.1 200 OK"
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert headers == {
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        "Connection": "close",
    }
    assert rest == body
    assert http_response(body, head_only=True) == head + b"\r\n\r\n"


@pytest.mark.parametrize("request_, expected", [
    (b"GET /hello?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", ("GET", "/hello?x=1", True)),
    (b"HEAD / HTTP/1.0\n\n", ("HEAD", "/", True)),
    (b"GET /old\r\n", ("GET", "/old", False)),  # HTTP/0.9
    (b"ping\n", (None, None, False)),
    (b"\x16\x03\x01\x02\x00", (None, None, False)),  # a TLS hello
    (b"", (None, None, False)),
])
def test_parse_request_line(request_: bytes, expected: tuple) -> None:
    assert parse_request_line(request_) == expected


@pytest.mark.parametrize("request_, complete", [
    (b"", False),
    (b"GET / HTTP/1.1\r\nHost: a\r\n", False),  # headers not finished
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
    (b"GET / HTTP/1.1\n\n", True),
    (b"GET /old\r\n", True),  # HTTP/0.9 has no headers
    (b"hello there\n", True),  # not HTTP: answer at once
    (b"no newline yet", False),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * MAX_REQUEST, True),  # the 64 KiB bound
])
def test_request_complete(request_: bytes, complete: bool) -> None:
    assert request_complete(request_) is complete


def test_status_and_endpoints_paths(tmp_path) -> None:
    assert supervisor.endpoints_path_for(tmp_path / "lab.log") == tmp_path / "lab.endpoints.json"
    assert status_path_for(tmp_path / "lab.endpoints.json") == tmp_path / "lab.endpoints.json.status"


# ---- pid safety ----------------------------------------------------------------

def test_other_processes_are_not_supervisors() -> None:
    assert not supervisor.is_running(os.getpid())
    assert not supervisor.is_running(2**22 + 7)  # above any pid_max: no such process


def test_stop_of_a_gone_pid_is_quiet() -> None:
    supervisor.stop(2**22 + 7)
    supervisor.stop(0)  # never a process group
    supervisor.stop(-1)


def test_stop_never_kills_a_process_that_is_not_a_supervisor() -> None:
    # Its argv even names the module, but not as `-m netlab.workload.app --endpoints F`.
    code = "import time; time.sleep(30)"
    other = subprocess.Popen([sys.executable, "-c", code, "netlab.workload.app", "--endpoints"])
    try:
        supervisor.stop(other.pid, timeout=0.5)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_update_of_a_non_supervisor_fails_clearly() -> None:
    with pytest.raises(NetlabError, match="no workload supervisor runs with pid"):
        supervisor.update(os.getpid(), [EP])


def test_start_refuses_duplicate_sockets_before_launching(tmp_path) -> None:
    twin = AppEndpoint(EP.netns, "other", "other.1", "node2", "10.0.0.9", 3000, "tcp")
    with pytest.raises(NetlabError, match="both need tcp/3000"):
        supervisor.start([EP, twin], tmp_path / "lab.log")
    assert not (tmp_path / "lab.log").exists()


# ---- what a lab's tasks listen on ---------------------------------------------------

TWO_PORTS_ONE_TARGET = """\
name: two
nodes: {node1: {role: manager}, node2: {}}
services:
  web:
    deploy: {replicas: 2}
    ports: ["8080:80", "8081:80", "9053:80/udp"]
"""


def test_two_published_ports_to_one_target_listen_once_per_task() -> None:
    # Swarm accepts ["8080:80", "8081:80"]; up failed half-way with a ValueError
    # (two endpoints for tcp/80 in one task).
    from netlab import ipam
    from netlab.lifecycle import endpoints
    from netlab.scenario import load_lab_from_text
    lab = load_lab_from_text(TWO_PORTS_ONE_TARGET, "two.yaml")
    eps = endpoints(lab, ipam.allocate(lab))
    assert sorted((e.task, e.protocol, e.port) for e in eps) == [
        ("web.1", "tcp", 80), ("web.1", "udp", 80), ("web.2", "tcp", 80), ("web.2", "udp", 80)]
    assert len(json.loads(endpoints_to_json(eps))["endpoints"]) == 4


def test_two_published_ports_to_one_target_plan_docker_s_rules() -> None:
    # libnetwork's addRedirectRules runs, per published port, an appended
    # REDIRECT and two inserted (-I) ACCEPTs for the target, with no check that
    # they exist: a real task holds the ACCEPT pair twice. The plan does too.
    from netlab.plan.build import build_plan
    from netlab.plan.render import rule_spec
    from netlab.scenario import load_lab_from_text
    plan = build_plan(load_lab_from_text(TWO_PORTS_ONE_TARGET, "two.yaml"))
    ns = plan.namespace("web.1").name
    redirects = [rule_spec(r) for r in plan.rules_in(ns, "nat") if r.chain == "PREROUTING"]
    assert [r.split(" -m comment")[0] for r in redirects] == [
        "-d 10.0.0.5/32 -p tcp -m tcp --dport 8080", "-d 10.0.0.5/32 -p tcp -m tcp --dport 8081",
        "-d 10.0.0.5/32 -p udp -m udp --dport 9053"]
    accepts = [r for r in plan.rules_in(ns, "filter") if r.chain == "INPUT" and r.target.name == "ACCEPT"]
    assert [(r.proto, r.matches[0].options) for r in accepts] == [
        ("udp", (("dport", "80"),)), ("tcp", (("dport", "80"),)), ("tcp", (("dport", "80"),))]


def test_a_host_mode_port_gets_a_listener_in_its_task() -> None:
    # The node DNATs 6379 to the task's gwbridge address; the app binds every address.
    from pathlib import Path
    from netlab import ipam
    from netlab.lifecycle import endpoints
    from netlab.scenario import load_lab
    lab = load_lab(Path(__file__).resolve().parents[2] / "scenarios" / "host-mode.yaml")
    eps = endpoints(lab, ipam.allocate(lab))
    assert sorted((e.task, e.protocol, e.port) for e in eps) == [
        ("cache.1", "tcp", 6379), ("hello-a.1", "tcp", 3000), ("hello-a.2", "tcp", 3000)]


@pytest.mark.parametrize("request_, keep", [
    (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", True),
    (b"GET / HTTP/1.0\r\nconnection: Keep-Alive\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", False),          # only an explicit ask
    (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: a\r\n\r\nConnection: keep-alive\r\n\r\n", False),  # a body
    (b"hello\nConnection: keep-alive\n\n", False),             # not HTTP
])
def test_keepalive_only_when_the_request_asks(request_: bytes, keep: bool) -> None:
    assert wants_keepalive(request_) is keep


def test_a_kept_answer_says_keep_alive() -> None:
    raw = http_response(b"{}\n", keep_alive=True)
    assert b"\r\nConnection: keep-alive\r\n" in raw and raw.endswith(b"\r\n\r\n{}\n")
