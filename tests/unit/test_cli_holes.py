"""Holes of ``exec``, ``graph`` and the state directory, through CliRunner and a state
file made from the seed scenario (no root, no namespace created)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab import ipam, lifecycle, state
from netlab.cli import common
from netlab.cli.main import cli
from netlab.errors import BadInput, MissingFeature
from netlab.kernel import netnsdir
from netlab.scenario import load_lab

REPO = Path(__file__).resolve().parents[2]
SEED = str(REPO / "scenarios" / "hello-a.yaml")
LAB = "hc-x"   # no namespace nl-hc-x.* exists on a machine running the unit tests


@pytest.fixture
def store(tmp_path, monkeypatch) -> state.StateStore:
    """A store holding lab hc-x's state (from the seed); the CLI uses it."""
    lab = load_lab(SEED, name_override=LAB)
    st = state.StateStore(tmp_path / "store")
    st.save(lifecycle.state_for(lab, ipam.allocate(lab), SEED))
    monkeypatch.setattr(common, "store", lambda: st)
    return st


@pytest.fixture
def ran(monkeypatch) -> list[tuple[str, tuple[str, ...]]]:
    """What exec ran: (namespace, command) per call; every namespace "exists"."""
    calls: list[tuple[str, tuple[str, ...]]] = []
    monkeypatch.setattr(netnsdir, "exists", lambda ns: True)
    monkeypatch.setattr(netnsdir, "exec_in", lambda ns, cmd: calls.append((ns, tuple(cmd))))
    return calls


def _one_line(r, exit_code: int) -> str:
    assert r.exit_code == exit_code, r.output
    assert "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.output
    return lines[0]


# -- exec: everything after TARGET is the command ------------------------------------------

@pytest.mark.parametrize("args, command", [
    (["node1", "ls", "--help"], ("ls", "--help")),
    (["node1", "--", "ls", "--help"], ("ls", "--help")),
    (["node1", "ip", "-j", "addr"], ("ip", "-j", "addr")),
    (["node1/ingress_sbox", "--", "--", "x"], ("--", "x")),     # only the first -- goes
    (["client", "sh", "-c", "echo --json"], ("sh", "-c", "echo --json")),
    (["--", "node1", "ls", "-l"], ("ls", "-l")),                 # LAB -- TARGET CMD
])
def test_exec_runs_everything_after_target(store, ran, args, command):
    r = CliRunner().invoke(cli, ["exec", LAB, *args])
    assert r.exit_code == 0, r.output
    assert "Usage:" not in r.output
    target = next(a for a in args if a != "--").replace("/", ".")
    assert ran == [(f"nl-{LAB}.{target}", command)]


def test_exec_help_is_still_netlabs_before_the_lab(store, ran):
    r = CliRunner().invoke(cli, ["exec", "--help"], prog_name="netlab")
    assert r.exit_code == 0 and "Usage: netlab exec" in r.output and not ran


def test_exec_of_nothing_is_bad_input(store, ran):
    line = _one_line(CliRunner().invoke(cli, ["exec", LAB, "node1", "--"]), 2)
    assert line.startswith("Error: CMD: ") and not ran


def test_exec_into_a_namespace_that_is_gone_says_so_and_runs_nothing(store, monkeypatch):
    # The real check: nl-hc-x.node1 does not exist here.
    assert not os.path.exists("/var/run/netns/nl-hc-x.node1")

    def forbidden(*_a):
        raise AssertionError("exec ran a command in a missing namespace")

    monkeypatch.setattr(netnsdir, "exec_in", forbidden)
    r = CliRunner().invoke(cli, ["exec", LAB, "node1", "--", "true"])
    line = _one_line(r, 1)
    assert "nl-hc-x.node1" in line and "is gone" in line
    assert f"netlab status {LAB}" in line and "netlab up" in line


def test_exec_in_replaces_the_process_with_ip_netns_exec(tmp_path):
    fake_ip = tmp_path / "ip"
    fake_ip.write_text('#!/bin/sh\nprintf "%s|" "$@"\n')
    fake_ip.chmod(0o755)
    code = ("from netlab.kernel import netnsdir\n"
            "netnsdir.exec_in('nl-hc-x.node1', ['ls', '--help'])\n"
            "print('not replaced')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PATH": str(tmp_path)}, cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "netns|exec|nl-hc-x.node1|ls|--help|"


def test_exec_in_without_ip_is_a_missing_feature(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingFeature, match="iproute2"):
        netnsdir.exec_in("nl-hc-x.node1", ["true"])
    with pytest.raises(netnsdir.NetnsError, match="not a plain name"):
        netnsdir.exec_in("../x", ["true"])


# -- NETLAB_STATE_DIR -----------------------------------------------------------------------

def test_state_root_reads_the_variable_when_the_store_is_made():
    assert state.state_root({}) == Path("/run/netlab")
    assert state.state_root({"NETLAB_STATE_DIR": "/tmp/hc-s"}) == Path("/tmp/hc-s")
    for bad, what in (("", "empty"), ("store", "relative"), ("./store", "relative")):
        with pytest.raises(BadInput, match=f"^NETLAB_STATE_DIR: .*{what}") as err:
            state.state_root({"NETLAB_STATE_DIR": bad})
        assert err.value.details()["field"] == "NETLAB_STATE_DIR"


@pytest.mark.parametrize("value", ["", "store", "."])
@pytest.mark.parametrize("verb", [["status"], ["down", "--all"], ["curl", LAB, "node1:80"],
                                  ["exec", LAB, "node1", "true"], ["graph", LAB]])
def test_an_empty_or_relative_state_dir_is_refused_and_nothing_is_made(
        tmp_path, monkeypatch, value, verb):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NETLAB_STATE_DIR", value)
    line = _one_line(CliRunner().invoke(cli, verb), 2)
    assert line.startswith("Error: NETLAB_STATE_DIR: ") and "(hint: " in line
    assert list(tmp_path.iterdir()) == []


def test_a_bad_state_dir_with_json_is_a_document(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NETLAB_STATE_DIR", "")
    r = CliRunner().invoke(cli, ["status", "--json"])
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["field"] == "NETLAB_STATE_DIR" and doc["exit_code"] == 2


def test_an_absolute_state_dir_is_used(tmp_path, monkeypatch):
    root = tmp_path / "store"
    monkeypatch.setenv("NETLAB_STATE_DIR", str(root))
    assert state.StateStore().root == root
    lab = load_lab(SEED, name_override=LAB)
    state.StateStore().save(lifecycle.state_for(lab, ipam.allocate(lab), SEED))
    assert (root / f"{LAB}.json").is_file()


# -- graph: a file named like a lab does not shadow the lab ---------------------------------

def test_graph_prefers_the_lab_to_a_file_of_its_name(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / LAB).write_text("not: [a scenario\n")
    r = CliRunner().invoke(cli, ["graph", LAB])
    assert r.exit_code == 0, r.output
    assert f"nl-{LAB}.node1" in r.output
    # ./NAME is the file (and this one is no scenario)
    line = _one_line(CliRunner().invoke(cli, ["graph", f"./{LAB}"]), 2)
    assert LAB in line


def test_graph_reads_a_file_of_a_lab_name_when_no_such_lab_is_up(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hc-y").write_text(Path(SEED).read_text())
    r = CliRunner().invoke(cli, ["graph", "hc-y"])
    assert r.exit_code == 0, r.output
    assert "nl-hello-a.node1" in r.output   # the scenario's own lab name


def test_graph_of_a_yaml_name_is_a_file_even_when_missing(store, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = _one_line(CliRunner().invoke(cli, ["graph", "hc-x.yaml"]), 2)
    assert "hc-x.yaml" in line


def test_graph_help_states_the_rule():
    r = CliRunner().invoke(cli, ["graph", "--help"])
    assert "./NAME" in r.output and ".yaml" in r.output


# -- exec reads the state without decoding the model ----------------------------------------

def test_parse_targets_reads_what_parse_reads_without_the_model(store):
    from netlab import statedoc
    raw = store.path(LAB).read_bytes()
    full, light = statedoc.parse(LAB, raw), statedoc.parse_targets(LAB, raw)
    assert (light.lab, light.scenario, light.netns, light.targets) == (
        full.lab, full.scenario, full.netns, full.targets)
    assert light.targets["node1"] == f"nl-{LAB}.node1"
    # a namespace outside the lab is refused as parse refuses it
    doc = json.loads(raw)
    doc["targets"]["node1"] = "nl-other.node1"
    for reader in (statedoc.parse, statedoc.parse_targets):
        with pytest.raises(statedoc.Bad, match=r"targets\['node1'\]"):
            reader(LAB, json.dumps(doc).encode())
