"""``netlab up --tasks containers`` through a fake kernel, host and container runtime (no
root, no Docker): which containers run, in what order they are adopted and wired, what
the app still serves, and that ``scale`` and ``down`` remove them by id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import converge, lifecycle, state
from netlab.cli import common
from netlab.cli.main import cli
from netlab.docker import tasks as ctasks
from netlab.errors import BadInput, MissingFeature, NetlabError
from netlab.ipam import allocate
from netlab.scenario import load_lab
from tests.unit.fakes import FakeHost

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = REPO / "scenarios"
NS = "nl-hello-a."


@pytest.fixture
def store(tmp_path):
    return state.StateStore(tmp_path / "store")


def up(store, fake, tasks="containers", scenario="hello-a.yaml", docker=None):
    return lifecycle.up(load_lab(SCENARIOS / scenario), str(SCENARIOS / scenario), store,
                        "legacy", host=fake.host(), tasks=tasks, docker=docker)


def test_specs_of_the_seed_name_serve_and_label_each_task():
    lab = load_lab(SCENARIOS / "hello-a.yaml")
    specs = ctasks.specs(lab, allocate(lab))
    assert [(s.name, s.task, s.node, s.ports) for s in specs] == [
        (NS + "hello-a.1", "hello-a.1", "node1", (3000,)),
        (NS + "hello-a.2", "hello-a.2", "node2", (3000,))]
    assert specs[0].labels == {"netlab.lab": "hello-a", "netlab.task": "hello-a.1",
                               "netlab.address": specs[0].task_ip}
    assert specs[0].environment == {"SERVICE": "hello-a", "NODE": "node1",
                                    "TASK_IP": "10.0.0.5", "PORTS": "3000"}


def test_up_adopts_each_container_before_wiring_and_keeps_only_dns_in_the_app(store):
    fake = FakeHost()
    result = up(store, fake, docker="unix:///run/d.sock")
    rt = fake.runtime
    assert fake.docker_urls == ["unix:///run/d.sock"]
    assert sorted(s.name for s in rt.containers.values()) == [NS + "hello-a.1", NS + "hello-a.2"]
    assert sorted(fake.kernel.adopted) == [NS + "hello-a.1", NS + "hello-a.2"]
    kinds = [s[0] for s in fake.kernel.steps]
    assert kinds.index("apply") > max(i for i, k in enumerate(kinds) if k == "adopt")
    # The containers serve tcp/3000; netlab's app keeps each task's embedded DNS only.
    assert fake.started == [[]]
    assert sorted(d.task for d in fake.dns[0]) == ["hello-a.1", "hello-a.2"]
    st = store.load("hello-a")
    assert st.tasks == "containers" and st.docker == "unix:///run/d.sock"
    assert st.containers == {s.name: cid for cid, s in rt.containers.items()}
    assert result.supervisor_pid in fake.supervisors


def test_up_again_converges_without_new_containers(store):
    fake = FakeHost()
    up(store, fake)
    first = dict(store.load("hello-a").containers)
    up(store, fake)
    assert store.load("hello-a").containers == first
    assert len(fake.runtime.containers) == 2 and fake.runtime.removed == []


def test_missing_image_or_docker_is_exit_3_before_any_change(store):
    fake = FakeHost()
    fake.containers(None).images.clear()
    with pytest.raises(MissingFeature, match="netlab/task:latest is missing"):
        up(store, fake)
    down = FakeHost(docker_down=True)
    with pytest.raises(MissingFeature, match="no Docker daemon answers"):
        up(store, down)
    assert store.load("hello-a") is None
    assert fake.namespaces == set() and down.namespaces == set()


def test_tasks_mode_cannot_change_under_a_running_lab(store):
    fake = FakeHost()
    up(store, fake, tasks="namespaces")
    with pytest.raises(BadInput, match="--tasks: lab hello-a is up with its tasks as namespaces"):
        up(store, fake)
    assert fake.runtime is None        # never asked Docker


def test_a_container_that_never_listens_fails_up_naming_it(store, monkeypatch):
    fake = FakeHost()
    fake.containers(None).serve = False
    monkeypatch.setattr(lifecycle, "APP_READY_TIMEOUT", 0.0)
    with pytest.raises(NetlabError, match=r"task hello-a.1 .*tcp/3000.*docker logs nl-hello-a.hello-a.1"):
        up(store, fake)
    # What it made is recorded: down removes it.
    assert len(store.load("hello-a").containers) == 2
    assert lifecycle.down("hello-a", store, fake.host()).containers_removed == 2


def test_scale_starts_then_removes_a_container_in_libnetworks_order(store):
    fake = FakeHost()
    up(store, fake)
    rt, k = fake.runtime, fake.kernel
    converge.scale("hello-a", {"hello-a": 3}, store, host=fake.host())
    new = NS + "hello-a.3"
    assert new in store.load("hello-a").containers
    steps = k.steps[k.steps.index(("create", new)):]
    # adopted, wired at weight 0, served, and only then weight 1
    assert [s[0] for s in steps][:3] == ["create", "adopt", "apply"]
    w1 = [i for i, s in enumerate(steps) if s[0] == "weight" and s[-1] == 1]
    assert w1 and w1[0] > [s[0] for s in steps].index("apply")
    converge.scale("hello-a", {"hello-a": 2}, store, host=fake.host())
    st = store.load("hello-a")
    assert new not in st.containers and new not in fake.namespaces
    steps = k.steps
    assert steps.index(("remove", new)) < steps.index(("teardown", [new]))
    assert max(i for i, s in enumerate(steps) if s[0] == "weight" and s[-1] == 0) \
        < steps.index(("remove", new))
    assert sorted(s.name for s in rt.containers.values()) == [NS + "hello-a.1", NS + "hello-a.2"]


def test_down_removes_recorded_and_labelled_containers_only(store):
    fake = FakeHost()
    up(store, fake)
    rt = fake.runtime
    rt.strays = {"f" * 64: "hello-a", "e" * 64: "other-lab"}
    result = lifecycle.down("hello-a", store, fake.host())
    assert result.containers_removed == 3 and result.containers_left is None
    assert rt.containers == {} and rt.strays == {"e" * 64: "other-lab"}
    assert fake.namespaces == set()


def test_down_of_a_namespaces_lab_never_asks_docker(store):
    fake = FakeHost()
    up(store, fake, tasks="namespaces")
    assert lifecycle.down("hello-a", store, fake.host()).containers_removed == 0
    assert fake.docker_urls == []


def test_down_with_docker_gone_removes_the_rest_and_says_what_is_left(store):
    fake = FakeHost()
    up(store, fake)
    fake.docker_down = True
    result = lifecycle.down("hello-a", store, fake.host())
    assert result.containers_left.startswith("2 task containers left: --docker: no Docker")
    assert fake.namespaces == set() and store.load("hello-a") is None


def test_state_keeps_mode_url_and_ids_and_refuses_a_bad_id(store, tmp_path):
    fake = FakeHost()
    up(store, fake, docker="tcp://10.1.2.3:2375")
    st = store.load("hello-a")
    assert (st.tasks, st.docker) == ("containers", "tcp://10.1.2.3:2375")
    st.containers[NS + "hello-a.1"] = "../../etc"
    store.save(st)
    with pytest.raises(state.CorruptState, match="not a container id"):
        store.load("hello-a")


def test_cli_up_tasks_containers_and_down(store, monkeypatch):
    fake = FakeHost()
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(common, "host", fake.host)
    r = CliRunner().invoke(cli, ["up", str(SCENARIOS / "hello-a.yaml"), "--tasks", "containers"])
    assert r.exit_code == 0, r.output
    assert "tasks run as containers of netlab/task:latest" in r.stdout
    r = CliRunner().invoke(cli, ["down", "hello-a"])
    assert r.exit_code == 0, r.output
    assert "2 task containers removed" in r.stdout


def test_cli_docker_url_without_containers_is_bad_input():
    r = CliRunner().invoke(cli, ["up", str(SCENARIOS / "hello-a.yaml"), "--docker", "unix:///x"])
    assert r.exit_code == 2 and "--docker: only tasks run as containers use Docker" in r.stderr


def test_status_names_each_tasks_container(store, monkeypatch):
    fake = FakeHost()
    monkeypatch.setattr(common, "store", lambda: store)
    monkeypatch.setattr(common, "host", fake.host)
    up(store, fake)
    ids = store.load("hello-a").containers
    r = CliRunner().invoke(cli, ["status", "hello-a", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["tasks_as"] == "containers"
    assert {t["name"]: t["container"] for t in doc["tasks"]} == {
        "hello-a.1": ids[NS + "hello-a.1"], "hello-a.2": ids[NS + "hello-a.2"]}
    r = CliRunner().invoke(cli, ["status", "hello-a"])
    assert f"container {ids[NS + 'hello-a.1'][:12]}" in r.stdout


def test_node_down_restarts_its_task_in_a_new_container_elsewhere(store):
    fake = FakeHost()
    up(store, fake)
    old = store.load("hello-a").containers[NS + "hello-a.2"]
    converge.node("hello-a", "node2", "down", store, host=fake.host())
    st = store.load("hello-a")
    new = st.containers[NS + "hello-a.2"]
    assert new != old and old in fake.runtime.removed
    assert fake.runtime.containers[new].node == "node1"
    assert fake.runtime.containers[new].environment["NODE"] == "node1"
