"""Docker URLs that do not parse: one checker for every entry point, never a traceback.

``--docker`` and ``$DOCKER_HOST`` are checked by :mod:`netlab.docker.connect`
before anything connects (exit 2 naming the one used); ``down`` of a lab whose
state records such a URL still removes everything else and says in one line
what it left.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import lifecycle, state
from netlab.cli import common
from netlab.cli import swarm as cli_swarm
from netlab.cli.main import cli
from netlab.docker import connect
from netlab.errors import BadInput
from netlab.scenario import load_lab
from tests.unit.fakes import FakeHost

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

BAD_URLS = ["tcp://256.1.1.1:99999", "tcp://host:abc", "tcp://[::1", "tcp://[::1]",
            "tcp://[::g]:2375", "tcp://::1:2375", "tcp://1.2.3.4:0", "tcp://1.2.3.4:65536",
            "tcp://1.2.3.4:٣", "tcp://1.2.3:2375", "tcp://a..b:2375", "tcp://" + "a" * 64 + ":1",
            "tcp://host", "tcp://:2375", "tcp://", "tcp://u@host:2375", "tcp://host:2375/v1",
            "tcp://host:2375?x=1", "tcp://hóst:2375", "tcp://host:2375\n", "unix://", "unix://x",
            "unix:///", "ssh://user@host", "npipe:////./pipe/docker", "fd://", "host:2375",
            "2375", "tcp:/host:2375", "tcp://host:+22", "tcp://host:2_375", "x" * 2000]
GOOD_URLS = ["unix:///var/run/docker.sock", "/var/run/docker.sock", "tcp://127.0.0.1:2375",
             "tcp://[::1]:2376", "tcp://docker-host.example:2375", "https://h:2376",
             "http://localhost:2375/", "unix:///run/my docker.sock"]


@pytest.mark.parametrize("url", BAD_URLS)
def test_a_url_that_does_not_parse_is_refused_naming_the_field(url):
    assert connect.url_problem(url) is not None
    with pytest.raises(BadInput, match=r"^--docker: .* is not a Docker URL: .*\(hint: unix://"):
        connect.check_url(url, "--docker")


@pytest.mark.parametrize("url", GOOD_URLS)
def test_usable_urls_pass(url):
    assert connect.url_problem(url) is None
    assert connect.check_url(url, "--docker").startswith(("unix://", "tcp://", "http"))


def test_docker_url_names_where_the_url_came_from(monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://host:abc")
    with pytest.raises(BadInput, match=r"^DOCKER_HOST: 'tcp://host:abc' is not a Docker URL"):
        connect.docker_url(None)
    assert connect.docker_url("unix:///d.sock") == "unix:///d.sock"   # --docker wins
    monkeypatch.setenv("DOCKER_HOST", "")
    assert connect.docker_url(None) == connect.DEFAULT_URL


def test_connect_refuses_before_the_sdk_sees_the_url(monkeypatch):
    import docker
    monkeypatch.setattr(docker, "APIClient", lambda **_k: pytest.fail("the SDK was reached"))
    with pytest.raises(BadInput, match=r"^--docker: "):
        connect.connect("tcp://256.1.1.1:99999")


def _refused(args: list[str], field: str, json_too: bool = True) -> None:
    r = CliRunner().invoke(cli, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 2, (args, r.output)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"Error: {field}: "), r.stderr
    assert "is not a Docker URL" in r.stderr
    if json_too:
        verb = 2 if args[0] == "swarm" else 1
        j = CliRunner().invoke(cli, args if "--json" in args else
                               [*args[:verb], "--json", *args[verb:]])
        doc = json.loads(j.stdout)
        assert j.exit_code == 2 and doc["field"] == field and doc["hint"], j.output


@pytest.fixture
def no_engine(monkeypatch, tmp_path):
    """Nothing may reach an Engine; the store is empty."""
    monkeypatch.setattr(cli_swarm, "engine", lambda: pytest.fail("an Engine was asked"))
    monkeypatch.setattr(common, "store", lambda: state.StateStore(tmp_path / "store"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)


@pytest.mark.parametrize("url", ["tcp://256.1.1.1:99999", "tcp://host:abc", "tcp://[::1",
                                 "ssh://u@h", "tcp://a..b:2375"])
def test_every_verb_refuses_a_bad_docker_option(no_engine, url):
    scenario = str(SCENARIOS / "hello-a.yaml")
    _refused(["swarm", "export", "--docker", url], "--docker")
    _refused(["swarm", "diff", scenario, "--docker", url], "--docker")
    _refused(["trace", "--docker", url, "127.0.0.1:5000"], "--docker")
    _refused(["up", scenario, "--tasks", "containers", "--docker", url], "--docker", json_too=False)


@pytest.mark.parametrize("url", ["tcp://256.1.1.1:99999", "tcp://host:abc", "tcp://[::1"])
def test_every_verb_refuses_a_bad_docker_host(no_engine, monkeypatch, url):
    monkeypatch.setenv("DOCKER_HOST", url)
    scenario = str(SCENARIOS / "hello-a.yaml")
    _refused(["swarm", "export"], "DOCKER_HOST", json_too=False)
    _refused(["swarm", "export", "--json"], "DOCKER_HOST")
    _refused(["swarm", "diff", scenario, "--json"], "DOCKER_HOST")
    _refused(["trace", "--docker", "127.0.0.1:5000"], "DOCKER_HOST")
    _refused(["up", scenario, "--tasks", "containers"], "DOCKER_HOST", json_too=False)


@pytest.mark.parametrize("url", ["tcp://256.1.1.1:99999", "tcp://host:abc", "tcp://[::1"])
def test_down_of_a_lab_recording_a_bad_url_removes_the_rest(tmp_path, monkeypatch, url):
    store, fake = state.StateStore(tmp_path / "store"), FakeHost()
    lifecycle.up(load_lab(SCENARIOS / "hello-a.yaml"), "hello-a.yaml", store, "legacy",
                 host=fake.host(), tasks="containers", docker="unix:///run/d.sock")
    st = store.load("hello-a")
    st.docker = url
    store.save(st)
    assert store.load("hello-a").docker == url          # the state file still reads
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(common, "host", fake.host)
    r = CliRunner().invoke(cli, ["down", "--all"])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    left = [line for line in r.stderr.splitlines() if "containers left" in line]
    assert len(left) == 1 and url[:20] in left[0] and "docker rm" in left[0], r.stderr
    assert fake.namespaces == set() and store.load("hello-a") is None
    assert fake.docker_urls == ["unix:///run/d.sock"]      # only up's: down connected to nothing
