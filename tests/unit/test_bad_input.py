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
import yaml
from click.testing import CliRunner, Result

from netlab import lifecycle
from netlab.cli.main import cli
from netlab.scenario import load_lab

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


# --- every field, the wrong type; every mapping, an unknown key -------------

def _paths(value: object, path: str = ""):
    """(path as the validator writes it, value) for every value in a document."""
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}.{key}" if path else key
            yield here, inner
            yield from _paths(inner, here)
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            yield f"{path}[{i}]", inner
            yield from _paths(inner, f"{path}[{i}]")


def _at(doc: object, path: str) -> tuple[object, str | int]:
    """(the container, the key or index) that ``path`` names in ``doc``."""
    steps = [int(s[1:-1]) if s.startswith("[") else s
             for s in path.replace("[", ".[").split(".") if s]
    for step in steps[:-1]:
        doc = doc[step]  # type: ignore[index]
    return doc, steps[-1]


def _replaced(doc: object, path: str, new: object) -> object:
    """A copy of ``doc`` with the value at ``path`` set to ``new``."""
    copy = json.loads(json.dumps(doc))
    parent, key = _at(copy, path)
    parent[key] = new  # type: ignore[index]
    return copy


_DOC = yaml.safe_load(VALID)
WRONG_TYPES = [
    (path, new) for path, _ in _paths(_DOC) for new in (True, 1.5, [[1]])
]
MAPPINGS = ["", *(path for path, value in _paths(_DOC) if isinstance(value, dict))]


@pytest.mark.parametrize("path, new", WRONG_TYPES, ids=[f"{p}={n!r}" for p, n in WRONG_TYPES])
def test_a_wrong_type_at_any_field(tmp_path, timings, monkeypatch, path, new):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_replaced(_DOC, path, new)))
    assert_refused(scenario, path, "", timings, f"{path}={new!r}", monkeypatch)


@pytest.mark.parametrize("path", MAPPINGS)
def test_an_unknown_key_in_any_mapping(tmp_path, timings, monkeypatch, path):
    doc = json.loads(json.dumps(_DOC))
    if path:
        parent, key = _at(doc, path)
        parent[key]["bogus_key"] = 1  # type: ignore[index]
    else:
        doc["bogus_key"] = 1
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(doc))
    field = f"{path}.bogus_key" if path else "bogus_key"
    assert_refused(scenario, field, "bogus_key", timings, f"unknown key in {path or 'top'}",
                   monkeypatch)


def test_the_valid_document_is_valid(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_DOC))
    r = CliRunner().invoke(cli, ["validate", str(scenario)])
    assert r.exit_code == 0, r.output
    assert "2 nodes, 1 services, 2 tasks" in r.stdout


# --- documents that are wrong in one way each --------------------------------

BOMB = "x-a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"x-{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, c in zip("abcdefgh", "bcdefghi", strict=True))

MALFORMED = [
    # (case, text, field path, text in the message)
    ("base-60 replicas", with_service("    deploy: {replicas: 1:00}\n    ports: ['80:80']\n"),
     "services.web.deploy.replicas", "integer"),
    ("octal replicas", with_service("    deploy: {replicas: 010}\n    ports: ['80:80']\n"),
     "services.web.deploy.replicas", "integer"),
    ("superscript digit", with_service("    ports: ['\u00b2:80']\n"),
     "services.web.ports[0].published", "not a number"),
    ("full-width digits", with_service("    ports: ['\uff18\uff10:80']\n"),
     "services.web.ports[0].published", "not a number"),
    ("full-width target", with_service("    ports: [{published: 80, target: '\uff18\uff10'}]\n"),
     "services.web.ports[0].target", "integer"),
    ("arabic-indic published", with_service("    ports: [{published: '\u0668\u0660', target: 80}]\n"),
     "services.web.ports[0].published", "integer"),
    ("a 5,000-digit port", with_service(f"    ports: ['{'8' * 5000}:80']\n"),
     "services.web.ports[0].published", "out of range"),
    ("a 5,000-digit long-form port", with_service(f"    ports: [{{published: '{'8' * 5000}', target: 80}}]\n"),
     "services.web.ports[0].published", "out of range"),
    ("5,000-digit replicas", with_service(f"    deploy: {{replicas: {'1' * 5000}}}\n    ports: ['80:80']\n"),
     "services.web.deploy.replicas", "integer"),
    ("5,000-digit quoted replicas", with_service(f"    deploy: {{replicas: '{'1' * 5000}'}}\n    ports: ['80:80']\n"),
     "services.web.deploy.replicas", "integer"),
    ("node name with a newline", 'name: t\nnodes: {"n1\\n": {role: manager}}\n',
     'nodes["n1\\n"]', "DNS label"),
    ("node name with a slash", 'name: t\nnodes: {"a/b": {role: manager}}\n', 'nodes["a/b"]', "DNS label"),
    ("node name ..", 'name: t\nnodes: {"..": {role: manager}}\n', 'nodes[".."]', "DNS label"),
    ("node name with a space", 'name: t\nnodes: {"a b": {role: manager}}\n', 'nodes["a b"]', "DNS label"),
    ("node name of 200 characters", f"name: t\nnodes: {{{'n' * 200}: {{role: manager}}}}\n",
     f"nodes.{'n' * 200}", "200 characters"),
    ("service name with a newline", HEAD + 'services: {"web\\n": {ports: ["80:80"]}}\n',
     'services["web\\n"]', "DNS label"),
    ("service name ../x", HEAD + 'services: {"../x": {ports: ["80:80"]}}\n',
     'services["../x"]', "DNS label"),
    ("lab name with a newline", 'name: "lab\\n"\nnodes: {n1: {role: manager}}\n', "name", "DNS label"),
    ("lab name of 200 characters", f"name: {'l' * 200}\nnodes: {{n1: {{role: manager}}}}\n",
     "name", "200 characters"),
    ("ingress overlaps gwbridge", HEAD + "ingress: {subnet: 172.18.0.0/24}\n", "ingress.subnet", "overlaps"),
    ("lan overlaps ingress", HEAD + "underlay: {lan: 10.0.0.0/16}\n", "underlay.lan", "overlaps"),
    ("gwbridge overlaps lan", HEAD + "underlay: {gwbridge: 192.168.0.0/16}\n", "underlay.gwbridge",
     "overlaps"),
    ("alias bomb", BOMB + HEAD, "", "alias"),
    ("deep nesting", "x-a: " + "[" * 200 + "]" * 200 + "\n" + HEAD, "", "nested"),
    ("two services publish one port",
     HEAD + "services: {a: {ports: ['5000:80']}, b: {ports: ['5000:81']}}\n",
     "services.b.ports[0].published", "already in use by service 'a'"),
    ("no manager node", "name: t\nnodes: {n1: {role: worker}, n2: {}}\n", "nodes", "manager"),
    ("sctp short", with_service("    ports: ['80:80/sctp']\n"), "services.web.ports[0].protocol", "sctp"),
    ("sctp long", with_service("    ports: [{published: 80, target: 80, protocol: sctp}]\n"),
     "services.web.ports[0].protocol", "sctp"),
    ("dnsrr", with_service("    deploy: {endpoint_mode: dnsrr}\n    ports: ['80:80']\n"),
     "services.web.deploy.endpoint_mode", "dnsrr"),
    ("a key given twice", "name: t\nname: u\nnodes: {n1: {role: manager}}\n", "name", "twice"),
    ("tab indentation", "name: t\nnodes:\n\tn1: {}\n", "", "invalid YAML"),
    ("unclosed flow", "name: t\nnodes: {n1: {role: manager}\n", "", "invalid YAML"),
    ("a tag", "name: !!python/object:os.system t\nnodes: {n1: {role: manager}}\n", "", "tag"),
    ("!!int of nothing", with_service("    ports: [{published: 80, target: !!int }]\n"), "", "cannot read"),
    ("!!float of junk", with_service("    ports: [{published: 80, target: !!float x}]\n"), "", "cannot read"),
    ("empty", "# nothing\n", "", "empty"),
    ("a list at the top", "- a\n- b\n", "", "mapping"),
    ("control character", HEAD + "x-a: \"\x07\"\n", "", "character"),
]


@pytest.mark.parametrize("case, text, field, needle", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_a_malformed_document(tmp_path, timings, monkeypatch, case, text, field, needle):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text, encoding="utf-8")
    assert_refused(scenario, field, needle, timings, case, monkeypatch)


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


# --- big inputs stay fast (measured, not asserted) --------------------------

def _one_mib(line, head: str = HEAD + "services: {web: {ports: ['80:80']}}\n") -> str:
    """``head`` plus as many ``line(i)`` as fit in 1 MiB."""
    parts, size, i = [head], len(head), 0
    while size + len(line(i)) <= (1 << 20):
        parts.append(line(i))
        size += len(parts[-1])
        i += 1
    return "".join(parts)


SERVICE = "services: {web: {ports: ['80:80']}}\n"
BIG = [
    # Just under the 20,000 values the reader takes: the slowest it gets.
    ("9,900 unknown keys", HEAD + SERVICE + "".join(f"k{i}: 1\n" for i in range(9_900)), 2),
    ("9,900 x- keys", HEAD + SERVICE + "".join(f"x-{i}: 1\n" for i in range(9_900)), 0),
    ("4,900 bad node names", "name: t\nnodes:\n"
     + "".join(f"  N_{i}: {{role: manager}}\n" for i in range(4_900)), 2),
    ("3,000 services on one port", HEAD + "services:\n"
     + "".join(f"  s{i}: {{ports: ['{i // 2 + 1}:80']}}\n" for i in range(3_000)), 2),
    ("1 MiB of x- keys", _one_mib(lambda i: f"x-{i}: 1\n"), None),
    ("1 MiB of unknown keys", _one_mib(lambda i: f"k{i}: 1\n"), 2),
    ("1 MiB flow list", "x-a: [" + "1," * ((1 << 20) // 2 - 100) + "1]\n" + HEAD, 2),
    ("1 MiB of services", _one_mib(lambda i: f"  s{i}: {{ports: ['{i % 60000 + 1}:80']}}\n",
                                   HEAD + "services:\n"), 2),
    ("1 MiB of services on one port", _one_mib(lambda i: f"  s{i}: {{ports: ['5000:80']}}\n",
                                               HEAD + "services:\n"), 2),
    ("1 MiB of nodes", _one_mib(lambda i: f"  n{i}: {{role: manager}}\n", "name: t\nnodes:\n"), 2),
]


@pytest.mark.parametrize("case, text, code", BIG, ids=[c[0] for c in BIG])
def test_a_big_document_is_answered_quickly(tmp_path, timings, case, text, code):
    scenario = tmp_path / "big.yaml"
    scenario.write_text(text)
    for verb in ("validate", "plan"):
        r = invoke([verb, str(scenario)], timings, case)
        if code is None:
            assert r.exit_code in (0, 2), r.output[-500:]
        else:
            assert r.exit_code == code, r.output[-500:]
            assert code == 0 or str(scenario) in r.stderr


# --- big but valid labs plan in time linear in their size (measured) --------

LARGE = [
    ("10,000 replicas on 2 nodes, /16", "name: big\nnodes: {n1: {role: manager}, n2: {}}\n"
     "services: {web: {deploy: {replicas: 10000}, ports: ['8080:80']}}\n"
     "ingress: {subnet: 10.1.0.0/16}\n"),
    ("ingress 32.0.0.0/3, gwbridge /8", HEAD + "services: {web: {ports: ['80:80']}}\n"
     "ingress: {subnet: 32.0.0.0/3}\nunderlay: {gwbridge: 172.0.0.0/8}\n"),
]


@pytest.mark.parametrize("case, text", LARGE, ids=[c[0] for c in LARGE])
def test_a_large_lab_plans(tmp_path, timings, case, text):
    scenario = tmp_path / "large.yaml"
    scenario.write_text(text)
    r = invoke(["plan", str(scenario)], timings, case)
    assert r.exit_code == 0, r.output[-500:]
    assert r.stdout.count("\n## ") + 1 == len(load_lab(scenario).nodes) * 3 + len(load_lab(scenario).tasks) + 2


@pytest.mark.parametrize("name", ["lab\n", "a/b", "..", "a b", "l" * 200, "Lab"])
def test_a_bad_name_option(tmp_path, timings, name):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(yaml.safe_dump(_DOC))
    for verb in ("validate", "plan"):
        r = invoke([verb, str(scenario), "--name", name], timings, f"--name {name!r}")
        assert r.exit_code == 2 and "--name" in r.stderr, r.output


# --- random damage: seeded, so a failure is reproducible --------------------

DAMAGE = [*"0123456789:{}[],&*!|>-?#%@`'\" \n\t./", "\u00b2", "\uff18", "\u0660", "<<", "*a", "&a ",
          "!!int", "!!float", "!!binary", "!!set", "!!omap", "~", "yes", "0x1", "1e9", ".inf", "1_0",
          "999999999999", "-1", "sctp", "host", "drain", "\n<<: *a\n", "\n? [a]\n: 1\n", "---\n",
          "2024-13-45", "\u2028", "\x85"]


@pytest.mark.parametrize("seed", range(4))
def test_randomly_damaged_documents_are_read_or_refused(seed):
    """Only ScenarioError (exit 2) or a lab that plans; never another exception."""
    import random

    from netlab.plan.build import build_plan
    from netlab.plan.graph import render
    from netlab.plan.render import plan_json
    from netlab.scenario import ScenarioError, load_lab_from_text
    rng = random.Random(seed)
    for _ in range(250):
        text = VALID
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(text))
            text = text[:pos] + rng.choice(DAMAGE) + text[pos + rng.randint(0, 3):]
        try:
            plan = build_plan(load_lab_from_text(text, "damaged.yaml"))
        except ScenarioError:
            continue
        plan_json(plan)
        render(plan, "dot")
