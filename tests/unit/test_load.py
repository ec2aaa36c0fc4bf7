"""``netlab load`` without root: the engine against servers on loopback that answer as the
task app does or fail on purpose, the report's arithmetic and attribution, and the CLI."""

from __future__ import annotations

import json
import shutil
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import lifecycle, state
from netlab.changelog import Change
from netlab.cli import common
from netlab.cli import load as load_cli
from netlab.cli.main import cli
from netlab.load import engine, report
from netlab.load.engine import LoadSpec, Outcome
from netlab.scenario import load_lab
from netlab.workload.endpoints import AppEndpoint
from netlab.workload.http import http_response, reply_body
from tests.unit.fakes import FakeHost, FakeKernel

EPS = [AppEndpoint("nl-t.web.1", "web", "web.1", "node1", "10.0.0.5", 80),
       AppEndpoint("nl-t.web.2", "web", "web.2", "node2", "10.0.0.6", 80)]


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


@contextmanager
def server(behaviour: str) -> Iterator[tuple[int, list[int]]]:
    """A loopback server answering each connection as ``behaviour`` says, round robin over
    two tasks; yields its port and the number of requests seen per connection."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(128)
    lst.settimeout(0.05)
    per_conn: list[int] = []
    stop = threading.Event()
    turn = [0]

    def answer(conn: socket.socket, slot: int) -> None:
        with conn:
            while True:
                request = _read_request(conn)
                if not request:
                    break
                per_conn[slot] += 1
                ep = EPS[turn[0] % 2]
                turn[0] += 1
                if behaviour == "silent":
                    stop.wait(10)
                    break
                if behaviour == "reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    break
                if behaviour == "short":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"ta")
                    break
                if behaviour == "500":
                    conn.sendall(b"HTTP/1.1 500 Oops\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                    break
                body = reply_body(ep, "127.0.0.1", 1, "/")
                if behaviour == "keepalive":
                    conn.sendall(http_response(body).replace(b"Connection: close",
                                                             b"Connection: keep-alive"))
                    continue
                conn.sendall(http_response(body))
                break

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = lst.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(None)
            per_conn.append(0)
            threading.Thread(target=answer, args=(conn, len(per_conn) - 1), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield lst.getsockname()[1], per_conn
    finally:
        stop.set()
        thread.join(5)
        lst.close()


def spec(port: int, **kw) -> LoadSpec:
    return LoadSpec("127.0.0.1", port, f"node1:{port}", **({"requests": 40, "concurrency": 4}
                                                         | kw))


def test_every_request_a_new_connection_all_ok_round_robin():
    with server("ok") as (port, per_conn):
        outcomes, started, ended = engine.run(spec(port))
    s = report.summarize(outcomes, started, ended)
    assert (s.requests, s.ok, s.failed, s.errors) == (40, 40, 0, {})
    assert s.replies == {"web.1@node1": 20, "web.2@node2": 20}
    assert per_conn == [1] * 40
    assert 0 < s.latency_ms["p50"] <= s.latency_ms["p90"] <= s.latency_ms["p99"] \
        <= s.latency_ms["max"]
    assert all(started <= o.started <= o.ended <= ended + 0.01 for o in outcomes)


def test_keepalive_reuses_connections_the_server_keeps_open():
    with server("keepalive") as (port, per_conn):
        outcomes, *_ = engine.run(spec(port, keepalive=True))
    assert all(o.ok for o in outcomes) and len(outcomes) == 40
    assert len(per_conn) == 4 and sum(per_conn) == 40     # one connection per worker


def test_keepalive_reconnects_when_the_server_closes():
    with server("ok") as (port, per_conn):
        outcomes, *_ = engine.run(spec(port, keepalive=True))
    assert all(o.ok for o in outcomes) and per_conn == [1] * 40


@pytest.mark.parametrize("behaviour, kind", [
    ("reset", "reset"), ("short", "short reply"), ("500", "http 500"), ("silent", "timeout")])
def test_each_failure_has_its_kind(behaviour, kind):
    with server(behaviour) as (port, _):
        outcomes, *_ = engine.run(spec(port, requests=4, concurrency=2, timeout=0.5))
    assert [o.kind for o in outcomes] == [kind] * 4, [(o.kind, o.detail) for o in outcomes]
    assert not any(o.ok for o in outcomes)


def test_refused_when_nothing_listens():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    outcomes, *_ = engine.run(spec(port, requests=3, concurrency=1))
    assert [o.kind for o in outcomes] == ["refused"] * 3


def test_a_set_stop_event_issues_no_request():
    stop = threading.Event()
    stop.set()
    with server("ok") as (port, per_conn):
        outcomes, *_ = engine.run(spec(port), stop)
    assert outcomes == [] and per_conn == []


def test_duration_bounds_a_run_without_a_request_count():
    with server("ok") as (port, _):
        outcomes, started, ended = engine.run(spec(port, requests=None, duration=0.3))
    assert outcomes and all(o.ok for o in outcomes)
    assert max(o.started for o in outcomes) < started + 0.3 + 0.05
    with pytest.raises(ValueError):
        LoadSpec("127.0.0.1", 1, "x", requests=None, duration=None)


# ---- report ------------------------------------------------------------------------

def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert [report.percentile(values, q) for q in (50, 90, 99, 100)] == [50, 90, 99, 100]
    assert report.percentile([7.0], 99) == 7.0 and report.percentile([], 50) == 0.0


def fail(at: float, ms: float = 100, kind: str = "timeout") -> Outcome:
    return Outcome(at, ms, False, kind)


def test_failures_are_attributed_during_and_after_each_change():
    changes = (Change("up", "s.yaml", 0, 5),
               Change("scale", "web=5", 100, 102),
               Change("node", "node2 down", 110, 113),
               Change("node", "node2 up", 200, 201))
    outcomes = [Outcome(99, 1, True, task="web.1", node="node1"),
                fail(99.95, 100),           # in flight when the scale started: during it
                fail(101),                  # during the scale
                fail(105),                  # after the scale converged: lost
                fail(109.9, 500, "reset"),  # in flight when node2 went down: during it
                fail(112), fail(150)]       # during node2 down, then after it
    attributions, unexplained = report.attribute(outcomes, changes, 99, 160)
    assert [(a.change.label, a.failed_during, a.failed_after, a.kinds_during)
            for a in attributions] == [
        ("scale web=5", 2, 1, {"timeout": 2}),
        ("node node2 down", 2, 1, {"reset": 1, "timeout": 1})]
    assert [(a.requests_during, a.requests_after) for a in attributions] == [(2, 1), (2, 1)]
    assert unexplained == 2


def test_an_unconverged_change_explains_every_later_failure():
    attributions, unexplained = report.attribute(
        [fail(50), fail(60)], (Change("scale", "web=3", 40, None),), 45, 70)
    assert [(a.failed_during, a.failed_after) for a in attributions] == [(2, 0)]
    assert unexplained == 0


# ---- the CLI -----------------------------------------------------------------------

@pytest.fixture
def lab(tmp_path, monkeypatch):
    """The seed lab's state with node1 on loopback; sockets open in this namespace."""
    scenario = tmp_path / "hello-a.yaml"
    shutil.copy(Path(__file__).resolve().parents[2] / "scenarios" / "hello-a.yaml", scenario)
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=fake.host())
    st = store.load("hello-a")
    st.lan["node1"] = "127.0.0.1"
    store.save(st)
    monkeypatch.setattr(common, "store", lambda: store)
    kernel = FakeKernel(namespaces=set(st.netns))
    monkeypatch.setattr(load_cli, "LinuxReader", lambda: kernel)
    return store


def test_cli_json_report_adds_up(lab):
    with server("ok") as (port, _):
        r = CliRunner().invoke(cli, ["load", "hello-a", f"node1:{port}", "-n", "30", "-c", "3",
                                     "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert (doc["requests"], doc["ok"], doc["failed"], doc["failures"]) == (30, 30, 0, [])
    assert sum(doc["replies"].values()) == doc["ok"]
    assert doc["changes"] == [] and doc["from"] == "client"


def test_cli_sends_from_inside_the_senders_namespace_through_the_kernel_reader(lab):
    kernel = load_cli.LinuxReader()      # the fixture's fake kernel
    with server("ok") as (port, _):
        r = CliRunner().invoke(cli, ["load", "hello-a", f"node1:{port}", "-n", "2"])
    assert r.exit_code == 0, r.output
    assert kernel.ran_in == [lab.load("hello-a").targets["client"]]


def test_cli_failures_outside_any_change_exit_1_with_their_kind(lab):
    with server("500") as (port, _):
        r = CliRunner().invoke(cli, ["load", "hello-a", f"node1:{port}", "-n", "5", "--json"])
    assert r.exit_code == 1, r.output
    doc = json.loads(r.stdout)
    assert doc["errors"] == {"http 500": 5} and doc["unexplained_failures"] == 5
    assert [f["kind"] for f in doc["failures"]] == ["http 500"] * 5
    assert all(doc["started"] <= f["started"] <= doc["ended"] for f in doc["failures"])


@pytest.mark.parametrize("args, field", [
    (["nolab", "node1:5000"], "LAB"),
    (["Bad_Name", "node1:5000"], "LAB"),
    (["hello-a", "node9:5000"], "TARGET"),
    (["hello-a", "node1"], "TARGET"),
    (["hello-a", "node1:99999"], "TARGET"),
    (["hello-a", "node1:5000", "-n", "0"], "--requests"),
    (["hello-a", "node1:5000", "-n", "ten"], "--requests"),
    (["hello-a", "node1:5000", "-c", "0"], "--concurrency"),
    (["hello-a", "node1:5000", "-d", "-1"], "--duration"),
    (["hello-a", "node1:5000", "--timeout", "nan"], "--timeout"),
    (["hello-a", "node1:5000", "--from", "web.7"], "--from"),
])
def test_bad_input_is_one_line_exit_2(lab, args, field):
    r = CliRunner().invoke(cli, ["load", *args])
    assert r.exit_code == 2, r.output
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"Error: {field}:"), r.stderr


def test_sources_and_a_plugged_in_resolver(lab):
    from netlab.errors import BadInput
    from netlab.load import target
    st = lab.load("hello-a")
    assert target.source(st, "client") == target.Source("client", st.targets["client"])
    assert target.source(st, "hello-a.2").netns == st.targets["hello-a.2"]
    src = target.source(st, "client")
    assert target.destination(st, "node2:5000", src, FakeKernel()) == target.Destination(
        "node2:5000", st.lan["node2"], 5000)

    def by_service(state, text, _src, _reader):
        return target.Destination(text, "10.0.0.2", 80) if text == "hello-a:80" else None

    chain = (target.node_port, by_service)
    assert target.destination(st, "hello-a:80", src, FakeKernel(), chain).ip == "10.0.0.2"
    with pytest.raises(BadInput, match=r"^TARGET: "):
        target.destination(st, "hello-b:80", src, FakeKernel(), chain)


def test_a_service_target_from_a_task_goes_to_what_its_dns_answers(lab, monkeypatch):
    """From a task, SERVICE:PORT is resolved as `curl --from` does (the task's DNS);
    from the client it stays a NODE:PORT error."""
    from netlab import client
    from netlab.errors import BadInput
    from netlab.load import target
    st = lab.load("hello-a")
    asked = []

    def resolve_in(_reader, netns, name, timeout=3.0):
        asked.append((netns, name))
        return ("10.0.1.7",) if name == "api" else ()
    monkeypatch.setattr(client, "resolve_in", resolve_in)
    task = target.source(st, "hello-a.1")
    assert target.destination(st, "api:80", task, FakeKernel()) == target.Destination("api:80", "10.0.1.7", 80)
    assert asked == [(st.targets["hello-a.1"], "api")]
    with pytest.raises(BadInput, match=r"^TARGET: hello-a\.1 cannot resolve 'nope'"):
        target.destination(st, "nope:80", task, FakeKernel())
    with pytest.raises(BadInput, match=r"^TARGET: "):
        target.destination(st, "api:80", target.source(st, "client"), FakeKernel())
