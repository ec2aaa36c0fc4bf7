"""The CLI through Click's CliRunner: exit codes and messages, no root needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from netlab.cli.main import cli
from netlab.kernel import features, netns

REPO = Path(__file__).resolve().parents[2]
SEED = str(REPO / "scenarios" / "hello-a.yaml")


def test_plan_prints_iptables_and_ipvsadm_text():
    r = CliRunner().invoke(cli, ["plan", SEED])
    assert r.exit_code == 0, r.output
    assert "## nl-hello-a.node1.ingress_sbox" in r.output
    assert "FWM  256 rr" in r.output


def test_plan_json_is_one_document():
    r = CliRunner().invoke(cli, ["plan", SEED, "--json", "--name", "other"])
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["lab"] == "other"
    assert "nl-other.node1.ingress_sbox" in doc["rendered"]


def test_plan_of_missing_file_is_bad_input(tmp_path):
    r = CliRunner().invoke(cli, ["plan", str(tmp_path / "nope.yaml")])
    assert r.exit_code == 2


def test_up_without_ipvs_exits_3_names_netlab_vm_and_changes_nothing(monkeypatch):
    monkeypatch.setattr(features.os, "geteuid", lambda: 0)
    monkeypatch.setattr(features, "has_ipvs", lambda: False)

    def forbidden(*_a, **_k):
        raise AssertionError("up changed the kernel before checking for IPVS")

    monkeypatch.setattr(netns, "create", forbidden)
    r = CliRunner().invoke(cli, ["up", SEED])
    assert r.exit_code == 3, r.output
    assert "IPVS" in r.output and "netlab vm" in r.output
    assert "Traceback" not in r.output


def test_up_without_root_exits_3(monkeypatch):
    monkeypatch.setattr(features.os, "geteuid", lambda: 1000)
    r = CliRunner().invoke(cli, ["up", SEED])
    assert r.exit_code == 3 and "root" in r.output


def test_curl_of_unknown_lab_is_bad_input(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path))
    from netlab import state
    monkeypatch.setattr(state, "DEFAULT_ROOT", tmp_path)
    from netlab.cli import common
    monkeypatch.setattr(common, "store", lambda: state.StateStore(tmp_path))
    r = CliRunner().invoke(cli, ["curl", "nolab", "node2:5000"])
    assert r.exit_code == 2 and "LAB" in r.output


def test_every_command_is_documented_in_the_readme():
    readme = (REPO / "README.md").read_text()
    names = cli.list_commands(cli.make_context("netlab", ["--help"], resilient_parsing=True))
    assert len(names) >= 14   # the group loads its verbs lazily: cli.commands is empty
    for name in names:
        assert f"netlab {name}" in readme, name


def test_up_summary_names_nodes_marks_vips_and_tasks():
    from netlab.cli.lab import summary_lines
    from netlab.kernel.apply import ApplyStats
    from netlab.plan.build import build_plan
    from netlab.scenario import load_lab
    lab = load_lab(SEED)
    from netlab import ipam
    a = ipam.allocate(lab)
    lines = summary_lines(lab, a, build_plan(lab, a), ApplyStats(seconds=1.5, netlink_requests=7),
                          "nft")
    text = "\n".join(lines)
    assert "iptables nft" in lines[0]
    assert lines[0].startswith("lab hello-a is up: 2 nodes, 1 services, 2 tasks, 10 namespaces")
    assert "lan 192.168.56.11" in text and "ingress_sbox 10.0.0.3" in text
    assert "FWM 256 (0x100) VIP 10.0.0.4" in text
    assert "hello-a.1@node1 10.0.0.5, hello-a.2@node2 10.0.0.6" in text


def _fake_lab_store(tmp_path, monkeypatch):
    """A state file for a lab named ``x`` made from the seed scenario (no kernel involved)."""
    from netlab import lifecycle, state
    from netlab.cli import common
    from netlab.scenario import load_lab
    lab = load_lab(SEED, name_override="x")
    st = state.StateStore(tmp_path)
    from netlab import ipam
    st.save(lifecycle.state_for(lab, ipam.allocate(lab), str(SEED)))
    monkeypatch.setattr(common, "store", lambda: st)


@pytest.mark.parametrize("args, field", [
    (["trace", "nolab", "node2:5000"], "LAB"),
    (["trace", "x", "node9:5000"], "NODE:PORT"),
    (["trace", "x", "node2:http"], "NODE:PORT"),
    (["trace", "x", "node2:\u00b2"], "NODE:PORT"),          # isdigit() but not a number
    (["curl", "x", "node2:" + "5" * 5000], "NODE:PORT"),    # int() refuses 4,300+ digits
    (["curl", "x", "node2:\uff15\uff10\uff10\uff10"], "NODE:PORT"),  # full-width 5000
    (["trace", "x", "node2:5000/sctp"], "NODE:PORT"),
    (["trace", "x", "node2:5000", "--from", "nobody"], "--from"),
    (["trace", "x", "node2:5000", "--from", "hello-a.9"], "--from"),
    (["trace", "x", "node2:5000", "--json", "--format", "mermaid"], "--format"),
])
def test_trace_bad_input_exits_2_naming_the_field(tmp_path, monkeypatch, args, field):
    _fake_lab_store(tmp_path, monkeypatch)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    assert field in r.output and "hint" in r.output


@pytest.mark.parametrize("args, field", [
    (["plan", "--json", "missing.yaml"], None),
    (["validate", "--json", "missing.yaml"], None),
    (["status", "--json", "nolab"], "LAB"),
    (["curl", "--json", "nolab", "node2:5000"], "LAB"),
    (["trace", "--json", "x", "node9:5000"], "NODE:PORT"),
    (["trace", "x", "node2:5000", "--json", "--format", "mermaid"], "--format"),
])
def test_with_json_an_error_is_a_json_document_on_stdout(tmp_path, monkeypatch, args, field):
    _fake_lab_store(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, r.output
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 2 and doc["field"] == field and doc["error"] and doc["hint"]
    assert r.stderr.strip(), "the one line on stderr stays"
    assert "{" not in r.stderr


def test_without_json_an_error_is_one_line_on_stderr_only(tmp_path, monkeypatch):
    _fake_lab_store(tmp_path, monkeypatch)
    r = CliRunner().invoke(cli, ["trace", "x", "node9:5000"])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith("Error: NODE:PORT: no node 'node9'")


def test_validate_json_lists_every_issue(tmp_path):
    path = tmp_path / "two.yaml"
    path.write_text("nodes: {n1: {role: boss}}\nservices: {web: {ports: ['70000:80']}}\n")
    r = CliRunner().invoke(cli, ["validate", "--json", str(path)])
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert [i["field"] for i in doc["issues"]] == ["nodes.n1.role", "services.web.ports[0].published"]
    assert doc["field"] == "nodes.n1.role" and (doc["line"], doc["column"]) == (1, 20)
    ok = CliRunner().invoke(cli, ["validate", "--json", SEED])
    assert ok.exit_code == 0 and json.loads(ok.stdout)["tasks"] == 2


def test_main_lifts_the_open_files_soft_limit_to_the_hard_one():
    """A lab of hundreds of namespaces needs more than the usual 1024 descriptors."""
    import resource
    from netlab.cli.main import raise_open_files_limit
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, before[1]), before[1]))
        raise_open_files_limit()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        assert (soft, hard) == (before[1], before[1])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)
