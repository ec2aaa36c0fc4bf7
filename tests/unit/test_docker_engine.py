"""netlab/docker/engine.py: the Engine API calls of tasks as containers, against a fake
``docker.APIClient`` of recorded answers (the client is Docker's, not the thing under
test), and the real SDK on a socket where no daemon answers."""

from __future__ import annotations

import socket

import docker.errors
import pytest
import requests
import urllib3

from netlab.docker import engine
from netlab.docker.tasks import TaskContainer
from netlab.errors import MissingFeature, NetlabError

CID = "3f" * 32
SPEC = TaskContainer(lab="demo", task="hello-a.1", service="hello-a", node="node1",
                     task_ip="10.0.0.5", netns="nl-demo.hello-a.1", ports=(3000, 8080))


class Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.reason = "Not Found"


class FakeClient:
    """What DockerRuntime calls on docker.APIClient, answering as Docker 20.10 does."""

    def __init__(self, images=("netlab/task:latest",), ping_error=None) -> None:
        self.images, self.ping_error = set(images), ping_error
        self.calls: list[tuple] = []
        self.live: dict[str, dict] = {}

    def ping(self):
        if self.ping_error:
            raise self.ping_error
        return True

    def inspect_image(self, image):
        if image not in self.images:
            raise docker.errors.ImageNotFound(f"No such image: {image}", Response(404))
        return {"Id": "sha256:" + "a" * 64}

    def create_host_config(self, **kwargs):
        return {"NetworkMode": kwargs["network_mode"], "Dns": kwargs.get("dns"),
                "DnsOptions": kwargs.get("dns_opt"), "DnsSearch": kwargs.get("dns_search")}

    def create_container(self, image, **kwargs):
        self.calls.append(("create", image, kwargs))
        self.live[CID] = {"Running": False, "Pid": 0, "Status": "created", "ExitCode": 0}
        return {"Id": CID, "Warnings": []}

    def start(self, cid):
        self.live[cid] = {"Running": True, "Pid": 4242, "Status": "running", "ExitCode": 0}

    def inspect_container(self, cid):
        return {"Id": cid, "State": self.live[cid]}

    def remove_container(self, cid, force=False, v=False):
        self.calls.append(("remove", cid, force))
        if self.live.pop(cid, None) is None:
            raise docker.errors.NotFound(f"No such container: {cid}", Response(404))

    def containers(self, all=False, filters=None):  # noqa: A002 - docker-py's keyword
        self.calls.append(("list", all, filters))
        return [{"Id": cid} for cid in self.live]


def test_a_task_container_has_no_docker_network_and_carries_its_names():
    client = FakeClient()
    rt = engine.runtime("unix:///run/x.sock", client=client)
    cid = rt.create(SPEC)
    _, image, kw = client.calls[0]
    assert (cid, image) == (CID, "netlab/task:latest")
    assert kw["host_config"] == {"NetworkMode": "none", "Dns": ["127.0.0.11"],
                                 "DnsOptions": ["ndots:0"], "DnsSearch": ["."]}
    assert (kw["name"], kw["hostname"]) == ("nl-demo.hello-a.1", "hello-a.1")
    assert kw["labels"] == {"netlab.lab": "demo", "netlab.task": "hello-a.1",
                            "netlab.address": SPEC.task_ip}
    assert kw["environment"]["PORTS"] == "3000 8080"
    assert rt.start(cid) == 4242
    assert rt.of_lab("demo") == [CID]
    assert client.calls[-1] == ("list", True, {"label": "netlab.lab=demo"})
    assert rt.remove(cid) is True and rt.remove(cid) is False


def test_exited_containers_name_their_task_address_and_exit_code():
    client = FakeClient()
    client.containers = lambda **_kw: [
        {"Names": ["/nl-demo.hello-a.2"], "Status": "Exited (137) 1 second ago",
         "Labels": {"netlab.lab": "demo", "netlab.task": "hello-a.2",
                    "netlab.address": "10.0.0.6"}},
        {"Names": ["/nl-demo.hello-a.1"], "Status": "Exited (0) 3 seconds ago",
         "Labels": {"netlab.lab": "demo", "netlab.task": "hello-a.1"}}]
    assert engine.runtime(client=client).exited("demo") == {
        "nl-demo.hello-a.2": ("hello-a.2", "10.0.0.6", 137),
        "nl-demo.hello-a.1": ("hello-a.1", "", 0)}


def test_a_missing_image_names_the_script_that_builds_it():
    rt = engine.runtime(client=FakeClient(images=()))
    with pytest.raises(MissingFeature) as err:
        rt.check_image("netlab/task:latest")
    assert err.value.exit_code == 3
    assert "scripts/task-image.sh" in str(err.value)


def test_a_container_that_exits_at_once_is_an_error_naming_its_state():
    client = FakeClient()
    rt = engine.runtime(client=client)
    client.start = lambda cid: client.live.__setitem__(
        cid, {"Running": False, "Pid": 0, "Status": "exited", "ExitCode": 127})
    with pytest.raises(NetlabError, match=r"not running after its start .*exit code 127"):
        rt.start(rt.create(SPEC))


def test_permission_denied_on_the_socket_says_root_or_docker_group(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    # The shape the SDK raised here for a user without access to a socket of mode 0600.
    denied = requests.exceptions.ConnectionError(urllib3.exceptions.ProtocolError(
        "Connection aborted.", PermissionError(13, "Permission denied")))
    with pytest.raises(MissingFeature, match=r"permission denied on /var/run/docker\.sock: run "
                                             r"as root or as a member of the docker group"):
        engine.runtime(client=FakeClient(ping_error=denied))


def test_no_daemon_on_a_real_socket_path_is_exit_3(tmp_path):
    # The real SDK, on a socket file nobody listens on: connection refused.
    path = tmp_path / "docker.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    with pytest.raises(MissingFeature) as err:
        engine.runtime(f"unix://{path}")
    assert str(err.value) == (f"--docker: no Docker daemon answers at unix://{path}; "
                              "start docker or pass --docker URL")
    with pytest.raises(MissingFeature, match="no Docker daemon answers"):
        engine.runtime(f"unix://{tmp_path}/absent.sock")
