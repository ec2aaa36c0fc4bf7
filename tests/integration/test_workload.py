"""The workload supervisor with real namespaces: a task namespace and a client.

Two namespaces joined by a veth pair, ``task`` (10.231.0.5, where the app
listens) and ``client`` (10.231.0.2). The client side is a stdlib-only Python
snippet, independent of netlab, run in the client namespace by a fork of the
test process that enters it with setns(2).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from netlab.errors import NetlabError
from netlab.workload import supervisor
from netlab.workload.endpoints import AppEndpoint, dump_endpoints
from tests.integration import forked

# A cold Python start takes far longer than 10 s under emulation in netlab vm.
READY = 300.0

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def _needs_root_and_ipvs() -> None:
    """Overrides the conftest's check: the workload needs root and namespaces, not IPVS.

    Like every integration test, it fails loudly instead of skipping.
    """
    assert os.geteuid() == 0, "the workload tests need root (network namespaces)"

TASK_IP, CLIENT_IP = "10.231.0.5", "10.231.0.2"

# Runs in the client namespace: argv[1] is a JSON request, stdout the JSON result.
CLIENT = r'''
import json, socket, sys, time
req = json.loads(sys.argv[1])
out = {}
if req["kind"] == "udp":
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(req["send"].encode(), (req["host"], req["port"]))
    data, src = s.recvfrom(65535)
    out = {"reply": data.decode(), "from": list(src)}
else:
    slow = None
    if req.get("slow_first"):  # a client that starts a request and goes quiet
        slow = socket.create_connection((req["host"], req["port"]), timeout=10)
        slow.sendall(b"GET /slow HTTP/1.1\r\n")
    try:
        s = socket.create_connection((req["host"], req["port"]), timeout=req.get("timeout", 5))
    except ConnectionRefusedError:
        print(json.dumps({"refused": True})); sys.exit(0)
    s.sendall(req["send"].encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    out = {"reply": data.decode(), "local": list(s.getsockname())}
    if slow is not None:
        started = time.monotonic()
        data = b""
        while chunk := slow.recv(65536):
            data += chunk
        out["slow_reply"] = data.decode()
        out["slow_waited"] = time.monotonic() - started
print(json.dumps(out))
'''


@dataclass(frozen=True)
class Pair:
    task: str
    client: str


def run_client(ns: str, **request) -> dict:
    """Run the client snippet in ``ns`` and return what it printed (in a fork of
    this process that enters ``ns`` by itself: no Python start-up per request)."""
    proc = forked.python_in(ns, CLIENT, json.dumps(request), timeout=30)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def http_get(ns: str, port: int, path: str = "/", **extra) -> dict:
    req = f"GET {path} HTTP/1.1\r\nHost: {TASK_IP}:{port}\r\nUser-Agent: test\r\n\r\n"
    return run_client(ns, kind="tcp", host=TASK_IP, port=port, send=req, **extra)


def split_http(reply: str) -> tuple[str, dict[str, str], dict]:
    head, _, body = reply.partition("\r\n\r\n")
    status, *lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    assert int(headers["Content-Length"]) == len(body.encode())
    return status, headers, json.loads(body)


def endpoint(pair: Pair, port: int, protocol: str = "tcp", task: str = "hello-a.1") -> AppEndpoint:
    return AppEndpoint(pair.task, "hello-a", task, "node1", TASK_IP, port, protocol)


@pytest.fixture
def pair() -> Iterator[Pair]:
    from pyroute2 import IPRoute, netns

    prefix = f"nl-wltest-{secrets.token_hex(3)}-"
    names = Pair(prefix + "task", prefix + "client")
    created: list[str] = []
    try:
        for name in (names.task, names.client):
            netns.create(name)
            created.append(name)
        with IPRoute(netns=names.task, flags=0) as ip:
            ip.link("add", ifname="eth0", kind="veth", peer={"ifname": "eth0", "net_ns_fd": names.client})
            ip.addr("add", index=ip.link_lookup(ifname="eth0")[0], address=TASK_IP, prefixlen=24)
            for ifname in ("eth0", "lo"):
                ip.link("set", index=ip.link_lookup(ifname=ifname)[0], state="up")
        with IPRoute(netns=names.client, flags=0) as ip:
            ip.addr("add", index=ip.link_lookup(ifname="eth0")[0], address=CLIENT_IP, prefixlen=24)
            for ifname in ("eth0", "lo"):
                ip.link("set", index=ip.link_lookup(ifname=ifname)[0], state="up")
        yield names
    finally:
        for name in created:
            netns.remove(name)
        left = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert prefix not in left


@pytest.fixture
def app(pair: Pair, tmp_path: Path) -> Iterator[int]:
    """A supervisor serving tcp/3000 and udp/3001 in the task namespace."""
    pid = supervisor.start([endpoint(pair, 3000), endpoint(pair, 3001, "udp")], tmp_path / "wl.log", ready_timeout=READY)
    try:
        yield pid
    finally:
        supervisor.stop(pid)


def test_http_reply_names_task_and_the_client_seen(pair: Pair, app: int) -> None:
    result = http_get(pair.client, 3000, "/hello?x=1")
    status, headers, body = split_http(result["reply"])
    assert status == "HTTP/1.1 200 OK"
    assert headers["Content-Type"] == "application/json"
    assert headers["Connection"] == "close"
    assert body == {
        "service": "hello-a", "task": "hello-a.1", "node": "node1", "task_ip": TASK_IP,
        "port": 3000, "client": CLIENT_IP, "client_port": result["local"][1], "path": "/hello?x=1",
    }


def test_sockets_live_in_the_task_namespace_only(pair: Pair, app: int) -> None:
    def listening(ns: str) -> str:
        return subprocess.run(["ip", "netns", "exec", ns, "ss", "-Hlntu"],
                              capture_output=True, text=True, check=True).stdout
    task_side = listening(pair.task)
    assert "0.0.0.0:3000" in task_side and "0.0.0.0:3001" in task_side
    assert ":3000" not in listening(pair.client)


def test_udp_datagram_gets_the_json(pair: Pair, app: int) -> None:
    result = run_client(pair.client, kind="udp", host=TASK_IP, port=3001, send="hi")
    assert result["from"] == [TASK_IP, 3001]
    body = json.loads(result["reply"])
    assert body["task"] == "hello-a.1" and body["port"] == 3001
    assert body["client"] == CLIENT_IP and body["path"] is None


def test_non_http_request_still_gets_json_over_http(pair: Pair, app: int) -> None:
    result = run_client(pair.client, kind="tcp", host=TASK_IP, port=3000, send="ping\n")
    status, _, body = split_http(result["reply"])
    assert status == "HTTP/1.1 200 OK"
    assert body["task"] == "hello-a.1" and body["client"] == CLIENT_IP and body["path"] is None


def test_a_silent_client_does_not_stall_the_others(pair: Pair, app: int) -> None:
    # The quiet connection is open first; the next request is answered anyway
    # (its socket timeout, 3 s, is below the app's 5 s request timeout), and
    # the quiet one is answered once its request time is up.
    result = http_get(pair.client, 3000, "/fast", slow_first=True, timeout=3)
    assert split_http(result["reply"])[2]["path"] == "/fast"
    assert split_http(result["slow_reply"])[2]["path"] == "/slow"


def test_update_adds_and_removes_endpoints_live(pair: Pair, app: int) -> None:
    supervisor.update(app, [endpoint(pair, 3000), endpoint(pair, 3002, task="hello-a.2")])
    assert split_http(http_get(pair.client, 3002)["reply"])[2]["task"] == "hello-a.2"
    assert split_http(http_get(pair.client, 3000)["reply"])[2]["task"] == "hello-a.1"
    udp = subprocess.run(["ip", "netns", "exec", pair.task, "ss", "-Hlnu"],
                         capture_output=True, text=True, check=True).stdout
    assert ":3001" not in udp

    supervisor.update(app, [endpoint(pair, 3002, task="hello-a.2")])
    assert http_get(pair.client, 3000) == {"refused": True}
    assert supervisor.is_running(app)


def test_raw_sighup_rereads_the_endpoints_file(pair: Pair, app: int, tmp_path: Path) -> None:
    dump_endpoints(tmp_path / "wl.endpoints.json", [endpoint(pair, 3000), endpoint(pair, 3003)])
    os.kill(app, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while (result := http_get(pair.client, 3003)).get("refused") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert split_http(result["reply"])[2]["port"] == 3003
    assert "ready 2 (generation 2, 0 error(s))" in (tmp_path / "wl.log").read_text()  # udp/3001 left


def test_update_reports_an_endpoint_it_cannot_open(pair: Pair, app: int) -> None:
    ghost = AppEndpoint(pair.task + "-gone", "hello-a", "hello-a.9", "node1", TASK_IP, 3000)
    with pytest.raises(NetlabError, match=r"hello-a\.9 tcp/3000 .*cannot open netns"):
        supervisor.update(app, [endpoint(pair, 3000), ghost])
    assert split_http(http_get(pair.client, 3000)["reply"])[2]["task"] == "hello-a.1"


def test_reload_reopens_sockets_in_a_recreated_namespace(pair: Pair, app: int, tmp_path: Path) -> None:
    from pyroute2 import netns

    extra = pair.task + "-x"  # same nl-wltest-<random>- prefix
    ep = AppEndpoint(extra, "hello-b", "hello-b.1", "node1", "10.231.1.5", 4000)
    netns.create(extra)
    try:
        supervisor.update(app, [endpoint(pair, 3000), ep])
        netns.remove(extra)  # e.g. a task removed and placed again
        netns.create(extra)
        supervisor.update(app, [endpoint(pair, 3000), ep])
        listening = subprocess.run(["ip", "netns", "exec", extra, "ss", "-Hltn"],
                                   capture_output=True, text=True, check=True).stdout
        assert "0.0.0.0:4000" in listening
        assert "hello-b.1 tcp/4000 in " + extra + " (its namespace was recreated)" in (
            tmp_path / "wl.log").read_text()
    finally:
        netns.remove(extra)


def test_stop_leaves_no_process(pair: Pair, tmp_path: Path) -> None:
    pid = supervisor.start([endpoint(pair, 3000)], tmp_path / "wl.log", ready_timeout=READY)
    assert supervisor.is_running(pid)
    supervisor.stop(pid)
    assert not supervisor.is_running(pid)
    assert not Path(f"/proc/{pid}").exists()
    supervisor.stop(pid)  # again: quiet
    assert http_get(pair.client, 3000) == {"refused": True}
    log = (tmp_path / "wl.log").read_text()
    assert "ready 1" in log and "stopped" in log


def test_start_fails_clearly_and_leaves_nothing(pair: Pair, tmp_path: Path) -> None:
    ghost = AppEndpoint(pair.task + "-gone", "hello-a", "hello-a.9", "node1", TASK_IP, 3000)
    before = set(os.listdir("/proc"))
    with pytest.raises(NetlabError, match=r"could not open every endpoint.*cannot open netns") as err:
        supervisor.start([endpoint(pair, 3000), ghost], tmp_path / "wl.log", ready_timeout=READY)
    assert str(tmp_path / "wl.log") in str(err.value)  # the log tail comes along
    started = [p for p in set(os.listdir("/proc")) - before if p.isdigit()]
    assert not [p for p in started if supervisor.is_running(int(p))]
