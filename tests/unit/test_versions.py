"""The version a task answers with: its service's image in the app's endpoints and
replies, and in what ``netlab curl`` and ``netlab load`` show when there is more than one."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from netlab import client, ipam, lifecycle
from netlab.cli import curl as curl_cli
from netlab.cli import load as load_cli
from netlab.cli.main import cli
from netlab.client import Reply
from netlab.load import engine, report
from netlab.load.engine import Outcome
from netlab.model import Service, image_tag
from netlab.scenario import load_lab
from netlab.workload.endpoints import AppEndpoint, endpoints_from_json, endpoints_to_json
from netlab.workload.http import reply_body, reply_fields, version_label
from tests.unit import test_load
from tests.unit.test_scenario import SCENARIOS

EP = AppEndpoint("nl-t.web.1", "web", "web.1", "node1", "10.0.0.5", 80)


# --- the model and the app's reply -------------------------------------------------

@pytest.mark.parametrize("image, version", [
    ("web:2", "2"), ("web:latest", "latest"), ("web", "latest"),
    ("registry:5000/web", "latest"), ("registry:5000/team/web:1.4", "1.4"),
    ("web:2@sha256:abcd", "2"), ("netlab/app:latest", "latest"),
])
def test_version_is_the_images_tag(image, version):
    assert image_tag(image) == version
    assert Service("web", 1, image=image).version == version


def test_a_reply_says_image_and_version_when_the_endpoint_has_an_image():
    ep = AppEndpoint("nl-t.web.1", "web", "web.1", "node1", "10.0.0.5", 80, image="web:2")
    fields = reply_fields(ep, "10.0.0.2", 40000, "/")
    assert (fields["image"], fields["version"]) == ("web:2", "2")
    assert json.loads(reply_body(ep, "10.0.0.2", 40000, "/"))["version"] == "2"
    old = reply_fields(EP, "10.0.0.2", 40000, "/")
    assert "image" not in old and "version" not in old
    assert list(fields)[:len(old)] == list(old)       # the keys before stay, in order


def test_an_endpoint_keeps_its_image_and_an_old_file_without_one_loads():
    ep = AppEndpoint("nl-t.web.1", "web", "web.1", "node1", "10.0.0.5", 80, image="web:2")
    assert endpoints_from_json(endpoints_to_json([ep])) == [ep]
    item = EP.to_dict()
    del item["image"]
    assert endpoints_from_json(json.dumps({"version": 1, "endpoints": [item]})) == [EP]


@pytest.mark.parametrize("image", ["web", "web 2:1", "web:", 5])
def test_an_endpoint_refuses_an_image_that_is_not_name_tag(image):
    with pytest.raises(ValueError, match="image must be empty or NAME:TAG"):
        AppEndpoint("nl-t.web.1", "web", "web.1", "node1", "10.0.0.5", 80, image=image)


def test_the_lifecycle_gives_each_endpoint_its_services_image():
    lab = load_lab(SCENARIOS / "rolling.yaml")
    eps = lifecycle.endpoints(lab, ipam.allocate(lab))
    assert {(e.task, e.image) for e in eps} == {("web.1", "web:1"), ("web.2", "web:1")}
    hello = load_lab(SCENARIOS / "hello-a.yaml")
    assert {e.image for e in lifecycle.endpoints(hello, ipam.allocate(hello))} == \
        {"netlab/app:latest"}


@pytest.mark.parametrize("version, label", [
    ("2", "v2"), ("1.4", "v1.4"), ("v2", "v2"), ("latest", "latest"), ("blue", "blue")])
def test_version_label(version, label):
    assert version_label(version) == label


# --- netlab curl ------------------------------------------------------------------

def test_curl_reads_image_and_version_from_each_reply(monkeypatch):
    bodies = iter([{"task": "web.1", "node": "node1", "image": "web:1", "version": "1"},
                   {"task": "web.2", "node": "node2", "image": "web:2", "version": "2"},
                   {"task": "web.1", "node": "node1"},
                   {"task": "web.2", "node": "node2", "version": ["not", "text"]}])
    monkeypatch.setattr(client, "http_get", lambda *a, **k: (next(bodies), 40000))
    replies = client.curl(None, "nl-t.client", "192.168.56.2", 8080, "node1:8080", 4)  # type: ignore[arg-type]
    assert [(r.image, r.version) for r in replies] == [
        ("web:1", "1"), ("web:2", "2"), (None, None), (None, None)]
    assert client.mixed_versions(r.version for r in replies)
    assert not client.mixed_versions(["1", None, "1"])


def _curl_cli(monkeypatch, replies: list[Reply], *args: str):
    monkeypatch.setattr(curl_cli.common, "store", lambda: None)
    monkeypatch.setattr(curl_cli.common, "lab_state", lambda _store, _lab: type(
        "St", (), {"targets": {"client": "nl-t.client"}})())
    monkeypatch.setattr(curl_cli, "parse_target", lambda _st, _t: ("node1", "192.168.56.2", 8080))
    monkeypatch.setattr(curl_cli, "LinuxReader", lambda: None)
    monkeypatch.setattr(curl_cli, "do_curl", lambda *a, **k: replies)
    return CliRunner().invoke(cli, ["curl", "t", "node1:8080", *args])


def _reply(seq: int, task: str, version: str | None) -> Reply:
    return Reply(seq, "node1:8080", True, "web", task, "node1", "10.0.0.5", "10.0.0.2", 40000,
                 50000, 1.0, image=f"web:{version}" if version else None, version=version)


def test_curl_lines_say_the_version_when_replies_came_from_more_than_one(monkeypatch):
    r = _curl_cli(monkeypatch, [_reply(1, "web.1", "1"), _reply(2, "web.2", "2")])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("  1  node1:8080 -> web.1 v1 on node1 (task 10.0.0.5)")
    assert lines[1].startswith("  2  node1:8080 -> web.2 v2 on node1 (task 10.0.0.5)")


def test_curl_lines_are_as_before_with_one_version(monkeypatch):
    r = _curl_cli(monkeypatch, [_reply(1, "web.1", "1"), _reply(2, "web.2", "1")])
    assert r.stdout.splitlines()[0] == ("  1  node1:8080 -> web.1 on node1 (task 10.0.0.5) "
                                        "saw client 10.0.0.2:40000  1.0 ms")


def test_curl_json_adds_image_and_version_and_keeps_every_key(monkeypatch):
    r = _curl_cli(monkeypatch, [_reply(1, "web.1", "1")], "--json")
    doc = json.loads(r.stdout)
    assert {"seq", "target", "ok", "service", "task", "node", "task_ip", "client",
            "client_port", "local_port", "elapsed_ms", "error"} < set(doc[0])
    assert (doc[0]["image"], doc[0]["version"]) == ("web:1", "1")


# --- netlab load ------------------------------------------------------------------

def ok(task: str, node: str, version: str | None) -> Outcome:
    return Outcome(100.0, 1.0, True, task=task, node=node, version=version)


def test_a_load_report_counts_replies_per_version_and_per_backend():
    outcomes = ([ok("web.1", "node1", "1")] * 3 + [ok("web.1", "node1", "2")] * 2
                + [ok("web.2", "node2", "2")] * 5 + [Outcome(100.0, 1.0, False, "reset")])
    s = report.summarize(outcomes, 100.0, 101.0)
    assert s.replies == {"web.1@node1": 5, "web.2@node2": 5}
    assert s.versions == {"1": 3, "2": 7}
    assert s.replies_by_version == {"web.1@node1": {"1": 3, "2": 2}, "web.2@node2": {"2": 5}}
    assert s.mixed_versions
    assert s.backends() == ["web.1@node1 v1 3", "web.1@node1 v2 2", "web.2@node2 v2 5"]
    assert s.version_counts() == ["v1 3", "v2 7"]


def test_a_load_report_with_one_version_is_as_before():
    s = report.summarize([ok("web.1", "node1", "1"), ok("web.2", "node2", "1"),
                          ok("web.2", "node2", None)], 100.0, 101.0)
    assert not s.mixed_versions and s.versions == {"1": 2}
    assert s.backends() == ["web.1@node1 1", "web.2@node2 2"]
    none = report.summarize([ok("web.1", "node1", None)], 100.0, 101.0)
    assert (none.versions, none.replies_by_version, none.backends()) == ({}, {}, ["web.1@node1 1"])


def test_a_backend_with_replies_that_said_no_version_keeps_their_count():
    s = report.summarize([ok("web.1", "node1", "1"), ok("web.1", "node1", None),
                          ok("web.2", "node2", "2")], 100.0, 101.0)
    assert s.backends() == ["web.1@node1 v1 1", "web.1@node1 1", "web.2@node2 v2 1"]


def test_the_load_engine_reads_the_version_of_each_reply(monkeypatch):
    monkeypatch.setattr(test_load, "EPS", [
        AppEndpoint("nl-t.web.1", "web", "web.1", "node1", "10.0.0.5", 80, image="web:1"),
        AppEndpoint("nl-t.web.2", "web", "web.2", "node2", "10.0.0.6", 80, image="web:2")])
    with test_load.server("ok") as (port, _):
        outcomes, started, ended = engine.run(test_load.spec(port, requests=10, concurrency=1))
    s = report.summarize(outcomes, started, ended)
    assert s.versions == {"1": 5, "2": 5}
    assert s.replies_by_version == {"web.1@node1": {"1": 5}, "web.2@node2": {"2": 5}}


def test_the_load_text_and_json_say_the_versions():
    s = report.summarize([ok("web.1", "node1", "1"), ok("web.2", "node2", "2")], 100.0, 101.0)
    spec = engine.LoadSpec("127.0.0.1", 8080, "node1:8080", requests=2)
    src = load_cli.target.Source("client", "nl-t.client")
    lines = load_cli.lines("t", spec, src, s, [], 0)
    assert "replies per task: web.1@node1 v1 1, web.2@node2 v2 1" in lines
    assert "replies per version: v1 1, v2 1" in lines
    doc = load_cli.document("t", spec, src, s, [], 0, [], 100.0, 101.0)
    assert doc["replies"] == {"web.1@node1": 1, "web.2@node2": 1}
    assert doc["versions"] == {"1": 1, "2": 1}
    assert doc["replies_by_version"] == {"web.1@node1": {"1": 1}, "web.2@node2": {"2": 1}}
    one = report.summarize([ok("web.1", "node1", "1")], 100.0, 101.0)
    lines = load_cli.lines("t", spec, src, one, [], 0)
    assert "replies per task: web.1@node1 1" in lines
    assert not any(line.startswith("replies per version") for line in lines)
