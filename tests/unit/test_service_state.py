"""A service's image, environment, restart policy, health check, update and rollback
configs in the state file: written, read back strictly, and absent in an older file."""

from __future__ import annotations

import copy
import json

import pytest

from netlab import codec, ipam, lifecycle, state
from netlab.model import DEFAULT_IMAGE, HealthCheck, RestartPolicy, UpdateConfig
from netlab.scenario import load_lab, load_lab_from_text
from tests.unit.test_scenario import SCENARIOS

EVERY_KEY = """\
name: x
nodes: {node1: {role: manager}, node2: {}}
services:
  web:
    image: registry:5000/web:2.1
    environment: {MODE: blue, WORKERS: 4, NOTE: "a b\\tc"}
    ports: ["8080:80"]
    expose: [9000]
    healthcheck:
      test: "curl -sf http://localhost:9000/ready || exit 1"
      interval: 1m30s
      timeout: 2.5s
      retries: 5
      start_period: 500ms
    deploy:
      replicas: 3
      restart_policy: {condition: on-failure, delay: 1s, max_attempts: 4, window: 2m}
      update_config: {parallelism: 0, delay: 3s, failure_action: rollback, monitor: 1s,
                      max_failure_ratio: 0.5, order: start-first}
      rollback_config: {parallelism: 2, failure_action: continue, max_failure_ratio: 1}
  plain:
    ports: ["9090:90"]
"""

NEW_KEYS = ("image", "env", "restart_policy", "healthcheck", "update_config", "rollback_config")


def _lab():
    return load_lab_from_text(EVERY_KEY, "x.yaml")


def test_every_new_field_round_trips():
    lab = _lab()
    web = lab.service("web")
    assert web.image == "registry:5000/web:2.1" and web.version == "2.1"
    assert web.env == (("MODE", "blue"), ("NOTE", "a b\tc"), ("WORKERS", "4"))
    assert web.healthcheck == HealthCheck(
        ("CMD-SHELL", "curl -sf http://localhost:9000/ready || exit 1"), 9000, "/ready",
        90.0, 2.5, 5, 0.5)
    assert web.restart_policy == RestartPolicy("on-failure", 1.0, 4, 120.0)
    assert web.update_config == UpdateConfig(0, 3.0, "rollback", 1.0, 0.5, "start-first")
    assert web.rollback_config == UpdateConfig(2, 0.0, "continue", 5.0, 1.0, "stop-first")
    doc = json.loads(json.dumps(codec.lab_to_json(lab)))
    assert codec.lab_from_json(doc) == lab
    written = doc["services"][0]
    assert written["image"] == "registry:5000/web:2.1"
    assert written["env"] == {"MODE": "blue", "NOTE": "a b\tc", "WORKERS": "4"}
    assert written["healthcheck"] == {
        "test": ["CMD-SHELL", "curl -sf http://localhost:9000/ready || exit 1"], "port": 9000,
        "path": "/ready", "interval": 90.0, "timeout": 2.5, "retries": 5, "start_period": 0.5}
    assert written["restart_policy"] == {"condition": "on-failure", "delay": 1.0,
                                         "max_attempts": 4, "window": 120.0}
    assert written["update_config"] == {"parallelism": 0, "delay": 3.0,
                                        "failure_action": "rollback", "monitor": 1.0,
                                        "max_failure_ratio": 0.5, "order": "start-first"}
    assert doc["services"][1]["healthcheck"] is None
    assert doc["services"][1]["image"] == DEFAULT_IMAGE


def test_the_state_store_keeps_them(tmp_path):
    lab = load_lab(SCENARIOS / "rolling.yaml", name_override="x")
    store = state.StateStore(tmp_path)
    store.save(lifecycle.state_for(lab, ipam.allocate(lab), "rolling.yaml"))
    loaded = store.load("x")
    assert loaded is not None and loaded.model == lab
    assert loaded.model.service("web").healthcheck == lab.service("web").healthcheck


def test_an_older_state_file_without_them_loads_with_the_defaults():
    doc = codec.lab_to_json(_lab())
    for s in doc["services"]:
        for key in NEW_KEYS:
            del s[key]
    old = codec.lab_from_json(doc)
    for s in old.services:
        assert (s.image, s.env, s.healthcheck) == (DEFAULT_IMAGE, (), None)
        assert s.restart_policy == RestartPolicy()
        assert s.update_config == s.rollback_config == UpdateConfig()
    assert old.service("web").expose == (9000,) and old.service("web").replicas == 3


def test_an_older_state_file_in_the_store_loads(tmp_path):
    lab = load_lab(SCENARIOS / "hello-a.yaml", name_override="x")
    store = state.StateStore(tmp_path)
    store.save(lifecycle.state_for(lab, ipam.allocate(lab), "hello-a.yaml"))
    path = tmp_path / "x.json"
    doc = json.loads(path.read_text())
    for s in doc["model"]["services"]:
        for key in NEW_KEYS:
            s.pop(key)
    path.write_text(json.dumps(doc))
    loaded = store.load("x")
    assert loaded is not None and loaded.model == lab


def _set(doc: dict, where: tuple, value) -> None:
    for key in where[:-1]:
        doc = doc[key]
    doc[where[-1]] = value


BAD = [
    (("image",), 5, "model.services[0].image is '5', not an image NAME:TAG"),
    (("image",), "web", "model.services[0].image is 'web', not an image NAME:TAG"),
    (("image",), "web 2:1", "not an image NAME:TAG"),
    (("env",), [["A", "1"]], "model.services[0].env must be an object"),
    (("env", "MODE"), 4, "model.services[0].env['MODE'] must be a string"),
    (("env",), {"A=B": "1"}, "has a key 'A=B' that is not a variable name"),
    (("restart_policy", "condition"), "always", "model.services[0].restart_policy.condition must be one of none, on-failure, any"),
    (("restart_policy", "delay"), -1, "model.services[0].restart_policy.delay must be a number from 0"),
    (("restart_policy", "delay"), True, "restart_policy.delay must be a number"),
    (("restart_policy", "delay"), "5s", "restart_policy.delay must be a number"),
    (("restart_policy", "max_attempts"), 1.5, "restart_policy.max_attempts must be an integer"),
    (("restart_policy", "extra"), 1, "model.services[0].restart_policy has an unknown key 'extra'"),
    (("restart_policy",), {"condition": "any"}, "model.services[0].restart_policy.delay is missing"),
    (("healthcheck", "test"), [], "model.services[0].healthcheck.test must be CMD or CMD-SHELL"),
    (("healthcheck", "test"), ["NONE"], "healthcheck.test must be CMD or CMD-SHELL"),
    (("healthcheck", "test"), ["CMD", 5], "healthcheck.test[1] must be a string"),
    (("healthcheck", "port"), 0, "model.services[0].healthcheck.port must be an integer from 1 to 65535"),
    (("healthcheck", "path"), "health", "healthcheck.path must be a URL path starting with /"),
    (("healthcheck", "interval"), float("inf"), "healthcheck.interval must be a number"),
    (("healthcheck", "retries"), -1, "healthcheck.retries must be an integer"),
    (("healthcheck",), "curl", "model.services[0].healthcheck must be an object"),
    (("update_config", "failure_action"), "stop", "update_config.failure_action must be one of pause, continue, rollback"),
    (("rollback_config", "failure_action"), "rollback", "rollback_config.failure_action must be one of pause, continue"),
    (("update_config", "max_failure_ratio"), 2, "update_config.max_failure_ratio must be a number from 0 to 1"),
    (("update_config", "order"), "any", "update_config.order must be one of stop-first, start-first"),
    (("update_config", "parallelism"), -1, "update_config.parallelism must be an integer"),
    (("rollback_config",), None, "model.services[0].rollback_config must be an object"),
]


@pytest.mark.parametrize("where, value, reason", BAD, ids=[".".join(map(str, b[0])) + f"={b[1]!r}"
                                                          for b in BAD])
def test_the_reader_is_strict_about_every_field(where, value, reason):
    doc = copy.deepcopy(codec.lab_to_json(_lab()))
    _set(doc["services"][0], where, value)
    with pytest.raises(codec.Invalid) as err:
        codec.lab_from_json(json.loads(json.dumps(doc)))
    assert reason in str(err.value)


def test_a_damaged_field_in_the_store_is_corrupt(tmp_path):
    lab = load_lab(SCENARIOS / "rolling.yaml", name_override="x")
    store = state.StateStore(tmp_path)
    store.save(lifecycle.state_for(lab, ipam.allocate(lab), "rolling.yaml"))
    path = tmp_path / "x.json"
    doc = json.loads(path.read_text())
    doc["model"]["services"][0]["update_config"]["order"] = "random"
    path.write_text(json.dumps(doc))
    with pytest.raises(state.CorruptState) as err:
        store.load("x")
    assert "model.services[0].update_config.order must be one of" in str(err.value)
