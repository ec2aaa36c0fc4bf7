"""Bad input never hurts: every malformed scenario through the real CLI.

Each case goes through ``netlab validate``, ``netlab plan`` (also with
``--json``) and ``netlab up`` via Click's CliRunner and must give exit 2, no
exception escaping Click, the field path in the message and, for ``up``,
nothing done. Times are measured, never asserted; the run prints the slowest
cases at the end (see conftest.py).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from netlab import lifecycle
from netlab.cli.main import cli

VALID = """\
name: lab
nodes:
  node1: {role: manager}
  node2: {role: worker, availability: active}
services:
  web:
    deploy:
      replicas: 2
      placement: {constraints: ["node.role==worker"]}
    ports:
      - "8080:80"
      - {published: 9053, target: 53, protocol: udp, mode: ingress}
ingress: {subnet: 10.0.0.0/24, vni: 4096, mtu: 1450}
underlay: {lan: 192.168.56.0/24, gwbridge: 172.18.0.0/16, data_path_port: 4789, lan_mtu: 1500}
"""

HEAD = "name: t\nnodes: {n1: {role: manager}}\n"


def with_service(body: str) -> str:
    return HEAD + "services:\n  web:\n" + body


def invoke(args: list[str], timings: list, case: str) -> Result:
    """Run ``netlab ARGS``; nothing may escape Click but its own exit."""
    start = time.perf_counter()
    result = CliRunner().invoke(cli, args)
    timings.append((time.perf_counter() - start, f"{args[0]} {case}"))
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
    return result


def assert_refused(path: Path, field: str, needle: str, timings: list, case: str,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """validate, plan, plan --json and up all exit 2 naming ``field``; up does nothing."""
    def forbidden(*_a, **_k):
        raise AssertionError("up went past a malformed scenario")
    monkeypatch.setattr(lifecycle, "up", forbidden)
    for verb in ("validate", "plan", "up"):
        r = invoke([verb, str(path)], timings, case)
        assert r.exit_code == 2, (verb, r.output)
        assert needle in r.stderr, (verb, r.stderr)
        lines = [line for line in r.stderr.splitlines() if field in line]
        assert lines, (verb, field, r.stderr)
        assert all(str(path) in line for line in lines)
    r = invoke(["plan", "--json", str(path)], timings, case)
    assert r.exit_code == 2
    doc = json.loads(r.stdout)
    assert doc["exit_code"] == 2 and doc["error"] and "hint" in doc and "field" in doc


# --- things that are not a scenario file at all ------------------------------

def _fifo(tmp: Path) -> Path:
    os.mkfifo(tmp / "fifo.yaml")
    return tmp / "fifo.yaml"


def _sparse(tmp: Path) -> Path:
    path = tmp / "big.yaml"
    with open(path, "wb") as f:
        f.truncate(50 << 20)
    return path


def _just_over(tmp: Path) -> Path:
    path = tmp / "over.yaml"
    path.write_bytes(HEAD.encode() + b"#" * (1 << 20))
    return path


def _write(name: str, data: bytes):
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name
    return make


def _symlink_to_zero(tmp: Path) -> Path:
    (tmp / "zero.yaml").symlink_to("/dev/zero")
    return tmp / "zero.yaml"


FILE_KINDS = [
    ("a directory", lambda tmp: tmp, "directory"),
    ("a FIFO", _fifo, "FIFO"),
    ("/dev/zero", lambda tmp: Path("/dev/zero"), "character device"),
    ("a symlink to /dev/zero", _symlink_to_zero, "character device"),
    ("50 MB", _sparse, "at most"),
    ("1 MiB and a bit", _just_over, "at most"),
    ("binary junk", _write("junk.yaml", bytes(range(256)) * 64), "NUL byte"),
    ("UTF-16", _write("u16.yaml", HEAD.encode("utf-16")), "NUL byte"),
    ("Latin-1", _write("latin.yaml", b"name: caf\xe9\n"), "not UTF-8"),
    ("missing", lambda tmp: tmp / "nope.yaml", "no such file"),
]


@pytest.mark.parametrize("case, make, needle", FILE_KINDS, ids=[c[0] for c in FILE_KINDS])
def test_not_a_scenario_file(tmp_path, timings, monkeypatch, case, make, needle):
    path = make(tmp_path)
    assert_refused(path, str(path), needle, timings, case, monkeypatch)
