"""Click's own usage errors (a missing argument, a bad choice, an out-of-range number,
an unknown option) are netlab errors: one line on stderr, exit 2, and with --json on
the command line of a command that has it, the JSON document on stdout."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from netlab.cli.main import cli

# (arguments, the field the error names)
FORMS = [
    (["curl"], "LAB"),
    (["curl", "hc-x"], "NODE:PORT|SERVICE:PORT"),
    (["curl", "hc-x", "node1:80", "--count", "0"], "--count"),
    (["curl", "hc-x", "node1:80", "-n", "1001"], "--count"),
    (["curl", "hc-x", "node1:80", "--count", "many"], "--count"),
    (["curl", "hc-x", "node1:80", "--timeout", "0"], "--timeout"),
    (["curl", "hc-x", "node1:80", "--count"], "--count"),           # needs a value
    (["curl", "hc-x", "node1:80", "--bogus"], "--bogus"),
    (["status", "--bogus"], "--bogus"),
    (["status", "hc-x", "extra"], None),                            # an extra argument
    (["plan"], "SCENARIO"),
    (["plan", "s.yaml", "--bogus"], "--bogus"),
    (["validate"], "SCENARIO"),
    (["up", "s.yaml", "--tasks", "vms"], "--tasks"),
    (["up", "s.yaml", "--iptables", "ipfw"], "--iptables"),
    (["graph"], "LAB|SCENARIO"),
    (["graph", "hc-x", "--format", "png"], "--format"),
    (["exec"], "LAB"),
    (["exec", "hc-x"], "TARGET"),
    (["exec", "hc-x", "node1"], "CMD"),
    (["scale"], "LAB"),
    (["node", "hc-x"], "NODE"),
    (["down", "--bogus"], "--bogus"),
    (["trace"], None),   # trace's own check (LAB or --docker) or Click's: one line either way
    (["load"], "LAB"),
    (["vm", "--cpus", "two", "--", "true"], "--cpus"),
    (["vm", "--kvm", "maybe", "--", "true"], "--kvm"),
    (["vm"], "COMMAND"),
    (["swarm", "diff", "--bogus"], "--bogus"),
    (["swarm", "exprt"], "COMMAND"),
    (["nosuch"], "COMMAND"),
    (["--bogus"], "--bogus"),
]


def _one_line_error(r, field: str | None) -> str:
    assert r.exit_code == 2, (r.stdout, r.stderr)
    assert "Traceback" not in r.output and "Usage:" not in r.output, r.output
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    if field is not None:
        assert lines[0].startswith(f"Error: {field}: "), lines[0]
    assert "(hint: " in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("args, field", FORMS, ids=[" ".join(a) for a, _ in FORMS])
def test_a_usage_error_is_one_line_and_exit_2(args, field, tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "store"))
    r = CliRunner().invoke(cli, args, prog_name="netlab")
    _one_line_error(r, field)
    assert r.stdout == ""   # no --json: nothing on stdout


JSON_FORMS = [
    (["curl", "--json"], "LAB"),
    (["curl", "hc-x", "node1:80", "--count", "0", "--json"], "--count"),   # --json after
    (["curl", "hc-x", "node1:80", "--json", "--count", "0"], "--count"),   # --json before
    (["curl", "--json", "hc-x", "node1:80", "--timeout", "x"], "--timeout"),
    (["curl", "hc-x", "node1:80", "--json", "--from"], "--from"),          # needs a value
    (["curl", "hc-x", "node1:80", "--bogus", "--json"], "--bogus"),
    (["status", "--bogus", "--json"], "--bogus"),
    (["status", "hc-x", "extra", "--json"], None),
    (["plan", "--json"], "SCENARIO"),
    (["plan", "s.yaml", "--json", "--name"], "--name"),
    (["validate", "--json"], "SCENARIO"),
    (["trace", "hc-x", "node1:80", "--json", "--bogus"], "--bogus"),
    (["load", "--json"], "LAB"),
    (["swarm", "export", "--json", "--bogus"], "--bogus"),
]


@pytest.mark.parametrize("args, field", JSON_FORMS, ids=[" ".join(a) for a, _ in JSON_FORMS])
def test_with_json_a_usage_error_is_also_a_json_document(args, field, tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "store"))
    r = CliRunner().invoke(cli, args, prog_name="netlab")
    line = _one_line_error(r, field)
    doc = json.loads(r.stdout)
    assert set(doc) == {"error", "field", "hint", "exit_code"}
    assert doc["exit_code"] == 2 and doc["field"] == field
    assert doc["error"] and doc["error"] in line and doc["hint"] in line
    # Click's own errors point at the verb's help; a count or a duration refused by
    # netlab.cli.params gives an example of the option instead.
    assert ((f"{args[0]} " in doc["hint"] and "--help" in doc["hint"])
            or doc["hint"].startswith(f"{field} ")), doc


def test_json_after_a_double_dash_or_on_a_verb_without_it_gives_no_document(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "store"))
    for args, field in ((["scale", "--json"], "--json"),      # scale has no --json
                        (["down", "--bogus", "--json"], "--bogus"),
                        (["curl", "hc-x", "node1:80", "--count", "0", "--", "--json"], None)):
        r = CliRunner().invoke(cli, args, prog_name="netlab")
        assert r.exit_code == 2, r.output
        assert r.stdout == "", (args, r.stdout)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
        if field:
            assert lines[0].startswith(f"Error: {field}: "), lines[0]


def test_messages_say_what_is_wrong_and_suggest(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "store"))
    def run(cli, args):
        return CliRunner().invoke(cli, args, prog_name="netlab")
    assert run(cli, ["curl", "hc-x", "n:1", "--count", "0"]).stderr.strip() == (
        "Error: --count: '0' is not a whole number from 1 to 1,000 (hint: --count 5)")
    assert run(cli, ["curl"]).stderr.strip() == (
        "Error: LAB: missing argument (hint: see netlab curl --help)")
    assert "did you mean status?" in run(cli, ["statu"]).stderr
    assert "did you mean --count or" in run(cli, ["curl", "hc-x", "n:1", "--coutn", "2"]).stderr
    assert "'png' is not one of 'mermaid', 'dot'" in run(cli, ["graph", "x", "--format",
                                                              "png"]).stderr


def test_no_arguments_still_print_the_help():
    for args in ([], ["swarm"]):
        r = CliRunner().invoke(cli, args, prog_name="netlab")
        assert "Usage: netlab" in r.output and "Commands:" in r.output, r.output
        assert "Traceback" not in r.output


def test_a_netlab_error_keeps_its_exit_code_and_json(tmp_path, monkeypatch):
    monkeypatch.setenv("NETLAB_STATE_DIR", str(tmp_path / "store"))
    r = CliRunner().invoke(cli, ["curl", "hc-x", "node1:80", "--json"], prog_name="netlab")
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["field"] == "LAB" and "no lab named 'hc-x'" in doc["error"]
    assert r.stderr.strip() == f"Error: LAB: {doc['error']} (hint: {doc['hint']})"
