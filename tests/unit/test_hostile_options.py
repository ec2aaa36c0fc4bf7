"""Hostile counts, durations, service names and targets on every verb that takes them.

Each case runs the real CLI (CliRunner) against a lab that is "up" in a
temporary store (a fake host), and must give exit 2, one line on stderr
naming the option or argument, a JSON document with ``--json``, and no
traceback; nothing may be sent (no socket is opened by these refusals).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from netlab import lifecycle, state
from netlab.cli import common
from netlab.cli.main import cli
from netlab.cli.params import Count, Duration, count_text, seconds_text
from netlab.errors import BadInput
from netlab.plan.dnsname import name_problem
from netlab.scenario import load_lab
from tests.unit.fakes import FakeHost

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"

# What Python's int()/float() take but a count or a duration is not.
BAD_COUNTS = ["٣", "１０", "1_000", "+3", "-1", " 3", "3 ", "0x10", "1e3", "3.0", "", "nan",
              "²", "৪", "10" * 30]
BAD_SECONDS = ["nan", "NaN", "inf", "-inf", "Infinity", "-1", "0", "0.0", "1e1", "1_0", "٣",
               "１", "+2", " 2", "", ".", "1.2.3", "0x1", "99999999999999999999999"]


@pytest.fixture
def lab(tmp_path, monkeypatch):
    """east-west up in a temporary store (a fake host); no socket may open."""
    scenario = tmp_path / "east-west.yaml"
    shutil.copy(SCENARIOS / "east-west.yaml", scenario)
    store = state.StateStore(tmp_path / "store")
    lifecycle.up(load_lab(scenario), str(scenario), store, "legacy", host=FakeHost().host())
    monkeypatch.setattr(common, "store", lambda: store)

    def no_socket(*_a, **_k):
        raise AssertionError("a socket was opened for a refused input")
    # curl, load and trace make their sockets through the kernel reader only.
    monkeypatch.setattr("netlab.kernel.reader.LinuxReader.socket_in", no_socket)
    monkeypatch.setattr("netlab.kernel.reader.LinuxReader.run_in", no_socket)
    monkeypatch.setattr("netlab.trace.run.Tracer.once", no_socket)
    return store


def refused(args: list[str], field: str, as_json: bool = True) -> dict:
    """Run ``netlab ARGS`` (and ``--json ARGS`` when the verb has it): exit 2 naming
    ``field``, one line, a JSON document."""
    r = CliRunner().invoke(cli, args)
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)
    assert r.exit_code == 2, (args, r.output)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"Error: {field}: "), (args, r.stderr)
    assert "Traceback" not in r.output
    if not as_json:
        return {}
    j = CliRunner().invoke(cli, [args[0], "--json", *args[1:]])
    assert j.exit_code == 2, (args, j.output)
    doc = json.loads(j.stdout)
    assert doc["field"] == field and doc["exit_code"] == 2 and doc["error"] and doc["hint"]
    return doc


# ---- the parameter types themselves -------------------------------------------------

@pytest.mark.parametrize("text", BAD_COUNTS)
def test_a_count_is_ascii_digits_in_range(text):
    with pytest.raises(BadInput, match=r"^-n: .* is not a whole number from 1 to 1,000 \(hint: "):
        count_text(text, "-n", 1, 1000, "-n 5")


@pytest.mark.parametrize("text", BAD_SECONDS)
def test_seconds_are_finite_plain_decimals_above_zero(text):
    with pytest.raises(BadInput, match=r"^--timeout: .* is not a number of seconds from 0.1 to 60"):
        seconds_text(text, "--timeout", 0.1, 60, "--timeout 3")


def test_good_counts_and_seconds_and_code_defaults_pass():
    assert count_text("007", "-n", 1, 1000, "") == 7
    assert [seconds_text(t, "-d", 0.1, 60, "") for t in ("3", "0.5", ".5", "60", "2.50")] == \
        [3.0, 0.5, 0.5, 60.0, 2.5]
    assert Count(1, 10, "3").convert(3, None, None) == 3
    assert Duration(0.1, 60, "3").convert(3.0, None, None) == 3.0
    with pytest.raises(BadInput):
        Count(1, 10, "3").convert(True, None, None)       # a bool is no count
    with pytest.raises(BadInput):
        Duration(0.1, 60, "3").convert(float("nan"), None, None)
    with pytest.raises(ValueError):
        Duration(0, 60, "3")


def test_every_count_and_duration_option_uses_the_shared_types():
    """No verb parses a count or seconds its own way (click.INT/FLOAT take ٣, 1_000, nan)."""
    loose = (click.types.IntParamType, click.types.FloatParamType)
    ctx = click.Context(cli)
    commands = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}
    for name, command in commands.items():
        for param in command.params:
            assert not isinstance(param.type, loose), (name, param.name, param.type)
    for verb, option, kind in [("curl", "count", Count), ("curl", "timeout", Duration),
                               ("trace", "repeat", Count), ("trace", "timeout", Duration),
                               ("load", "requests", Count), ("load", "concurrency", Count),
                               ("load", "duration", Duration), ("load", "timeout", Duration),
                               ("vm", "cpus", Count), ("vm", "timeout", Duration)]:
        param = next(p for p in commands[verb].params if p.name == option)
        assert isinstance(param.type, kind), (verb, option)


@pytest.mark.parametrize("verb", ["curl", "trace", "load", "scale", "vm"])
def test_help_names_the_kinds(verb):
    r = CliRunner().invoke(cli, [verb, "--help"])
    assert r.exit_code == 0 and r.exception is None, r.output
    if verb in ("curl", "trace", "load"):
        assert "--timeout S" in r.output and " N " in r.output


# ---- through the CLI ------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--timeout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "-inf", "1e400"])
@pytest.mark.parametrize("verb", ["curl", "trace", "load"])
def test_timeouts_that_are_no_durations(lab, verb, option, value):
    doc = refused([verb, "east-west", "node1:8080", option, value], option)
    assert "seconds" in doc["error"]


@pytest.mark.parametrize("args, field", [
    (["load", "east-west", "node1:8080", "-n", "٣"], "--requests"),
    (["load", "east-west", "node1:8080", "-n", "1_000"], "--requests"),
    (["load", "east-west", "node1:8080", "-c", "１０"], "--concurrency"),
    (["load", "east-west", "node1:8080", "-c", "1001"], "--concurrency"),
    (["load", "east-west", "node1:8080", "-d", "nan"], "--duration"),
    (["load", "east-west", "node1:8080", "-d", "inf"], "--duration"),
    (["curl", "east-west", "node1:8080", "-n", "٣"], "--count"),
    (["curl", "east-west", "node1:8080", "-n", "1_0"], "--count"),
    (["curl", "east-west", "node1:8080", "-n", "0"], "--count"),
    (["trace", "east-west", "node1:8080", "-n", "１"], "--repeat"),
    (["trace", "east-west", "node1:8080", "-n", "101"], "--repeat"),
])
def test_counts_and_durations_through_the_cli(lab, args, field):
    refused(args, field)


@pytest.mark.parametrize("arg", ["web=٣", "web=１０", "web=1_000", "web=+3", "web=999999",
                                 "web=10001", "web= 3", "web=3.0"])
def test_scale_counts(lab, arg):
    refused(["scale", "east-west", arg], "SERVICE=N", as_json=False)   # scale has no --json


@pytest.mark.parametrize("value", ["0", "nan", "inf", "-5", "1_800", "٣"])
def test_vm_timeout_and_cpus(value):
    for option in ("--timeout", "--cpus"):
        r = CliRunner().invoke(cli, ["vm", option, value, "--", "true"])
        assert r.exit_code == 2 and r.stderr.startswith(f"Error: {option}: "), r.output


# ---- service names that are no DNS names ------------------------------------------------

BAD_NAMES = ["a..b", "a" * 64, ".api", "api..", "-api", "api-", "a_b", "bücher", "a b",
             "ap\u200bi", ".".join(["a" * 60] * 5), "*", "a/b", "1.2.3.256", "999"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_no_dns_name_is_a_name_problem(name):
    assert name_problem(name) is not None


@pytest.mark.parametrize("name", ["api", "tasks.api", "API", "api.", "a" * 63,
                                  ".".join(["a" * 63] * 3 + ["a" * 61]), "web-1", "x1"])
def test_dns_names_pass(name):
    assert name_problem(name) is None


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("verb, field", [("curl", "SERVICE:PORT"), ("load", "TARGET"),
                                          ("trace", "SERVICE:PORT")])
def test_service_names_that_are_no_dns_names_from_a_task(lab, verb, field, name):
    if verb == "trace" and "/" in name:
        field = "NODE:PORT"     # trace reads what follows a / as the protocol
    doc = refused([verb, "--from", "web.1", "east-west", "--", f"{name}:80"], field)
    if field == "NODE:PORT":
        return
    assert "DNS" in doc["error"] or "digits" in doc["error"] or "empty" in doc["error"]


# ---- trace's protocol --------------------------------------------------------------------

@pytest.mark.parametrize("target", ["node1:8080/", "node1:8080/TCP", "node1:8080/sctp",
                                    "node1:8080/tcp/", "node1:8080//udp", "node1:/tcp"])
def test_trace_refuses_an_empty_or_unknown_protocol(lab, target):
    doc = refused(["trace", "east-west", target], "NODE:PORT")
    assert "tcp|udp" in doc["error"] or "NODE:PORT" in doc["error"]


@pytest.mark.parametrize("target", ["192.168.77.1:5000/", "192.168.77.1:5000/TCP",
                                    "192.168.77.1:٣", "192.168.77.1:５０００", "192.168.77.1:00005000",
                                    "192.168.77.1:+80", "192.168.77.1:5000//udp"])
def test_trace_docker_refuses_what_trace_refuses(monkeypatch, target):
    """The real node's NODE_ADDRESS:PORT reads as a lab's NODE:PORT does."""
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.setattr("netlab.docker.connect.connect",
                        lambda *_a: pytest.fail("an Engine was asked"))
    refused(["trace", "--docker", target], "NODE_ADDRESS:PORT")
